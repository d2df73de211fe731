"""The CycleGAN / pix2pix networks, with the module layout of the original PyTorch implementation.

Every module index below is load-bearing: the published reference checkpoints are plain
`state_dict`s whose keys (`model.10.conv_block.5.weight`, `model.model.1.model.3...`) name
positions inside `nn.Sequential`s. Parameter-free layers (padding, activations, dropout, and
instance norm, which has no affine weights) still take an index, so they cannot be removed or
reordered without breaking checkpoint compatibility.

Shapes use B = batch, C = channels, H, W = spatial size. Generators map
`(B, input_nc, H, W)` in [-1, 1] to `(B, output_nc, H, W)` in [-1, 1] (Tanh output).
Discriminators return raw logits (no sigmoid), one per patch.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

NORMS: tuple[str, ...] = ("instance", "batch", "none")
INIT_TYPES: tuple[str, ...] = ("normal", "xavier", "kaiming", "orthogonal")

__all__ = [
    "NORMS",
    "INIT_TYPES",
    "make_norm",
    "conv_bias",
    "ResnetBlock",
    "ResnetGenerator",
    "UnetSkipConnectionBlock",
    "UnetGenerator",
    "NLayerDiscriminator",
    "PixelDiscriminator",
    "init_weights",
]


def _check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; expected one of {', '.join(NORMS)}")


def _check_channels(**channels: int) -> None:
    for name, value in channels.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def make_norm(norm: str, num_features: int) -> nn.Module:
    """The normalisation layer for `norm`, as the reference builds it.

    instance: InstanceNorm2d without affine weights or running statistics (so it has no
    state_dict keys); batch: BatchNorm2d with affine weights and running statistics;
    none: Identity (it still occupies its index in the surrounding Sequential).
    """
    _check_norm(norm)
    if norm == "instance":
        return nn.InstanceNorm2d(num_features, affine=False, track_running_stats=False)
    if norm == "batch":
        return nn.BatchNorm2d(num_features, affine=True, track_running_stats=True)
    return nn.Identity()


def conv_bias(norm: str) -> bool:
    """Whether convolutions followed by a norm layer carry a bias.

    The reference gives them a bias only with instance norm: batch norm's affine shift makes a bias
    redundant, and with norm "none" the reference's test (`norm_layer == InstanceNorm2d`) is False
    too, so those convolutions have no bias either. Reproduced as-is for checkpoint compatibility.
    """
    _check_norm(norm)
    return norm == "instance"


# --------------------------------------------------------------------------------------------
# ResNet generator (CycleGAN default)
# --------------------------------------------------------------------------------------------


class ResnetBlock(nn.Module):
    """`x + conv_block(x)` with two reflection-padded 3x3 convolutions. `(B, C, H, W) -> (B, C, H, W)`.

    conv_block indices: 0 pad, 1 conv, 2 norm, 3 ReLU, [4 Dropout], then pad, conv, norm; so
    dropout moves the second convolution from `conv_block.5` to `conv_block.6`.
    """

    def __init__(self, dim: int, norm: str = "instance", dropout: bool = False) -> None:
        super().__init__()
        bias = conv_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=bias),
            make_norm(norm, dim),
            nn.ReLU(inplace=True),
        ]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=bias),
            make_norm(norm, dim),
        ]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv_block(x)


def resnet_down_layers(input_nc: int, ngf: int, norm: str) -> list[nn.Module]:
    """The ResNet generator's 7x7 stem and two stride-2 downsamplings (to `4 * ngf` channels)."""
    bias = conv_bias(norm)
    layers: list[nn.Module] = [
        nn.ReflectionPad2d(3),
        nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0, bias=bias),
        make_norm(norm, ngf),
        nn.ReLU(inplace=True),
    ]
    for i in range(2):
        channels = ngf * 2**i
        layers += [
            nn.Conv2d(channels, channels * 2, kernel_size=3, stride=2, padding=1, bias=bias),
            make_norm(norm, channels * 2),
            nn.ReLU(inplace=True),
        ]
    return layers


def resnet_up_layers(ngf: int, output_nc: int, norm: str) -> list[nn.Module]:
    """Two transposed-conv upsamplings from `4 * ngf` channels, then the 7x7 head and Tanh."""
    bias = conv_bias(norm)
    layers: list[nn.Module] = []
    for i in range(2):
        channels = ngf * 2 ** (2 - i)
        layers += [
            nn.ConvTranspose2d(channels, channels // 2, kernel_size=3, stride=2, padding=1,
                               output_padding=1, bias=bias),
            make_norm(norm, channels // 2),
            nn.ReLU(inplace=True),
        ]
    # The head has no norm after it, so it always keeps its bias.
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0), nn.Tanh()]
    return layers


class ResnetGenerator(nn.Module):
    """Johnson et al.'s generator: 7x7 stem, two stride-2 downsamplings, `n_blocks` residual
    blocks at `4 * ngf` channels, two transposed-conv upsamplings, 7x7 head and Tanh.

    `(B, input_nc, H, W) -> (B, output_nc, H, W)`; H and W must be multiples of 4 for the output
    to have the input's size.
    """

    # The residual block's class: the light generator (models.mobile) swaps in a separable one.
    block: type[nn.Module] = ResnetBlock

    def __init__(self, input_nc: int = 3, output_nc: int = 3, ngf: int = 64, norm: str = "instance",
                 dropout: bool = False, n_blocks: int = 9) -> None:
        super().__init__()
        _check_channels(input_nc=input_nc, output_nc=output_nc, ngf=ngf)
        if isinstance(n_blocks, bool) or not isinstance(n_blocks, int) or n_blocks < 0:
            raise ValueError(f"n_blocks must be a non-negative integer, got {n_blocks!r}")
        layers = [*resnet_down_layers(input_nc, ngf, norm),
                  *(self.block(ngf * 4, norm=norm, dropout=dropout) for _ in range(n_blocks)),
                  *resnet_up_layers(ngf, output_nc, norm)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


# --------------------------------------------------------------------------------------------
# U-Net generator (pix2pix default)
# --------------------------------------------------------------------------------------------


class UnetSkipConnectionBlock(nn.Module):
    """One U-Net level: down (stride-2 4x4 conv), `submodule`, up (stride-2 4x4 transposed conv).

    Non-outermost blocks return `cat([skip, up(...)], dim=1)`: `(B, outer_nc, H, W) ->
    (B, 2 * outer_nc, H, W)`. The outermost block returns `up(...)` through Tanh:
    `(B, input_nc, H, W) -> (B, outer_nc, H, W)`.

    `self.model` indices (they are the checkpoint keys):
    outermost: 0 down conv, 1 submodule, 2 ReLU, 3 up conv (bias), 4 Tanh;
    innermost: 0 LeakyReLU, 1 down conv, 2 ReLU, 3 up conv, 4 norm;
    otherwise: 0 LeakyReLU, 1 down conv, 2 norm, 3 submodule, 4 ReLU, 5 up conv, 6 norm, [7 Dropout].
    """

    def __init__(self, outer_nc: int, inner_nc: int, input_nc: int | None = None,
                 submodule: nn.Module | None = None, outermost: bool = False, innermost: bool = False,
                 norm: str = "instance", dropout: bool = False) -> None:
        super().__init__()
        if outermost and innermost:
            raise ValueError("a U-Net block cannot be both outermost and innermost")
        if submodule is None and not innermost:
            raise ValueError("only the innermost U-Net block may have no submodule")
        self.outermost = outermost
        input_nc = outer_nc if input_nc is None else input_nc
        bias = conv_bias(norm)
        down_conv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=bias)
        # Not in place: it would overwrite `x`, which forward() still needs for the skip.
        down_relu = nn.LeakyReLU(0.2)
        up_relu = nn.ReLU(inplace=True)

        layers: list[nn.Module]
        if outermost:
            up_conv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1)
            layers = [down_conv, submodule, up_relu, up_conv, nn.Tanh()]
        elif innermost:
            up_conv = nn.ConvTranspose2d(inner_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=bias)
            layers = [down_relu, down_conv, up_relu, up_conv, make_norm(norm, outer_nc)]
        else:
            up_conv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1,
                                         bias=bias)
            layers = [down_relu, down_conv, make_norm(norm, inner_nc), submodule,
                      up_relu, up_conv, make_norm(norm, outer_nc)]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        if self.outermost:
            return self.model(x)
        # The reference's in-place LeakyReLU makes its skip carry LeakyReLU(x) instead of x; the
        # parent's up path starts with ReLU, which maps both to the same values, so x is equivalent.
        return torch.cat([x, self.model(x)], dim=1)


class UnetGenerator(nn.Module):
    """U-Net with `num_downs` stride-2 levels (7: unet_128, 8: unet_256).

    `(B, input_nc, H, W) -> (B, output_nc, H, W)`; H and W must be multiples of `2**num_downs`.
    Channels: ngf, 2ngf, 4ngf, then 8ngf for the remaining levels. Dropout (when on) sits in the
    `num_downs - 5` middle blocks of 8ngf channels, after their up path.
    """

    def __init__(self, input_nc: int = 3, output_nc: int = 3, num_downs: int = 8, ngf: int = 64,
                 norm: str = "instance", dropout: bool = False) -> None:
        super().__init__()
        _check_channels(input_nc=input_nc, output_nc=output_nc, ngf=ngf)
        _check_norm(norm)
        if isinstance(num_downs, bool) or not isinstance(num_downs, int) or num_downs < 5:
            raise ValueError(f"num_downs must be an integer >= 5, got {num_downs!r}")
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, innermost=True, norm=norm)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block, norm=norm, dropout=dropout)
        block = UnetSkipConnectionBlock(ngf * 4, ngf * 8, submodule=block, norm=norm)
        block = UnetSkipConnectionBlock(ngf * 2, ngf * 4, submodule=block, norm=norm)
        block = UnetSkipConnectionBlock(ngf, ngf * 2, submodule=block, norm=norm)
        self.model = UnetSkipConnectionBlock(output_nc, ngf, input_nc=input_nc, submodule=block,
                                             outermost=True, norm=norm)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


# --------------------------------------------------------------------------------------------
# Discriminators
# --------------------------------------------------------------------------------------------


class NLayerDiscriminator(nn.Module):
    """PatchGAN: `n_layers` stride-2 4x4 convs, then two stride-1 4x4 convs down to 1 channel.

    `(B, input_nc, H, W) -> (B, 1, H / 2**n_layers - 2, W / 2**n_layers - 2)` logits (H, W multiples
    of `2**n_layers`); n_layers 3 ("basic") sees 70x70 patches. Channels double per layer, capped
    at 8 * ndf. Convs sit at `model.{0, 2, 5, 8, ...}`.
    """

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance") -> None:
        super().__init__()
        _check_channels(input_nc=input_nc, ndf=ndf, n_layers=n_layers)
        bias = conv_bias(norm)
        layers: list[nn.Module] = [
            nn.Conv2d(input_nc, ndf, kernel_size=4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        channels = ndf
        for n in range(1, n_layers + 1):
            previous, channels = channels, ndf * min(2**n, 8)
            # The last of these is stride 1: it widens the receptive field without downsampling.
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(previous, channels, kernel_size=4, stride=stride, padding=1, bias=bias),
                make_norm(norm, channels),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        layers.append(nn.Conv2d(channels, 1, kernel_size=4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class PixelDiscriminator(nn.Module):
    """1x1 PixelGAN: classifies every pixel on its own. `(B, input_nc, H, W) -> (B, 1, H, W)` logits."""

    def __init__(self, input_nc: int = 3, ndf: int = 64, norm: str = "instance") -> None:
        super().__init__()
        _check_channels(input_nc=input_nc, ndf=ndf)
        bias = conv_bias(norm)
        self.net = nn.Sequential(
            nn.Conv2d(input_nc, ndf, kernel_size=1, stride=1, padding=0),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, kernel_size=1, stride=1, padding=0, bias=bias),
            make_norm(norm, ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, 1, kernel_size=1, stride=1, padding=0, bias=bias),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


# --------------------------------------------------------------------------------------------
# Initialisation
# --------------------------------------------------------------------------------------------


def init_weights(net: nn.Module, init_type: str = "normal", gain: float = 0.02) -> nn.Module:
    """Initialise `net` in place as the reference does, and return it.

    Conv / ConvTranspose / Linear weights: normal N(0, gain), xavier_normal(gain),
    kaiming_normal(a=0, fan_in; gain unused) or orthogonal(gain); their biases 0.
    BatchNorm weights N(1, gain), biases 0.
    """
    if init_type not in INIT_TYPES:
        raise ValueError(f"unknown init_type {init_type!r}; expected one of {', '.join(INIT_TYPES)}")
    if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not math.isfinite(gain) or gain < 0:
        raise ValueError(f"init gain must be a finite number >= 0, got {gain!r}")

    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if init_type == "normal":
                nn.init.normal_(module.weight, 0.0, gain)
            elif init_type == "xavier":
                nn.init.xavier_normal_(module.weight, gain=gain)
            elif init_type == "kaiming":
                nn.init.kaiming_normal_(module.weight, a=0, mode="fan_in")
            else:
                nn.init.orthogonal_(module.weight, gain=gain)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.normal_(module.weight, 1.0, gain)
            nn.init.zeros_(module.bias)
    return net

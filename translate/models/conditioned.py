"""Text-conditioned networks: FiLM-modulated generators and a projection discriminator.

`cond` is a text embedding `(B, cond_dim)` from a translate.text encoder. Generators map
`(x (B, input_nc, H, W) in [-1, 1], cond)` (or `(noise (B, noise_dim), cond)`) to images in
[-1, 1]; the discriminator maps `(x, cond)` to `(B, 1, h, w)` patch logits.

Every FiLM starts as the identity (its projection is zero), so at initialisation the text has no
effect, the generators compute what their unconditioned counterparts compute, and the text
encoder receives no gradient until the first optimiser step has moved the FiLM weights. FiLM's
weights are plain parameters, not nn.Linear, so `init_weights` leaves that zero start alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from translate.models.networks import (
    NLayerDiscriminator,
    ResnetBlock,
    conv_bias,
    make_norm,
    resnet_down_layers,
    resnet_up_layers,
)

__all__ = [
    "FiLM",
    "FiLMResnetBlock",
    "TextResnetGenerator",
    "TextUnetGenerator",
    "TextToImageGenerator",
    "ProjectionDiscriminator",
    "matching_aware_d_loss",
    "TEXT2IMAGE_SIZES",
]

TEXT2IMAGE_SIZES: tuple[int, ...] = (32, 64, 128, 256)


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_cond(cond: Tensor, batch: int, cond_dim: int) -> None:
    if cond.ndim != 2 or cond.shape[1] != cond_dim or cond.shape[0] != batch:
        raise ValueError(f"expected cond of shape ({batch}, {cond_dim}), got {tuple(cond.shape)}")


class FiLM(nn.Module):
    """Feature-wise affine modulation: `x * (1 + dgamma(cond)) + beta(cond)`, per channel.

    `x (B, channels, H, W)`, `cond (B, cond_dim)` -> `(B, channels, H, W)`. Identity at init.
    """

    def __init__(self, cond_dim: int, channels: int) -> None:
        super().__init__()
        _check_positive(cond_dim=cond_dim, channels=channels)
        self.cond_dim, self.channels = cond_dim, channels
        self.weight = nn.Parameter(torch.zeros(2 * channels, cond_dim))
        self.bias = nn.Parameter(torch.zeros(2 * channels))

    def extra_repr(self) -> str:
        return f"cond_dim={self.cond_dim}, channels={self.channels}"

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        dgamma, beta = F.linear(cond, self.weight, self.bias).chunk(2, dim=1)
        return x * (1 + dgamma[:, :, None, None]) + beta[:, :, None, None]


# --------------------------------------------------------------------------------------------
# Image -> image, text-guided
# --------------------------------------------------------------------------------------------


class FiLMResnetBlock(nn.Module):
    """`ResnetBlock` with a FiLM after each of its two norm layers. `(B, C, H, W), cond -> (B, C, H, W)`.

    `block` is a plain ResnetBlock (same state_dict keys under `block.`), so an image-only
    generator's weights load into the text-conditioned one with the FiLMs at identity.
    """

    def __init__(self, dim: int, cond_dim: int, norm: str = "instance", dropout: bool = False) -> None:
        super().__init__()
        self.block = ResnetBlock(dim, norm=norm, dropout=dropout)
        self.film_1 = FiLM(cond_dim, dim)
        self.film_2 = FiLM(cond_dim, dim)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        layers = self.block.conv_block
        h = layers[2](layers[1](layers[0](x)))  # pad, conv, norm
        h = self.film_1(h, cond)
        for layer in layers[3:]:
            h = layer(h)
        return x + self.film_2(h, cond)


class TextResnetGenerator(nn.Module):
    """The ResNet generator (stem, 2 downsamplings, `n_blocks` FiLM residual blocks, 2
    upsamplings, head) guided by a text embedding.

    `forward(x (B, input_nc, H, W) in [-1, 1], cond (B, cond_dim)) -> (B, output_nc, H, W) in [-1, 1]`;
    H and W multiples of 4. `encoder` / `decoder` hold the same layers as ResnetGenerator.model.
    """

    def __init__(self, input_nc: int = 3, output_nc: int = 3, ngf: int = 64, n_blocks: int = 9,
                 cond_dim: int = 128, norm: str = "instance", dropout: bool = False) -> None:
        super().__init__()
        _check_positive(input_nc=input_nc, output_nc=output_nc, ngf=ngf, cond_dim=cond_dim)
        if isinstance(n_blocks, bool) or not isinstance(n_blocks, int) or n_blocks < 0:
            raise ValueError(f"n_blocks must be a non-negative integer, got {n_blocks!r}")
        self.cond_dim = cond_dim
        self.encoder = nn.Sequential(*resnet_down_layers(input_nc, ngf, norm))
        self.blocks = nn.ModuleList(FiLMResnetBlock(ngf * 4, cond_dim, norm, dropout) for _ in range(n_blocks))
        self.decoder = nn.Sequential(*resnet_up_layers(ngf, output_nc, norm))

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        _check_cond(cond, x.shape[0], self.cond_dim)
        h = self.encoder(x)
        for block in self.blocks:
            h = block(h, cond)
        return self.decoder(h)


class _FiLMUnetBlock(nn.Module):
    """One U-Net level as in UnetSkipConnectionBlock, with a FiLM on its up path's output
    (non-outermost levels: after the up norm, before the skip concatenation)."""

    def __init__(self, outer_nc: int, inner_nc: int, cond_dim: int, input_nc: int | None = None,
                 submodule: _FiLMUnetBlock | None = None, outermost: bool = False, innermost: bool = False,
                 norm: str = "instance", dropout: bool = False) -> None:
        super().__init__()
        self.outermost = outermost
        input_nc = outer_nc if input_nc is None else input_nc
        bias = conv_bias(norm)
        down_conv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=bias)
        up_in = inner_nc if innermost else inner_nc * 2
        if outermost:
            self.down = nn.Sequential(down_conv)
            self.up = nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(up_in, outer_nc, 4, 2, 1), nn.Tanh())
            self.film = None
        else:
            down: list[nn.Module] = [nn.LeakyReLU(0.2), down_conv]
            if not innermost:
                down.append(make_norm(norm, inner_nc))
            up: list[nn.Module] = [nn.ReLU(), nn.ConvTranspose2d(up_in, outer_nc, 4, 2, 1, bias=bias),
                                   make_norm(norm, outer_nc)]
            if dropout:
                up.append(nn.Dropout(0.5))
            self.down, self.up = nn.Sequential(*down), nn.Sequential(*up)
            self.film = FiLM(cond_dim, outer_nc)
        self.submodule = submodule

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        h = self.down(x)
        if self.submodule is not None:
            h = self.submodule(h, cond)
        h = self.up(h)
        if self.film is None:
            return h
        return torch.cat([x, self.film(h, cond)], dim=1)


class TextUnetGenerator(nn.Module):
    """U-Net generator (as UnetGenerator, `num_downs` levels) with a FiLM at each decoder level.

    `forward(x (B, input_nc, H, W) in [-1, 1], cond (B, cond_dim)) -> (B, output_nc, H, W) in [-1, 1]`;
    H and W multiples of `2**num_downs`. Not checkpoint-compatible with UnetGenerator.
    """

    def __init__(self, input_nc: int = 3, output_nc: int = 3, num_downs: int = 8, ngf: int = 64,
                 cond_dim: int = 128, norm: str = "instance", dropout: bool = False) -> None:
        super().__init__()
        _check_positive(input_nc=input_nc, output_nc=output_nc, ngf=ngf, cond_dim=cond_dim)
        if isinstance(num_downs, bool) or not isinstance(num_downs, int) or num_downs < 5:
            raise ValueError(f"num_downs must be an integer >= 5, got {num_downs!r}")
        self.cond_dim = cond_dim
        block = _FiLMUnetBlock(ngf * 8, ngf * 8, cond_dim, innermost=True, norm=norm)
        for _ in range(num_downs - 5):
            block = _FiLMUnetBlock(ngf * 8, ngf * 8, cond_dim, submodule=block, norm=norm, dropout=dropout)
        for outer, inner in ((4, 8), (2, 4), (1, 2)):
            block = _FiLMUnetBlock(ngf * outer, ngf * inner, cond_dim, submodule=block, norm=norm)
        self.model = _FiLMUnetBlock(output_nc, ngf, cond_dim, input_nc=input_nc, submodule=block,
                                    outermost=True, norm=norm)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        _check_cond(cond, x.shape[0], self.cond_dim)
        return self.model(x, cond)


# --------------------------------------------------------------------------------------------
# Noise + text -> image
# --------------------------------------------------------------------------------------------


class _UpBlock(nn.Module):
    """DF-GAN-style block: 2x nearest upsampling, two (conv 3x3, FiLM, LeakyReLU), residual shortcut."""

    def __init__(self, in_channels: int, out_channels: int, cond_dim: int) -> None:
        super().__init__()
        self.conv_1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.film_1 = FiLM(cond_dim, out_channels)
        self.conv_2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.film_2 = FiLM(cond_dim, out_channels)
        self.shortcut = (nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels
                         else nn.Identity())

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        h = F.leaky_relu(self.film_1(self.conv_1(x), cond), 0.2)
        h = F.leaky_relu(self.film_2(self.conv_2(h), cond), 0.2)
        return self.shortcut(x) + h


class TextToImageGenerator(nn.Module):
    """Single-stage noise + text -> image generator (DF-GAN-like, FiLM in every block).

    `forward(noise (B, noise_dim), cond (B, cond_dim)) -> (B, output_nc, image_size, image_size)`
    in [-1, 1]. The noise is projected to a `(B, 8 ngf, 4, 4)` map, then log2(image_size / 4)
    upsampling blocks halve the channels down to ngf (capped at 8 ngf).
    """

    def __init__(self, noise_dim: int = 100, cond_dim: int = 128, ngf: int = 64, image_size: int = 64,
                 output_nc: int = 3) -> None:
        super().__init__()
        _check_positive(noise_dim=noise_dim, cond_dim=cond_dim, ngf=ngf, output_nc=output_nc)
        if image_size not in TEXT2IMAGE_SIZES:
            raise ValueError(f"image_size must be one of {', '.join(map(str, TEXT2IMAGE_SIZES))}, "
                             f"got {image_size!r}")
        self.noise_dim, self.cond_dim, self.ngf, self.image_size = noise_dim, cond_dim, ngf, image_size
        n_up = int(math.log2(image_size // 4))
        multipliers = [min(8, 2 ** (n_up - 1 - i)) for i in range(n_up)]
        self.fc = nn.Linear(noise_dim, ngf * 8 * 4 * 4)
        self.blocks = nn.ModuleList(_UpBlock(ngf * m_in, ngf * m_out, cond_dim)
                                    for m_in, m_out in zip([8, *multipliers[:-1]], multipliers, strict=False))
        self.head = nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(ngf * multipliers[-1], output_nc, 3, padding=1),
                                  nn.Tanh())

    def forward(self, noise: Tensor, cond: Tensor) -> Tensor:
        if noise.ndim != 2 or noise.shape[1] != self.noise_dim:
            raise ValueError(f"expected noise of shape (B, {self.noise_dim}), got {tuple(noise.shape)}")
        _check_cond(cond, noise.shape[0], self.cond_dim)
        h = self.fc(noise).view(noise.shape[0], self.ngf * 8, 4, 4)
        for block in self.blocks:
            h = block(h, cond)
        return self.head(h)


# --------------------------------------------------------------------------------------------
# Discriminator and its loss
# --------------------------------------------------------------------------------------------


class ProjectionDiscriminator(nn.Module):
    """PatchGAN with a projection term (Miyato & Koyama 2018): `D(x, cond) = head(phi) + <embed(cond), phi>`.

    `forward(x (B, input_nc, H, W), cond (B, cond_dim)) -> (B, 1, h, w)` logits, the shape
    NLayerDiscriminator gives. phi are the PatchGAN features before its last conv; the projection
    is averaged over the same 4x4 window the last conv sees, so each patch logit gets its own term.
    """

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3, cond_dim: int = 128,
                 norm: str = "instance") -> None:
        super().__init__()
        _check_positive(cond_dim=cond_dim)
        patch = NLayerDiscriminator(input_nc, ndf, n_layers, norm)
        self.cond_dim = cond_dim
        self.features = nn.Sequential(*list(patch.model)[:-1])
        self.head = patch.model[-1]
        self.embed = nn.Linear(cond_dim, self.head.in_channels, bias=False)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        _check_cond(cond, x.shape[0], self.cond_dim)
        phi = self.features(x)
        projection = (phi * self.embed(cond)[:, :, None, None]).sum(dim=1, keepdim=True)
        projection = F.avg_pool2d(projection, kernel_size=4, stride=1, padding=1)
        return self.head(phi) + projection


def matching_aware_d_loss(d: nn.Module, real: Tensor, fake: Tensor, cond: Tensor, mismatched_cond: Tensor,
                          gan_loss: Callable[[Tensor, bool], Tensor]) -> Tensor:
    """Discriminator loss of the matching-aware GAN (Reed et al. 2016; DF-GAN).

    Three pairs: (real, cond) is real; (fake, cond) is fake; (real, mismatched_cond) is fake too,
    so D must check the text, not only the image. Returns the scalar
    `0.5 * (L(real, cond; real) + 0.5 * (L(fake, cond; fake) + L(real, mismatched; fake)))`,
    on the 0.5 * (real + fake) scale of the image-only tasks. `fake` is detached here.

    Args:
        d: `d(x, cond) -> logits`, e.g. ProjectionDiscriminator.
        real, fake: `(B, C, H, W)` in [-1, 1]. cond: `(B, D)`, the captions of `real` (and of `fake`).
        mismatched_cond: `(B, D)`, captions that do not describe `real` (e.g. `cond.roll(1, 0)`
            where captions differ).
        gan_loss: `gan_loss(prediction, target_is_real) -> scalar`, e.g. translate.training.losses.GANLoss.
    """
    if real.shape != fake.shape:
        raise ValueError(f"real and fake must have the same shape, got {tuple(real.shape)} "
                         f"and {tuple(fake.shape)}")
    if mismatched_cond.shape != cond.shape:
        raise ValueError(f"mismatched_cond must have cond's shape {tuple(cond.shape)}, "
                         f"got {tuple(mismatched_cond.shape)}")
    loss_real = gan_loss(d(real, cond), True)
    loss_fake = gan_loss(d(fake.detach(), cond), False)
    loss_mismatched = gan_loss(d(real, mismatched_cond), False)
    return 0.5 * (loss_real + 0.5 * (loss_fake + loss_mismatched))

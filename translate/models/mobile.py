"""A light ResNet generator: residual blocks of depthwise-separable convolutions (the "mobile"
generator of GAN Compression, Li et al. CVPR 2020).

Each 3x3 convolution of a residual block becomes a depthwise 3x3 (one filter per channel) followed
by a pointwise 1x1 that mixes the channels: `9 C + C^2` weights and multiply-accumulates per pixel
instead of `9 C^2`, 8.7x fewer at `4 * ngf` = 256 channels. The stem, the downsamplings and the
upsamplings are the ResNet generator's own, so they dominate what is left: at ngf 64 and 256 px,
11.1 GMACs and 1.99 M parameters against resnet_9blocks' 49.6 GMACs and 11.4 M.

The top-level layer sequence (`.model`) has the ResNet generator's indices: 0..9 the stem and
downsamplings, then one module per residual block, then the upsamplings and head. CUT's PatchNCE
layers (`0,4,7,10,14`: the input, both downsampling convolutions, residual blocks 1 and 5) name the
same places in both.
"""

from __future__ import annotations

from torch import Tensor, nn

from translate.models.networks import ResnetGenerator, conv_bias, make_norm

__all__ = ["MobileResnetBlock", "MobileResnetGenerator"]


def _separable_conv(dim: int, norm: str) -> list[nn.Module]:
    """Reflection pad, depthwise 3x3, norm, pointwise 1x1, norm: `(B, dim, H, W) -> (B, dim, H, W)`."""
    bias = conv_bias(norm)
    return [
        nn.ReflectionPad2d(1),
        nn.Conv2d(dim, dim, kernel_size=3, padding=0, groups=dim, bias=bias),
        make_norm(norm, dim),
        nn.Conv2d(dim, dim, kernel_size=1, bias=bias),
        make_norm(norm, dim),
    ]


class MobileResnetBlock(nn.Module):
    """`x + conv_block(x)` with two depthwise-separable 3x3 convolutions. `(B, C, H, W) -> (B, C, H, W)`.

    conv_block indices: 0 pad, 1 depthwise, 2 norm, 3 pointwise, 4 norm, 5 ReLU, [6 Dropout], then
    pad, depthwise, norm, pointwise, norm. No ReLU between a depthwise and its pointwise: each pair
    stands for one factorised 3x3 convolution, so the block has the ResNet block's nonlinearities.
    """

    def __init__(self, dim: int, norm: str = "instance", dropout: bool = False) -> None:
        super().__init__()
        layers = [*_separable_conv(dim, norm), nn.ReLU(inplace=True)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += _separable_conv(dim, norm)
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv_block(x)


class MobileResnetGenerator(ResnetGenerator):
    """The ResNet generator with `MobileResnetBlock`s: 7x7 stem, two stride-2 downsamplings,
    `n_blocks` separable residual blocks at `4 * ngf` channels, two transposed-conv upsamplings,
    7x7 head and Tanh (the same layers and indices as `ResnetGenerator`).

    `(B, input_nc, H, W)` in [-1, 1] -> `(B, output_nc, H, W)` in [-1, 1]; H and W must be multiples
    of 4 for the output to have the input's size.
    """

    block = MobileResnetBlock

"""The projected discriminator (Sauer et al. 2021, "Projected GANs Converge Faster"): small
trainable heads judge the features of a frozen, pretrained EfficientNet-Lite0.

    image (B, 3, H, W) in [-1, 1]
      -> EfficientNet-Lite0 (frozen, eval mode): taps at strides 4, 8, 16, 32
      -> fixed random 1x1 projections of each tap (cross-channel mixing)
      -> fixed random top-down fusion, deeper level upsampled into the shallower (cross-scale mixing)
      -> one spectral-norm head per level, each downsampling to stride 32
      -> patch logits (B, N), the four levels' logits side by side

The pretrained features make D strong from its first step, which is why such GANs need far fewer
steps; the random projections keep D from leaning on a few dominant ImageNet channels. The
backbone is not a submodule: it is in no `state_dict` (so never in a checkpoint or weights folder),
no `parameters()` (so no optimiser or `requires_grad_` reaches it) and never in training mode; it is
rebuilt from the installed weights each time the discriminator is built. The projections are
buffers: saved with the heads, so a resumed run judges with the same ones, and never trained.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from translate.core.errors import InvalidValueError
from translate.models.efficientnet_lite import TAP_CHANNELS, TAP_STRIDE, EfficientNetLite0, load_efficientnet_lite0

__all__ = ["MIN_SIZE", "ProjectedDiscriminator", "JudgeSet"]

MIN_SIZE = TAP_STRIDE  # the deepest tap needs one pixel
_MAX_HEAD_CHANNELS = 256


def _random_conv(c_in: int, c_out: int, kernel: int, generator: torch.Generator) -> Tensor:
    """A fixed random convolution kernel `(c_out, c_in, k, k)`, unit-variance outputs (He init)."""
    fan_in = c_in * kernel * kernel
    return torch.randn(c_out, c_in, kernel, kernel, generator=generator) * (2.0 / fan_in) ** 0.5


class _Head(nn.Module):
    """Spectral-norm 4x4 stride-2 convolutions down to stride 32, then 1x1 to one logit per patch."""

    def __init__(self, channels: int, downsamplings: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(downsamplings):
            wider = min(channels * 2, _MAX_HEAD_CHANNELS)
            layers += [spectral_norm(nn.Conv2d(channels, wider, 4, 2, 1)), nn.LeakyReLU(0.2, inplace=True)]
            channels = wider
        layers += [spectral_norm(nn.Conv2d(channels, channels, 3, 1, 1)), nn.LeakyReLU(0.2, inplace=True),
                   spectral_norm(nn.Conv2d(channels, 1, 1))]
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class ProjectedDiscriminator(nn.Module):
    """`(B, 3, H, W)` in [-1, 1], H and W >= 32 -> patch logits `(B, N)` (N = 4 * (H/32) * (W/32)
    for sides that are multiples of 32).

    Args:
        ndf: channels of the shallowest projection; the deeper ones have 2x, 4x, 8x (at most 256).
        seed: seeds the fixed random projections (they are buffers, saved with the heads).
        backbone: a loader of the frozen feature network (tests pass a small stand-in).
    """

    def __init__(self, ndf: int = 64, seed: int = 0,
                 backbone: Callable[[], EfficientNetLite0] = load_efficientnet_lite0) -> None:
        super().__init__()
        network = backbone().eval().requires_grad_(False)
        object.__setattr__(self, "backbone", network)  # not registered: see the module docstring
        generator = torch.Generator().manual_seed(seed)
        widths = [min(ndf * 2**i, _MAX_HEAD_CHANNELS) for i in range(len(TAP_CHANNELS))]
        for i, (c_in, width) in enumerate(zip(TAP_CHANNELS, widths, strict=True)):
            self.register_buffer(f"channel_mix{i}", _random_conv(c_in, width, 1, generator))
            if i < len(widths) - 1:  # the fusion of the deeper level into this one
                self.register_buffer(f"scale_in{i}", _random_conv(widths[i + 1], width, 1, generator))
                self.register_buffer(f"scale_mix{i}", _random_conv(width, width, 3, generator))
        self.heads = nn.ModuleList(_Head(width, len(widths) - 1 - i) for i, width in enumerate(widths))

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]
        # .to(device) / .half() reach the unregistered backbone too.
        self.backbone._apply(fn)
        return super()._apply(fn, recurse)

    def train(self, mode: bool = True) -> ProjectedDiscriminator:
        super().train(mode)
        self.backbone.eval()  # batch-norm statistics stay ImageNet's
        return self

    def project(self, x: Tensor) -> list[Tensor]:
        """The mixed features the heads judge, shallowest first."""
        if x.ndim != 4 or x.shape[1] != 3 or min(x.shape[2:]) < MIN_SIZE:
            raise InvalidValueError(
                "input", tuple(x.shape), f"(B, 3, H, W) RGB images with H and W >= {MIN_SIZE} (the projected "
                f"discriminator's feature network downsamples 32x)", "use larger crops or another netD")
        taps = self.backbone.features(x)
        mixed = [F.conv2d(tap, getattr(self, f"channel_mix{i}")) for i, tap in enumerate(taps)]
        fused = [mixed[-1]]
        for i in range(len(mixed) - 2, -1, -1):
            deeper = F.interpolate(fused[0], size=mixed[i].shape[2:], mode="bilinear", align_corners=False)
            level = mixed[i] + F.conv2d(deeper, getattr(self, f"scale_in{i}"))
            fused.insert(0, F.conv2d(level, getattr(self, f"scale_mix{i}"), padding=1))
        return fused

    def forward(self, x: Tensor) -> Tensor:
        logits = [head(level).flatten(1) for head, level in zip(self.heads, self.project(x), strict=True)]
        return torch.cat(logits, dim=1)


class JudgeSet(nn.ModuleDict):
    """Several discriminators of one image, each with its own loss: `forward(x)` returns
    `{name: logits}`; the training losses sum over the judges (e.g. the projected discriminator
    beside a PatchGAN, joliGEN's default)."""

    def forward(self, x: Tensor) -> dict[str, Tensor]:  # type: ignore[override]
        return {name: judge(x) for name, judge in self.items()}

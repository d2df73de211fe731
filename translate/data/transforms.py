"""Preprocessing, split in two so that the random part runs batched on the training device.

1. CPU, per image, in DataLoader workers: :func:`resize_for_batching` (the reference's resize /
   scale-width step, bicubic, PIL) and :func:`to_uint8_tensor`. Deterministic, so the uint8 result
   is what crosses the process boundary: four times smaller than float.
2. Device, per batch: :func:`augment_batch` (random crop, random flip, or the reference's
   "make multiple of 4" resize) and scaling to [-1, 1]; :func:`eval_transform` is its
   deterministic twin (center crop, no flip) for test and validation.

All randomness is drawn from one CPU ``torch.Generator`` passed in by the caller, so a training
run can seed, checkpoint and restore it, and get the same augmentation after a resume.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from kornia.geometry.transform import crop_by_indices
from PIL import Image

from translate.core.errors import check_choice
from translate.core.images import from_uint8
from translate.data.images import to_uint8_tensor

PREPROCESS_MODES: tuple[str, ...] = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")
CROP_MODES: tuple[str, ...] = ("resize_and_crop", "crop", "scale_width_and_crop")
# The reference makes uncropped images a multiple of 4 so that two stride-2 downsamplings and
# two upsamplings give back the input size.
SIZE_MULTIPLE = 4


@dataclass
class PreprocessConfig:
    """How images are resized and augmented (the reference's ``--preprocess`` family of options).

    Attributes:
        preprocess: one of :data:`PREPROCESS_MODES`.
            ``resize_and_crop``: resize to ``load_size`` x ``load_size``, random ``crop_size`` crop.
            ``crop``: random ``crop_size`` crop of the image at its own size.
            ``scale_width``: width to ``load_size`` (height keeps the aspect ratio, at least
            ``crop_size``), then H and W to multiples of 4.
            ``scale_width_and_crop``: ``scale_width``'s resize, then a random crop.
            ``none``: H and W to multiples of 4 only.
        load_size: resize target in pixels (unused by ``crop`` and ``none``).
        crop_size: side of the square crop in the crop modes.
        flip: random horizontal flip with p = 0.5 while training.
    """

    preprocess: str = "resize_and_crop"
    load_size: int = 286
    crop_size: int = 256
    flip: bool = True

    def __post_init__(self) -> None:
        check_choice("preprocess", self.preprocess, PREPROCESS_MODES)
        for name, value in (("load_size", self.load_size), ("crop_size", self.crop_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        # "crop" crops the image at its own size, so load_size does not bound it there; images
        # smaller than crop_size are reported by augment_batch with their size.
        if self.preprocess in ("resize_and_crop", "scale_width_and_crop") and self.crop_size > self.load_size:
            raise ValueError(
                f"crop_size ({self.crop_size}) is larger than load_size ({self.load_size}) with "
                f"preprocess={self.preprocess!r}: a crop cannot be larger than the resized image; "
                f"lower crop_size or raise load_size"
            )

    @property
    def crops(self) -> bool:
        """True for the modes that take a ``crop_size`` window (random in training, center in eval)."""
        return self.preprocess in CROP_MODES


def scale_width_size(width: int, height: int, load_size: int, crop_size: int) -> tuple[int, int]:
    """The reference's ``__scale_width`` target ``(width, height)``: width ``load_size``, height
    following the aspect ratio but never below ``crop_size``."""
    if width == load_size and height >= crop_size:
        return width, height
    return load_size, int(max(load_size * height / width, crop_size))


def resize_for_batching(img: Image.Image, cfg: PreprocessConfig) -> Image.Image:
    """CPU resize step of ``cfg.preprocess`` (bicubic, as in the reference); no randomness.

    ``resize_and_crop`` -> ``(load_size, load_size)``; ``scale_width*`` -> width ``load_size``,
    height ``max(load_size * h / w, crop_size)``; ``crop`` and ``none`` -> unchanged.
    """
    if cfg.preprocess == "resize_and_crop":
        size = (cfg.load_size, cfg.load_size)
    elif cfg.preprocess in ("scale_width", "scale_width_and_crop"):
        size = scale_width_size(img.width, img.height, cfg.load_size, cfg.crop_size)
    else:
        return img
    return img if img.size == size else img.resize(size, Image.Resampling.BICUBIC)


def prepare_image(img: Image.Image, cfg: PreprocessConfig) -> torch.Tensor:
    """:func:`resize_for_batching` then :func:`to_uint8_tensor`: ``(C, H, W)`` uint8, what datasets return."""
    return to_uint8_tensor(resize_for_batching(img, cfg))


def _check_batch(x: torch.Tensor, function: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{function} expects a torch.Tensor of shape (B, C, H, W), got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(
            f"{function} expects a batch of shape (B, C, H, W), got shape {tuple(x.shape)}; "
            "add a batch dimension with x.unsqueeze(0)"
        )
    if x.dtype != torch.uint8 and not x.is_floating_point():
        raise ValueError(f"{function} expects uint8 or float values in [0, 255], got dtype {x.dtype}")


def _check_generator(generator: torch.Generator | None) -> None:
    if generator is not None and generator.device.type != "cpu":
        raise ValueError(
            f"generator must be a CPU torch.Generator (parameters are drawn on the CPU and then "
            f"moved), got one on {generator.device}; create it with torch.Generator()"
        )


def _check_crop_fits(x: torch.Tensor, crop_size: int) -> None:
    height, width = x.shape[-2:]
    if height < crop_size or width < crop_size:
        raise ValueError(
            f"cannot take a {crop_size}x{crop_size} crop from images of {height}x{width} (H x W); "
            "lower crop_size, or use preprocess='resize_and_crop' with load_size >= crop_size"
        )


def crop_batch(x: torch.Tensor, tops: torch.Tensor, lefts: torch.Tensor, crop_size: int) -> torch.Tensor:
    """Crop a ``crop_size`` square per sample, exactly (pure indexing, no resampling).

    Args:
        x: ``(B, C, H, W)`` any dtype, any device.
        tops, lefts: ``(B,)`` integer CPU tensors, top-left corner of each window.

    Returns:
        ``(B, C, crop_size, crop_size)``, same dtype and device as ``x``.
    """
    x1, y1 = lefts.long(), tops.long()
    x2, y2 = x1 + crop_size - 1, y1 + crop_size - 1
    # kornia's box convention: (B, 4, 2) corners (x, y), clockwise from top-left. Kept on the CPU
    # so kornia reads the coordinates without a device synchronisation.
    boxes = torch.stack(
        [torch.stack(corner, dim=-1) for corner in ((x1, y1), (x2, y1), (x2, y2), (x1, y2))], dim=1
    )
    return crop_by_indices(x, boxes, size=(crop_size, crop_size))


def resize_to_multiple(x: torch.Tensor, multiple: int = SIZE_MULTIPLE) -> torch.Tensor:
    """Bicubic-resize H and W to the nearest multiple of ``multiple`` (the reference's ``__make_power_2``).

    Args:
        x: ``(B, C, H, W)`` float in [0, 255].

    Returns:
        ``(B, C, h, w)`` float in [0, 255]; ``x`` itself when already a multiple.
    """
    height, width = x.shape[-2:]
    # Python's round (half to even) as in the reference; never below one multiple for tiny inputs.
    new_height = max(multiple, int(round(height / multiple) * multiple))
    new_width = max(multiple, int(round(width / multiple) * multiple))
    if (new_height, new_width) == (height, width):
        return x
    # antialias matches PIL's bicubic when shrinking; clamp removes bicubic overshoot, as PIL's
    # uint8 output does.
    resized = F.interpolate(x, size=(new_height, new_width), mode="bicubic", align_corners=False, antialias=True)
    return resized.clamp(0.0, 255.0)


def augment_batch(
    x: torch.Tensor, cfg: PreprocessConfig, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Training augmentation of a batch, on whatever device ``x`` lives on.

    Crop modes take an independent random ``crop_size`` window per sample; ``none`` and
    ``scale_width`` resize H and W to multiples of 4; then, with ``cfg.flip``, each sample is
    flipped horizontally with p = 0.5. For an aligned pair concatenate A and B along channels
    first (or use :func:`augment_pair`) so both get the same window and flip.

    Args:
        x: ``(B, C, H, W)`` uint8, or float in [0, 255]; any C, any device.
        cfg: the preprocess options (the CPU part, :func:`resize_for_batching`, already applied).
        generator: CPU generator all random parameters are drawn from (``None``: torch's global
            CPU generator). Per call it draws ``2B`` crop offsets (crop modes) then ``B`` flips.

    Returns:
        ``(B, C, h, w)`` float32 in [-1, 1] on ``x.device``.

    Raises:
        ValueError: ``x`` is not a 4-D uint8/float tensor, images are smaller than the crop, or
            ``generator`` is not on the CPU.
    """
    _check_batch(x, "augment_batch")
    _check_generator(generator)
    batch, _, height, width = x.shape
    if cfg.crops:
        _check_crop_fits(x, cfg.crop_size)
        tops = torch.randint(0, height - cfg.crop_size + 1, (batch,), generator=generator)
        lefts = torch.randint(0, width - cfg.crop_size + 1, (batch,), generator=generator)
        # Cropping before the float conversion moves a quarter of the bytes.
        out = from_uint8(crop_batch(x, tops, lefts, cfg.crop_size))
    else:
        # The resize gives float values in 0..255 (clamped), which from_uint8 maps the same way.
        out = from_uint8(resize_to_multiple(x.to(torch.float32)))
    if cfg.flip:
        flips = torch.rand(batch, generator=generator) < 0.5
        # torch.where instead of boolean indexing: no device synchronisation.
        out = torch.where(flips.to(out.device).view(batch, 1, 1, 1), out.flip(-1), out)
    return out


def augment_pair(
    a: torch.Tensor, b: torch.Tensor, cfg: PreprocessConfig, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`augment_batch` on A and B together, so an aligned pair keeps the same crop and flip.

    Args:
        a: ``(B, Ca, H, W)`` and b: ``(B, Cb, H, W)``, uint8 or float in [0, 255], same device
            and spatial size; ``Ca`` and ``Cb`` may differ (e.g. 1 + 3).

    Returns:
        ``(a, b)`` as float32 in [-1, 1], each with its own channel count.
    """
    _check_batch(a, "augment_pair")
    _check_batch(b, "augment_pair")
    if a.shape[0] != b.shape[0] or a.shape[-2:] != b.shape[-2:]:
        raise ValueError(
            f"augment_pair needs A and B with the same batch size and H x W, got A {tuple(a.shape)} "
            f"and B {tuple(b.shape)}; resize them alike (preprocess='resize_and_crop') first"
        )
    if a.dtype != b.dtype:
        a, b = a.to(torch.float32), b.to(torch.float32)
    both = augment_batch(torch.cat([a, b], dim=1), cfg, generator)
    return both[:, : a.shape[1]], both[:, a.shape[1] :]


def eval_transform(x: torch.Tensor, cfg: PreprocessConfig) -> torch.Tensor:
    """Deterministic twin of :func:`augment_batch` for test / validation: center crop, no flip.

    Args:
        x: ``(B, C, H, W)`` uint8 or float in [0, 255], as the datasets return them (CPU resize
            already applied); any device.

    Returns:
        ``(B, C, h, w)`` float32 in [-1, 1]: ``crop_size`` squares in the crop modes, H and W
        rounded to multiples of 4 otherwise.
    """
    _check_batch(x, "eval_transform")
    if not cfg.crops:
        return from_uint8(resize_to_multiple(x.to(torch.float32)))
    _check_crop_fits(x, cfg.crop_size)
    height, width = x.shape[-2:]
    # torchvision's CenterCrop rounding, so results match the usual center crop.
    top = int(round((height - cfg.crop_size) / 2.0))
    left = int(round((width - cfg.crop_size) / 2.0))
    return from_uint8(x[..., top : top + cfg.crop_size, left : left + cfg.crop_size])

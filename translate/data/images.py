"""Finding and decoding image files: any mode Pillow reads, to 8-bit L / RGB / RGBA.

Every failure to read a file (missing, empty, truncated, not an image, a mode Pillow cannot
convert) becomes one exception type, :class:`ImageReadError`, so that datasets can skip bad files
with one ``except`` instead of crashing a training run hours in.
"""

from __future__ import annotations

import io
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif"}
)

# Channel count -> the Pillow mode every loaded image ends in.
CHANNEL_MODES: dict[int, str] = {1: "L", 3: "RGB", 4: "RGBA"}

_HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


class ImageReadError(OSError):
    """A file that cannot be read as an image; carries the path and the reason.

    Subclasses ``OSError`` so that code which already guards file access with ``except OSError``
    keeps working.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read image {self.path}: {reason}")

    def __reduce__(self):  # keeps the two-argument form through DataLoader worker pickling
        return (type(self), (self.path, self.reason))


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` has one of :data:`IMAGE_EXTENSIONS` (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def list_images(folder: str | os.PathLike[str], recursive: bool = True) -> list[Path]:
    """All image files under ``folder``, sorted by path so the order is the same on every machine.

    Hidden files and hidden folders (names starting with ``.``, e.g. ``.DS_Store``,
    ``.ipynb_checkpoints/``, macOS ``._*`` resource forks) are skipped.

    Raises:
        FileNotFoundError: ``folder`` does not exist or is not a directory.
    """
    folder = Path(folder)
    if not folder.is_dir():
        what = "is not a directory" if folder.exists() else "does not exist"
        raise FileNotFoundError(f"image folder {folder} {what}")
    found: list[Path] = []
    if recursive:
        for dirpath, dirnames, filenames in os.walk(folder):
            # Pruning in place stops os.walk from descending into hidden folders.
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            found.extend(Path(dirpath) / f for f in filenames if not f.startswith(".") and is_image_file(f))
    else:
        found = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and is_image_file(p)]
    return sorted(found, key=lambda p: p.relative_to(folder).parts)


def _high_depth_to_l(img: Image.Image) -> Image.Image:
    """16-bit (``I;16*``), 32-bit int (``I``) or float (``F``) grayscale -> 8-bit ``L``, rescaled.

    Pillow's own ``convert("L")`` clips these to 255, which turns most 16-bit images white.
    Integer images are taken as 16-bit (what PNG/TIFF store); float images in [0, 1] as
    normalised; anything else (negative values, HDR floats) is stretched from its min to its max.
    """
    values = np.asarray(img).astype(np.float64)
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if img.mode == "F" and low >= 0.0 and high <= 1.0:
        scaled = values * 255.0
    elif img.mode == "F" and low >= 0.0 and high <= 255.0:
        scaled = values
    elif img.mode != "F" and low >= 0.0 and high <= 65535.0:
        scaled = values * (255.0 / 65535.0)
    else:
        logger.debug("%s image with values in [%g, %g]: stretched to [0, 255]", img.mode, low, high)
        scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8))


def _to_base_mode(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> one of ``L``, ``LA``, ``RGB``, ``RGBA`` (8 bits per channel)."""
    mode = img.mode
    if mode in ("L", "LA", "RGB", "RGBA"):
        return img
    if mode in _HIGH_DEPTH_MODES or mode == "F":
        return _high_depth_to_l(img)
    if mode == "1":
        return img.convert("L")
    if mode in ("La",):
        return img.convert("LA")
    if mode in ("P", "PA"):
        # Palette transparency (a tRNS chunk or an RGBA palette) becomes a real alpha channel;
        # converting straight to RGB would also work but makes Pillow warn on every such file.
        has_alpha = (
            mode == "PA"
            or "transparency" in img.info
            or (img.palette is not None and img.palette.mode == "RGBA")
        )
        return img.convert("RGBA" if has_alpha else "RGB")
    if mode == "RGBa":
        return img.convert("RGBA")
    # CMYK, YCbCr, RGBX, HSV, LAB, ... : Pillow's converter or a ValueError naming the mode.
    return img.convert("RGB")


def convert_channels(img: Image.Image, channels: int) -> Image.Image:
    """Convert a decoded image to ``channels`` (1 -> ``L``, 3 -> ``RGB``, 4 -> ``RGBA``).

    Alpha is dropped without compositing when going to ``L``/``RGB``, as the reference
    implementation's ``.convert("RGB")`` does; 1 -> 3 repeats the gray value, 3 -> 4 adds an
    opaque alpha.

    Raises:
        ValueError: ``channels`` is not 1, 3 or 4, or Pillow cannot convert ``img.mode``.
    """
    target = _channel_mode(channels)
    base = _to_base_mode(img)
    return base if base.mode == target else base.convert(target)


def _channel_mode(channels: int) -> str:
    if channels not in CHANNEL_MODES:
        raise ValueError(
            f"channels must be 1 (grayscale), 3 (RGB) or 4 (RGBA), got {channels!r}; "
            "set input_nc / output_nc to one of these"
        )
    return CHANNEL_MODES[channels]


class ImageTooLargeError(ImageReadError):
    """An image with more pixels than the caller allows (checked from the header, before decoding)."""

    def __init__(self, path: str | os.PathLike[str], pixels: int, limit: int) -> None:
        self.pixels, self.limit = pixels, limit
        super().__init__(path, f"{pixels} pixels, more than the limit of {limit}")

    def __reduce__(self):
        return (type(self), (self.path, self.pixels, self.limit))


def decode_image(path: str | os.PathLike[str], max_pixels: int | None = None) -> Image.Image:
    """Decode an image file fully and apply its EXIF orientation; no channel conversion yet.

    `max_pixels`: refuse larger images from their header, before any pixel is decoded.

    Returns:
        A loaded 8-bit PIL image in mode ``L``, ``LA``, ``RGB`` or ``RGBA`` (16-bit and float
        grayscale rescaled to 8 bit, palette / CMYK / YCbCr... converted). Animated files give
        their first frame.

    Raises:
        ImageReadError: the file is missing, empty, truncated, not an image, or in a mode that
            cannot be converted (ImageTooLargeError: over `max_pixels`).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as error:
        raise ImageReadError(path, f"file cannot be accessed ({error.strerror or error})") from error
    if size == 0:
        raise ImageReadError(path, "file is empty (0 bytes)")
    return _decode_opened(path, path, max_pixels, None)


def decode_image_bytes(data: bytes, max_pixels: int | None = None, formats: tuple[str, ...] | None = None,
                       name: str = "<bytes>") -> Image.Image:
    """`decode_image` for an encoded image in memory (an upload): the same modes, EXIF orientation
    and errors, which name `name`. `formats`: Pillow format names to accept (e.g. ("PNG", "JPEG",
    "WEBP")); others are refused as not an image of those formats."""
    if not data:
        raise ImageReadError(name, "empty (0 bytes)")
    return _decode_opened(io.BytesIO(data), name, max_pixels, formats)


def _decode_opened(source: Path | io.BytesIO, name: str | os.PathLike[str], max_pixels: int | None,
                   formats: tuple[str, ...] | None) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # Pillow's DecompressionBombWarning / palette notices would otherwise print per file;
            # real bombs (over 2x the limit) still raise DecompressionBombError.
            warnings.simplefilter("ignore")
            with Image.open(source, formats=list(formats) if formats else None) as opened:
                if max_pixels is not None and opened.width * opened.height > max_pixels:
                    raise ImageTooLargeError(name, opened.width * opened.height, max_pixels)
                # load() decodes every byte, so truncated files fail here and not later in a
                # DataLoader worker's collate.
                opened.load()
                return _to_base_mode(ImageOps.exif_transpose(opened))
    except ImageReadError:
        raise
    except Image.DecompressionBombError as error:
        raise ImageReadError(name, f"image too large ({error})") from error
    except Image.UnidentifiedImageError as error:
        expected = f"a {', '.join(formats)} image" if formats else "an image file"
        raise ImageReadError(name, f"not {expected} Pillow can identify") from error
    except (OSError, ValueError, SyntaxError, EOFError, TypeError, IndexError) as error:
        # Pillow's format plugins signal damaged data with any of these.
        raise ImageReadError(name, str(error) or type(error).__name__) from error


def load_image(path: str | os.PathLike[str], channels: int = 3) -> Image.Image:
    """Decode an image file fully, apply its EXIF orientation and convert it to ``channels``.

    Args:
        path: any file Pillow can open (see :data:`IMAGE_EXTENSIONS`; the suffix is not checked).
        channels: 1 -> mode ``L``, 3 -> ``RGB``, 4 -> ``RGBA`` (see :func:`convert_channels`).

    Returns:
        A loaded 8-bit PIL image of that mode.

    Raises:
        ValueError: ``channels`` is not 1, 3 or 4 (checked before the file is touched).
        ImageReadError: see :func:`decode_image`.
    """
    _channel_mode(channels)
    return convert_channels(decode_image(path), channels)


def to_uint8_tensor(img: Image.Image) -> torch.Tensor:
    """PIL image in mode ``L``, ``LA``, ``RGB`` or ``RGBA`` -> ``(C, H, W)`` uint8 tensor in [0, 255].

    Raises:
        ValueError: other modes (palette, 16-bit, float, CMYK...); pass them through
            :func:`load_image` or :func:`convert_channels` first.
    """
    if img.mode not in ("L", "LA", "RGB", "RGBA"):
        raise ValueError(
            f"to_uint8_tensor expects an 8-bit L, LA, RGB or RGBA image, got mode {img.mode!r}; "
            "convert it with load_image(path, channels) or convert_channels(img, channels)"
        )
    array = np.array(img, dtype=np.uint8, copy=True)
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()

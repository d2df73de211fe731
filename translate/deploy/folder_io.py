"""Folder conversion's file side: decoding and encoding images, batching them by size, and which
files belong to a shard (the shard and resize options are parsed in `translate.deploy.options`).

Outputs are written under a temporary name (`.NAME.translate-partial`) and renamed when complete,
so a killed run leaves no partial file under the output's name.
"""

from __future__ import annotations

import collections
import hashlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from translate.data.images import ImageReadError, ImageTooLargeError, convert_channels, decode_image

__all__ = ["PARTIAL_SUFFIX", "Batcher", "Decoded", "decode", "encode", "encode_bytes", "image_pixels",
           "output_image", "save_output", "in_shard", "partial_path"]

PARTIAL_SUFFIX = ".translate-partial"
_PIL_FORMATS = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}


@dataclass
class Decoded:
    source: Path
    image: Tensor | None = None  # (C, H, W) uint8
    alpha: np.ndarray | None = None  # (H, W) uint8, carried over to the output
    error: str | None = None


def in_shard(relative: str, shard: tuple[int, int] | None) -> bool:
    """Deterministic split by a hash of the relative path: every process (on any machine) agrees,
    and files added later do not move the others between shards."""
    if shard is None:
        return True
    digest = hashlib.sha1(relative.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % shard[1] == shard[0]


def _resized(image: Image.Image, resize: tuple[int, int] | int) -> Image.Image:
    if isinstance(resize, tuple):
        size = resize
    else:
        scale = resize / min(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image if size == image.size else image.resize(size, Image.Resampling.BICUBIC)


def decode(source: Path, channels: int, max_pixels: int, resize: tuple[int, int] | int | None) -> Decoded:
    """The image at `source` as `(C, H, W)` uint8 with `channels` channels (resized), or the reason
    it cannot be read: a bad file never raises, it is reported."""
    try:
        return _decode_checked(source, channels, max_pixels, resize)
    except Exception as error:  # noqa: BLE001 - an odd file must not stop the folder
        return Decoded(source, error=f"{type(error).__name__}: {error}")


def _decode_checked(source: Path, channels: int, max_pixels: int, resize: tuple[int, int] | int | None
                    ) -> Decoded:
    try:
        image = decode_image(source, max_pixels=max_pixels)
    except ImageTooLargeError as error:
        return Decoded(source, error=f"{error.pixels} pixels, more than max_pixels={error.limit}; "
                                     "raise max_pixels, or use resize or tile")
    except ImageReadError as error:
        return Decoded(source, error=error.reason)
    pixels, alpha = image_pixels(image, channels, resize)
    return Decoded(source, pixels, alpha)


def image_pixels(image: Image.Image, channels: int, resize: tuple[int, int] | int | None = None
                 ) -> tuple[Tensor, np.ndarray | None]:
    """A decoded image as the model's input: `(channels, H, W)` uint8 (resized), and the `(H, W)`
    uint8 alpha to carry over to the output where the model does not take it (else None)."""
    alpha = None
    if image.mode in ("LA", "RGBA") and channels != 4:
        alpha = image.getchannel("A")
    image = convert_channels(image, channels)
    if resize is not None:
        image = _resized(image, resize)
        alpha = _resized(alpha, resize) if alpha is not None else None
    array = np.asarray(image)
    array = array[:, :, None] if array.ndim == 2 else array
    return torch.from_numpy(array.copy()).permute(2, 0, 1), np.asarray(alpha) if alpha is not None else None


def partial_path(target: Path) -> Path:
    return target.with_name(f".{target.name}{PARTIAL_SUFFIX}")


def output_image(pixels: np.ndarray, alpha: np.ndarray | None, fmt: str) -> Image.Image:
    """`(H, W, C)` uint8 [+ `(H, W)` alpha] -> the PIL image to save as `fmt` (png | jpg | webp)."""
    channels = pixels.shape[2]
    if channels == 4 or channels not in (1, 3):
        image = Image.fromarray(pixels, "RGBA") if channels == 4 else None
        if image is None:
            raise ValueError(f"cannot save a {channels}-channel output as an image")
    else:
        image = Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels, "L" if channels == 1 else "RGB")
    if alpha is not None and fmt != "jpg":
        image.putalpha(Image.fromarray(alpha, "L"))
    if fmt == "jpg" and image.mode in ("RGBA", "LA"):
        image = image.convert("RGB" if image.mode == "RGBA" else "L")
    return image


def save_output(image: Image.Image, target: Path | io.BytesIO, fmt: str, quality: int, png_compression: int = 1
                ) -> None:
    """Save with `fmt`'s options: png at zlib level `png_compression`, jpg / webp at `quality`."""
    options = {"compress_level": png_compression} if fmt == "png" else {"quality": quality}
    image.save(target, format=_PIL_FORMATS[fmt], **options)


def encode_bytes(pixels: np.ndarray, alpha: np.ndarray | None, fmt: str, quality: int, png_compression: int = 1
                 ) -> bytes:
    """`encode` into memory: the same bytes `encode` writes for the same arguments."""
    buffer = io.BytesIO()
    save_output(output_image(pixels, alpha, fmt), buffer, fmt, quality, png_compression)
    return buffer.getvalue()


def encode(pixels: np.ndarray, alpha: np.ndarray | None, target: Path, fmt: str, quality: int,
           png_compression: int = 1) -> None:
    """`(H, W, C)` uint8 [+ `(H, W)` alpha] -> file at `target` (`fmt` png | jpg | webp), written
    under a temporary name first."""
    image = output_image(pixels, alpha, fmt)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(target)
    try:
        save_output(image, partial, fmt, quality, png_compression)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


class Batcher:
    """Groups decoded images by size into batches; holds at most `hold` images in all."""

    def __init__(self, batch_size: int, hold: int) -> None:
        self.batch_size, self.hold = batch_size, hold
        self.groups: dict[tuple[int, ...], list[Decoded]] = collections.defaultdict(list)
        self.held = 0

    def add(self, item: Decoded) -> Iterator[list[Decoded]]:
        key = tuple(item.image.shape)
        self.groups[key].append(item)
        self.held += 1
        if len(self.groups[key]) == self.batch_size:
            yield self._pop(key)
        elif self.held > self.hold:  # many sizes: flush the fullest group rather than grow
            yield self._pop(max(self.groups, key=lambda k: len(self.groups[k])))

    def rest(self) -> Iterator[list[Decoded]]:
        while self.groups:
            yield self._pop(next(iter(self.groups)))

    def _pop(self, key: tuple[int, ...]) -> list[Decoded]:
        batch = self.groups.pop(key)
        self.held -= len(batch)
        return batch

"""Folder conversion on the PyTorch backend: every image at its own resolution, in batches.

Each image is padded by reflection to the model's size multiple (4 for ResNet generators, 256 for
unet_256), translated, and cropped back, so the output has the input's size. Images of the same
padded size share a batch. Unreadable files are reported and skipped; the rest is converted.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from translate.data.images import ImageReadError, list_images, load_image, to_uint8_tensor

logger = logging.getLogger(__name__)

OUTPUT_FORMATS = ("png", "jpg", "webp")


@dataclass
class ConvertSummary:
    converted: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # outputs that already existed
    failed: list[tuple[Path, str]] = field(default_factory=list)


def pad_to_multiple(x: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """Pad `(B, C, H, W)` on the bottom/right to multiples of `multiple`; returns (padded, (H, W)).

    Reflection keeps the border statistics natural; where the pad is larger than the image
    (a small image under a U-Net's multiple of 256), reflection is impossible and edges repeat.
    """
    height, width = x.shape[-2:]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    if pad_h == 0 and pad_w == 0:
        return x, (height, width)
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode), (height, width)


def translate_tensor(model: Callable[[Tensor], Tensor], x: Tensor, multiple: int) -> Tensor:
    """Run `model` (a generator, or any callable on padded tensors) on `(B, C, H, W)` in [-1, 1] of
    any size; returns `(B, C_out, H, W)` in [-1, 1]."""
    padded, (height, width) = pad_to_multiple(x, multiple)
    with torch.inference_mode():
        out = model(padded)
    return out[..., :height, :width]


def to_pil(x: Tensor) -> Image.Image:
    """`(C, H, W)` in [-1, 1] with C in {1, 3, 4} -> a PIL image."""
    array = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    mode = {1: "L", 3: "RGB", 4: "RGBA"}.get(array.shape[2])
    if mode is None:
        raise ValueError(f"cannot save a {array.shape[2]}-channel output as an image; expected 1, 3 or 4")
    return Image.fromarray(array[:, :, 0] if mode == "L" else array, mode)


def output_paths(sources: list[Path], input_dir: Path, output_dir: Path, fmt: str) -> dict[Path, Path]:
    """Same relative path and stem, new extension. Where two inputs would collide (a.jpg and
    a.png both -> a.png), each keeps its old extension in the name: a_jpg.png, a_png.png."""
    plain = {s: (output_dir / s.relative_to(input_dir)).with_suffix("." + fmt) for s in sources}
    counts: dict[Path, int] = defaultdict(int)
    for path in plain.values():
        counts[path] += 1
    return {s: p if counts[p] == 1 else p.with_name(f"{s.stem}_{s.suffix.lstrip('.').lower()}.{fmt}")
            for s, p in plain.items()}


def save_image_atomic(image: Image.Image, path: Path, fmt: str, quality: int = 95) -> None:
    """Write under a temporary name, then rename: a killed run never leaves a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pil_format = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}[fmt]
    if fmt == "jpg" and image.mode == "RGBA":
        image = image.convert("RGB")
    image.save(tmp, format=pil_format, **({"quality": quality} if fmt != "png" else {}))
    os.replace(tmp, path)


def _batches(items: Iterator[tuple[Path, Tensor]], batch_size: int
             ) -> Iterator[list[tuple[Path, Tensor]]]:
    """Group images of equal size (so they stack) into batches of at most `batch_size`.

    Lazy: at most one partial batch per distinct size is held in memory.
    """
    groups: dict[tuple[int, ...], list[tuple[Path, Tensor]]] = defaultdict(list)
    for path, x in items:
        key = tuple(x.shape)
        groups[key].append((path, x))
        if len(groups[key]) == batch_size:
            yield groups.pop(key)
    yield from groups.values()


def _read_images(sources: list[Path], channels: int, summary: ConvertSummary
                 ) -> Iterator[tuple[Path, Tensor]]:
    for source in sources:
        try:
            yield source, to_uint8_tensor(load_image(source, channels))
        except ImageReadError as error:
            logger.warning("cannot read %s: %s", source, error)
            summary.failed.append((source, str(error)))


def convert_folder(input_dir: str | Path, output_dir: str | Path, model: str | Path, *,
                   direction: str | None = None, batch_size: int = 4, device: str = "auto",
                   fmt: str = "png", quality: int = 95, overwrite: bool = False,
                   on_progress: Callable[[int, int], None] | None = None) -> ConvertSummary:
    """Translate every image under `input_dir` (recursively) into `output_dir`, same relative paths.

    Args:
        model: a weights folder, a run directory, a training checkpoint, an exported `.onnx` file
            (run on ONNX Runtime) or the name of a bundled model in weights/.
        direction: AtoB | BtoA for models holding both generators (CycleGAN runs).
        fmt: png | jpg | webp (the output's extension).
        overwrite: redo outputs that already exist (otherwise they are skipped).
        on_progress: called with (done, total) after each image.
    """
    from translate.translator import Translator

    input_dir, output_dir = Path(input_dir).resolve(), Path(output_dir).resolve()
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"output format {fmt!r} is not one of {', '.join(OUTPUT_FORMATS)}")
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    if not input_dir.is_dir():
        raise FileNotFoundError(f"input folder {str(input_dir)!r} does not exist")
    if output_dir == input_dir or input_dir in output_dir.parents:
        raise ValueError(f"output folder {str(output_dir)!r} is inside the input folder "
                         f"{str(input_dir)!r}; choose a folder outside it")
    translator = Translator(model, direction=direction, device=device)
    channels = translator.input_channels

    sources = list_images(input_dir, recursive=True)
    if not sources:
        raise FileNotFoundError(f"no images found under {str(input_dir)!r}")
    summary = ConvertSummary()
    targets = output_paths(sources, input_dir, output_dir, fmt)
    todo: list[Path] = []
    for source in sources:
        if not overwrite and targets[source].exists():
            summary.skipped.append(source)
        else:
            todo.append(source)

    for batch in _batches(_read_images(todo, channels, summary), batch_size):
        x = torch.stack([image for _, image in batch]).float() / 127.5 - 1.0
        out = translator.translate_tensor(x)
        for (source, _), result in zip(batch, out):
            save_image_atomic(to_pil(result), targets[source], fmt, quality)
            summary.converted.append(source)
            if on_progress is not None:
                on_progress(len(summary.converted) + len(summary.failed), len(todo))
    return summary

"""Translate an aligned (pix2pix-layout) test split with a model, so it can be scored.

Each image of `DATA/PHASE` holds a pair side by side, A on the left and B on the right (the
layout of the pix2pix data sets: maps, facades, edges2shoes, ...). `translate_aligned_split`
writes the halves as `OUT/input/` and `OUT/target/`, then runs `translate.deploy.convert.convert_folder`
on the inputs into `OUT/output/` (full precision, the model's own size), so that
`evaluate_folders(OUT/target, OUT/output)` scores the model the way papers do.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from PIL import Image

from translate.data.images import list_images, load_image
from translate.deploy.convert import convert_folder

logger = logging.getLogger(__name__)

__all__ = ["split_aligned", "translate_aligned_split"]


def split_aligned(source: str | os.PathLike[str], out: str | os.PathLike[str], direction: str = "AtoB",
                  limit: int | None = None, load_size: int | None = None) -> tuple[Path, Path]:
    """Write each aligned A|B image's halves as `out/input/NAME.png` and `out/target/NAME.png`.

    Args:
        source: folder of aligned images (recursive); an odd last column is dropped.
        direction: "AtoB" (left half is the input) or "BtoA".
        limit: only the first N images, sorted by path.
        load_size: resize each half to N x N (bicubic), as the reference's test does at 256;
            None keeps the data set's size.
    Returns: (input folder, target folder).
    """
    if direction not in ("AtoB", "BtoA"):
        raise ValueError(f"direction must be AtoB or BtoA, got {direction!r}")
    if load_size is not None and (isinstance(load_size, bool) or not isinstance(load_size, int) or load_size < 1):
        raise ValueError(f"load_size must be a positive integer (pixels), got {load_size!r}")
    source, out = Path(source), Path(out)
    files = list_images(source)
    if not files:
        raise FileNotFoundError(f"no aligned A|B images under {str(source)!r}; expected e.g. DATA/val/1.jpg "
                                "holding the pair side by side")
    files = files[:limit] if limit else files
    inputs, targets = out / "input", out / "target"
    for path in files:
        both = load_image(path)
        half = both.width // 2
        if half == 0:
            raise ValueError(f"{path} is {both.width} pixels wide: too narrow to hold an A|B pair")
        a, b = both.crop((0, 0, half, both.height)), both.crop((half, 0, 2 * half, both.height))
        if load_size:
            a, b = (half.resize((load_size, load_size), Image.Resampling.BICUBIC) for half in (a, b))
        source_half, target_half = (a, b) if direction == "AtoB" else (b, a)
        name = path.relative_to(source).with_suffix(".png")
        for folder, image in ((inputs, source_half), (targets, target_half)):
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            image.save(folder / name)
    logger.info("split %d aligned images from %s into %s and %s", len(files), source, inputs, targets)
    return inputs, targets


def translate_aligned_split(model: str | os.PathLike[str], data: str | os.PathLike[str],
                            out: str | os.PathLike[str], *, phase: str = "val", direction: str = "AtoB",
                            device: str = "auto", limit: int | None = None,
                            load_size: int | None = None) -> tuple[Path, Path]:
    """Split `data/phase`'s aligned pairs into `out/`, translate the inputs with `model` (fp32, at
    their own size) into `out/output/`. Returns (target folder, output folder)."""
    source = Path(data) / phase
    if not source.is_dir():
        raise FileNotFoundError(f"no {phase!r} split at {str(source)!r}; pass phase= (`translate eval --phase`), e.g. val or test")
    inputs, targets = split_aligned(source, out, direction, limit, load_size)
    outputs = Path(out) / "output"
    summary = convert_folder(inputs, outputs, str(model), precision="fp32", device=device, overwrite=True)
    if summary.failed:
        raise ValueError(f"{len(summary.failed)} images failed to translate, first: {summary.failed[0]}")
    return targets, outputs

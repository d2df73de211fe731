"""Captioned image folders (text-to-image) and per-domain prompt files (text-guided translation).

A folder's captions come from any of these sources, combined:

- ``name.txt`` beside ``name.png``: each non-empty line is one caption (or only the first, with
  ``all_txt_lines=False``);
- ``captions.jsonl``: one JSON object per line, ``{"file": "name.png", "text": "..."}``; a file
  may appear on several lines (several captions);
- ``captions.csv``: a header with ``file`` and ``text`` columns (read with :mod:`csv`, so quoted
  text may hold commas), one row per caption.

``file`` is relative to the folder (``sub/name.png`` works). Images without any caption are skipped
with one warning that gives their count.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps
from torch.utils.data import Dataset

from translate.core.images import from_uint8
from translate.data.images import ImageReadError, list_images, load_image, to_uint8_tensor

logger = logging.getLogger(__name__)

JSONL_NAME = "captions.jsonl"
CSV_NAME = "captions.csv"
PROMPTS_NAME = "prompts.txt"

_LAYOUT = (
    "expected captions in one of these forms:\n"
    "  folder/name.png + folder/name.txt          (one caption per line)\n"
    f"  folder/{JSONL_NAME}   {{\"file\": \"name.png\", \"text\": \"a red circle\"}} per line\n"
    f"  folder/{CSV_NAME}     header 'file,text', then one row per caption"
)


def _resolve_image(folder: Path, file: str, images: set[Path], where: str) -> Path:
    """The absolute path of ``file`` (relative to ``folder``), which must be one of ``images``."""
    path = (folder / file).resolve()
    if path in images:
        return path
    if not path.exists():
        raise FileNotFoundError(
            f"{where}: caption for {file!r}, but {path} does not exist; fix the file name "
            f"(relative to {folder}) or remove the line"
        )
    raise ValueError(
        f"{where}: caption for {file!r}, which is not an image file this folder lists "
        "(hidden, or not an image extension); point it at an image or remove the line"
    )


def _check_text(text: Any, where: str) -> str:
    if not isinstance(text, str):
        raise ValueError(f"{where}: 'text' must be a string, got {text!r}; quote the caption")
    text = text.strip()
    if not text:
        raise ValueError(f"{where}: empty caption; write a caption or remove the line")
    return text


def _read_jsonl(path: Path, folder: Path, images: set[Path]) -> list[tuple[Path, str]]:
    pairs: list[tuple[Path, str]] = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(
                    f"{where}: not valid JSON ({error.msg}): {line.strip()[:80]!r}; expected one object "
                    'per line like {"file": "name.png", "text": "a red circle"}'
                ) from error
            if not isinstance(record, dict) or "file" not in record or "text" not in record:
                raise ValueError(
                    f'{where}: expected an object with "file" and "text", got {line.strip()[:80]!r}'
                )
            text = _check_text(record["text"], where)
            pairs.append((_resolve_image(folder, str(record["file"]), images, where), text))
    return pairs


def _read_csv(path: Path, folder: Path, images: set[Path]) -> list[tuple[Path, str]]:
    pairs: list[tuple[Path, str]] = []
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or []]
        if "file" not in header or "text" not in header:
            raise ValueError(
                f"{path}: the header must name 'file' and 'text' columns, got {header}; "
                "make the first line 'file,text'"
            )
        reader.fieldnames = header
        for row in reader:
            # line_num counts physical lines, so quoted multi-line captions still point right.
            where = f"{path}:{reader.line_num}"
            if not any((value or "").strip() for value in row.values() if isinstance(value, str)):
                continue
            file = (row.get("file") or "").strip()
            if not file:
                raise ValueError(f"{where}: empty 'file' column in {row!r}; name the image")
            pairs.append((_resolve_image(folder, file, images, where), _check_text(row.get("text"), where)))
    return pairs


def _read_txt(path: Path, all_lines: bool) -> list[str]:
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    captions = [line for line in lines if line]
    if not captions:
        raise ValueError(f"{path}: empty caption file; write a caption or delete the file")
    return captions if all_lines else captions[:1]


def read_captions(folder: str | os.PathLike[str], all_txt_lines: bool = True) -> dict[Path, list[str]]:
    """Captions of every captioned image under ``folder``, from all sources (see the module doc).

    Args:
        folder: the image folder (searched recursively, hidden files skipped).
        all_txt_lines: each non-empty line of a ``name.txt`` is a caption; False keeps only the first.

    Returns:
        ``{absolute image path: [caption, ...]}`` in sorted image order; captions in source order
        (``.txt``, then ``captions.jsonl``, then ``captions.csv``).

    Raises:
        FileNotFoundError: ``folder`` is missing, a caption names a missing file, or no image has
            a caption.
        ValueError: an empty caption, a malformed ``captions.jsonl`` line (with its number), a
            ``captions.csv`` without ``file`` / ``text`` columns.
    """
    folder = Path(folder)
    images = list_images(folder)
    image_set = {path.resolve() for path in images}
    captions: dict[Path, list[str]] = {path.resolve(): [] for path in images}
    for image in images:
        txt = image.with_suffix(".txt")
        if txt.is_file():
            captions[image.resolve()].extend(_read_txt(txt, all_txt_lines))
    folder_abs = folder.resolve()
    for name, reader in ((JSONL_NAME, _read_jsonl), (CSV_NAME, _read_csv)):
        if (folder / name).is_file():
            for path, text in reader(folder / name, folder_abs, image_set):
                captions[path].append(text)
    uncaptioned = [path for path, texts in captions.items() if not texts]
    captioned = {path: texts for path, texts in captions.items() if texts}
    if not captioned:
        raise FileNotFoundError(f"no image under {folder} has a caption ({len(images)} images found).\n{_LAYOUT}")
    if uncaptioned:
        logger.warning(
            "%d of %d images under %s have no caption and are skipped (first: %s)",
            len(uncaptioned), len(images), folder, uncaptioned[0].name,
        )
    return captioned


def read_domain_prompts(folder: str | os.PathLike[str]) -> dict[str, list[str]]:
    """Prompt phrasings of each domain: every subfolder of ``folder`` is a domain with a ``prompts.txt``.

    ``prompts.txt`` holds one phrasing per line; blank lines and lines starting with ``#`` are
    ignored.

    Returns:
        ``{subfolder name: [phrasing, ...]}``, sorted by name.

    Raises:
        FileNotFoundError: ``folder`` is missing or has no subfolder, or a subfolder has no
            ``prompts.txt``.
        ValueError: a ``prompts.txt`` holds no phrasing.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"domain folder {folder} does not exist")
    domains = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not domains:
        raise FileNotFoundError(
            f"{folder} has no subfolders; make one per domain, e.g. {folder}/map/ with images and a {PROMPTS_NAME}"
        )
    prompts: dict[str, list[str]] = {}
    for domain in domains:
        path = domain / PROMPTS_NAME
        if not path.is_file():
            raise FileNotFoundError(
                f"domain {domain.name!r} has no {path}; write one phrasing per line, e.g. 'a map'"
            )
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        phrasings = [line for line in lines if line and not line.startswith("#")]
        if not phrasings:
            raise ValueError(f"{path} holds no prompt (only blank or '#' lines); write one phrasing per line")
        prompts[domain.name] = phrasings
    return prompts


class CaptionedDataset(Dataset):
    """Images with their captions, for text-to-image training.

    Item ``i``: ``{"image": (3, S, S) float in [-1, 1], "text": str, "path": str}``. Each image is
    resized on its short side and center-cropped to ``S x S``. The caption is drawn among the
    image's captions by a generator seeded with ``(seed, epoch, i)``: the same every run, a fresh
    draw each epoch (call :meth:`set_epoch`, like ``DistributedSampler``). An unreadable image gives
    ``{"error": path, "reason": why}``, which :func:`translate.data.collate_images` drops.
    """

    def __init__(
        self, folder: str | os.PathLike[str], size: int, seed: int = 0, all_txt_lines: bool = True
    ) -> None:
        if size < 1:
            raise ValueError(f"size must be a positive number of pixels, got {size!r}")
        self.folder = Path(folder)
        self.size = size
        self.seed = seed
        self.epoch = 0
        captions = read_captions(folder, all_txt_lines=all_txt_lines)
        self.paths: list[Path] = list(captions)
        self.captions: list[list[str]] = [captions[path] for path in self.paths]

    def set_epoch(self, epoch: int) -> None:
        """Draw other captions from now on (the images stay the same)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.paths[index]
        texts = self.captions[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        text = texts[int(rng.integers(len(texts)))]
        try:
            img = load_image(path, channels=3)
        except ImageReadError as error:
            logger.warning("skipping %s: %s", path, error.reason)
            return {"error": str(path), "reason": error.reason}
        img = ImageOps.fit(img, (self.size, self.size), Image.Resampling.BICUBIC)
        image = from_uint8(to_uint8_tensor(img))
        return {"image": image, "text": text, "path": str(path)}

"""Datasets for unpaired (CycleGAN) and paired (pix2pix) training, and their collate function.

Items are dicts of ``(C, H, W)`` uint8 tensors after the CPU resize step, plus the source paths;
the random crop / flip happens later, batched on the training device
(:func:`translate.data.transforms.augment_batch`). A file that cannot be read does not stop
training: the item becomes ``{"error": path, "reason": why}`` and :func:`collate_images` drops it
and reports it under ``"skipped"``.
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset

from translate.data.images import (
    IMAGE_EXTENSIONS,
    ImageReadError,
    convert_channels,
    decode_image,
    list_images,
    load_image,
)
from translate.data.transforms import PreprocessConfig, prepare_image

logger = logging.getLogger(__name__)

PAIRED_LAYOUTS: tuple[str, ...] = ("phase_ab", "side_by_side", "root_ab")

_EXTENSIONS = ", ".join(sorted(ext.lstrip(".") for ext in IMAGE_EXTENSIONS))


def _unpaired_layout(root: Path, phase: str) -> str:
    return (
        "expected layout (unpaired, CycleGAN):\n"
        f"  {root}/\n"
        f"  |-- {phase}A/   images of domain A (any file names)\n"
        f"  `-- {phase}B/   images of domain B\n"
        f"image types: {_EXTENSIONS}"
    )


def _paired_layout(root: Path, phase: str) -> str:
    return (
        "expected one of these layouts (paired, pix2pix), tried in this order:\n"
        f"  1) {root}/\n"
        f"     `-- {phase}/\n"
        "         |-- A/   1.jpg 2.jpg ...\n"
        "         `-- B/   1.jpg 2.jpg ...   (same names as in A; extensions may differ)\n"
        f"  2) {root}/\n"
        f"     `-- {phase}/   1.jpg 2.jpg ...   (each image holds A | B side by side)\n"
        f"  3) {root}/   (no {phase}/ folder)\n"
        "     |-- A/   1.jpg 2.jpg ...\n"
        "     `-- B/   1.jpg 2.jpg ...\n"
        f"image types: {_EXTENSIONS}"
    )


def _require_images(folder: Path, layout: str) -> list[Path]:
    """Images under ``folder``; FileNotFoundError naming the folder and the layout otherwise."""
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset folder {folder} does not exist.\n{layout}")
    images = list_images(folder)
    if not images:
        raise FileNotFoundError(f"dataset folder {folder} holds no images.\n{layout}")
    return images


def _check_channels(name: str, channels: int) -> int:
    if channels not in (1, 3, 4):
        raise ValueError(f"{name} must be 1, 3 or 4, got {channels!r}")
    return channels


def _error_item(path: str | os.PathLike[str], reason: str) -> dict[str, Any]:
    logger.warning("skipping %s: %s", path, reason)
    return {"error": str(path), "reason": reason}


def collate_images(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """DataLoader ``collate_fn`` for the datasets here: drops unreadable items and stacks the rest.

    Args:
        batch: items from :class:`UnpairedDataset` / :class:`PairedDataset`.

    Returns:
        Tensors stacked to ``(B, C, H, W)`` uint8, other values (paths) as lists, and
        ``"skipped"``: ``list[tuple[path, reason]]`` of the dropped items (empty when none).
        When every item was unreadable only ``{"skipped": [...]}`` is returned.

    Raises:
        ValueError: the readable images differ in size, which only the size-keeping preprocess
            modes allow.
    """
    good = [item for item in batch if "error" not in item]
    skipped = [(item["error"], item["reason"]) for item in batch if "error" in item]
    if not good:
        return {"skipped": skipped}
    out: dict[str, Any] = {}
    for key in good[0]:
        values = [item[key] for item in good]
        if isinstance(values[0], torch.Tensor):
            shapes = sorted({tuple(value.shape) for value in values})
            if len(shapes) > 1:
                raise ValueError(
                    f"cannot batch images of different sizes under {key!r}: {shapes} (C, H, W). "
                    "The preprocess modes crop, scale_width, scale_width_and_crop and none keep (part of) "
                    "each image's own size; use preprocess='resize_and_crop' or batch_size=1"
                )
            out[key] = torch.stack(values)
        else:
            out[key] = values
    out["skipped"] = skipped
    return out


class UnpairedDataset(Dataset):
    """Two unaligned image folders, ``root/{phase}A`` and ``root/{phase}B`` (CycleGAN).

    An epoch has ``max(nA, nB)`` items. Item ``i`` is ``A[i % nA]`` with a B image drawn at random
    as in the reference, but from ``random.Random(f"{seed}:{epoch}:{i}")`` so the draw is the same
    in every worker and after a resume. Call :meth:`set_epoch` before each epoch (with DataLoader
    ``persistent_workers=True`` the workers keep their own copy, so set it before creating them).

    Items: ``{"a": (Ca, H, W) uint8, "b": (Cb, H, W) uint8, "path_a": str, "path_b": str}``.

    Raises:
        FileNotFoundError: a folder is missing or holds no images (message shows the layout).
        ValueError: a channel count other than 1, 3 or 4.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        phase: str = "train",
        channels_a: int = 3,
        channels_b: int = 3,
        preprocess: PreprocessConfig | None = None,
        seed: int = 0,
    ) -> None:
        self.root = Path(root)
        self.phase = phase
        self.channels_a = _check_channels("channels_a", channels_a)
        self.channels_b = _check_channels("channels_b", channels_b)
        self.preprocess = preprocess if preprocess is not None else PreprocessConfig()
        self.seed = seed
        self.epoch = 0
        layout = _unpaired_layout(self.root, phase)
        if not self.root.is_dir():
            raise FileNotFoundError(f"dataset root {self.root} does not exist.\n{layout}")
        self.dir_a = self.root / f"{phase}A"
        self.dir_b = self.root / f"{phase}B"
        self.paths_a = _require_images(self.dir_a, layout)
        self.paths_b = _require_images(self.dir_b, layout)
        logger.debug("%s", self.describe())

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose B draws :meth:`__getitem__` returns."""
        self.epoch = int(epoch)

    def b_index(self, index: int) -> int:
        """Index into ``paths_b`` paired with item ``index`` in the current epoch."""
        # A string seed is hashed with SHA-512 by random.Random: stable across processes and runs,
        # unlike hash(), which PYTHONHASHSEED randomises.
        return random.Random(f"{self.seed}:{self.epoch}:{index}").randrange(len(self.paths_b))

    def __len__(self) -> int:
        return max(len(self.paths_a), len(self.paths_b))

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} items")
        path_a = self.paths_a[index % len(self.paths_a)]
        path_b = self.paths_b[self.b_index(index)]
        try:
            a = prepare_image(load_image(path_a, self.channels_a), self.preprocess)
            b = prepare_image(load_image(path_b, self.channels_b), self.preprocess)
        except ImageReadError as error:
            return _error_item(error.path, error.reason)
        return {"a": a, "b": b, "path_a": str(path_a), "path_b": str(path_b)}

    def describe(self) -> str:
        """One line for logs: folders, image counts, epoch length."""
        return (
            f"unpaired dataset {self.root}: {len(self.paths_a)} images in {self.dir_a.name}/, "
            f"{len(self.paths_b)} in {self.dir_b.name}/, {len(self)} items per epoch"
        )


def _index_by_stem(folder: Path, images: list[Path]) -> dict[str, Path]:
    """Images keyed by path relative to ``folder`` without extension (``sub/x.jpg`` -> ``sub/x``)."""
    by_stem: dict[str, Path] = {}
    for path in images:
        key = path.relative_to(folder).with_suffix("").as_posix()
        if key in by_stem:
            raise ValueError(
                f"{folder} holds two images named {key!r} ({by_stem[key].name} and {path.name}); "
                "pairs are matched by name without extension, so keep one of them"
            )
        by_stem[key] = path
    return by_stem


def _match_pairs(dir_a: Path, dir_b: Path, layout: str) -> list[tuple[Path, Path]]:
    a = _index_by_stem(dir_a, _require_images(dir_a, layout))
    b = _index_by_stem(dir_b, _require_images(dir_b, layout))
    only_a = sorted(a.keys() - b.keys())
    only_b = sorted(b.keys() - a.keys())
    if only_a or only_b:
        problems = []
        for names, here, there in ((only_a, dir_a, dir_b), (only_b, dir_b, dir_a)):
            if names:
                shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
                problems.append(f"{len(names)} in {here} have no match in {there}: {shown}")
        raise ValueError(
            "paired folders must hold the same file names (extensions may differ); "
            + "; ".join(problems)
            + ". Remove or rename the unmatched files."
        )
    return [(a[key], b[key]) for key in sorted(a, key=lambda k: k.split("/"))]


class PairedDataset(Dataset):
    """Aligned image pairs (pix2pix) in one of three layouts, detected in this order.

    - ``"phase_ab"``: ``root/{phase}/A/`` and ``root/{phase}/B/``, matched by file name;
    - ``"side_by_side"``: ``root/{phase}/`` holding A|B images side by side, split at
      ``width // 2`` (an odd last column is dropped so A and B have the same size);
    - ``"root_ab"``: ``root/A/`` and ``root/B/`` matched by file name, when there is no
      ``root/{phase}/`` folder.

    ``self.layout`` says which was found. Items: ``{"a", "b", "path_a", "path_b"}`` as in
    :class:`UnpairedDataset`; ``a`` is the left / A image (the training code applies the direction).
    A pair whose A and B sizes differ after the CPU resize (possible with the size-keeping
    preprocess modes) is skipped like an unreadable file.

    Raises:
        FileNotFoundError: no layout found, or a folder of it is missing or empty.
        ValueError: file names in A and B do not match, or a channel count other than 1, 3 or 4.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        phase: str = "train",
        channels_a: int = 3,
        channels_b: int = 3,
        preprocess: PreprocessConfig | None = None,
    ) -> None:
        self.root = Path(root)
        self.phase = phase
        self.channels_a = _check_channels("channels_a", channels_a)
        self.channels_b = _check_channels("channels_b", channels_b)
        self.preprocess = preprocess if preprocess is not None else PreprocessConfig()
        layout = _paired_layout(self.root, phase)
        if not self.root.is_dir():
            raise FileNotFoundError(f"dataset root {self.root} does not exist.\n{layout}")
        phase_dir = self.root / phase
        self.pairs: list[tuple[Path, Path]]
        if (phase_dir / "A").is_dir() or (phase_dir / "B").is_dir():
            self.layout = "phase_ab"
            self.pairs = _match_pairs(phase_dir / "A", phase_dir / "B", layout)
        elif phase_dir.is_dir():
            self.layout = "side_by_side"
            self.pairs = [(path, path) for path in _require_images(phase_dir, layout)]
        elif (self.root / "A").is_dir() or (self.root / "B").is_dir():
            self.layout = "root_ab"
            self.pairs = _match_pairs(self.root / "A", self.root / "B", layout)
        else:
            raise FileNotFoundError(
                f"no paired dataset under {self.root}: found neither {phase_dir}/ nor "
                f"{self.root / 'A'}/ + {self.root / 'B'}/.\n{layout}"
            )
        logger.debug("%s", self.describe())

    def __len__(self) -> int:
        return len(self.pairs)

    def _load_side_by_side(self, path: Path) -> tuple[Image.Image, Image.Image]:
        both = decode_image(path)
        half = both.width // 2
        if half == 0:
            raise ImageReadError(path, f"image is {both.width} pixel wide, too narrow to hold A|B side by side")
        a = both.crop((0, 0, half, both.height))
        b = both.crop((half, 0, 2 * half, both.height))
        return convert_channels(a, self.channels_a), convert_channels(b, self.channels_b)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} pairs")
        path_a, path_b = self.pairs[index]
        try:
            if self.layout == "side_by_side":
                image_a, image_b = self._load_side_by_side(path_a)
            else:
                image_a, image_b = load_image(path_a, self.channels_a), load_image(path_b, self.channels_b)
        except ImageReadError as error:
            return _error_item(error.path, error.reason)
        a = prepare_image(image_a, self.preprocess)
        b = prepare_image(image_b, self.preprocess)
        if a.shape[-2:] != b.shape[-2:]:
            return _error_item(
                path_a,
                f"A is {tuple(a.shape[-2:])} but B ({path_b}) is {tuple(b.shape[-2:])} (H, W) after "
                f"preprocess {self.preprocess.preprocess!r}; aligned pairs need equal sizes "
                "(preprocess 'resize_and_crop' resizes both to load_size)",
            )
        return {"a": a, "b": b, "path_a": str(path_a), "path_b": str(path_b)}

    def describe(self) -> str:
        """One line for logs: root, layout, number of pairs."""
        where = {
            "phase_ab": f"{self.phase}/A + {self.phase}/B, matched by name",
            "side_by_side": f"{self.phase}/, A|B side by side",
            "root_ab": "A + B, matched by name",
        }[self.layout]
        return f"paired dataset {self.root}: {len(self)} pairs ({where})"

"""Split a paired (pix2pix) folder into textcycle domain folders, one per side, each with prompts.

Every split of `data` (train/, val/, test/: any layout `PairedDataset` reads, e.g. A|B side by
side) becomes `out/<split>/<name A>/` and `out/<split>/<name B>/`, each holding its side of every
pair under the pair's file name (so a held-out split stays paired by name, which `translate eval`
uses to score a textcycle model) and a prompts.txt with one phrasing per line. The textcycle task
never uses the pairing: it draws each domain's images on their own (`translate.data.domains`).

    split_domains("../shared/datasets/maps", "data/maps_domains")   # {"train": 1096, "val": 1098}
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from translate.core.errors import InvalidValueError, check_choice
from translate.data.captions import PROMPTS_NAME
from translate.data.datasets import PairedDataset
from translate.data.transforms import PreprocessConfig

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_NAMES", "DEFAULT_PROMPTS_A", "DEFAULT_PROMPTS_B", "FORMATS", "SPLITS", "split_domains"]

SPLITS = ("train", "val", "test")
# The defaults are for the maps data set (A: aerial photos, B: map tiles).
DEFAULT_NAMES = ("aerial", "map")
DEFAULT_PROMPTS_A = ("aerial photo", "an aerial photograph", "satellite image", "a satellite photo of a city",
                     "an overhead photo taken from above")
DEFAULT_PROMPTS_B = ("map", "a street map", "a road map", "a city map", "a map with streets and parks")
FORMATS = ("jpg", "png")


def _check_names(names: Sequence[str]) -> tuple[str, str]:
    if (len(names) != 2 or not all(names) or names[0] == names[1]
            or any("/" in name or "\\" in name or name.startswith(".") for name in names)):
        raise InvalidValueError("names", tuple(names), "two different folder names (no '/', not starting with '.')",
                                "e.g. ('aerial', 'map')")
    return names[0], names[1]


def _check_prompts(parameter: str, prompts: Sequence[str]) -> list[str]:
    cleaned = [prompt.strip() for prompt in prompts if prompt.strip()]
    if isinstance(prompts, str) or not cleaned:
        raise InvalidValueError(parameter, prompts, "a non-empty list of phrasings", "e.g. ['map', 'a street map']")
    return cleaned


def _relative_name(dataset: PairedDataset, path: str) -> Path:
    """The pair's path inside its split (sub/x.jpg), which names both halves."""
    folder = {"side_by_side": dataset.root / dataset.phase, "phase_ab": dataset.root / dataset.phase / "A",
              "root_ab": dataset.root / "A"}[dataset.layout]
    return Path(path).relative_to(folder)


def split_domains(data: str | os.PathLike[str], out: str | os.PathLike[str],
                  names: Sequence[str] = DEFAULT_NAMES, prompts_a: Sequence[str] = DEFAULT_PROMPTS_A,
                  prompts_b: Sequence[str] = DEFAULT_PROMPTS_B, size: int | None = None,
                  fmt: str = "jpg", quality: int = 95) -> dict[str, int]:
    """Write `out/<split>/<name>/` for each split of `data`; returns {split: pairs written}.

    Args:
        names: the folder names of the A and B sides.
        prompts_a, prompts_b: the phrasings of each side, written to its prompts.txt.
        size: resize each half to size x size (bicubic); None keeps the data's size.
        fmt: "jpg" (at `quality`) or "png".

    Raises:
        FileNotFoundError: `data` holds none of the splits (or its layout is not a paired one).
        InvalidValueError / InvalidChoiceError: bad names, prompts, size or format.
    """
    name_a, name_b = _check_names(names)
    phrasings = (_check_prompts("prompts_a", prompts_a), _check_prompts("prompts_b", prompts_b))
    if size is not None and size < 1:
        raise InvalidValueError("size", size, "a positive number of pixels", "or None to keep the data's size")
    check_choice("fmt", fmt, FORMATS)
    data, out = Path(data), Path(out)
    splits = [split for split in SPLITS if (data / split).is_dir()]
    if not splits:
        raise FileNotFoundError(f"{data} holds none of {', '.join(s + '/' for s in SPLITS)}; expected a paired "
                                "(pix2pix) folder such as ../shared/datasets/maps")
    counts: dict[str, int] = {}
    for split in splits:
        dataset = PairedDataset(data, phase=split, preprocess=PreprocessConfig(preprocess="none", flip=False))
        folders = (out / split / name_a, out / split / name_b)
        for folder, prompts in zip(folders, phrasings, strict=True):
            folder.mkdir(parents=True, exist_ok=True)
            (folder / PROMPTS_NAME).write_text("\n".join(prompts) + "\n", encoding="utf-8")
        counts[split] = _write_pairs(dataset, folders, size, fmt, quality)
        logger.info("%s: %d pairs into %s and %s", split, counts[split], *folders)
    return counts


def _write_pairs(dataset: PairedDataset, folders: tuple[Path, Path], size: int | None, fmt: str,
                 quality: int) -> int:
    """Save each pair's halves into the two folders under the pair's name; returns the pairs written."""
    written = 0
    for index in range(len(dataset)):
        item = dataset[index]
        if "error" in item:
            logger.warning("skipping %s: %s", item["error"], item["reason"])
            continue
        name = _relative_name(dataset, item["path_a"]).with_suffix(f".{fmt}")
        for folder, half in zip(folders, (item["a"], item["b"]), strict=True):
            image = Image.fromarray(half.permute(1, 2, 0).numpy())
            if size is not None and image.size != (size, size):
                image = image.resize((size, size), Image.Resampling.BICUBIC)
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            image.save(folder / name, **({"quality": quality} if fmt == "jpg" else {}))
        written += 1
    return written

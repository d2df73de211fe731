"""Split a paired pix2pix folder into textcycle domain folders, one per side, each with prompts.

Usage:
    python scripts/make_text_domains.py --data ../shared/datasets/maps --out data/maps_domains
        [--names aerial,map] [--prompts-a "aerial photo;satellite image"] [--prompts-b "map;a street map"]
        [--size 256] [--format jpg]

Every split of --data (train/, val/, test/: any layout `translate train pix2pix` reads, e.g. A|B
side by side) becomes OUT/<split>/<name A>/ and OUT/<split>/<name B>/, each holding its side of
every pair under the pair's file name (so the val split stays paired by name, for
scripts/eval_textcycle.py) and a prompts.txt with one phrasing per line. The textcycle task never
uses the pairing: it draws each domain's images on their own. --size resizes each half to
SIZE x SIZE (bicubic). --prompts-a / --prompts-b are ';'-separated; the defaults are for maps.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from PIL import Image

from translate.data import PairedDataset, PreprocessConfig
from translate.data.captions import PROMPTS_NAME

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
DEFAULT_NAMES = ("aerial", "map")
DEFAULT_PROMPTS_A = ("aerial photo", "an aerial photograph", "satellite image", "a satellite photo of a city",
                     "an overhead photo taken from above")
DEFAULT_PROMPTS_B = ("map", "a street map", "a road map", "a city map", "a map with streets and parks")
FORMATS = ("jpg", "png")


def _parse_prompts(text: str, flag: str) -> list[str]:
    prompts = [part.strip() for part in text.split(";") if part.strip()]
    if not prompts:
        raise ValueError(f"{flag} {text!r} holds no prompt; give ';'-separated phrasings, e.g. \"map;a street map\"")
    return prompts


def _parse_names(text: str) -> tuple[str, str]:
    names = [part.strip() for part in text.split(",")]
    if len(names) != 2 or not all(names) or names[0] == names[1] or any("/" in n or n.startswith(".") for n in names):
        raise ValueError(f"--names {text!r} must be two different folder names separated by a comma, e.g. aerial,map")
    return names[0], names[1]


def _relative_name(dataset: PairedDataset, path: str) -> Path:
    """The pair's path inside its split (sub/x.jpg), which names both halves."""
    folder = {"side_by_side": dataset.root / dataset.phase, "phase_ab": dataset.root / dataset.phase / "A",
              "root_ab": dataset.root / "A"}[dataset.layout]
    return Path(path).relative_to(folder)


def split_domains(data: str | Path, out: str | Path, names: tuple[str, str] = DEFAULT_NAMES,
                  prompts_a: list[str] | tuple[str, ...] = DEFAULT_PROMPTS_A,
                  prompts_b: list[str] | tuple[str, ...] = DEFAULT_PROMPTS_B, size: int | None = None,
                  fmt: str = "jpg", quality: int = 95) -> dict[str, int]:
    """Write OUT/<split>/<name>/ for each split of `data`; returns {split: pairs written}.

    Raises:
        FileNotFoundError: `data` holds none of the splits (or its layout is not a paired one).
        ValueError: a bad size or format.
    """
    if size is not None and size < 1:
        raise ValueError(f"--size must be a positive number of pixels, got {size}")
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    data, out = Path(data), Path(out)
    splits = [split for split in SPLITS if (data / split).is_dir()]
    if not splits:
        raise FileNotFoundError(f"{data} holds none of {', '.join(s + '/' for s in SPLITS)}; expected a paired "
                                "(pix2pix) folder such as ../shared/datasets/maps")
    counts: dict[str, int] = {}
    for split in splits:
        dataset = PairedDataset(data, phase=split, preprocess=PreprocessConfig(preprocess="none", flip=False))
        folders = [out / split / name for name in names]
        for folder, prompts in zip(folders, (prompts_a, prompts_b), strict=False):
            folder.mkdir(parents=True, exist_ok=True)
            (folder / PROMPTS_NAME).write_text("\n".join(prompts) + "\n", encoding="utf-8")
        written = 0
        for index in range(len(dataset)):
            item = dataset[index]
            if "error" in item:
                logger.warning("skipping %s: %s", item["error"], item["reason"])
                continue
            name = _relative_name(dataset, item["path_a"]).with_suffix(f".{fmt}")
            for folder, half in zip(folders, (item["a"], item["b"]), strict=False):
                image = Image.fromarray(half.permute(1, 2, 0).numpy())
                if size is not None and image.size != (size, size):
                    image = image.resize((size, size), Image.Resampling.BICUBIC)
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                image.save(folder / name, **({"quality": quality} if fmt == "jpg" else {}))
            written += 1
        counts[split] = written
    return counts


def main(argv: list[str] | None = None) -> dict[str, int]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="paired folder with train/ (val/, test/ optional)")
    parser.add_argument("--out", required=True, help="where OUT/<split>/<name>/ go")
    parser.add_argument("--names", default=",".join(DEFAULT_NAMES), help="folder names of the A and B sides")
    parser.add_argument("--prompts-a", default=";".join(DEFAULT_PROMPTS_A), help="';'-separated phrasings of A")
    parser.add_argument("--prompts-b", default=";".join(DEFAULT_PROMPTS_B), help="';'-separated phrasings of B")
    parser.add_argument("--size", type=int, help="resize each half to SIZE x SIZE (default: keep)")
    parser.add_argument("--format", default="jpg", choices=FORMATS)
    args = parser.parse_args(argv)
    try:
        counts = split_domains(args.data, args.out, _parse_names(args.names),
                               _parse_prompts(args.prompts_a, "--prompts-a"),
                               _parse_prompts(args.prompts_b, "--prompts-b"), size=args.size, fmt=args.format)
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))
    print(json.dumps({"out": str(args.out), "pairs": counts}))
    return counts


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    main()

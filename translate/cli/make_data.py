"""`translate data make-shapes` and `translate data make-text-domains`: write the data sets the text
tasks train on (the procedural shapes, and domain folders split from a paired data set)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from translate.cli.common import fail, library_errors

# split_domains' parameters whose flag is not `--name-with-dashes`.
TEXT_DOMAINS_FLAGS = {"fmt": "--format"}

# split_domains' defaults, repeated here so that `--help` shows them without importing the library.
_DEFAULT_NAMES = "aerial,map"
_DEFAULT_PROMPTS_A = "aerial photo;an aerial photograph;satellite image;a satellite photo of a city;" \
                     "an overhead photo taken from above"
_DEFAULT_PROMPTS_B = "map;a street map;a road map;a city map;a map with streets and parks"


def make_shapes_command(
    out: Path = typer.Option(..., "--out", help="Output folder (must not already hold a data set)."),
    n: int = typer.Option(..., "--n", help="Number of images, train + val."),
    size: int = typer.Option(64, "--size", help="Image side in pixels (>= 32)."),
    seed: int = typer.Option(0, "--seed", help="The same seed writes the same files."),
    val_fraction: float = typer.Option(0.1, "--val-fraction", help="Share of the images in val/."),
    captions_per_image: int = typer.Option(3, "--captions-per-image", help="Phrasings written per image."),
) -> None:
    """Write the procedural captioned shapes data set (one coloured shape on black per image).

    OUT/train/*.png with OUT/train/captions.jsonl, the same under OUT/val/, and OUT/attributes.jsonl
    with every file's shape, colour, size and position. `translate train text2image --data OUT`
    trains on it; `translate eval --model RUN --data OUT` scores the model's colours, positions and
    sizes on prompts unseen in training. Exit status 2 on bad arguments or an existing data set."""
    from translate.evaluation.shapes import make_shapes_dataset

    with library_errors(catch=(ValueError, FileExistsError)):
        counts = make_shapes_dataset(out, n, size, seed, val_fraction, captions_per_image=captions_per_image)
    typer.echo(f"wrote {counts['train']} train and {counts['val']} val images to {out}")


def make_text_domains_command(
    data: Path = typer.Option(..., "--data", help="A paired (pix2pix) folder with train/ (val/, test/ optional)."),
    out: Path = typer.Option(..., "--out", help="Where OUT/<split>/<name>/ go."),
    names: str = typer.Option(_DEFAULT_NAMES, "--names", help="Folder names of the A and B sides, comma-separated."),
    prompts_a: str = typer.Option(_DEFAULT_PROMPTS_A, "--prompts-a", help="';'-separated phrasings of A."),
    prompts_b: str = typer.Option(_DEFAULT_PROMPTS_B, "--prompts-b", help="';'-separated phrasings of B."),
    size: Optional[int] = typer.Option(None, "--size", help="Resize each half to SIZE x SIZE (bicubic); by default the size is kept."),
    fmt: str = typer.Option("jpg", "--format", help="jpg | png."),
) -> None:
    """Split a paired A|B folder into textcycle domain folders, one per side, each with a prompts.txt.

    Every split of --data (train/, val/, test/) becomes OUT/<split>/<name A>/ and OUT/<split>/<name B>/,
    each holding its side of every pair under the pair's file name, so that a held-out split stays
    paired for `translate eval --model RUN --data OUT`. The defaults are for maps. Exit status 2 on
    bad arguments or data."""
    from translate.data.text_domains import split_domains

    with library_errors(TEXT_DOMAINS_FLAGS):
        counts = split_domains(data, out, _split(names, ",", "--names"), _split(prompts_a, ";", "--prompts-a"),
                               _split(prompts_b, ";", "--prompts-b"), size=size, fmt=fmt)
    written = ", ".join(f"{split} {count}" for split, count in counts.items())
    typer.echo(f"wrote the pairs of {data} to {out} ({written})")
    typer.echo(f"train on them with: translate train textcycle --data {out} --out runs/{out.name}")


def _split(text: str, separator: str, flag: str) -> list[str]:
    """`text` cut at `separator`, each part stripped, empty parts dropped."""
    parts = [part.strip() for part in text.split(separator) if part.strip()]
    if not parts:
        fail(f"{flag} {text!r} holds nothing; give {separator!r}-separated values")
    return parts

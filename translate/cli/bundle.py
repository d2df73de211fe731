"""`translate bundle`: a trained model as a bundled weights folder (float16), with sample inputs and
a card, and what the conversion costs (`translate.deploy.bundle`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from translate.cli.common import library_errors


def bundle_command(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="A training checkpoint file, a run directory or a weights folder (image or text model)."),
    out: Path = typer.Option(..., "--out", help="The bundled folder to write, e.g. weights/maps_aerial2map."),
    direction: Optional[str] = typer.Option(None, "--direction", help="AtoB | BtoA: the CycleGAN generator to bundle (default: the only one)."),
    dtype: str = typer.Option("float16", "--dtype", help="float16 (half the file) | float32."),
    images: Optional[Path] = typer.Option(None, "--images", help="Image models: check on the first --n images of this folder, at their own size."),
    data: Optional[Path] = typer.Option(None, "--data", help="Image models: check on the first --n pairs of this paired data set's --phase split."),
    phase: str = typer.Option("val", "--phase", help="With --data: the split."),
    n: int = typer.Option(20, "--n", help="Images the check runs on."),
    input_resize: Optional[int] = typer.Option(None, "--input-resize", help="The shorter side `translate convert` scales inputs to by default (a model trained on small crops); default: full resolution."),
    samples: Optional[Path] = typer.Option(None, "--samples", help="Copy the first --n-samples images of this folder to OUT/samples/ (what `translate demo` converts)."),
    n_samples: int = typer.Option(5, "--n-samples", help="With --samples: how many."),
) -> None:
    """Bundle a trained model for shipping: a float16 weights folder with samples and a model card.

    OUT/config.json and model.safetensors (float16 by default; the source checkpoint and its
    SHA-256 recorded), OUT/samples/ with --samples, and a card OUT/README.md to complete (kept
    when OUT already has one).

    The check compares the bundled model's outputs with the float32 network's (worst PSNR): on
    --images / --data for an image model, on generated images for a text2image model. Exit status
    2 on bad arguments or a missing model."""
    from translate.deploy.bundle import bundle_model

    with library_errors(catch=(ValueError, FileNotFoundError, FileExistsError)):
        report = bundle_model(checkpoint, out, direction=direction, dtype=dtype, images=images, data=data,
                              phase=phase, n=n, input_resize=input_resize, samples=samples, n_samples=n_samples)
    typer.echo(f"wrote {report.folder} ({report.size_bytes / 1e6:.2f} MB, {report.dtype} {report.kind}), "
               f"from {report.source}")
    for check in report.checks:
        typer.echo(f"{report.dtype} vs float32 outputs on {check.what}: worst PSNR {check.worst_psnr_db:.1f} dB")
    if report.samples:
        typer.echo(f"copied {len(report.samples)} samples to {report.folder / 'samples'}")
    if report.card_written:
        typer.echo(f"wrote a card to complete: {report.folder / 'README.md'} (data, training, measured, limits)")
    else:
        typer.echo(f"kept the existing card {report.folder / 'README.md'}; update its figures")

"""`translate refit-matcher`: a text2image run's image-text matcher refitted with wide batches, in a
copy of the run that `translate train --resume` continues (`translate.training.refit_matcher`)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from translate.cli.common import library_errors


def refit_matcher_command(
    run: Path = typer.Option(..., "--run", help="A text2image run directory or one of its checkpoints."),
    data: Path = typer.Option(..., "--data", help="The run's data (DIR/train, optional DIR/val for the scores)."),
    out: Path = typer.Option(..., "--out", help="The new run directory (must not exist)."),
    steps: int = typer.Option(1000, "--steps", help="Matcher training steps."),
    batch_size: int = typer.Option(256, "--batch-size", help="Images per step (wide batches hold captions that differ by one word)."),
    ndf: int = typer.Option(64, "--ndf", help="Width of the new image encoder."),
    lr: float = typer.Option(1e-3, "--lr", help="Peak learning rate (one-cycle schedule)."),
    seed: int = typer.Option(0, "--seed"),
    shapes: bool = typer.Option(False, "--shapes", help="Also report the colour-variant accuracy (the shapes data set)."),
) -> None:
    """Refit a text2image run's image-text matcher with wide batches, keeping its text encoder.

    Trains a new image side (encoder, text projection, temperature) against the run's frozen text
    encoder and writes a copy of the run with it to OUT; the generator and discriminator keep their
    caption embeddings. Prints the matcher's accuracy on DATA/val before and after; continue with
    `translate train --resume OUT --n-epochs E --n-epochs-decay D`. Exit status 2 on bad arguments."""
    from translate.training.refit_matcher import refit_matcher

    with library_errors(catch=(ValueError, FileNotFoundError, FileExistsError)):
        report = refit_matcher(run, data, out, steps=steps, batch_size=batch_size, ndf=ndf, lr=lr, seed=seed,
                               colour_variants=shapes)
    typer.echo(json.dumps(report.accuracy, indent=2))
    typer.echo(f"wrote {report.checkpoint}; continue with: translate train --resume {out}")

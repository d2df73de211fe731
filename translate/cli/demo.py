"""`translate demo`: the main job on the bundled model (or a tiny training run)."""

from __future__ import annotations

from pathlib import Path

import typer

from translate.cli.common import fail, progress_printer


def demo(
    out_dir: Path = typer.Argument(Path("demo"), help="Where the demo writes its outputs."),
    train: bool = typer.Option(False, "--train", help="Instead: train a tiny pix2pix on generated data."),
    steps: int = typer.Option(300, "--steps", help="Training steps (with --train)."),
) -> None:
    """Export the bundled model to ONNX, convert its sample images, write a contact sheet
    (with --train: generate data, train a tiny pix2pix, convert its test images)."""
    from translate.core.paths import BUNDLED_DIR
    from translate.demo import DEFAULT_BUNDLED_MODEL, run_bundled_demo, run_demo

    if not train and not (BUNDLED_DIR / DEFAULT_BUNDLED_MODEL / "config.json").is_file():
        typer.echo(f"no bundled model {DEFAULT_BUNDLED_MODEL!r} in {BUNDLED_DIR}; running the training demo")
        train = True
    if train:
        update, close = progress_printer()
        try:
            paths = run_demo(out_dir, steps=steps, on_progress=update)
        finally:
            close()
        typer.echo(f"run: {paths['run']}")
    else:
        try:
            paths = run_bundled_demo(out_dir)
        except (ValueError, FileNotFoundError) as error:
            fail(str(error))
        typer.echo(f"onnx model: {paths['onnx']}")
    typer.echo(f"converted images: {paths['converted']}\ncontact sheet (input | output): {paths['contact_sheet']}")

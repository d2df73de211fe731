"""`translate demo`: the main job on the bundled model (or a tiny training run)."""

from __future__ import annotations

from pathlib import Path

import typer

from translate.cli.common import library_errors, progress_printer
from translate.core.paths import bundled_dir
from translate.formats.locator import locate


def demo(
    out_dir: Path = typer.Argument(Path("demo"), help="Where the demo writes its outputs."),
    train: bool = typer.Option(False, "--train", help="Instead: train a tiny pix2pix on generated data."),
    steps: int = typer.Option(300, "--steps", help="Training steps (with --train)."),
) -> None:
    """Export the bundled models (aerial->map, horse->zebra) to ONNX, convert their sample images, write a contact sheet
    (with --train: generate data, train a tiny pix2pix, convert its test images)."""
    from translate.demo import DEFAULT_BUNDLED_MODELS, run_bundled_demo, run_demo

    if not train and not any(_has_image_model(name) for name in DEFAULT_BUNDLED_MODELS):
        typer.echo(f"no bundled model ({', '.join(DEFAULT_BUNDLED_MODELS)}) in {bundled_dir()}; running the "
                   "training demo")
        train = True
    with library_errors():
        if train:
            update, close = progress_printer()
            try:
                paths = run_demo(out_dir, steps=steps, on_progress=update)
            finally:
                close()
            typer.echo(f"run: {paths['run']}")
        else:
            paths = run_bundled_demo(out_dir)
            for onnx_file in paths["onnx_files"]:
                typer.echo(f"onnx model: {onnx_file}")
    typer.echo(f"converted images: {paths['converted']}\ncontact sheet (input | output): {paths['contact_sheet']}")


def _has_image_model(name: str) -> bool:
    """Whether the locator finds an image weights folder called `name` (a copy of the package
    without the bundled weights has none)."""
    try:
        source = locate(name)
    except (FileNotFoundError, ValueError):
        return False
    return source.form == "weights" and not source.is_text

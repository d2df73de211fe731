"""`translate convert`: translate every image of a folder.

Its options are `ConvertOptions`' fields (translate.deploy.options), generated as flags: a new
convert option is declared there once and appears here, in `convert_folder` and in the errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from translate.cli.common import convert_progress, library_errors
from translate.cli.options import flags_of, with_options
from translate.deploy.options import ConvertOptions

# convert_folder's parameters as the command line names them.
FLAGS = {"input_dir": "INPUT_DIR", "output_dir": "OUTPUT_DIR", **flags_of(ConvertOptions)}


@with_options(ConvertOptions)
def convert(
    input_dir: Path = typer.Argument(..., help="Folder of images (searched recursively)."),
    output_dir: Path = typer.Argument(..., help="Where the translated images go (same relative paths); not inside INPUT_DIR."),
    model: Path = typer.Option(..., "--model", rich_help_panel="Model",
                               help="Weights folder, run directory, checkpoint, .onnx file or bundled model name."),
    *,
    options: dict[str, Any],  # the flags of ConvertOptions given (see with_options)
) -> None:
    """Translate every image of a folder at full resolution: decoding, inference and encoding overlap.

    Exit status: 0 all converted (or already done), 1 some files failed (listed in the report), 2 bad arguments."""
    from translate.deploy.convert import convert_folder

    update, close = convert_progress()
    with library_errors(FLAGS):
        try:
            summary = convert_folder(input_dir, output_dir, model, on_progress=update, **options)
        finally:
            close()  # before any message, so that it does not tangle with a live bar
    typer.echo(f"converted {len(summary.converted)}, skipped {len(summary.skipped)} (already done), "
               f"failed {len(summary.failed)} in {summary.seconds:.1f} s ({summary.images_per_s:.2f} images/s) "
               f"with {summary.backend_description}; output in {output_dir}")
    for path, reason in summary.failed:
        typer.secho(f"failed: {path}: {reason}", fg=typer.colors.YELLOW, err=True)
    if summary.failed:
        typer.echo(f"failures listed in {summary.report}")
        raise typer.Exit(code=1)

"""`translate export`: ONNX export, and what a model file holds (`translate info`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from translate.cli.common import fail


def export_command(
    model: Path = typer.Argument(..., help="Weights folder, run directory, checkpoint, or a bundled or installed (translate pretrained) model name."),
    out: Path = typer.Argument(..., help="The .onnx file to write."),
    direction: Optional[str] = typer.Option(None, "--direction", help="AtoB | BtoA (CycleGAN runs)."),
    half: bool = typer.Option(False, "--half", help="float16 weights and compute (io stays as --io)."),
    io: str = typer.Option("float", "--io", help="float: NCHW float32 in [-1, 1] | uint8: NHWC uint8 images."),
    opset: Optional[int] = typer.Option(None, "--opset", help="ONNX opset, 17-20 [20]."),
    text_input: Optional[str] = typer.Option(None, "--text-input", help="Text models: ids (byte encoder in the graph) [default] | embedding (embeddings in; a byte encoder goes to OUT.text_encoder.onnx)."),
    bake_prompts: Optional[list[str]] = typer.Option(None, "--bake-prompts", help="Text models: store this prompt's embedding; input prompt_index. Repeat for several."),
    bake_from_domains: bool = typer.Option(False, "--bake-prompts-from-domains", help="Text models: bake every prompt of the model's domains."),
) -> None:
    """Export one generator (or a text model with its text encoder) to ONNX, then check it against PyTorch."""
    from translate.deploy.export import DEFAULT_OPSET, ExportParityError, export_onnx
    from translate.deploy.text_export import TextExportReport, TextParityCase
    from translate.formats.locator import locate

    def case_text(case) -> str:
        if not isinstance(case, TextParityCase):
            return f"batch {case.batch} {case.height}x{case.width}"
        where = "text encoder " if case.part == "text_encoder" else ""
        size = f" {case.height}x{case.width}" if case.height else ""
        return f"{where}batch {case.batch}{size}{f' length {case.length}' if case.length else ''}"

    try:
        report = export_onnx(locate(str(model)).path, out, direction=direction, half=half, io=io,
                             opset=DEFAULT_OPSET if opset is None else opset, text_input=text_input,
                             bake_prompts=bake_prompts or None, bake_domain_prompts=bake_from_domains)
    except ExportParityError as error:
        for case in error.report.cases:
            typer.echo(f"{case_text(case)}: max abs error {case.max_abs_error:.3g}")
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1)
    except (ValueError, FileNotFoundError) as error:
        fail(str(error))
    unit = " levels" if report.io == "uint8" else ""
    for case in report.cases:
        in_levels = not isinstance(case, TextParityCase) or case.part == "model"
        typer.echo(f"{case_text(case)}: max abs error {case.max_abs_error:.3g}{unit if in_levels else ''}")
    typer.echo(f"wrote {report.path} ({report.precision}, io {report.io}, opset {report.opset}); "
               f"max abs error {report.max_abs_error:.3g}{unit} (bound {report.tolerance:g}{unit})")
    if isinstance(report, TextExportReport) and report.text_encoder_path is not None:
        typer.echo(f"wrote the text encoder (ids, mask -> embedding) to {report.text_encoder_path}")
    if isinstance(report, TextExportReport) and report.text_input == "baked":
        typer.echo(f"baked prompts, in prompt_index order: {report.metadata['baked_prompts']}")


def info_command(
    model: Path = typer.Argument(..., help="Weights folder, run directory, checkpoint or .onnx file."),
    direction: Optional[str] = typer.Option(None, "--direction", help="AtoB | BtoA (CycleGAN runs)."),
) -> None:
    """Print the configuration / metadata of any model form."""
    import json

    from translate.deploy.export import read_onnx_metadata
    from translate.formats.weights import read_model_config
    from translate.text.model import find_text_model

    try:
        text_folder = find_text_model(model)
        if model.suffix.lower() == ".onnx":
            info = read_onnx_metadata(model)
        elif text_folder is not None:
            info = json.loads((text_folder / "config.json").read_text())
        else:
            info = read_model_config(model, direction=direction)
    except (ValueError, FileNotFoundError) as error:
        fail(str(error))
    width = max((len(key) for key in info), default=0)
    for key, value in info.items():
        text = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
        typer.echo(f"{key:<{width}}  {text}")

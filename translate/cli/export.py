"""`translate export`: ONNX export, and what a model file holds (`translate info`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from translate.cli.common import FORM_NAMES, fail, library_errors
from translate.formats.locator import ModelSource, locate

# export_onnx's parameters whose flag is not `--name-with-dashes`.
EXPORT_FLAGS = {"model": "MODEL", "out_path": "OUT", "bake_domain_prompts": "--bake-prompts-from-domains"}


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

    with library_errors(EXPORT_FLAGS):
        source = locate(model)
        try:
            report = export_onnx(source.path, out, direction=direction, half=half, io=io,
                                 opset=DEFAULT_OPSET if opset is None else opset, text_input=text_input,
                                 bake_prompts=bake_prompts or None, bake_domain_prompts=bake_from_domains)
        except ExportParityError as error:
            for case in error.report.cases:
                typer.echo(f"{_case_text(case)}: max abs error {case.max_abs_error:.3g}")
            fail(str(error), 1)
    _print_export_report(report)


def _case_text(case: Any) -> str:
    """`batch 2 64x64`, or for a text model's cases which part and prompt length they ran."""
    from translate.deploy.text_export import TextParityCase

    if not isinstance(case, TextParityCase):
        return f"batch {case.batch} {case.height}x{case.width}"
    where = "text encoder " if case.part == "text_encoder" else ""
    size = f" {case.height}x{case.width}" if case.height else ""
    return f"{where}batch {case.batch}{size}{f' length {case.length}' if case.length else ''}"


def _print_export_report(report: Any) -> None:
    from translate.deploy.text_export import TextExportReport, TextParityCase

    unit = " levels" if report.io == "uint8" else ""
    for case in report.cases:
        in_levels = not isinstance(case, TextParityCase) or case.part == "model"
        typer.echo(f"{_case_text(case)}: max abs error {case.max_abs_error:.3g}{unit if in_levels else ''}")
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
    from translate.formats.weights import read_model_config

    with library_errors({"model": "MODEL"}):
        source = locate(model)
        # Text models and .onnx files carry their own config; image weights (checkpoints too) are read
        # for the chosen direction.
        info = source.config() if source.is_text or source.is_onnx else read_model_config(source.path, direction)
    typer.echo(f"located: {_describe(source)}")
    width = max((len(key) for key in info), default=0)
    for key, value in info.items():
        text = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
        typer.echo(f"{key:<{width}}  {text}")


def _describe(source: ModelSource) -> str:
    """`weights folder (kind generator, origin bundled, directions AtoB) at PATH`."""
    form = FORM_NAMES.get(source.form, source.form)
    directions = ", ".join(source.directions) or "none recorded"
    return f"{form} (kind {source.kind}, origin {source.origin}, directions {directions}) at {source.path}"

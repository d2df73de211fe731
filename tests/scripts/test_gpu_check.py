"""`python -m scripts.bench.gpu_check`: a few steps at --smoke sizes in this process, the resume logic on
their results, the alarm and the error record; the whole `--smoke` run (every step) as a subprocess is slow."""

from __future__ import annotations

import argparse
import gc
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from scripts.bench import gpu_check

REPO = Path(__file__).resolve().parents[2]
STEPS = ("env", "peak", "gradients", "inference", "convert", "ddp", "train-cyclegan", "train-pix2pix", "train-cut", "report")
QUICK_STEPS = ("env", "peak", "inference", "report")
TRAIN_VARIANTS = {"reference", "channels_last", "compile", "adam_fused", "tf32", "cudnn_benchmark", "amp", "all"}


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """(out folder, report) of env, peak, inference and report at --smoke sizes, run in this process."""
    out = tmp_path_factory.mktemp("gpu_check")
    args = gpu_check.parse_args(["--smoke", "--steps", *QUICK_STEPS, "--out", str(out / "run"),
                                 "--export", str(out / "export")])
    threads = torch.get_num_threads()  # --smoke runs on one thread
    try:
        report = gpu_check.run_all(args)
    finally:
        torch.set_num_threads(threads)
    return out, report


def test_quick_steps_finish_with_sane_numbers(quick: tuple[Path, dict]) -> None:
    out, report = quick
    assert {name: step["status"] for name, step in report["steps"].items()} == dict.fromkeys(QUICK_STEPS, "ok")
    results = report["results"]
    assert results["env"]["versions"]["torch"] and "CPUExecutionProvider" in results["env"]["versions"][
        "onnxruntime_providers"]
    assert all(value > 0 for value in results["peak"]["tflops"].values())
    rows = {(row["variant"], row["batch"]): row for row in results["inference"]["rows"]}
    assert {variant for variant, _ in rows} >= {"torch-fp32", "ort-cpu-fp32"}
    assert {batch for _, batch in rows} == {1, 2}
    for (variant, _), row in rows.items():
        assert row["images_per_s"] > 0 and math.isfinite(row["vs_torch_fp32"])
        if variant == "ort-cpu-fp32":
            assert row["max_abs_error"] < 1e-3 and row["psnr_db"] > 60  # float32 export is exact


def test_reports_are_written_and_exported(quick: tuple[Path, dict]) -> None:
    out, _ = quick
    text = (out / "run" / "report.md").read_text()
    for heading in ("## Training steps", "## DDP", "## Inference", "## Steps", "scripts.bench.gpu_check --smoke"):
        assert heading in text
    assert "| ort-cpu-fp32 |" in text and "| ddp | not run |" in text
    assert {p.name for p in (out / "export").iterdir()} == {"report.json", "report.md"}


def test_rerun_resumes(quick: tuple[Path, dict], tmp_path: Path) -> None:
    out = quick[0] / "run"
    args = argparse.Namespace(steps=None, redo=[])
    todo = [name for name in STEPS if name not in QUICK_STEPS] + ["report"]
    assert gpu_check.wanted_steps(args, out) == todo  # the steps done are skipped
    assert gpu_check.wanted_steps(argparse.Namespace(steps=None, redo=["peak"]), out) == ["peak", *todo]
    assert gpu_check.wanted_steps(argparse.Namespace(steps=["env"], redo=[]), out) == []
    # A fresh folder: an earlier run's report.json seeds it.
    gpu_check.seed_from_report(quick[0] / "export" / "report.json", tmp_path)
    assert gpu_check.wanted_steps(args, tmp_path) == todo
    seeded = gpu_check.write_report(argparse.Namespace(smoke=True, export=None, command="python -m ..."), tmp_path)
    assert seeded["results"]["inference"] == quick[1]["results"]["inference"]
    gpu_check.seed_from_report(tmp_path / "missing.json", tmp_path / "other")  # the first run: only noted


def test_budget_and_errors_are_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(ctx: object) -> None:
        ctx.result["started"] = True
        time.sleep(10)

    def broken(ctx: object) -> None:
        raise RuntimeError("boom")

    # run_step's full collection of this (large) test process's heap takes seconds; it is not what is tested.
    monkeypatch.setattr(gc, "collect", lambda *args: 0)
    monkeypatch.setitem(gpu_check.STEP_FUNCTIONS, "peak", slow)
    monkeypatch.setitem(gpu_check.STEP_FUNCTIONS, "env", broken)
    args = argparse.Namespace(smoke=True, export=None, steps=["env", "peak"], redo=[])
    started = time.perf_counter()
    gpu_check.run_step("peak", args, gpu_check.SMOKE, tmp_path, torch.device("cpu"), 1.0)
    assert time.perf_counter() - started < 5  # the alarm stopped it at its budget
    gpu_check.run_step("env", args, gpu_check.SMOKE, tmp_path, torch.device("cpu"), 5.0)
    peak = json.loads((tmp_path / "steps" / "peak.json").read_text())
    assert peak["status"] == "incomplete" and peak["result"] == {"started": True}
    assert "alarm" in peak["incomplete"][-1]
    env = json.loads((tmp_path / "steps" / "env.json").read_text())
    assert env["status"] == "error" and "RuntimeError: boom" in env["error"]
    assert gpu_check.wanted_steps(args, tmp_path) == ["env"]  # an error is retried, an incomplete step is kept


# --- the whole --smoke run (every step, ~1 min on 2 idle cores) ----------------------------------------------------


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """(out folder, report.json) of one `--smoke` run as a subprocess (--max-seconds: a busy machine
    must not leave the last steps unstarted)."""
    out = tmp_path_factory.mktemp("gpu_check_smoke")
    done = subprocess.run([sys.executable, "-m", "scripts.bench.gpu_check", "--smoke", "--max-seconds", "900",
                           "--out", str(out / "run"), "--export", str(out / "export")], cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    return out, json.loads((out / "run" / "report.json").read_text())


@pytest.mark.slow
def test_smoke_run_finishes_every_step(smoke: tuple[Path, dict]) -> None:
    out, report = smoke
    assert {name: step["status"] for name, step in report["steps"].items()} == dict.fromkeys(STEPS, "ok")
    gradients = report["results"]["gradients"]["relative_input_gradient_error"]
    assert len(gradients) == 4 and all(row["default"] < 1e-3 for name, row in gradients.items() if "batch 2" in name)
    text = (out / "run" / "report.md").read_text()
    assert "| cyclegan | 1 | reference |" in text and "| ort-cpu-fp32 |" in text
    assert {p.name for p in (out / "export").iterdir()} == {"report.json", "report.md", "gpu_check.log"}


@pytest.mark.slow
def test_smoke_training_rows(smoke: tuple[Path, dict]) -> None:
    results = smoke[1]["results"]
    for task in ("cyclegan", "pix2pix", "cut"):
        rows = {row["variant"]: row for row in results[f"train-{task}"]["rows"]}
        assert set(rows) == TRAIN_VARIANTS | ({"ours"} if task == "cyclegan" else set())
        for name, row in rows.items():
            if name == "channels_last" and task != "pix2pix" and row["status"].startswith("refused"):
                continue  # translate refuses channels_last with instance norm on the CPU (wrong gradients there)
            assert row["status"] == "ok" and row["it_per_s"] > 0 and row["images_per_s"] > 0, row
            assert row["gflop_per_step"] > 0 and row["tflop_per_s"] > 0 and row["percent_of_peak"] > 0
            assert row["vs_reference"] > 0 and row["h2z_200_epochs_hours"] > 0
        assert rows["reference"]["plan"]["tf32"] is False and rows["reference"]["plan"]["compile"] is False
        assert rows["amp"]["peak_kind"] == "bf16" and rows["reference"]["peak_kind"] == "fp32"
        assert rows["compile"]["plan"]["compile"] is True and rows["compile"]["compile_s"] is not None
    cyclegan = {row["variant"]: row for row in results["train-cyclegan"]["rows"]}
    # The six calls one by one and our batched calls do the same arithmetic.
    assert cyclegan["reference"]["gflop_per_step"] == pytest.approx(cyclegan["ours"]["gflop_per_step"], rel=1e-6)


@pytest.mark.slow
def test_smoke_ddp_and_convert(smoke: tuple[Path, dict]) -> None:
    results = smoke[1]["results"]
    ddp = results["ddp"]
    assert {run["exit_code"] for run in ddp["runs"].values()} == {0}
    assert ddp["runs"]["torchrun"]["world_size"] == 1 and ddp["runs"]["single"]["images_per_s"] > 0
    assert ddp["losses_close"] and ddp["loss_max_rel_diff"] < 1e-3  # world size 1: the same computation
    convert = results["convert"]["rows"]
    assert [row["fmt"] for row in convert] == ["png", "jpg"]
    assert all(row["converted"] == 8 and row["failed"] == 0 and row["fraction_of_model"] > 0 for row in convert)

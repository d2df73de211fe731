"""gpu_check step ddp: cyclegan trained once in this process and once under torchrun, their final losses
and images/s compared."""

from __future__ import annotations

import json
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch

from translate.training.config import make_config

from .common import write_jpegs
from .gpu_check_common import Context, child_env, logger, started, wait_for

# --- step: ddp ----------------------------------------------------------------------------------------------------


def read_run_log(run_dir: Path) -> dict[str, Any]:
    """The final losses, world size and steady images/s (windows after the first) of a run's log.jsonl."""
    events = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines() if line.strip()]
    start = next(e for e in events if e["event"] == "start")
    losses = [e for e in events if e["event"] == "losses"]
    if not losses:
        raise ValueError(f"{run_dir / 'log.jsonl'} holds no losses")
    skip = {"event", "time", "step", "epoch", "lr", "it_per_s"}
    steady = [e["it_per_s"] for e in losses[1:]] or [losses[-1]["it_per_s"]]
    it_per_s = len(steady) / sum(1 / rate for rate in steady)  # equal windows: the harmonic mean
    return {"world_size": int(start.get("world_size", 1)), "steps": losses[-1]["step"], "it_per_s": it_per_s,
            "final_losses": {k: v for k, v in losses[-1].items() if k not in skip},
            "windows_it_per_s": [e["it_per_s"] for e in losses]}


def compare_losses(single: dict[str, float], ddp: dict[str, float]) -> dict[str, float]:
    return {name: abs(single[name] - ddp[name]) / max(abs(single[name]), abs(ddp[name]), 1e-3)
            for name in single if name in ddp}


def ddp_options(ctx: Context, data: Path) -> dict[str, Any]:
    """The options of both runs (TrainConfig fields; the torchrun run passes them as flags)."""
    scale = ctx.scale
    return {"data": str(data), "max_steps": scale.ddp_steps, "log_every": max(1, scale.ddp_steps // 3),
            "sample_every": 1_000_000, "save_epoch_freq": 1_000_000, "crop_size": scale.size,
            "load_size": scale.size, "ngf": scale.ngf, "ndf": scale.ngf, "batch_size": scale.ddp_batch,
            "workers": scale.ddp_workers, "device": ctx.device.type, "seed": 0}


def torchrun_command(procs: int, options: dict[str, Any], out: Path) -> list[str]:
    flags = [item for name, value in {**options, "out": str(out)}.items()
             for item in (f"--{name.replace('_', '-')}", str(value))]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}",
            "-m", "translate", "train", "cyclegan", *flags]


def train_in_process(options: dict[str, Any], out: Path) -> tuple[int, float]:
    """The single-process run: translate.training.train in this process (no start-up to pay again)."""
    from translate.training import train

    start = time.perf_counter()
    try:
        train(make_config("cyclegan", overrides={**options, "out": str(out)}))
        code = 0
    except Exception:  # noqa: BLE001 - recorded; the torchrun run still tells something
        logger.exception("the single-process run failed")
        code = 1
    return code, time.perf_counter() - start


def ddp_data(ctx: Context, count: int) -> Path:
    """`count` generated images in trainA/ and in trainB/ (kept for a rerun)."""
    data = ctx.work / "ddp_data"
    if len(list((data / "trainA").glob("*.jpg"))) != count:
        shutil.rmtree(data, ignore_errors=True)
        write_jpegs(data / "trainA", count, ctx.scale.size, seed=0)
        write_jpegs(data / "trainB", count, ctx.scale.size, seed=100_000)
    return data


def run_both(ctx: Context, command: list[str], options: dict[str, Any], single_out: Path
             ) -> dict[str, tuple[int | None, float]]:
    """The single run in this process and the torchrun run beside it (smoke: start-up bound) or after it."""
    log, env = ctx.work / "ddp_torchrun.log", child_env(ctx.scale.threads)
    single = None if ctx.scale.ddp_parallel else train_in_process(options, single_out)
    start = time.perf_counter()
    with started(command, log, env) as process:
        if single is None:
            single = train_in_process(options, single_out)
        code = wait_for(process, ctx.left() - 5)
    return {"single": single, "torchrun": (code, time.perf_counter() - start)}


def step_ddp(ctx: Context) -> None:
    scale = ctx.scale
    procs = ctx.args.ddp_procs or (max(1, torch.cuda.device_count()) if ctx.device.type == "cuda" else 1)
    options = ddp_options(ctx, ddp_data(ctx, max(16, scale.ddp_steps * scale.ddp_batch * procs)))
    ctx.result.update(processes=procs, steps=scale.ddp_steps, batch_per_process=scale.ddp_batch,
                      backend=("nccl" if ctx.device.type == "cuda" else "gloo") if procs > 1
                      else "none: world size 1 trains without a process group", runs={},
                      concurrent_runs=scale.ddp_parallel, options=options)
    runs = {label: ctx.work / f"ddp_run_{label}" for label in ("single", "torchrun")}
    for run_dir in runs.values():
        shutil.rmtree(run_dir, ignore_errors=True)
    commands = {"single": "translate.training.train(make_config('cyclegan', overrides=options)) in this process",
                "torchrun": shlex.join(torchrun_command(procs, options, runs["torchrun"]))}
    outcomes = run_both(ctx, torchrun_command(procs, options, runs["torchrun"]), options, runs["single"])
    for label, (code, seconds) in outcomes.items():
        run: dict[str, Any] = {"exit_code": code, "seconds": seconds, "command": commands[label]}
        if code == 0:
            run.update(read_run_log(runs[label]))
            run["images_per_s"] = run["it_per_s"] * scale.ddp_batch * run["world_size"]
        else:
            if label == "torchrun":
                run["log_tail"] = (ctx.work / "ddp_torchrun.log").read_text()[-3000:]
            ctx.note_incomplete(f"ddp {label}: " + ("timed out" if code is None else f"exit code {code}"))
        ctx.result["runs"][label] = run
    ddp_summary(ctx)


def ddp_summary(ctx: Context) -> None:
    runs = ctx.result["runs"]
    single, ddp = runs.get("single", {}), runs.get("torchrun", {})
    if "final_losses" not in single or "final_losses" not in ddp:
        return
    rel = compare_losses(single["final_losses"], ddp["final_losses"])
    world = ddp["world_size"]
    # World size 1 computes what the single process does (up to cuDNN's algorithm choice); with more
    # processes rank 0 logs the losses of its own shard, so only a loose agreement is expected.
    tolerance = 0.05 if world == 1 else 0.5
    ctx.result.update(loss_rel_diff=rel, loss_max_rel_diff=max(rel.values()), loss_tolerance=tolerance,
                      losses_close=max(rel.values()) <= tolerance,
                      images_per_s_ratio=ddp["images_per_s"] / single["images_per_s"],
                      scaling_efficiency=ddp["images_per_s"] / (single["images_per_s"] * world))

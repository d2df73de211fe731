"""One-command GPU check: environment, matmul peak, training-step speed levers, DDP, inference backends
and `convert`, as resumable steps that write JSON results and a markdown report.

On a machine with a CUDA GPU, with the project installed (`pip install -e ".[dev]"`), from the
repository root:

    python -m scripts.bench.gpu_check                     # 8-11 minutes; writes gpu_check_out/
    python -m scripts.bench.gpu_check --steps env peak inference    # a part of it, a minute or two
    python -m scripts.bench.gpu_check --smoke --out /tmp/gpu_smoke  # every step at tiny sizes on the CPU

It writes, in --out (default gpu_check_out/): report.md (the tables for docs/benchmarks.md, also
printed at the end), report.json (every number), gpu_check.log, each step's result in steps/ and
scratch files in work/. --export DIR also copies report.json, report.md and gpu_check.log to DIR after
every step.

A rerun with the same --out skips the steps whose result is in --out/steps (`--redo STEP` runs one
again; steps that ended in an error are retried), and `--resume-from OLD/report.json` counts an earlier
run's finished steps as done (e.g. from another machine). Each step has its own time cap (below; 11
minutes together); --max-seconds N starts no step after N seconds: the steps it did not start are
listed as "not run", and a rerun does them.

--smoke runs the same steps at tiny sizes (ngf 8, 32 px, pix2pix unet_128 at 128 px, batch 1, two timed
steps a variant, one torch thread, torch.compile on dynamo's "eager" backend, DDP through torchrun with
one process beside the single-process run, ONNX Runtime's CPU provider, convert on 8 images): about a
minute on two cores, and the numbers only show that every step runs (tests/scripts/test_gpu_check.py).

Steps (run in this order: the bounded ones first, the compile-heavy training steps last):
  env            GPU(s), driver, CUDA, cuDNN, NCCL, torch, onnxruntime and its providers, TensorRT, CPU.
  peak           bf16, TF32 and fp32 matmul TFLOP/s (8192^2 products timed with CUDA events).
  gradients      the input gradient of a random resnet_6blocks (instance norm) and unet_128 (batch norm) at
                 batch 1 and 2, float32 in the default layout and in channels_last against float64: on the
                 CPU channels_last with instance norm is wrong (translate refuses it there); this says
                 whether it is right on the GPU before --speed auto may use it.
  inference      resnet_9blocks ngf 64 (random weights) at 256 px, batch 1 and 8: PyTorch fp32 (its default,
                 TF32 convolutions), fp16, bf16, and ONNX Runtime on the CUDA and TensorRT providers when
                 present (else its CPU provider) in fp32 and fp16: images/s (median of interleaved rounds) and
                 parity (max abs error, PSNR) against strict fp32 PyTorch (TF32 off).
  convert        512 generated 256 px JPEGs through convert_folder, to png and to jpg, with the backend and
                 precision `make_backend` picks by default (auto), against that backend's model images/s at
                 the same batch (8), timed just before and after each convert.
  ddp            cyclegan on a generated data set for K steps (60 at 256 px, batch 1, speed off), once as one
                 process (translate.training.train in this process) and once as `python -m torch.distributed.run
                 --standalone --nproc_per_node=N -m translate train cyclegan ...` (N = visible GPUs, NCCL; with
                 one GPU, world size 1, translate trains without a process group): final losses from each
                 run's log.jsonl (close: relative difference <= 0.05 at world size 1) and steady images/s
                 (the log windows after the first).
  train-TASK     cyclegan, pix2pix, cut at 256 px, batch 1 and 4: the reference-equivalent fp32 eager step
                 (cyclegan: the six generator calls one by one; all: speed off, tf32 off, cudnn_benchmark off)
                 against ours (cyclegan: batched calls) with each lever alone (channels_last, compile,
                 adam fused, tf32, cudnn_benchmark, amp) and all together (speed auto + amp): it/s, images/s,
                 TFLOP/s (FlopCounterMode, one eager step), percent of the matching peak (bf16 for amp, TF32
                 or fp32 otherwise), and the projected time of horse2zebra's 200 epochs (266,800 images).
                 Eager variants of every batch are timed first, round-robin; then each compile variant
                 (`all` first, then `compile`), batch by batch, is compiled (seconds recorded apart) and timed
                 interleaved with a fresh reference; one that cannot start with 40 s left is listed as not run.
  report         report.json and report.md (written after every step too).

Each step has its own time cap (BUDGETS_S, 10 to 170 s): it stops starting work when the cap
is near and is stopped by an alarm at the cap; either way it is recorded "incomplete" with what it
measured and why. The alarm interrupts Python, not native code: a TensorRT engine build (ONNX Runtime's
TensorRT provider, when present) runs to its end. --smoke uses dynamo's "eager" backend for the compile
variants (--compile-backend) since inductor's C++ compile on two CPU cores takes minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import shlex
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from .common import read_json, write_json
from .gpu_check_common import SMOKE, STEPS, Context, Scale, StepTimeout, child_env, logger
from .gpu_check_ddp import step_ddp
from .gpu_check_env import step_env, step_gradients, step_peak
from .gpu_check_inference import step_convert, step_inference
from .gpu_check_report import step_report, write_report
from .gpu_check_training import step_train

# Seconds each step may take (a cap, not an estimate); together 645 s, the longest a full run takes.
BUDGETS_S = {"env": 20, "peak": 25, "gradients": 15, "inference": 70, "convert": 40, "ddp": 75, "train-cyclegan": 170,
             "train-pix2pix": 90, "train-cut": 130, "report": 10}


# --- the runner -------------------------------------------------------------------------------------------------


STEP_FUNCTIONS: dict[str, Callable[[Context], None]] = {
    "env": step_env, "peak": step_peak, "gradients": step_gradients, "inference": step_inference, "convert": step_convert, "ddp": step_ddp,
    "train-cyclegan": lambda ctx: step_train(ctx, "cyclegan"), "train-pix2pix": lambda ctx: step_train(ctx, "pix2pix"),
    "train-cut": lambda ctx: step_train(ctx, "cut"), "report": step_report}


@contextlib.contextmanager
def alarm(seconds: float, ctx: Context) -> Iterator[None]:
    """Raise StepTimeout in the main thread after `seconds` (marks the context timed out)."""
    def handler(signum: int, frame: Any) -> None:
        ctx.timed_out = True
        raise StepTimeout(f"{ctx.name} reached its budget")

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, max(1.0, seconds))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_step(name: str, args: argparse.Namespace, scale: Scale, out: Path, device: Any, budget: float) -> None:
    ctx = Context(name, args, scale, out, out / "work", device, time.monotonic() + budget)
    ctx.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    record: dict[str, Any] = {"status": "ok", "budget_s": round(budget)}
    logger.info("step %s (budget %.0f s)", name, budget)
    try:
        with alarm(budget, ctx):
            STEP_FUNCTIONS[name](ctx)
    except BaseException as error:  # noqa: BLE001 - the alarm may surface wrapped (dynamo re-raises)
        if isinstance(error, KeyboardInterrupt) and not ctx.timed_out:
            raise
        record["status"] = "incomplete" if ctx.timed_out else "error"
        record["error"] = "".join(traceback.format_exception(error))[-4000:]
        logger.error("step %s: %s", name, record["status"], exc_info=not ctx.timed_out)
        if ctx.timed_out:
            ctx.incomplete.append(f"stopped by the alarm at its budget ({budget:.0f} s)")
    if ctx.incomplete and record["status"] == "ok":
        record["status"] = "incomplete"
    record.update(seconds=round(time.perf_counter() - started, 2), incomplete=ctx.incomplete, result=ctx.result)
    gc.collect()  # the step's networks and sessions go before the next step
    if device.type == "cuda":
        torch.cuda.empty_cache()
    write_json(out / "steps" / f"{name}.json", record)
    (out / "steps" / f"{name}.partial.json").unlink(missing_ok=True)
    logger.info("step %s: %s in %.1f s", name, record["status"], record["seconds"])


def seed_from_report(path: Path, out: Path) -> None:
    """Take the finished steps of an earlier run's report.json as done (resume on a fresh machine)."""
    if not path.is_file():
        logger.info("--resume-from %s: no such file; starting afresh", path)
        return
    report = read_json(path)
    for name, step in report.get("steps", {}).items():
        target = out / "steps" / f"{name}.json"
        if name != "report" and step.get("status") in ("ok", "incomplete") and not target.is_file():
            write_json(target, {**step, "result": report["results"].get(name, {}), "resumed_from": str(path)})
            logger.info("step %s: taken from %s", name, path)


def wanted_steps(args: argparse.Namespace, out: Path) -> list[str]:
    """The steps to run now: those asked for, less those already done (unless --redo names them)."""
    chosen = [s for s in STEPS if s in (args.steps or STEPS)]
    redo = set(STEPS) if "all" in args.redo else set(args.redo)
    todo = []
    for name in chosen:
        path = out / "steps" / f"{name}.json"
        if name != "report" and name not in redo and path.is_file() and read_json(path)["status"] != "error":
            logger.info("step %s: done earlier (%s), skipped; --redo %s runs it again", name, path, name)
            continue
        todo.append(name)
    return todo


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    """Run the steps still to do in --out, each within its cap; returns the report (also in --out)."""
    scale = SMOKE if args.smoke else Scale()
    if args.max_seconds:
        scale = replace(scale, max_seconds=args.max_seconds)
    out = Path(args.out).resolve()
    (out / "work").mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TRANSLATE_CACHE", str(out / "work" / "cache"))
    if args.resume_from:
        seed_from_report(Path(args.resume_from), out)
    device = torch.device("cpu" if args.smoke or not torch.cuda.is_available() else "cuda")
    if scale.threads:
        torch.set_num_threads(scale.threads)
    if device.type == "cpu" and not args.smoke:
        logger.warning("no CUDA device: running the full-size check on the CPU (use --smoke for a quick one)")
    deadline = time.monotonic() + scale.max_seconds
    # What exists now (the imported libraries) is not scanned again by each step's collection: seconds a step.
    gc.freeze()
    try:
        for name in wanted_steps(args, out):
            left = deadline - time.monotonic()
            if name != "report" and left < min(30.0, BUDGETS_S[name]):
                logger.warning("step %s: not started, %.0f s left of --max-seconds; a rerun continues here", name,
                               left)
                continue
            run_step(name, args, scale, out, device, min(BUDGETS_S[name], max(left, 5.0)))
            write_report(args, out)
    finally:
        gc.unfreeze()
    return write_report(args, out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench.gpu_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="gpu_check_out", help="results folder (steps/, work/, report.*)")
    parser.add_argument("--export", help="copy report.json, report.md and gpu_check.log here after every step")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU (the test's mode)")
    parser.add_argument("--steps", nargs="+", choices=STEPS, help="run only these steps (default: all)")
    parser.add_argument("--redo", nargs="+", default=[], choices=(*STEPS, "all"), help="run these again")
    parser.add_argument("--resume-from", help="an earlier run's report.json: its finished steps count as done")
    parser.add_argument("--max-seconds", type=float, help="start no step after this many seconds (default 900; smoke 150)")
    parser.add_argument("--ddp-procs", type=int, help="torchrun processes (default: visible GPUs, at least 1)")
    parser.add_argument("--compile-backend", help="dynamo backend of the compile variants (default inductor; "
                                                  "smoke: eager)")
    args = parser.parse_args(argv)
    args.command = shlex.join(["python", "-m", "scripts.bench.gpu_check", *(sys.argv[1:] if argv is None else argv)])
    args.compile_backend = args.compile_backend or ("eager" if args.smoke else "inductor")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the check; the exit status is 1 when a step ended in an error (incomplete steps are not errors)."""
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s",
                        handlers=[logging.StreamHandler(sys.stderr), logging.FileHandler(out / "gpu_check.log")])
    os.environ["PYTHONPATH"] = child_env()["PYTHONPATH"]
    report = run_all(args)
    print((out / "report.md").read_text())
    failed = [n for n, s in report["steps"].items() if s["status"] not in ("ok", "incomplete")]
    if failed:
        logger.error("steps not ok: %s", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""The training loop's own speed levers on this machine, side by side in one run.

    python -m scripts.bench.loop --data ../shared/datasets/horse2zebra --steps 40 --rounds 3
    python -m scripts.bench.loop --data DIR --size 64 --ngf 16      # a small, data-bound case

Each variant is a short `translate.training.train` run of CycleGAN on the same data (a fresh run
directory each time; --images limits the data set so the cache builds fast); its it/s is measured
from the progress callback between step --skip and the last step, so set-up, the cache's decode and
the first steps are left out (the decode time is reported apart). Variants run round-robin, so the
load of a shared machine hits them alike; the figure is the median over rounds, and every ratio is
to the baseline of the same rounds.

Variants: baseline (DataLoader, losses read every step), cache_data, loss_sync=log, both, both +
adam foreach, both + adam fused; compile, amp, amp+compile (`--task cut` for CUT's step). (channels_last
is refused on the CPU for instance norm: translate.training.speed.check_channels_last.)
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from translate.training import make_config, train

from .common import cpu_model, write_json

VARIANTS: dict[str, dict[str, Any]] = {
    "baseline": {"loss_sync": "step"},
    "cache_data": {"loss_sync": "step", "cache_data": True},
    "loss_sync=log": {"loss_sync": "log"},
    "cache+log": {"loss_sync": "log", "cache_data": True},
    "cache+log+adam foreach": {"loss_sync": "log", "cache_data": True, "adam": "foreach"},
    "cache+log+adam fused": {"loss_sync": "log", "cache_data": True, "adam": "fused"},
    # torch.compile (inductor) of every network: the first steps compile, --skip leaves them out
    "compile": {"loss_sync": "step", "compile": True},
    "amp": {"loss_sync": "step", "amp": True},
    "amp+compile": {"loss_sync": "step", "amp": True, "compile": True},
}


def subset(data: Path, images: int, out: Path) -> Path:
    """trainA / trainB with the first `images` files of each (symlinks)."""
    for side in ("trainA", "trainB"):
        (out / side).mkdir(parents=True, exist_ok=True)
        for path in sorted((data / side).iterdir())[:images]:
            target = out / side / path.name
            if not target.exists():
                target.symlink_to(path.resolve())
    return out


def one_run(data: Path, work: Path, variant: str, args: argparse.Namespace) -> dict[str, float]:
    out = work / f"run_{variant.replace(' ', '_').replace('=', '_').replace('+', '_')}"
    shutil.rmtree(out, ignore_errors=True)
    settings = {"data": str(data), "out": str(out), "device": "cpu", "ngf": args.ngf, "ndf": args.ngf,
                "load_size": args.size + args.size // 8, "crop_size": args.size, "batch_size": args.batch_size,
                "workers": args.workers, "max_steps": args.steps, "log_every": args.steps, "sample_every": 10**6,
                "save_epoch_freq": 10**6, **VARIANTS[variant]}
    stamps: dict[int, float] = {}
    started = time.perf_counter()
    train(make_config(args.task, overrides=settings), on_progress=lambda p: stamps.setdefault(p.step, time.perf_counter()))
    first_step = stamps[1] - started  # set-up + the cache's decode + the first step
    timed = args.steps - args.skip
    seconds = stamps[args.steps] - stamps[args.skip]
    return {"it_per_s": timed / seconds, "first_step_s": first_step}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench.loop", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="an unpaired data set (trainA/, trainB/)")
    parser.add_argument("--task", default="cyclegan", choices=["cyclegan", "cut"])
    parser.add_argument("--images", type=int, default=200, help="images per side used")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--ngf", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--skip", type=int, default=5, help="steps left out of the timing")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    args.command = shlex.join(["python", "-m", "scripts.bench.loop", *(sys.argv[1:] if argv is None else argv)])
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse `argv`, run every variant round-robin, print the table, write --json; returns the summary."""
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench_loop_"))
    data = subset(args.data, args.images, work / "data")
    results: dict[str, list[dict[str, float]]] = {v: [] for v in args.variants}
    one_run(data, work, args.variants[0], args)  # warm-up: imports, allocator, first kernels (not timed)
    for round_index in range(args.rounds):
        order = args.variants[round_index % len(args.variants):] + args.variants[:round_index % len(args.variants)]
        for variant in order:
            results[variant].append(one_run(data, work, variant, args))
            print(f"round {round_index + 1} {variant}: {results[variant][-1]['it_per_s']:.3f} it/s", file=sys.stderr)
    shutil.rmtree(work, ignore_errors=True)
    return report(results, args)


def report(results: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> dict[str, Any]:
    """Print the markdown table (medians over rounds, ratios to the baseline), write --json; the summary."""
    base = statistics.median(r["it_per_s"] for r in results["baseline"]) if "baseline" in results else None
    cpu = cpu_model()
    print(f"\n{args.task}, {args.size} px, ngf {args.ngf}, batch {args.batch_size}, {args.workers} DataLoader workers, "
          f"{args.images} images per side; {args.steps} steps per run (first {args.skip} not timed), median of "
          f"{args.rounds} rounds; {cpu}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads\n")
    print("| variant | it/s | vs baseline | set-up + first step (s) |")
    print("| --- | --- | --- | --- |")
    summary = {}
    for variant, runs in results.items():
        rate = statistics.median(r["it_per_s"] for r in runs)
        first = statistics.median(r["first_step_s"] for r in runs)
        ratio = rate / base if base else float("nan")
        summary[variant] = {"it_per_s": rate, "ratio": ratio, "first_step_s": first, "runs": runs}
        print(f"| {variant} | {rate:.3f} | {ratio:.2f}x | {first:.1f} |")
    print(f"\ncommand: {args.command}")
    if args.json:
        write_json(args.json, {"args": {k: str(v) for k, v in vars(args).items()}, "results": summary})
    return summary


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main()

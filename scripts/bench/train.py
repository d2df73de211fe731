"""Time training steps side by side in one process: ours vs. a reference-equivalent CycleGAN step.

    python -m scripts.bench.train --size 128 --steps 10 [--device cpu] [--amp]

Prints, per variant, it/s, the ratio to the reference-equivalent CycleGAN step and the achieved
TFLOP/s (FLOPs of one step counted with torch.utils.flop_counter). Variants:
- cyclegan-reference: batch 1, float32, the reference's six generator calls made one by one;
- cyclegan: our default step (generator calls that instance norm allows are batched);
- cyclegan-amp: ours under bf16/fp16 autocast (with --amp);
- pix2pix: our pix2pix step (unet_256 needs 256 px; at smaller sizes unet_128 is used);
- pix2pix-amp: with --amp.
Variants are interleaved round by round so machine noise hits them alike.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from translate.core.device import pick_device
from translate.training.config import make_config
from translate.training.tasks.base import TaskStep
from translate.training.tasks.cyclegan import CycleGANStep
from translate.training.tasks.pix2pix import Pix2PixStep

from .common import sync, write_json


def make_step(variant: str, size: int, device: torch.device, ngf: int) -> TaskStep:
    amp = variant.endswith("-amp")
    if variant.startswith("cyclegan"):
        config = make_config("cyclegan", overrides={"amp": amp, "ngf": ngf, "ndf": ngf})
        return CycleGANStep(config, device, batched=variant != "cyclegan-reference")
    netg = "unet_256" if size >= 256 else "unet_128"
    config = make_config("pix2pix", overrides={"amp": amp, "netG": netg, "ngf": ngf, "ndf": ngf})
    return Pix2PixStep(config, device)


def count_flops(step: TaskStep, real_a: torch.Tensor, real_b: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter:
        step.train_step(real_a, real_b)
    return counter.get_total_flops()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per variant per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", action="store_true", help="also time the autocast variants")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: PyTorch's default)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    return parser.parse_args(argv)


def time_steps(steps: dict[str, TaskStep], real_a: torch.Tensor, real_b: torch.Tensor, args: argparse.Namespace,
               device: torch.device) -> dict[str, float]:
    """Seconds of `args.rounds` x `args.steps` steps of each variant, after `args.warmup` untimed steps;
    the variants take turns round by round."""
    for step in steps.values():
        for _ in range(args.warmup):
            step.train_step(real_a, real_b)
    seconds = dict.fromkeys(steps, 0.0)
    for _ in range(args.rounds):
        for variant, step in steps.items():
            sync(device)
            start = time.perf_counter()
            for _ in range(args.steps):
                step.train_step(real_a, real_b)
            sync(device)
            seconds[variant] += time.perf_counter() - start
    return seconds


def main(argv: Sequence[str] | None = None) -> list[dict[str, float]]:
    """Parse `argv`, time every variant, print the table, write --json; returns the rows."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    torch.manual_seed(0)
    variants = ["cyclegan-reference", "cyclegan", "pix2pix"]
    if args.amp:
        variants += ["cyclegan-amp", "pix2pix-amp"]
    steps = {v: make_step(v, args.size, device, args.ngf) for v in variants}
    real_a = torch.rand(1, 3, args.size, args.size, device=device) * 2 - 1
    real_b = torch.rand(1, 3, args.size, args.size, device=device) * 2 - 1
    flops = {v: count_flops(step, real_a, real_b) for v, step in steps.items()}
    seconds = time_steps(steps, real_a, real_b, args, device)

    total = args.rounds * args.steps
    rows = []
    ref_rate = total / seconds["cyclegan-reference"]
    print(f"device {device}, {torch.get_num_threads()} threads, {args.size}x{args.size}, batch 1, "
          f"ngf {args.ngf}, {args.rounds} rounds x {args.steps} steps, torch {torch.__version__}")
    print(f"{'variant':<20} {'it/s':>8} {'vs ref':>8} {'GFLOP/step':>11} {'TFLOP/s':>8}")
    for variant in variants:
        rate = total / seconds[variant]
        tflops = flops[variant] * rate / 1e12
        rows.append({"variant": variant, "it_per_s": rate, "ratio_to_reference": rate / ref_rate,
                     "gflop_per_step": flops[variant] / 1e9, "tflop_per_s": tflops})
        ratio = f"{rate / ref_rate:.2f}x" if variant.startswith("cyclegan") else "-"
        print(f"{variant:<20} {rate:8.3f} {ratio:>8} {flops[variant] / 1e9:11.2f} {tflops:8.3f}")
    if args.json:
        write_json(args.json, {"device": str(device), "size": args.size, "ngf": args.ngf, "rows": rows})
    return rows


if __name__ == "__main__":
    main()

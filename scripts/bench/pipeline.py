"""The ceiling of `convert`'s decode / encode pipeline: a model that costs nothing (identity), so
images/s is what the I/O side alone sustains on this machine.

    python -m scripts.bench.pipeline [--n 200] [--size 256] [--formats jpg png] [--png-compression 1 6]

Compare with the model's own images/s (`python -m scripts.bench.infer`): where the model is faster than
this ceiling (small images on a GPU), `convert` is bound by decoding and encoding.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import translate.deploy.convert as convert
from translate.deploy.backends import Backend
from translate.deploy.convert import convert_folder

from .common import save_random_model


class IdentityBackend(Backend):
    """Returns its input: isolates the pipeline from the model."""

    def __init__(self) -> None:
        self.name, self.precision, self.device, self.provider = "identity", "fp32", torch.device("cpu"), "none"
        self.config, self.input_channels, self.output_channels, self.size_multiple = {}, 3, 3, 4

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x


def time_modes(work: Path, args: argparse.Namespace) -> dict[tuple[str, int | None], list[float]]:
    """Images/s of `convert_folder` over --n generated JPEGs in `work`, per output format and PNG level,
    in interleaved rounds."""
    rng = np.random.default_rng(0)
    ramp = np.add.outer(np.arange(args.size), np.arange(args.size)).astype(np.float32) % 256
    # A real weights folder for `convert_folder` to locate; the patched make_backend never loads it.
    model = save_random_model("resnet_6blocks", 4, work / "model", seed=0)
    source = work / "in"
    source.mkdir()
    for i in range(args.n):
        array = np.stack([ramp, ramp.T * 0.7, 255 - ramp], -1) + rng.normal(0, 8, (args.size, args.size, 3))
        Image.fromarray(array.clip(0, 255).astype(np.uint8)).save(source / f"{i:04d}.jpg", quality=90)
    modes = [(fmt, level) for fmt in args.formats for level in (args.png_compression if fmt == "png" else [None])]
    results: dict[tuple[str, int | None], list[float]] = {mode: [] for mode in modes}
    for _ in range(args.rounds):  # interleaved rounds
        for fmt, level in modes:
            started = time.perf_counter()
            summary = convert_folder(source, work / f"out_{fmt}_{level}", model, fmt=fmt,
                                     png_compression=level or 1, batch_size=args.batch_size,
                                     workers=args.workers, overwrite=True)
            results[(fmt, level)].append(len(summary.converted) / (time.perf_counter() - started))
    return results


def main(argv: Sequence[str] | None = None) -> dict[tuple[str, int | None], list[float]]:
    """Parse `argv`, convert the generated JPEGs in every output mode, print images/s; returns the rates."""
    parser = argparse.ArgumentParser(prog="python -m scripts.bench.pipeline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--formats", nargs="+", default=["jpg", "png"])
    parser.add_argument("--png-compression", nargs="+", type=int, default=[1, 6])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)

    original = convert.make_backend
    convert.make_backend = lambda *a, **k: IdentityBackend()  # convert_folder looks it up at call time
    try:
        with tempfile.TemporaryDirectory() as tmp:
            results = time_modes(Path(tmp), args)
    finally:
        convert.make_backend = original
    print(f"{args.n} JPEGs of {args.size}x{args.size} in, identity model, batch {args.batch_size}, "
          f"workers {args.workers or 'default'}; images/s (best of {args.rounds} rounds)")
    for (fmt, level), rates in results.items():
        label = fmt if level is None else f"{fmt} (zlib level {level})"
        print(f"| {label} | {max(rates):.0f} |")
    return results


if __name__ == "__main__":
    main()

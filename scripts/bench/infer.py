"""Inference benchmark: model images/s per backend and precision, and end-to-end `convert`.

    python -m scripts.bench.infer --quick                       # CPU figures, ~10 min on 2 busy cores
    python -m scripts.bench.infer --json bench.json             # the default for the device
    python -m scripts.bench.infer --model weights/maps_aerial2map --sizes 256 --batches 1 8
    python -m scripts.bench.infer --compare-convert --archs resnet_9blocks mobile_resnet_9blocks \
        --e2e-images ../shared/datasets/horse2zebra/testA --n-images 20   # convert of two architectures side by side

1. Model throughput for each variant (torch-fp32 = PyTorch eager float32, onnxruntime-fp32,
   onnxruntime-fp16, torch-bf16 = PyTorch bfloat16 autocast, torch-fp16) x architecture x size x
   batch, through `translate.deploy.backends.make_backend`: the product's own inference path. Inputs are
   natural-looking random images in [-1, 1], already on the backend's device. After warm-up, each
   round times every variant once, in a rotating order (the machine is shared and noisy, so only
   same-round ratios are fair); the figure is the median over rounds. Each non-fp32 variant is
   compared with torch-fp32 on the same input: PSNR on [0, 1] and max / mean abs error on [-1, 1].
   The architectures are saved with random weights (ngf 64, the reference size) unless --model
   names a trained model; a trained model gives the more telling accuracy figures.
2. End-to-end: `translate.deploy.convert.convert_folder` on --n-images generated JPEGs, with the fastest
   variant and with torch-fp32, beside the model throughput of the same variant and batch size,
   timed again just before and after each convert run (the grid's figure may be minutes old and
   the load on a shared machine changes). "steady" leaves out model loading and the first batch.
3. A markdown table (for docs/benchmarks.md) on stdout; --json writes every number.

--compare-convert replaces 1 and 2: `convert` of the same images with every --archs x variant, timed
in interleaved rounds, beside each network's parameters and multiply-accumulates
(scripts/bench/infer_side_by_side.py). --e2e-images DIR converts the first --n-images images
of DIR instead of generated JPEGs, in either mode.

Defaults depend on the device, so that a CPU run stays near 15 minutes (resnet_9blocks at 512 px
batch 8 alone takes ~15 s a call on 2 cores):
- GPU: every size x batch, 5 rounds, 200 end-to-end images;
- CPU: the --quick cells (256 px batch 1 and 8, 512 px batch 1), 3 rounds, 48 end-to-end images;
- --quick: those cells, 2 rounds, 24 end-to-end images.
Explicit --sizes / --batches / --repeats / --n-images override them.

unet_256 only takes sizes that are multiples of 256; other sizes are skipped and listed.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from translate.core.device import pick_device
from translate.data.images import list_images
from translate.formats.locator import locate
from translate.formats.weights import read_model_config

from . import infer_side_by_side as side_by_side
from .common import device_name, save_random_model, throwaway_cache, utc_now, versions, write_json
from .infer_e2e import bench_e2e, bench_end_to_end, e2e_inputs
from .infer_grid import (
    REFERENCE,
    VARIANTS,
    BenchConfig,
    bench_models,
    cells_for,
    default_variants,
    markdown,
    resolve_defaults,
    split_variant,
)


def run(config: BenchConfig, work: Path) -> dict[str, Any]:
    """Run the benchmark with models and images under `work`; returns the JSON-ready result."""
    device = pick_device(config.device)
    config = resolve_defaults(config, device)
    variants = config.variants or default_variants(device, include_cpu_fp16=config.include_cpu_fp16,
                                                   include_slow=config.include_slow)
    for name in variants:
        split_variant(name)
    if REFERENCE not in variants:
        variants = [REFERENCE, *variants]  # ratios and accuracy are against it
    if config.threads:
        torch.set_num_threads(config.threads)

    started = time.perf_counter()
    if config.model:
        path = locate(config.model).path  # a path, or the name of a bundled model in weights/
        models = {read_model_config(path)["architecture"]["name"]: path}
    else:
        models = {arch: save_random_model(arch, config.ngf, work / "models", seed=config.seed) for arch in config.archs}
    skipped: list[str] = []
    rows, e2e_backends = bench_models(models, variants, config, device, work, skipped)
    model_s = time.perf_counter() - started
    if not rows:
        raise ValueError(f"nothing to time: no size in {sorted({s for s, _ in cells_for(config, device)})} suits "
                         f"{', '.join(models)}; pick --sizes that are multiples of each model's size multiple")
    e2e_arch = next(iter(models))
    e2e_rows = bench_end_to_end(e2e_arch, models[e2e_arch], rows, e2e_backends, config, work, skipped)
    e2e_backends.clear()

    meta = {"device": str(device), "device_name": device_name(device), "versions": versions(),
            "models": ", ".join(f"{a} (random init, ngf {config.ngf})" for a in models) if not config.model
            else f"{config.model}", "variants": variants, "repeats": config.repeats,
            "e2e_size": config.e2e_size, "e2e_batch": config.e2e_batch, "e2e_format": config.e2e_format,
            "model_seconds": model_s, "total_seconds": time.perf_counter() - started,
            "config": asdict(config), "date": utc_now()}
    return {"meta": meta, "model": rows, "e2e": e2e_rows, "skipped": skipped}


def run_side_by_side(config: BenchConfig, work: Path) -> dict[str, Any]:
    """--compare-convert: `convert` of the same images with every --archs (random init, --ngf) x variant,
    in interleaved rounds, beside each network's parameters and MACs at --e2e-size; JSON-ready."""
    device = pick_device(config.device)
    config = resolve_defaults(config, device)
    variants = config.variants or [REFERENCE]
    for name in variants:
        split_variant(name)
    if config.threads:
        torch.set_num_threads(config.threads)
    started = time.perf_counter()
    models = {arch: save_random_model(arch, config.ngf, work / "models", seed=config.seed) for arch in config.archs}
    images = e2e_inputs(config, work)
    warmup = work / "warmup_in"  # one image: the untimed first conversion exports the ONNX copies
    warmup.mkdir()
    shutil.copy2(list_images(images)[0], warmup)
    rows = side_by_side.convert_side_by_side(
        models, variants, images, warmup, work, config.repeats,
        lambda model, variant, folder, out: bench_e2e(model, variant, folder, out, config))
    costs = {arch: side_by_side.model_costs(read_model_config(path)["architecture"], config.e2e_size)
             for arch, path in models.items()}
    meta = {"device": str(device), "device_name": device_name(device), "versions": versions(),
            "variants": variants, "repeats": config.repeats, "images": config.e2e_images or "generated JPEGs",
            "n_images": config.n_images, "e2e_size": config.e2e_size, "e2e_batch": config.e2e_batch,
            "e2e_format": config.e2e_format, "total_seconds": time.perf_counter() - started,
            "config": asdict(config), "date": utc_now()}
    return {"meta": meta, "costs": costs, "side_by_side": rows}


def parse_args(argv: Sequence[str] | None) -> tuple[BenchConfig, str | None]:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench.infer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="both archs at 256 px batch 1 and 8, and 512 px batch 1 (the CPU preset)")
    parser.add_argument("--archs", nargs="+", default=["resnet_9blocks", "unet_256"])
    parser.add_argument("--sizes", nargs="+", type=int, help="default 256 512 (CPU: see --quick)")
    parser.add_argument("--batches", nargs="+", type=int, help="default 1 8 (CPU: see --quick)")
    parser.add_argument("--precisions", "--variants", dest="variants", nargs="+", choices=VARIANTS,
                        help="variants to time (default: those the device runs well; torch-fp32 is always in)")
    parser.add_argument("--model", help="bench this trained model (weights folder, run, checkpoint) instead of --archs")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--provider", choices=("tensorrt", "cuda", "cpu"), help="force an ONNX Runtime provider")
    parser.add_argument("--repeats", type=int, help="timed rounds, the median is reported (GPU 5, CPU 3, quick 2)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls per variant and cell (>= 1)")
    parser.add_argument("--min-round-s", type=float, help="seconds per variant per round (default: CPU 0, GPU 0.5)")
    parser.add_argument("--threads", type=int, help="PyTorch and ONNX Runtime intra-op threads")
    parser.add_argument("--n-images", type=int,
                        help="generated JPEGs for end to end, 0 skips it (GPU 200, CPU 48, quick 24)")
    parser.add_argument("--e2e-size", type=int, default=256)
    parser.add_argument("--e2e-batch", type=int, default=8)
    parser.add_argument("--e2e-format", default="png", choices=("png", "jpg", "webp"))
    parser.add_argument("--workers", type=int, help="convert's decode / encode threads (default: its own)")
    parser.add_argument("--include-cpu-fp16", action="store_true", help="time onnxruntime-fp16 on the CPU too")
    parser.add_argument("--include-slow", action="store_true", help="time torch-bf16 on CPUs without native bf16")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--calibration", help="folder of int8 calibration images (default: the model's samples/, "
                                              "else generated images)")
    parser.add_argument("--e2e-images", help="convert the first --n-images images of this folder instead of "
                                             "generated JPEGs (give --e2e-size their size: MACs are counted there)")
    parser.add_argument("--compare-convert", action="store_true",
                        help="instead of the grid: convert the same images with every --archs x variant, in "
                             "interleaved rounds, with parameters and MACs (default variant: torch-fp32; "
                             "--threads sets PyTorch's threads only, convert's ONNX Runtime keeps its own)")
    parser.add_argument("--json", help="write all numbers to this file")
    parser.add_argument("--ngf", type=int, default=64, help="width of the random-init --archs (the reference: 64)")
    args = parser.parse_args(argv)
    for name in ("repeats", "warmup", "ngf", "e2e_size", "e2e_batch", "threads", "workers"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    for name in ("sizes", "batches"):
        if any(v < 1 for v in getattr(args, name) or []):
            parser.error(f"--{name} must be positive, got {getattr(args, name)}")
    if args.n_images is not None and args.n_images < 0:
        parser.error(f"--n-images must be >= 0, got {args.n_images}")
    if args.compare_convert and (args.model or args.n_images == 0):
        parser.error("--compare-convert converts --n-images (>= 1) images with random-init --archs; "
                     "it takes no --model")
    config = BenchConfig(archs=args.archs, sizes=args.sizes, batches=args.batches, quick=args.quick,
                         explicit_grid=args.sizes is not None or args.batches is not None, variants=args.variants,
                         model=args.model, device=args.device, provider=args.provider, ngf=args.ngf,
                         repeats=args.repeats, warmup=args.warmup, min_round_s=args.min_round_s,
                         threads=args.threads, n_images=args.n_images, e2e_size=args.e2e_size,
                         e2e_batch=args.e2e_batch, e2e_format=args.e2e_format, workers=args.workers,
                         include_cpu_fp16=args.include_cpu_fp16, include_slow=args.include_slow, seed=args.seed,
                         calibration=args.calibration, e2e_images=args.e2e_images,
                         compare_convert=args.compare_convert)
    return config, args.json


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse `argv`, run, print the markdown tables, write --json; returns the result."""
    config, json_path = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_infer-") as work, throwaway_cache(Path(work)):
        result = (run_side_by_side if config.compare_convert else run)(config, Path(work))
    print(side_by_side.markdown(result) if config.compare_convert else markdown(result))
    if json_path:
        write_json(Path(json_path), result)
    return result


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    main()

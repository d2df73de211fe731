"""Inference benchmark (issue 3, item 5): model images/s per backend and precision, and end-to-end `convert`.

    .venv/bin/python scripts/bench_infer.py --quick                       # CPU smoke figures, ~10 min on 2 busy cores
    .venv/bin/python scripts/bench_infer.py --json bench.json             # the default for the device
    .venv/bin/python scripts/bench_infer.py --model weights/maps_aerial2map --sizes 256 --batches 1 8
    .venv/bin/python scripts/bench_infer.py --compare-convert --archs resnet_9blocks mobile_resnet_9blocks \
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
(scripts/bench_infer_parts/side_by_side.py). --e2e-images DIR converts the first --n-images images
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
import json
import logging
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO, REPO / "scripts"):  # run as a file from anywhere; bench_infer_parts/ sits beside this file
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from bench_infer_parts import side_by_side  # noqa: E402

from translate.core.device import cpu_has_native_bf16, cpu_has_vnni, pick_device  # noqa: E402
from translate.data.images import list_images  # noqa: E402
from translate.deploy.backends import Backend, make_backend  # noqa: E402
from translate.deploy.convert import convert_folder  # noqa: E402
from translate.formats.locator import locate  # noqa: E402
from translate.formats.weights import read_model_config, save_weights  # noqa: E402
from translate.models import GeneratorConfig, build_generator, size_multiple  # noqa: E402

logger = logging.getLogger("bench_infer")

REFERENCE = "torch-fp32"
VARIANTS = ("torch-fp32", "onnxruntime-fp32", "onnxruntime-fp16", "onnxruntime-int8", "torch-bf16", "torch-fp16")
QUICK_CELLS = ((256, 1), (256, 8), (512, 1))  # (size, batch) of --quick, for every architecture


@dataclass
class BenchConfig:
    """None fields take the device's default (see the module docstring) in `resolve_defaults`."""

    archs: list[str] = field(default_factory=lambda: ["resnet_9blocks", "unet_256"])
    sizes: list[int] | None = None
    batches: list[int] | None = None
    quick: bool = False
    explicit_grid: bool = False  # --sizes or --batches given: time exactly sizes x batches
    variants: list[str] | None = None  # None: the variants this device runs well (see default_variants)
    model: str | None = None  # a trained model instead of random-weight --archs
    device: str = "auto"
    provider: str | None = None
    ngf: int = 64
    repeats: int | None = None
    warmup: int = 1
    min_round_s: float | None = None  # seconds per variant per round; None: 0 on the CPU, 0.5 on a GPU
    threads: int | None = None
    n_images: int | None = None
    e2e_size: int = 256
    e2e_batch: int = 8
    e2e_format: str = "png"
    workers: int | None = None
    include_cpu_fp16: bool = False
    include_slow: bool = False
    seed: int = 0
    calibration: str | None = None  # folder of int8 calibration images
    e2e_images: str | None = None  # convert the first n_images of this folder instead of generated JPEGs
    compare_convert: bool = False  # time convert of every arch side by side instead of the grid


# --- inputs ------------------------------------------------------------------------------------


def natural_images(count: int, channels: int, size: int, *, seed: int) -> Tensor:
    """`(count, channels, size, size)` float32 in [-1, 1]: smooth random fields at three scales plus
    pixel noise. Closer to photos than uniform noise, so fp16 / bf16 errors are representative."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.zeros(count, channels, size, size)
    for cells, weight in ((4, 1.0), (16, 0.5), (64, 0.25)):
        coarse = torch.randn(count, channels, min(cells, size), min(cells, size), generator=generator)
        images += weight * F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    images = images / images.flatten(1).std(dim=1).clamp_min(1e-6).view(-1, 1, 1, 1) * 0.45
    images += 0.03 * torch.randn(images.shape, generator=generator)
    return images.clamp(-1, 1)


def write_jpegs(folder: Path, count: int, size: int, *, seed: int) -> None:
    """`count` RGB JPEGs of `size` x `size` made by `natural_images`, written in chunks (flat memory)."""
    folder.mkdir(parents=True, exist_ok=True)
    for start in range(0, count, 16):
        chunk = natural_images(min(16, count - start), 3, size, seed=seed + start)
        pixels = ((chunk + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        for offset, array in enumerate(pixels):
            Image.fromarray(array, "RGB").save(folder / f"image_{start + offset:04d}.jpg", quality=90)


def e2e_inputs(config: BenchConfig, work: Path) -> Path:
    """`work/e2e_in`, holding copies of the first --n-images images of --e2e-images (sorted by path), or
    that many generated JPEGs of --e2e-size."""
    assert config.n_images is not None  # set by resolve_defaults
    folder = work / "e2e_in"
    if config.e2e_images is None:
        write_jpegs(folder, config.n_images, config.e2e_size, seed=config.seed)
        return folder
    sources = list_images(Path(config.e2e_images))[: config.n_images]
    if len(sources) < config.n_images:
        raise ValueError(f"--e2e-images {config.e2e_images} holds {len(sources)} images, fewer than --n-images "
                         f"{config.n_images}; pass a smaller --n-images")
    folder.mkdir(parents=True, exist_ok=True)
    for index, source in enumerate(sources):  # numbered: equal names in different subfolders stay apart
        shutil.copy2(source, folder / f"{index:04d}_{source.name}")
    return folder


# --- variants ----------------------------------------------------------------------------------


def default_variants(device: torch.device, *, include_cpu_fp16: bool, include_slow: bool) -> list[str]:
    """torch-fp32 and onnxruntime-fp32 always; onnxruntime-fp16 on a GPU (on the CPU, ONNX Runtime
    casts it back to float32 op by op); torch-bf16 on a GPU or a CPU with native bfloat16
    (emulated bfloat16 is ~2.5x slower than float32)."""
    variants = ["torch-fp32", "onnxruntime-fp32"]
    on_gpu = device.type == "cuda"
    if not on_gpu and cpu_has_vnni():
        variants.append("onnxruntime-int8")
    if on_gpu or include_cpu_fp16:
        variants.append("onnxruntime-fp16")
    if on_gpu or cpu_has_native_bf16() or include_slow:
        variants.append("torch-bf16")
    return variants


def split_variant(name: str) -> tuple[str, str]:
    """"onnxruntime-fp16" -> ("onnxruntime", "fp16")."""
    if name not in VARIANTS:
        raise ValueError(f"variant {name!r} is not one of {', '.join(VARIANTS)}")
    backend, precision = name.rsplit("-", 1)
    return backend, precision


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def save_random_model(arch: str, ngf: int, folder: Path, *, seed: int) -> Path:
    """A random-init generator `arch` as a weights folder (what the product loads)."""
    torch.manual_seed(seed)
    config = GeneratorConfig(name=arch, ngf=ngf)
    return save_weights(build_generator(config), folder / f"{arch}_ngf{ngf}", config, direction="AtoB")


def accuracy(out: Tensor, reference: Tensor) -> dict[str, float]:
    """PSNR (dB, on [0, 1]) and max / mean abs error (on [-1, 1]) of `out` against `reference`."""
    diff = (out.float().cpu() - reference.float().cpu()).abs()
    mse = float(((diff / 2) ** 2).mean())
    return {"psnr_db": 10 * math.log10(1 / mse) if mse > 0 else math.inf,
            "max_abs_error": float(diff.max()), "mean_abs_error": float(diff.mean())}


# --- model throughput --------------------------------------------------------------------------


def bench_cell(backends: dict[str, Backend], arch: str, size: int, batch: int, config: BenchConfig,
               device: torch.device) -> list[dict[str, Any]]:
    """Time every backend on `(batch, C, size, size)`, interleaved; one result row per variant."""
    channels = next(iter(backends.values())).input_channels
    images = natural_images(batch, channels, size, seed=config.seed + size + batch)
    inputs = {name: images.to(backend.device) for name, backend in backends.items()}

    outputs, call_s = {}, {}
    for name, backend in backends.items():
        for _ in range(config.warmup):  # the last warm-up call gives the output and the call time
            sync(backend.device)
            start = time.perf_counter()
            outputs[name] = backend(inputs[name])
            sync(backend.device)
            call_s[name] = time.perf_counter() - start
    min_round_s = config.min_round_s if config.min_round_s is not None else (0.5 if device.type == "cuda" else 0.0)
    # The same number of calls for every variant, sized on the reference, so each round is comparable.
    calls = max(1, math.ceil(min_round_s / max(call_s.get(REFERENCE, min(call_s.values())), 1e-6)))

    rates: dict[str, list[float]] = {name: [] for name in backends}
    order = list(backends)
    for round_index in range(config.repeats):
        shift = round_index % len(order)  # rotate: no variant always runs first after a pause
        for name in order[shift:] + order[:shift]:
            backend, x = backends[name], inputs[name]
            sync(backend.device)
            start = time.perf_counter()
            for _ in range(calls):
                backend(x)
            sync(backend.device)
            rates[name].append(calls * batch / (time.perf_counter() - start))

    rows = []
    reference_rate = statistics.median(rates[REFERENCE]) if REFERENCE in rates else math.nan
    for name, backend in backends.items():
        rate = statistics.median(rates[name])
        row: dict[str, Any] = {"arch": arch, "size": size, "batch": batch, "variant": name,
                               "backend": backend.describe(), "images_per_s": rate,
                               "ratio_vs_torch_fp32": rate / reference_rate, "rounds": rates[name],
                               "calls_per_round": calls}
        if name != REFERENCE and REFERENCE in outputs:
            row.update(accuracy(outputs[name], outputs[REFERENCE]))
        rows.append(row)
        logger.info("%s %dpx batch %d %-16s %8.2f images/s  %.2fx", arch, size, batch, name, rate,
                    row["ratio_vs_torch_fp32"])
    return rows


def resolve_defaults(config: BenchConfig, device: torch.device) -> BenchConfig:
    """A copy of `config` with every None field set to the default for `device`."""
    gpu = device.type == "cuda"
    repeats = 5 if gpu else 2 if config.quick else 3
    n_images = 200 if gpu else 24 if config.quick else 48
    return replace(config, sizes=config.sizes or [256, 512], batches=config.batches or [1, 8],
                   repeats=config.repeats or repeats, n_images=n_images if config.n_images is None else config.n_images)


def cells_for(config: BenchConfig, device: torch.device) -> list[tuple[int, int]]:
    """(size, batch) pairs to time: sizes x batches, or the --quick cells on a CPU (and with
    --quick) unless --sizes / --batches were given."""
    assert config.sizes is not None and config.batches is not None  # set by resolve_defaults
    grid = [(s, b) for s in config.sizes for b in config.batches]
    if (config.quick or device.type != "cuda") and not config.explicit_grid:
        return [cell for cell in QUICK_CELLS if cell in grid]
    return grid


def load_backends(model: Path, variants: list[str], config: BenchConfig, device: torch.device,
                  skipped: list[str], calibration: list[Path] | None = None) -> dict[str, Backend]:
    """One backend per variant. On a GPU, ONNX Runtime variants that fell back to the CPU provider
    (a CPU-only onnxruntime build) are left out and noted in `skipped`: they would time the host."""
    backends = {}
    for name in variants:
        from translate.deploy.quantize import Int8AccuracyError

        backend, precision = split_variant(name)
        try:
            loaded = make_backend(model, backend=backend, precision=precision, device=config.device,
                                  provider=config.provider if backend == "onnxruntime" else None,
                                  threads=config.threads, calibration=calibration)
        except Int8AccuracyError as error:
            skipped.append(f"{name} for {model.name}: {error}")
            continue
        if device.type == "cuda" and loaded.provider == "CPUExecutionProvider" and config.provider != "cpu":
            note = f"{name} (onnxruntime has no CUDA provider here; install onnxruntime-gpu)"
            if note not in skipped:
                skipped.append(note)
            continue
        backends[name] = loaded
    return backends


# --- end to end --------------------------------------------------------------------------------


def model_rate_now(backend: Backend, size: int, batch: int, calls: int, *, seed: int) -> float:
    """Images/s of `calls` back-to-back model calls on `(batch, C, size, size)`, timed now: taken
    right beside a convert run, so the convert / model ratio sees the same machine load."""
    x = natural_images(batch, backend.input_channels, size, seed=seed).to(backend.device)
    sync(backend.device)
    start = time.perf_counter()
    for _ in range(calls):
        backend(x)
    sync(backend.device)
    return calls * batch / (time.perf_counter() - start)


def bench_e2e(model: Path, variant: str, folder: Path, out_dir: Path, config: BenchConfig) -> dict[str, Any]:
    """`convert_folder` over `folder`; images/s over the whole call (model loading included) and
    after the first batch is written (steady state; nan with a single batch)."""
    backend, precision = split_variant(variant)
    stamps: list[float] = []
    summary = convert_folder(folder, out_dir, model, backend=backend, precision=precision, device=config.device,
                             provider=config.provider if backend == "onnxruntime" else None,
                             batch_size=config.e2e_batch, workers=config.workers, fmt=config.e2e_format,
                             overwrite=True, on_progress=lambda p: stamps.append(time.perf_counter()))
    if summary.failed:
        raise RuntimeError(f"convert failed on {len(summary.failed)} generated images: {summary.failed[:3]}")
    # From the first batch's last write to the end: whole batches only, so bursty writes do not inflate it.
    first = config.e2e_batch - 1
    steady = ((len(stamps) - 1 - first) / (stamps[-1] - stamps[first])
              if len(stamps) > first + 1 and stamps[-1] > stamps[first] else math.nan)
    return {"variant": variant, "backend": summary.backend, "images": len(summary.converted),
            "seconds": summary.seconds, "images_per_s": summary.images_per_s, "steady_images_per_s": steady}


# --- report ------------------------------------------------------------------------------------


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or "CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    bf16 = ", native bf16" if cpu_has_native_bf16() else ", no native bf16"
    return f"{cpu} ({os.cpu_count()} cores{bf16}; torch threads {torch.get_num_threads()})"


def versions() -> dict[str, str]:
    import onnxruntime

    return {"python": platform.python_version(), "torch": torch.__version__, "onnxruntime": onnxruntime.__version__}


def _number(value: Any, fmt: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)


def markdown(result: dict[str, Any]) -> str:
    meta = result["meta"]
    lines = [f"Device: {meta['device_name']}. Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
             + f". Models: {meta['models']}. Median of {meta['repeats']} interleaved rounds.", "",
             "| model | size | batch | variant | backend | images/s | vs torch fp32 | PSNR dB | max abs err | mean abs err |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in result["model"]:
        lines.append(f"| {row['arch']} | {row['size']} | {row['batch']} | {row['variant']} | {row['backend']} | "
                     f"{row['images_per_s']:.2f} | {row['ratio_vs_torch_fp32']:.2f}x | "
                     f"{_number(row.get('psnr_db'), '.1f')} | {_number(row.get('max_abs_error'), '.4f')} | "
                     f"{_number(row.get('mean_abs_error'), '.4f')} |")
    if result["e2e"]:
        e2e = result["e2e"][0]
        lines += ["", f"End to end: `convert` on {e2e['images']} generated {meta['e2e_size']}x{meta['e2e_size']} "
                      f"JPEGs -> {meta['e2e_format']}, batch {meta['e2e_batch']}, model {e2e['arch']}.", "",
                  "| variant | backend | convert images/s | steady images/s | model images/s | convert / model "
                  "| steady / model |", "|---|---|---|---|---|---|---|"]
        for row in result["e2e"]:
            lines.append(f"| {row['variant']} | {row['backend']} | {row['images_per_s']:.2f} | "
                         f"{_number(row['steady_images_per_s'], '.2f')} | {_number(row['model_images_per_s'], '.2f')} | "
                         f"{_number(row['e2e_over_model'], '.2f')} | {_number(row['steady_over_model'], '.2f')} |")
    if result["skipped"]:
        lines += ["", "Skipped: " + "; ".join(result["skipped"])]
    return "\n".join(lines)


# --- main --------------------------------------------------------------------------------------


def calibration_images(config: BenchConfig, model: Path, work: Path) -> list[Path]:
    """int8 calibration: --calibration, else the model folder's samples/, else generated images."""
    from translate.data.images import list_images

    if config.calibration:
        return list_images(Path(config.calibration))
    if (model / "samples").is_dir():
        return list_images(model / "samples")
    folder = work / "calibration"
    if not folder.is_dir():
        write_jpegs(folder, 20, 256, seed=config.seed + 1)
    return list_images(folder)


def run(config: BenchConfig, work: Path) -> dict[str, Any]:
    """Run the benchmark with models and images under `work`; returns the JSON-ready result."""
    from translate.core.device import pick_device

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
            "config": asdict(config), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
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
            "config": asdict(config), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    return {"meta": meta, "costs": costs, "side_by_side": rows}


def bench_models(models: dict[str, Path], variants: list[str], config: BenchConfig, device: torch.device,
                 work: Path, skipped: list[str]) -> tuple[list[dict[str, Any]], dict[str, Backend]]:
    """Model throughput of every variant on each model's grid cells; also returns the first
    model's backends, which the end-to-end comparison reuses. Appends what cannot run to `skipped`."""
    e2e_arch = next(iter(models))
    rows: list[dict[str, Any]] = []
    e2e_backends: dict[str, Backend] = {}
    for arch, model in models.items():
        multiple = size_multiple(read_model_config(model)["architecture"]["name"])
        cells = [(s, b) for s, b in cells_for(config, device) if s % multiple == 0]
        skipped += [f"{arch} at {s}px (needs a multiple of {multiple})"
                    for s in sorted({s for s, _ in cells_for(config, device) if s % multiple})]
        if arch == e2e_arch and config.n_images and config.e2e_size % multiple == 0 \
                and (config.e2e_size, config.e2e_batch) not in cells:
            cells.append((config.e2e_size, config.e2e_batch))  # the e2e comparison needs this cell
        if not cells:
            continue
        logger.info("loading %s as %s", arch, ", ".join(variants))
        backends = load_backends(model, variants, config, device, skipped, calibration_images(config, model, work))
        for size, batch in cells:
            rows += bench_cell(backends, arch, size, batch, config, device)
        if arch == e2e_arch:
            e2e_backends = backends
        del backends
    return rows, e2e_backends


def bench_end_to_end(e2e_arch: str, model: Path, rows: list[dict[str, Any]], e2e_backends: dict[str, Backend],
                     config: BenchConfig, work: Path, skipped: list[str]) -> list[dict[str, Any]]:
    """`convert` on generated JPEGs with the fastest variant and the reference, each against the
    model rate measured just before and after it."""
    if not config.n_images:
        return []
    if config.e2e_size % size_multiple(read_model_config(model)["architecture"]["name"]):
        skipped.append(f"end to end: {e2e_arch} cannot run {config.e2e_size}px")
        return []
    cell = {r["variant"]: r for r in rows
            if (r["arch"], r["size"], r["batch"]) == (e2e_arch, config.e2e_size, config.e2e_batch)}
    fastest = max(cell, key=lambda v: cell[v]["images_per_s"])  # REFERENCE always ran: never empty
    folder = e2e_inputs(config, work)
    e2e_rows: list[dict[str, Any]] = []
    for variant in dict.fromkeys([fastest, REFERENCE]):
        logger.info("end to end: convert %d images with %s", config.n_images, variant)
        timing = (e2e_backends[variant], config.e2e_size, config.e2e_batch, cell[variant]["calls_per_round"])
        before = model_rate_now(*timing, seed=config.seed)
        try:
            row = {"arch": e2e_arch, **bench_e2e(model, variant, folder, work / "e2e_out", config)}
        except ValueError as error:  # int8 refused on the generated images' calibration
            skipped.append(f"end to end {variant}: {error}")
            continue
        after = model_rate_now(*timing, seed=config.seed)
        model_rate = 2 / (1 / before + 1 / after)  # same images before and after: the mean rate
        row.update(model_images_per_s=model_rate, model_images_per_s_grid=cell[variant]["images_per_s"],
                   e2e_over_model=row["images_per_s"] / model_rate,
                   steady_over_model=row["steady_images_per_s"] / model_rate, fastest=variant == fastest)
        e2e_rows.append(row)
    return e2e_rows


def parse_args(argv: Sequence[str] | None) -> tuple[BenchConfig, str | None]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    with tempfile.TemporaryDirectory(prefix="bench_infer-") as work:
        # Exported ONNX copies of the random models go to a throwaway cache unless the user set one.
        previous = os.environ.get("TRANSLATE_CACHE")
        if previous is None:
            os.environ["TRANSLATE_CACHE"] = str(Path(work) / "cache")
        try:
            result = (run_side_by_side if config.compare_convert else run)(config, Path(work))
        finally:
            if previous is None:
                os.environ.pop("TRANSLATE_CACHE", None)
    print(side_by_side.markdown(result) if config.compare_convert else markdown(result))
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    main()

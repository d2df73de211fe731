"""`python -m scripts.bench.infer`'s settings, variants and model-throughput grid: every variant x
architecture x size x batch, timed in interleaved rounds, with its accuracy against torch-fp32."""

from __future__ import annotations

import logging
import math
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from translate.core.device import cpu_has_native_bf16, cpu_has_vnni
from translate.data.images import list_images
from translate.deploy.backends import Backend, make_backend
from translate.deploy.quantize import Int8AccuracyError
from translate.formats.weights import read_model_config
from translate.models import size_multiple

from .common import accuracy, natural_images, sync, write_jpegs

logger = logging.getLogger("bench_infer")

REFERENCE = "torch-fp32"
VARIANTS = ("torch-fp32", "onnxruntime-fp32", "onnxruntime-fp16", "onnxruntime-int8", "torch-bf16", "torch-fp16")
QUICK_CELLS = ((256, 1), (256, 8), (512, 1))  # (size, batch) of --quick, for every architecture


@dataclass
class BenchConfig:
    """None fields take the device's default (see scripts/bench/infer.py's docstring) in `resolve_defaults`."""

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


# --- variants ----------------------------------------------------------------------------------


def default_variants(device: torch.device, *, include_cpu_fp16: bool, include_slow: bool) -> list[str]:
    """torch-fp32 and onnxruntime-fp32 always; onnxruntime-int8 on a CPU with VNNI; onnxruntime-fp16
    on a GPU (on the CPU, ONNX Runtime casts it back to float32 op by op); torch-bf16 on a GPU or a
    CPU with native bfloat16 (emulated bfloat16 is ~2.5x slower than float32)."""
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


def calibration_images(config: BenchConfig, model: Path, work: Path) -> list[Path]:
    """int8 calibration: --calibration, else the model folder's samples/, else generated images."""
    if config.calibration:
        return list_images(Path(config.calibration))
    if (model / "samples").is_dir():
        return list_images(model / "samples")
    folder = work / "calibration"
    if not folder.is_dir():
        write_jpegs(folder, 20, 256, seed=config.seed + 1)
    return list_images(folder)


def load_backends(model: Path, variants: list[str], config: BenchConfig, device: torch.device,
                  skipped: list[str], calibration: list[Path] | None = None) -> dict[str, Backend]:
    """One backend per variant. On a GPU, ONNX Runtime variants that fell back to the CPU provider
    (a CPU-only onnxruntime build) are left out and noted in `skipped`: they would time the host."""
    backends = {}
    for name in variants:
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


# --- model throughput --------------------------------------------------------------------------


def warm_up(backends: dict[str, Backend], inputs: dict[str, torch.Tensor], warmup: int
            ) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """`warmup` untimed calls of each backend; the last one's output and seconds per variant."""
    outputs, call_s = {}, {}
    for name, backend in backends.items():
        for _ in range(warmup):
            sync(backend.device)
            start = time.perf_counter()
            outputs[name] = backend(inputs[name])
            sync(backend.device)
            call_s[name] = time.perf_counter() - start
    return outputs, call_s


def bench_cell(backends: dict[str, Backend], arch: str, size: int, batch: int, config: BenchConfig,
               device: torch.device) -> list[dict[str, Any]]:
    """Time every backend on `(batch, C, size, size)`, interleaved; one result row per variant."""
    channels = next(iter(backends.values())).input_channels
    images = natural_images(batch, channels, size, seed=config.seed + size + batch)
    inputs = {name: images.to(backend.device) for name, backend in backends.items()}
    outputs, call_s = warm_up(backends, inputs, config.warmup)
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


# --- report ------------------------------------------------------------------------------------


def _number(value: Any, fmt: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)


def markdown(result: dict[str, Any]) -> str:
    """The grid's and the end-to-end tables for docs/benchmarks.md."""
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

"""`python -m scripts.bench.infer`'s end-to-end part: `convert_folder` on a folder of images with the
fastest variant and with torch-fp32, each beside the model throughput timed just before and after it."""

from __future__ import annotations

import logging
import math
import shutil
import time
from pathlib import Path
from typing import Any

from translate.data.images import list_images
from translate.deploy.backends import Backend
from translate.deploy.convert import convert_folder
from translate.formats.weights import read_model_config
from translate.models import size_multiple

from .common import model_rate_now, write_jpegs
from .infer_grid import REFERENCE, BenchConfig, split_variant

logger = logging.getLogger("bench_infer")


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
        raise RuntimeError(f"convert failed on {len(summary.failed)} images: {summary.failed[:3]}")
    # From the first batch's last write to the end: whole batches only, so bursty writes do not inflate it.
    first = config.e2e_batch - 1
    steady = ((len(stamps) - 1 - first) / (stamps[-1] - stamps[first])
              if len(stamps) > first + 1 and stamps[-1] > stamps[first] else math.nan)
    return {"variant": variant, "backend": summary.backend_description, "images": len(summary.converted),
            "seconds": summary.seconds, "images_per_s": summary.images_per_s, "steady_images_per_s": steady}


def bench_end_to_end(e2e_arch: str, model: Path, rows: list[dict[str, Any]], e2e_backends: dict[str, Backend],
                     config: BenchConfig, work: Path, skipped: list[str]) -> list[dict[str, Any]]:
    """`convert` on the end-to-end images with the fastest variant and the reference, each against the
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

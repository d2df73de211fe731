"""The request image, the tiny model, and the model-level measurements: throughput at each batch and sizes
mixed (apart against padded)."""

from __future__ import annotations

import io
import math
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from translate.core.images import from_uint8, to_uint8
from translate.deploy.backends import Backend
from translate.deploy.inference import translate_tensor, translate_uint8

from .common import model_rate_now, natural_images
from .serve_config import Config, logger


def input_image(path: Path | None, size: int, channels: int, *, seed: int) -> tuple[Tensor, bytes]:
    """`(channels, size, size)` uint8 pixels and their PNG: `path` centre-cropped square and resized,
    or (no file) a natural-looking random image."""
    mode = "RGB" if channels == 3 else "L" if channels == 1 else "RGBA"
    if path is not None and path.is_file():
        image = Image.open(path).convert(mode)
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        image = image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BICUBIC)
    else:
        pixels = natural_images(1, channels, size, seed=seed)[0]
        array = ((pixels + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
        image = Image.fromarray(array[:, :, 0] if channels == 1 else array, mode)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    array = np.asarray(image).reshape(size, size, channels)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous(), buffer.getvalue()


def measure_model(backend: Backend, size: int, batches: Sequence[int], config: Config) -> list[dict[str, Any]]:
    """Images/s of `backend` at each batch: calls per round sized on warm-up calls, rounds interleaved
    (rotating order), median over --model-rounds. As scripts/bench/infer.py times its cells."""
    calls = {}
    for batch in batches:
        model_rate_now(backend, size, batch, 1, seed=config.seed)  # first call: set-up
        call_s = batch / model_rate_now(backend, size, batch, 1, seed=config.seed)
        calls[batch] = max(1, math.ceil(config.model_round_s / call_s))
    rates: dict[int, list[float]] = {batch: [] for batch in batches}
    order = list(batches)
    for round_index in range(config.model_rounds):
        shift = round_index % len(order)
        for batch in order[shift:] + order[:shift]:
            rates[batch].append(model_rate_now(backend, size, batch, calls[batch], seed=config.seed))
    rows = []
    for batch in batches:
        rate = statistics.median(rates[batch])
        rows.append({"batch": batch, "images_per_s": rate, "call_ms": 1000 * batch / rate, "rounds": rates[batch],
                     "calls_per_round": calls[batch]})
        logger.info("model batch %d: %.2f images/s (%.1f ms a call)", batch, rate, 1000 * batch / rate)
    return rows


def _mix_padded(backend: Backend, full: Tensor, short: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """One batch: `short` reflect-padded at the bottom to `full`'s height, run with `full`, cropped back."""
    device, height = backend.device, short.shape[-2]
    padded = F.pad(from_uint8(short.to(device)), (0, 0, 0, full.shape[-2] - height), mode="reflect")
    out = translate_tensor(backend, torch.cat([from_uint8(full.to(device)), padded]), backend.size_multiple)
    out = to_uint8(out).permute(0, 2, 3, 1).contiguous().cpu().numpy()
    return out[:len(full)], out[len(full):, :height]


def bench_mix(backend: Backend, pixels: Tensor, config: Config, per_size: int = 4) -> dict[str, Any]:
    """Two sizes, `per_size` images each: apart (two batches, as the server runs them) against one
    batch padded to the larger size and cropped back. Median seconds per 2 x `per_size` images."""
    size = pixels.shape[-1]
    other = size - 16
    variants = [pixels, pixels.flip(-1), pixels.flip(-2), pixels.flip(-2, -1)]
    full = torch.stack([variants[i % 4] for i in range(per_size)])
    short = full[:, :, :other, :].contiguous()

    def apart() -> tuple[np.ndarray, np.ndarray]:
        return (translate_uint8(backend, full, backend.size_multiple, backend.device),
                translate_uint8(backend, short, backend.size_multiple, backend.device))

    def padded() -> tuple[np.ndarray, np.ndarray]:
        return _mix_padded(backend, full, short)

    runs: dict[str, Callable[[], tuple[np.ndarray, np.ndarray]]] = {"apart": apart, "padded": padded}
    outputs, calls = {}, 1
    for name, run in runs.items():
        run()
        start = time.perf_counter()
        outputs[name] = run()
        calls = max(calls, math.ceil(config.model_round_s / (time.perf_counter() - start)))
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for round_index in range(config.model_rounds):
        for name in (list(runs) if round_index % 2 == 0 else list(runs)[::-1]):
            start = time.perf_counter()
            for _ in range(calls):
                runs[name]()
            seconds[name].append((time.perf_counter() - start) / calls)
    apart_s, padded_s = statistics.median(seconds["apart"]), statistics.median(seconds["padded"])
    diff = np.abs(outputs["apart"][1].astype(np.int16) - outputs["padded"][1].astype(np.int16))
    logger.info("sizes mixed: apart %.1f ms, padded %.1f ms per %d images", 1000 * apart_s, 1000 * padded_s,
                2 * per_size)
    return {"sizes": [[size, size], [other, size]], "per_size": per_size, "apart_ms": 1000 * apart_s,
            "padded_ms": 1000 * padded_s, "apart_over_padded": apart_s / padded_s,
            "faster": "apart" if apart_s <= padded_s else "padded", "rounds_ms": {k: [1000 * s for s in v]
                                                                               for k, v in seconds.items()},
            "calls_per_round": calls, "padding_max_abs_diff": int(diff.max()),
            "padding_mean_abs_diff": float(diff.mean()), "padding_changed_fraction": float((diff > 0).mean())}


def harmonic_mean_rows(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per batch, the rate of the mean call time of the two measurements."""
    rows = []
    for first, second in zip(before, after, strict=True):
        rate = 2 / (1 / first["images_per_s"] + 1 / second["images_per_s"])
        rows.append({"batch": first["batch"], "images_per_s": rate, "call_ms": 1000 * first["batch"] / rate})
    return rows

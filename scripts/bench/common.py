"""What the benchmarks share: timing, inputs, the machine's description, result writing and model building."""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from translate.core.device import cpu_has_native_bf16
from translate.deploy.backends import Backend
from translate.formats.weights import save_weights
from translate.models import GeneratorConfig, build_generator

REPO = Path(__file__).resolve().parents[2]


# --- timing --------------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    """Wait for the device's queued work, so a timer stops when the work is done (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(backend: Backend, x: Tensor, calls: int) -> float:
    """Seconds of `calls` back-to-back `backend(x)` calls, the device synchronised at both ends."""
    sync(backend.device)
    started = time.perf_counter()
    for _ in range(calls):
        backend(x)
    sync(backend.device)
    return time.perf_counter() - started


def model_rate_now(backend: Backend, size: int, batch: int, calls: int, *, seed: int) -> float:
    """Images/s of `calls` back-to-back model calls on `(batch, C, size, size)`, timed now: taken
    right beside a convert run or a server cell, so their ratio sees the same machine load."""
    x = natural_images(batch, backend.input_channels, size, seed=seed).to(backend.device)
    return calls * batch / time_calls(backend, x, calls)


# --- inputs and models ---------------------------------------------------------------------------


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


def save_random_model(arch: str, ngf: int, folder: Path, *, seed: int) -> Path:
    """A random-init generator `arch` of width `ngf` as a weights folder (what the product loads)."""
    torch.manual_seed(seed)
    config = GeneratorConfig(name=arch, ngf=ngf)
    return save_weights(build_generator(config), folder / f"{arch}_ngf{ngf}", config, direction="AtoB")


def accuracy(out: Tensor, reference: Tensor) -> dict[str, float]:
    """PSNR (dB, on [0, 1]) and max / mean abs error (on [-1, 1]) of `out` against `reference`,
    both `(B, C, H, W)` in [-1, 1]."""
    diff = (out.float().cpu() - reference.float().cpu()).abs()
    mse = float(((diff / 2) ** 2).mean())
    return {"psnr_db": 10 * math.log10(1 / mse) if mse > 0 else math.inf,
            "max_abs_error": float(diff.max()), "mean_abs_error": float(diff.mean())}


@contextlib.contextmanager
def throwaway_cache(work: Path) -> Iterator[None]:
    """ONNX copies exported while benchmarking random models go to `work/cache` (child processes
    inherit it), unless the user set TRANSLATE_CACHE."""
    previous = os.environ.get("TRANSLATE_CACHE")
    if previous is None:
        os.environ["TRANSLATE_CACHE"] = str(work / "cache")
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("TRANSLATE_CACHE", None)


# --- the machine ---------------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "CPU"


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's with its cores, bfloat16 support and PyTorch's thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    bf16 = ", native bf16" if cpu_has_native_bf16() else ", no native bf16"
    return f"{cpu_model()} ({os.cpu_count()} cores{bf16}; torch threads {torch.get_num_threads()})"


def versions() -> dict[str, str]:
    """Python's, PyTorch's and ONNX Runtime's versions."""
    import onnxruntime  # here: only the reports need it, and it takes a while to import

    return {"python": platform.python_version(), "torch": torch.__version__, "onnxruntime": onnxruntime.__version__}


def utc_now() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


# --- results -------------------------------------------------------------------------------------


def write_json(path: Path, data: Any) -> None:
    """`data` as indented JSON at `path` (parents made), written whole or not at all."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps(data, indent=2, default=str, allow_nan=True) + "\n")
    temporary.replace(path)


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())

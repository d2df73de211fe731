"""gpu_check steps env (versions and hardware), peak (matmul TFLOP/s) and gradients (is channels_last right
on this device?)."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import time
from collections.abc import Iterator
from copy import deepcopy
from pathlib import Path
from typing import Any

import torch

from translate.deploy.sessions import available_providers
from translate.models import GeneratorConfig, build_generator

from .common import REPO, cpu_model, sync
from .gpu_check_common import Context

# --- step: env --------------------------------------------------------------------------------------------------


def command_output(command: list[str], cwd: Path | None = None) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=15, cwd=cwd)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def gpu_facts() -> list[dict[str, Any]]:
    """Per visible GPU: name, memory, compute capability, multiprocessors (PyTorch) and driver (nvidia-smi)."""
    smi = command_output(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                          "--format=csv,noheader"]) or ""
    rows = [[part.strip() for part in line.split(",")] for line in smi.splitlines() if line.strip()]
    gpus = []
    for index in range(torch.cuda.device_count() if torch.cuda.is_available() else 0):
        props = torch.cuda.get_device_properties(index)
        smi_row = rows[index] if index < len(rows) and len(rows[index]) >= 4 else [None] * 4
        gpus.append({"index": index, "name": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
                     "capability": f"{props.major}.{props.minor}", "multiprocessors": props.multi_processor_count,
                     "driver": smi_row[1], "max_sm_clock": smi_row[3]})
    return gpus


def library_versions() -> dict[str, Any]:
    import onnxruntime

    versions: dict[str, Any] = {
        "python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "onnxruntime": onnxruntime.__version__, "onnxruntime_providers": onnxruntime.get_available_providers(),
        "onnxruntime_providers_usable": available_providers(), "tensorrt": None, "triton": None, "nccl": None}
    with contextlib.suppress(Exception):
        nccl = torch.cuda.nccl.version() if torch.cuda.is_available() else None
        versions["nccl"] = ".".join(map(str, nccl)) if isinstance(nccl, tuple) else nccl
    for name in ("tensorrt", "triton"):
        with contextlib.suppress(Exception):
            versions[name] = __import__(name).__version__
    return versions


def step_env(ctx: Context) -> None:
    import translate

    ctx.result.update(
        device=str(ctx.device), gpus=gpu_facts(), versions=library_versions(), translate=translate.__version__,
        cpu={"model": cpu_model(), "cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)),
             "torch_threads": torch.get_num_threads()},
        platform=platform.platform(), git_commit=command_output(["git", "rev-parse", "HEAD"], cwd=REPO),
        git_dirty_files=len((command_output(["git", "status", "--porcelain"], cwd=REPO) or "").splitlines()),
        smoke=ctx.args.smoke, date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))


# --- step: peak -------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def matmul_tf32(enabled: bool) -> Iterator[None]:
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


def matmul_tflops(n: int, dtype: Any, device: Any, reps: int) -> float:
    """TFLOP/s of `reps` n x n x n products on random data, after three warm-ups."""
    generator = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=generator)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=generator)
    c = torch.empty(n, n, device=device, dtype=dtype)
    for _ in range(3):
        torch.mm(a, b, out=c)
    sync(device)
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps):
            torch.mm(a, b, out=c)
        end.record()
        end.synchronize()
        seconds = start.elapsed_time(end) / 1000
    else:
        started = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b, out=c)
        seconds = time.perf_counter() - started
    return 2 * n**3 * reps / seconds / 1e12


def step_peak(ctx: Context) -> None:
    n, reps, device = ctx.scale.peak_n, ctx.scale.peak_reps, ctx.device
    peaks: dict[str, float] = {}
    with matmul_tf32(False):
        peaks["bf16"] = matmul_tflops(n, torch.bfloat16, device, reps)
        peaks["fp32"] = matmul_tflops(n, torch.float32, device, max(3, reps // 4))
    with matmul_tf32(True):
        peaks["tf32"] = matmul_tflops(n, torch.float32, device, reps)
    ctx.result.update(n=n, reps=reps, tflops=peaks,
                      note="square matmuls on random data, CUDA events" if device.type == "cuda"
                      else "CPU: the TF32 flag does nothing there, tf32 = fp32")


# --- step: gradients (is channels_last right on this device?) ----------------------------------------------------


def gradient_error(model: Any, x: Any, layout: Any) -> float:
    """Largest error of `model`'s float32 input gradient in `layout` against float64 (default layout),
    relative to the largest gradient."""
    grads = []
    for dtype, memory_format in ((torch.float64, torch.contiguous_format), (torch.float32, layout)):
        copy = deepcopy(model).to(dtype=dtype, memory_format=memory_format)
        inputs = x.detach().to(dtype).contiguous(memory_format=memory_format).clone().requires_grad_(True)
        copy(inputs).square().mean().backward()
        grads.append(inputs.grad.double())
    return float((grads[1] - grads[0]).abs().max() / grads[0].abs().max())


def step_gradients(ctx: Context) -> None:
    """channels_last gives wrong gradients on the CPU for instance norm + convolution (PyTorch 2.14);
    translate refuses it there. This measures the same on this device, for both norms, so that
    --speed auto may turn channels_last on where it is right."""
    size = min(ctx.scale.size, 64)
    torch.manual_seed(0)
    x = (torch.rand(2, 3, size, size) * 2 - 1).to(ctx.device)
    rows = {}
    with matmul_tf32(False):
        torch.backends.cudnn.allow_tf32 = False
        for norm, name in (("instance", "resnet_6blocks"), ("batch", "unet_128")):
            side = 128 if name == "unet_128" else size
            inputs = x if side == size else (torch.rand(2, 3, side, side) * 2 - 1).to(ctx.device)
            model = build_generator(GeneratorConfig(name=name, ngf=8, norm=norm)).to(ctx.device).train()
            for batch in (1, 2):  # on the CPU, instance norm in channels_last is wrong (worst at batch 1)
                rows[f"{name} ({norm} norm), batch {batch}"] = {
                    "default": gradient_error(model, inputs[:batch], torch.contiguous_format),
                    "channels_last": gradient_error(model, inputs[:batch], torch.channels_last)}
        torch.backends.cudnn.allow_tf32 = True
    ctx.result.update(relative_input_gradient_error=rows, device=str(ctx.device),
                      note="float32 vs float64, TF32 off; above ~1e-3 the layout computes wrong gradients")

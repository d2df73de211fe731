"""gpu_check steps inference (PyTorch and ONNX Runtime backends: images/s and parity) and convert
(`convert_folder` end to end against its backend's model rate)."""

from __future__ import annotations

import math
import os
import shutil
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from translate.deploy.backends import make_backend
from translate.deploy.convert import convert_folder
from translate.deploy.sessions import CPU_PROVIDER, CUDA_PROVIDER, TENSORRT_PROVIDER, available_providers

from .common import accuracy, natural_images, save_random_model, time_calls, write_jpegs
from .gpu_check_common import Context

# --- step: inference ----------------------------------------------------------------------------------------------


@dataclass
class InferVariant:
    name: str
    backend: str
    precision: str
    provider: str | None = None


def inference_variants(device: Any) -> list[InferVariant]:
    """PyTorch fp32 / fp16 / bf16 (fp16 on CUDA only) and ONNX Runtime on its GPU providers, or its CPU one."""
    variants = [InferVariant("torch-fp32", "torch", "fp32")]
    if device.type == "cuda":
        variants.append(InferVariant("torch-fp16", "torch", "fp16"))
    variants.append(InferVariant("torch-bf16", "torch", "bf16"))
    usable = available_providers()
    gpu = [(short, name) for short, name in (("cuda", CUDA_PROVIDER), ("tensorrt", TENSORRT_PROVIDER))
           if device.type == "cuda" and name in usable]
    for short, _ in gpu:
        variants += [InferVariant(f"ort-{short}-{p}", "onnxruntime", p, short) for p in ("fp32", "fp16")]
    if not gpu and CPU_PROVIDER in usable:
        variants.append(InferVariant("ort-cpu-fp32", "onnxruntime", "fp32", "cpu"))
    return variants


def pytorch_default_flags() -> None:
    """PyTorch's own defaults (the training steps change them): TF32 convolutions, fp32 matmuls."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = False


def strict_fp32_reference(backend: Any, x: Any) -> Any:
    """The fp32 output with TF32 off everywhere: what every variant is compared with."""
    previous = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        return backend(x).float().cpu()
    finally:
        torch.backends.cudnn.allow_tf32 = previous


def load_inference_backends(ctx: Context, model: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Every variant's backend; failures (a provider that does not start) are recorded, not raised."""
    backends: dict[str, Any] = {}
    errors: dict[str, str] = {}
    device = "cuda" if ctx.device.type == "cuda" else "cpu"
    for variant in inference_variants(ctx.device):
        if variant.provider == "tensorrt" and ctx.left() < 60:
            errors[variant.name] = "not started: under 60 s left in the step (TensorRT builds engines)"
            continue
        try:
            backend = make_backend(model, backend=variant.backend, precision=variant.precision, device=device,
                                   provider=variant.provider)
        except Exception as error:  # noqa: BLE001 - a provider or precision that cannot run here is a finding
            if ctx.timed_out:
                raise
            errors[variant.name] = f"{type(error).__name__}: {error}"
            continue
        wanted = {"cuda": CUDA_PROVIDER, "tensorrt": TENSORRT_PROVIDER, "cpu": CPU_PROVIDER}.get(variant.provider or "")
        if wanted and backend.provider != wanted:
            errors[variant.name] = f"asked for {wanted}, got {backend.provider}"
            continue
        backends[variant.name] = backend
    return backends, errors


def inference_cell(ctx: Context, backends: dict[str, Any], batch: int) -> list[dict[str, Any]]:
    """Parity and images/s of every backend at one batch size, interleaved rounds, median rate."""
    scale = ctx.scale
    images = natural_images(batch, 3, scale.infer_size, seed=batch)
    inputs = {name: images.to(backend.device) for name, backend in backends.items()}
    reference = strict_fp32_reference(backends["torch-fp32"], inputs["torch-fp32"])
    rows: dict[str, dict[str, Any]] = {}
    for name, backend in backends.items():
        try:
            out = backend(inputs[name])  # also the warm-up (a TensorRT engine is built here)
            warm = 1 if "cpu" in backend.provider.lower() and ctx.device.type == "cuda" else 3
            call_s = time_calls(backend, inputs[name], warm) / warm
        except Exception as error:  # noqa: BLE001 - a provider failing at this shape is a finding
            if ctx.timed_out or name == "torch-fp32":
                raise
            ctx.result["errors"][f"{name} batch {batch}"] = f"{type(error).__name__}: {error}"
            continue
        rows[name] = {"variant": name, "backend": backend.describe(), "batch": batch, "size": scale.infer_size,
                      "call_s": call_s, "rates": [], **accuracy(out, reference)}
    base_s = max(rows["torch-fp32"]["call_s"], 1e-6)
    calls = max(1, math.ceil(scale.infer_round_s / base_s))
    order = list(rows)
    for round_index in range(scale.infer_rounds):
        if round_index and ctx.left() < 10:
            ctx.note_incomplete(f"inference batch {batch}: stopped after {round_index} rounds (budget)")
            break
        shift = round_index % len(order)
        for name in order[shift:] + order[:shift]:
            # An ONNX Runtime CPU call at 256 px takes ~1 s: one call a round is enough there.
            n = 1 if "cpu" in backends[name].provider.lower() and ctx.device.type == "cuda" else calls
            rows[name]["rates"].append(n * batch / time_calls(backends[name], inputs[name], n))
    for row in rows.values():
        row["images_per_s"] = statistics.median(row["rates"]) if row["rates"] else math.nan
        row["vs_torch_fp32"] = row["images_per_s"] / rows["torch-fp32"]["images_per_s"]
    return list(rows.values())


def step_inference(ctx: Context) -> None:
    scale = ctx.scale
    pytorch_default_flags()
    model = save_random_model("resnet_9blocks", scale.infer_ngf, ctx.work / "models", seed=0)
    backends, errors = load_inference_backends(ctx, model)
    ctx.result.update(model=f"resnet_9blocks ngf {scale.infer_ngf}, random init", size=scale.infer_size,
                      variants=list(backends), errors=errors, rows=[],
                      reference="PyTorch fp32 with TF32 off (parity); images/s ratios against torch-fp32 (PyTorch "
                                "defaults: TF32 convolutions)")
    for batch in scale.infer_batches:
        ctx.result["rows"] += inference_cell(ctx, backends, batch)
        ctx.save_partial()


# --- step: convert ------------------------------------------------------------------------------------------------


def step_convert(ctx: Context) -> None:
    scale = ctx.scale
    pytorch_default_flags()
    model = save_random_model("resnet_9blocks", scale.infer_ngf, ctx.work / "models", seed=0)
    folder = ctx.work / "convert_in"
    if len(list(folder.glob("*.jpg"))) != scale.convert_images:
        shutil.rmtree(folder, ignore_errors=True)
        write_jpegs(folder, scale.convert_images, scale.convert_size, seed=0)
    device = "cuda" if ctx.device.type == "cuda" else "cpu"
    backend = make_backend(model, device=device)  # what convert picks with its defaults (no int8: no calibration)
    x = natural_images(scale.convert_batch, 3, scale.convert_size, seed=1).to(backend.device)
    time_calls(backend, x, 2)
    calls = max(3, math.ceil(0.5 / max(time_calls(backend, x, 1), 1e-6)))
    ctx.result.update(model=f"resnet_9blocks ngf {scale.infer_ngf}, random init", images=scale.convert_images,
                      size=scale.convert_size, batch=scale.convert_batch, backend=backend.describe(), rows=[])
    for fmt in ("png", "jpg"):
        before = calls * scale.convert_batch / time_calls(backend, x, calls)
        out = ctx.work / f"convert_out_{fmt}"
        shutil.rmtree(out, ignore_errors=True)
        summary = convert_folder(folder, out, model, backend=backend.name, precision=backend.precision, device=device,
                                 batch_size=scale.convert_batch, fmt=fmt)
        after = calls * scale.convert_batch / time_calls(backend, x, calls)
        model_rate = 2 / (1 / before + 1 / after)
        ctx.result["rows"].append({
            "fmt": fmt, "converted": len(summary.converted), "failed": len(summary.failed),
            "backend": summary.backend_description, "seconds": summary.seconds, "setup_seconds": summary.setup_seconds,
            "images_per_s": summary.images_per_s, "model_images_per_s": model_rate,
            "fraction_of_model": summary.images_per_s / model_rate, "workers": os.cpu_count()})
        ctx.save_partial()
        if ctx.left() < 5:
            ctx.note_incomplete("convert: stopped after png (budget)")
            break

"""The one ONNX Runtime session factory, and what this machine's ONNX Runtime offers.

    session = ort_session("model.onnx", threads=2)              # CPU provider
    session = ort_session(path, providers=provider_entries(["CUDAExecutionProvider",
                                                            "CPUExecutionProvider"], device, "fp16"))

Every session of the package (the inference backends, the export parity checks, the text model
runner, the int8 check) is built here, with the same options: all graph optimisations, and
intra-op threads that do not spin.
"""

from __future__ import annotations

import ctypes.util
import os
from collections.abc import Sequence
from typing import Any, Union

import onnxruntime as ort
import torch

from translate.core.paths import cache_dir

__all__ = ["CPU_PROVIDER", "CUDA_PROVIDER", "TENSORRT_PROVIDER", "ProviderEntry", "available_providers",
           "ort_session", "provider_entries"]

CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
TENSORRT_PROVIDER = "TensorrtExecutionProvider"
# A provider name, or (name, provider options) as ONNX Runtime takes them.
ProviderEntry = Union[str, tuple[str, dict[str, Any]]]


def ort_session(path: str | os.PathLike[str], *, providers: Sequence[ProviderEntry] = (CPU_PROVIDER,),
                threads: int | None = None) -> ort.InferenceSession:
    """An ONNX Runtime session on `path`.

    Args:
        providers: names or (name, options), best first; ONNX Runtime falls back along the list,
            so read `session.get_providers()[0]` for the one it really got.
        threads: intra-op threads; None leaves ONNX Runtime's own choice (one per physical core).
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    # Spinning threads take cores that the decode / encode threads (and other processes) need:
    # measured as fast or faster without on a busy 2-core CPU.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), sess_options=options, providers=list(providers))


def torch_threads() -> int:
    """As many threads as PyTorch is allowed: what the export checks and the text runner use."""
    return max(1, torch.get_num_threads())


def _tensorrt_installed() -> bool:
    return ctypes.util.find_library("nvinfer") is not None


def available_providers() -> list[str]:
    """The providers this ONNX Runtime build can start here. onnxruntime-gpu lists TensorRT even
    without TensorRT's libraries (the session then falls back with a warning): it is left out then."""
    available = list(ort.get_available_providers())
    if TENSORRT_PROVIDER in available and not _tensorrt_installed():
        available.remove(TENSORRT_PROVIDER)
    return available


def provider_entries(providers: Sequence[str], device: torch.device, precision: str) -> list[ProviderEntry]:
    """Provider names -> `ort_session` entries with the options each needs on `device`."""
    entries: list[ProviderEntry] = []
    for name in providers:
        if name == TENSORRT_PROVIDER:
            # TensorRT builds an engine per input shape (minutes): keep them across runs.
            entries.append((name, {"device_id": device.index or 0, "trt_fp16_enable": precision == "fp16",
                                   "trt_engine_cache_enable": True,
                                   "trt_engine_cache_path": str(cache_dir() / "tensorrt")}))
        elif name == CUDA_PROVIDER:
            entries.append((name, {"device_id": device.index or 0}))
        else:
            entries.append(name)
    return entries

"""The selection rules: which device, precision, backend and ONNX Runtime providers "auto" means.

Every rule takes the machine's `Capabilities` (and the ONNX Runtime providers at hand) as
arguments, None meaning this machine's, so each can be tested with any machine's facts:

    caps = Capabilities(cpu_native_bf16=False, cpu_vnni=True)
    resolve_precision("auto", torch.device("cpu"), int8_possible=True, capabilities=caps)   # 'int8'

How "auto" resolves (the fastest path the hardware runs well, measured in docs/benchmarks.md):

- device: CUDA if PyTorch sees a GPU, else Apple's MPS (PyTorch only), else the CPU.
- precision: fp16 on a GPU; bf16 on a CPU with AVX-512 BF16 or AMX (native bfloat16: autocast
  is ~1.9x there) where PyTorch may run the model; int8 on other CPUs with VNNI when calibration
  images are at hand and ONNX Runtime may run it; else fp32 (emulated bfloat16 is 2.5x *slower*
  than fp32).
- backend: ONNX Runtime, except where the precision is bf16 (ONNX Runtime's CPU kernels have no
  bfloat16 convolutions) or the device is MPS: PyTorch.
- ONNX Runtime provider: TensorRT if its libraries are installed and a GPU exists, else CUDA,
  else CPU.

Bad choices are refused by `check_choices` before any rule runs, so the refusal names the bad
value whatever the machine would have picked.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from translate.core.device import DEVICES, Capabilities, detect_capabilities, pick_device
from translate.core.errors import InvalidChoiceError, InvalidCombinationError, check_choice
from translate.deploy.options import BACKENDS, PRECISIONS, PROVIDER_NAMES
from translate.deploy.sessions import CPU_PROVIDER, CUDA_PROVIDER, TENSORRT_PROVIDER, available_providers

__all__ = ["BACKENDS", "PRECISIONS", "PROVIDERS", "check_choices", "choose_backend", "choose_device",
           "resolve_precision", "resolve_providers"]

# The names users give (translate.deploy.options, where the choices are declared) -> ONNX Runtime's.
PROVIDERS = dict(zip(PROVIDER_NAMES[1:], (TENSORRT_PROVIDER, CUDA_PROVIDER, CPU_PROVIDER), strict=True))


def check_choices(*, backend: str | None = "auto", precision: str = "auto", provider: str | None = None,
                  device: str = "auto") -> None:
    """Raise `InvalidChoiceError` for a value outside its list; None is allowed for backend (the
    model's own form) and provider (the best available)."""
    if backend is not None:
        check_choice("backend", backend, BACKENDS)
    check_choice("precision", precision, PRECISIONS)
    if provider is not None:
        check_choice("provider", provider, PROVIDER_NAMES)
    check_choice("device", device, DEVICES)


def _facts(capabilities: Capabilities | None) -> Capabilities:
    return detect_capabilities() if capabilities is None else capabilities


def choose_device(device: str, capabilities: Capabilities | None = None) -> torch.device:
    """`device` (auto | cpu | cuda | mps) -> a torch device; auto prefers CUDA, then MPS, then the CPU.

    Raises:
        InvalidChoiceError: another value.
        ValueError: the device asked for is not available.
    """
    check_choice("device", device, DEVICES)
    if device == "auto":
        facts = _facts(capabilities)
        device = "cuda" if facts.cuda else "mps" if facts.mps else "cpu"
    return pick_device(device)


def resolve_precision(precision: str, device: torch.device, *, int8_possible: bool = False,
                      bf16_possible: bool = True, capabilities: Capabilities | None = None) -> str:
    """`auto` -> the fastest precision that `device` runs well; other values are returned as given.

    Args:
        int8_possible: calibration images exist and ONNX Runtime may run the model.
        bf16_possible: PyTorch may run the model (not an `.onnx` file, nor a forced ONNX Runtime).
        capabilities: the machine's (default: this machine's).
    """
    check_choice("precision", precision, PRECISIONS)
    if precision != "auto":
        return precision
    if device.type in ("cuda", "mps"):
        return "fp16"
    facts = _facts(capabilities)
    if bf16_possible and facts.cpu_native_bf16:
        return "bf16"
    return "int8" if int8_possible and facts.cpu_vnni else "fp32"


def resolve_providers(provider: str | None, device: torch.device, *, available: Sequence[str] | None = None
                      ) -> list[str]:
    """ONNX Runtime providers to try, best first; `provider` (tensorrt | cuda | cpu) forces one.

    Args:
        device: where the model runs; only a CUDA device gets GPU providers.
        available: the providers ONNX Runtime can start (default: `sessions.available_providers()`).

    Raises:
        InvalidChoiceError: an unknown provider, or one this ONNX Runtime build lacks.
        InvalidCombinationError: a GPU provider without a CUDA device.
    """
    if provider is not None:
        check_choice("provider", provider, PROVIDER_NAMES)
    available = list(available_providers() if available is None else available)
    if provider not in (None, "auto"):
        name = PROVIDERS[provider]
        if name not in available:
            here = [short for short, full in PROVIDERS.items() if full in available]
            raise InvalidChoiceError("provider", provider, here, f"this onnxruntime build has no {name} (it has "
                                     f"{', '.join(available)}); install onnxruntime-gpu for cuda / tensorrt")
        if provider != "cpu" and device.type != "cuda":
            raise InvalidCombinationError(f'provider="{provider}" needs a CUDA GPU, and none is visible (device '
                                          f'{device.type}); use provider="cpu"', "provider", "device")
        return [name] if provider == "cpu" else [name, CPU_PROVIDER]
    # onnxruntime-gpu lists CUDA even on machines without a GPU and then warns at session start.
    wanted = [TENSORRT_PROVIDER, CUDA_PROVIDER, CPU_PROVIDER] if device.type == "cuda" else [CPU_PROVIDER]
    return [p for p in wanted if p in available]


def choose_backend(backend: str | None, *, is_onnx: bool, precision: str, device: torch.device,
                   capabilities: Capabilities | None = None) -> str:
    """"torch" or "onnxruntime". `backend` auto -> onnxruntime, except bf16 or MPS (torch); None ->
    the model's own form (`.onnx` on ONNX Runtime, the rest on PyTorch). `precision` "auto" is
    resolved first, with `capabilities` (default: this machine's).

    Raises:
        InvalidChoiceError: an unknown backend or precision.
        InvalidCombinationError: a combination that cannot run (bf16 on ONNX Runtime, int8 or an
            `.onnx` file on PyTorch).
    """
    check_choices(backend=backend, precision=precision)
    if precision == "auto":
        precision = resolve_precision(precision, device, bf16_possible=not is_onnx and backend != "onnxruntime",
                                      capabilities=capabilities)
    if backend is None:
        name = "onnxruntime" if is_onnx else "torch"
    elif backend == "auto":
        name = "torch" if not is_onnx and (precision == "bf16" or device.type == "mps") else "onnxruntime"
    else:
        name = backend
    _check_combination(name, is_onnx=is_onnx, precision=precision)
    return name


def _check_combination(name: str, *, is_onnx: bool, precision: str) -> None:
    if name == "torch" and is_onnx:
        raise InvalidCombinationError('backend="torch" cannot run an .onnx file; pass the weights folder, run or '
                                      'checkpoint it was exported from, or use backend="onnxruntime"',
                                      "backend", "model")
    if name == "torch" and precision == "int8":
        raise InvalidCombinationError('precision="int8" runs on ONNX Runtime only; use backend="onnxruntime" '
                                      '(or "auto")', "precision", "backend")
    if name == "onnxruntime" and precision == "bf16":
        raise InvalidCombinationError('precision="bf16" runs on PyTorch only (ONNX Runtime has no bfloat16 '
                                      'convolution kernels); use backend="torch", or precision="fp32" or precision="fp16" with '
                                      'backend="onnxruntime"', "precision", "backend")

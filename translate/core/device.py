"""Device facts: which device to use and what the hardware runs well.

Selection rules elsewhere (auto precision, provider, backend, training autocast) take a
`Capabilities` value instead of asking the hardware themselves, so they can be tested with any
machine's capabilities injected. `detect_capabilities()` reads this machine's, and the environment can
override the CPU features, for tests and for machines that misreport them:

    TRANSLATE_CPU_BF16=0|1    native bfloat16 (AVX-512 BF16 or AMX) reported absent | present
    TRANSLATE_CPU_VNNI=0|1    int8 dot products (AVX-512 VNNI or AVX-VNNI) reported absent | present

The device names and `Capabilities` import nothing heavy: the command line lists them in
`--help`, which must not wait for torch. The functions that ask the hardware import torch when
called.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from translate.core.errors import check_choice

if TYPE_CHECKING:
    import torch

__all__ = ["DEVICES", "Capabilities", "detect_capabilities", "cpu_has_native_bf16", "cpu_has_vnni", "pick_device"]

DEVICES = ("auto", "cpu", "cuda", "mps")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class Capabilities:
    """What this machine offers. `cpu_native_bf16`: bfloat16 runs natively (AVX-512 BF16 or AMX;
    without them oneDNN emulates it and it is 2.5x slower than float32). `cpu_vnni`: int8 dot
    products (what makes int8 convolutions fast on x86). `cuda` / `mps`: PyTorch sees that device."""

    cuda: bool = False
    mps: bool = False
    cpu_native_bf16: bool = False
    cpu_vnni: bool = False


def _override(name: str) -> bool | None:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return None
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"environment variable {name}={value!r} must be 0 or 1 (or unset to detect)")


def _detect_native_bf16() -> bool:
    import torch  # when called: see the module docstring

    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def _detect_vnni() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_vnni" in flags or " avx_vnni" in flags


def cpu_has_native_bf16() -> bool:
    """AVX-512 BF16 or AMX (or `TRANSLATE_CPU_BF16`)."""
    override = _override("TRANSLATE_CPU_BF16")
    return _detect_native_bf16() if override is None else override


def cpu_has_vnni() -> bool:
    """AVX-512 VNNI or AVX-VNNI (or `TRANSLATE_CPU_VNNI`)."""
    override = _override("TRANSLATE_CPU_VNNI")
    return _detect_vnni() if override is None else override


def detect_capabilities() -> Capabilities:
    """This machine's capabilities, with the environment overrides applied."""
    import torch  # when called: see the module docstring

    return Capabilities(cuda=torch.cuda.is_available(), mps=torch.backends.mps.is_available(),
                        cpu_native_bf16=cpu_has_native_bf16(), cpu_vnni=cpu_has_vnni())


def pick_device(requested: str, local_rank: int = 0) -> torch.device:
    """`requested`: auto | cpu | cuda | mps. auto prefers CUDA, then Apple's MPS, then the CPU.

    Raises:
        InvalidChoiceError: `requested` is none of the four.
        ValueError: the device asked for is not available.
    """
    import torch  # when called: see the module docstring

    check_choice("device", requested, DEVICES)
    if requested == "auto":
        if torch.cuda.is_available():
            requested = "cuda"
        elif torch.backends.mps.is_available():
            requested = "mps"
        else:
            requested = "cpu"
    if requested == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device='cuda' was asked for but PyTorch sees no CUDA device; use device='cpu' "
                             "or install a CUDA build of PyTorch")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if requested == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device='mps' was asked for but MPS is not available; use device='cpu'")
    return torch.device(requested)

"""What the image exporter (`export`) and the text exporter (`text_export`) share.

Options and their checks (io, opset, half), the parity bounds and reports, the float16 wrapper,
random parity inputs, the common metadata, files written under temporary names, and the parity
run itself (ONNX Runtime against the float32 PyTorch module).

Parity bounds (max abs error, ONNX Runtime vs the float32 PyTorch model): float32 1e-4, float16
2e-2 (in [-1, 1] units); with io="uint8" 1 level (float32) and 3 levels (float16) out of 255.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import Tensor, nn

from translate.core.errors import InvalidChoiceError, InvalidValueError, check_choice
from translate.core.files import sha256_file
from translate.core.version import __version__
from translate.deploy.sessions import ort_session, torch_threads
from translate.formats.onnx_metadata import ONNX_FORMAT, ONNX_FORMAT_VERSION

__all__ = ["IO_MODES", "DEFAULT_OPSET", "SUPPORTED_OPSETS", "PARITY_TOLERANCES", "INPUT_NAME", "OUTPUT_NAME",
           "ParityCase", "ExportReport", "ExportParityError", "HalfCompute", "check_options", "check_parity_sizes",
           "common_metadata", "default_parity_sizes", "parity_metadata", "quiet_exporter", "random_input", "run_parity", "raise_on_parity_failure",
           "staged_files", "write_metadata"]

IO_MODES = ("float", "uint8")
# The legacy TorchScript exporter (dynamo=False) reaches opset 20, and onnxruntime 1.2x runs it.
# The dynamo exporter needs onnxscript, which is not a dependency.
DEFAULT_OPSET = 20
SUPPORTED_OPSETS = (17, 18, 19, 20)
# (precision, io) -> bound on max abs error; float io in [-1, 1] units, uint8 io in levels.
PARITY_TOLERANCES: dict[tuple[str, str], float] = {
    ("float32", "float"): 1e-4,
    ("float16", "float"): 2e-2,
    ("float32", "uint8"): 1.0,
    ("float16", "uint8"): 3.0,
}
INPUT_NAME, OUTPUT_NAME = "input", "output"


@dataclass
class ParityCase:
    """One ONNX Runtime vs PyTorch comparison: input of `batch` images of `height` x `width`."""

    batch: int
    height: int
    width: int
    max_abs_error: float


@dataclass
class ExportReport:
    """What an export wrote and how closely ONNX Runtime matched PyTorch."""

    path: Path
    opset: int
    precision: str  # float32 | float16
    io: str  # float | uint8
    tolerance: float  # bound on max_abs_error ([-1, 1] units for io float, levels for io uint8)
    cases: list[ParityCase] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)  # as stored in the file

    @property
    def max_abs_error(self) -> float:
        return max((case.max_abs_error for case in self.cases), default=0.0)


class ExportParityError(ValueError):
    """ONNX Runtime's outputs differ from PyTorch's by more than the bound; `report` has the figures."""

    def __init__(self, message: str, report: ExportReport) -> None:
        super().__init__(message)
        self.report = report


def check_options(io: str, opset: int, half: bool) -> None:
    """Raise `InvalidChoiceError` / `InvalidValueError` for a bad io, opset or half."""
    check_choice("io", io, IO_MODES, "float: NCHW float32 in [-1, 1]; uint8: NHWC uint8 images")
    if isinstance(opset, bool) or not isinstance(opset, int) or opset not in SUPPORTED_OPSETS:
        raise InvalidChoiceError("opset", opset, SUPPORTED_OPSETS, f"the default is {DEFAULT_OPSET}")
    if not isinstance(half, bool):
        raise InvalidValueError("half", half, "True or False")


# --- graphs ---------------------------------------------------------------------------------


class _Float32Norm(nn.Module):
    """Runs a normalisation layer in float32: its mean/variance lose accuracy in float16."""

    def __init__(self, norm: nn.Module) -> None:
        super().__init__()
        self.norm = norm.float()

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x.float()).to(x.dtype)


class HalfCompute(nn.Module):
    """float32 `(B, C, H, W)` in, float16 weights and compute (normalisation in float32), float32 out."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        generator = copy.deepcopy(generator).half()
        for parent in list(generator.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, (nn.InstanceNorm2d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)):
                    setattr(parent, name, _Float32Norm(child))
        self.generator = generator

    def forward(self, x: Tensor) -> Tensor:
        return self.generator(x.half()).float()


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """Silence the legacy exporter's warnings (deprecation; InstanceNorm's size check traced as a
    constant): neither concerns the user, and parity at several sizes checks the trace."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx")
        yield


# --- parity ---------------------------------------------------------------------------------


def default_parity_sizes(multiple: int) -> list[tuple[int, int]]:
    """A square and a wider size, both multiples of `multiple`, around 32-64 px for ResNets."""
    base = multiple * math.ceil(32 / multiple)
    return [(base, base), (base, base + multiple * math.ceil(32 / multiple))]


def check_parity_sizes(sizes: Sequence[tuple[int, int]], multiple: int) -> None:
    """Raise `InvalidValueError` unless every (height, width) is a positive multiple of `multiple`."""
    if any(h < 1 or w < 1 or h % multiple or w % multiple for h, w in sizes):
        raise InvalidValueError("parity_sizes", [tuple(size) for size in sizes],
                                f"(height, width) pairs, multiples of the model's size multiple {multiple}",
                                f"pick sizes such as {multiple}x{2 * multiple}")


def random_input(batch: int, height: int, width: int, channels: int, io: str, generator: torch.Generator) -> Tensor:
    """io "uint8": `(B, H, W, C)` uint8 in 0..255; else `(B, C, H, W)` float32 in [-1, 1]."""
    if io == "uint8":
        return torch.randint(0, 256, (batch, height, width, channels), dtype=torch.uint8, generator=generator)
    return torch.rand(batch, channels, height, width, generator=generator) * 2 - 1


def run_parity(path: Path, reference: nn.Module, feeds: Sequence[dict[str, Tensor]], output: str) -> list[float]:
    """Max abs error of the file at `path` on ONNX Runtime against `reference(*feed.values())`, per feed."""
    session = ort_session(path, threads=torch_threads())
    errors = []
    for feed in feeds:
        with torch.inference_mode():
            expected = reference(*feed.values()).numpy()
        got = session.run([output], {name: value.numpy() for name, value in feed.items()})[0]
        if got.shape != expected.shape:
            shapes = ", ".join(f"{name} {tuple(value.shape)}" for name, value in feed.items())
            raise ValueError(f"the exported graph returned shape {got.shape} for {shapes}, PyTorch "
                             f"{expected.shape}; the export is broken")
        errors.append(float(np.abs(got.astype(np.float64) - expected.astype(np.float64)).max()))
    return errors


def parity_metadata(report: ExportReport) -> dict[str, str]:
    """The metadata keys that record a passed parity check."""
    return {"parity_max_abs_error": f"{report.max_abs_error:.3g}", "parity_tolerance": f"{report.tolerance:g}",
            "parity_cases": json.dumps([vars(case) for case in report.cases])}


def raise_on_parity_failure(report: ExportReport, figures: str, failed: bool | None = None) -> None:
    """Raise `ExportParityError` when the report's error exceeds its bound (or `failed` says so)."""
    if failed is None:
        failed = report.max_abs_error > report.tolerance
    if failed:
        raise ExportParityError(
            f"ONNX Runtime differs from PyTorch by up to {report.max_abs_error:.3g} (bound {report.tolerance:g} "
            f"for {report.precision}, io {report.io}; {figures}); {str(report.path)!r} was not written. Try "
            "another opset, or half=False", report)


# --- files ----------------------------------------------------------------------------------


def common_metadata(config: dict[str, Any], *, io: str, precision: str, opset: int, source: Path) -> dict[str, str]:
    """The metadata keys image and text exports share (format, provenance, io, precision)."""
    return {
        "format": ONNX_FORMAT,
        "format_version": str(ONNX_FORMAT_VERSION),
        "architecture": json.dumps(config["architecture"], sort_keys=True),
        "domains": json.dumps(config.get("domains")),
        "normalization": json.dumps(config.get("normalization")),
        "toolkit_version": __version__,
        "source_toolkit_version": str(config.get("toolkit_version", "unknown")),
        "source_file": source.name,
        "source_sha256": sha256_file(source),
        "io": io,
        "layout": "NHWC" if io == "uint8" else "NCHW",
        "input_dtype": "uint8" if io == "uint8" else "float32",
        "precision": precision,
        "opset": str(opset),
        # The model's default input scale for convert (weights config.json), when it has one.
        **({"input_resize": str(config["input_resize"])} if config.get("input_resize") else {}),
    }


def write_metadata(path: Path, metadata: dict[str, str], *, check: bool = False) -> None:
    """Replace the metadata of the ONNX file at `path`; `check`: run onnx's full checker first."""
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, metadata)
    if check:
        onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))


@contextlib.contextmanager
def staged_files(*targets: Path) -> Iterator[list[Path]]:
    """Temporary paths beside `targets`, renamed over them when the block completes (the first
    target last, so a reader that sees it sees the others) and removed when it raises: a failed
    export leaves no file."""
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
    temporaries = [target.with_name(f".{target.name}.{os.getpid()}.tmp") for target in targets]
    try:
        yield temporaries
        for temporary, target in reversed(list(zip(temporaries, targets, strict=True))):
            os.replace(temporary, target)
    finally:
        for temporary in temporaries:
            temporary.unlink(missing_ok=True)

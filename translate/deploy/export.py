"""ONNX export of one generator, checked against PyTorch before the file is written.

    report = export_onnx("runs/horse2zebra", "h2z.onnx", direction="AtoB")
    report.max_abs_error        # worst ONNX Runtime vs PyTorch difference over the parity cases

The graph has dynamic batch, height and width. Heights and widths must be multiples of the
`size_multiple` stored in the file's metadata (4 for ResNet generators, 128 / 256 for U-Nets);
the graph does not pad, so a client pads (by reflection) and crops back, as `translate convert` does.

io="float": input `(B, C_in, H, W)` float32 in [-1, 1], output `(B, C_out, H, W)` float32 in [-1, 1].
io="uint8": input `(B, H, W, C_in)` uint8 in [0, 255], output `(B, H, W, C_out)` uint8; the
normalisation x / 127.5 - 1 and its inverse (clamp, round) run inside the graph.
half=True: float16 weights and compute; normalisation layers (whose variance loses accuracy in
float16) stay float32; the graph boundary keeps the io type above.

Parity bounds (max abs error, ONNX Runtime vs the float32 PyTorch model, random inputs, two
sizes x batch 1 and 2): float32 1e-4, float16 2e-2 (in [-1, 1] units); with io="uint8" 1 level
(float32) and 3 levels (float16) out of 255. Exceeding the bound raises ExportParityError and
leaves no file at `out_path`.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from translate.core.files import sha256_file
from translate.core.version import __version__
from translate.formats.locator import locate
from translate.formats.onnx_metadata import ONNX_FORMAT, ONNX_FORMAT_VERSION, read_onnx_metadata
from translate.formats.weights import load_with_config, source_file

logger = logging.getLogger(__name__)

__all__ = [
    "IO_MODES",
    "DEFAULT_OPSET",
    "SUPPORTED_OPSETS",
    "PARITY_TOLERANCES",
    "ParityCase",
    "ExportReport",
    "ExportParityError",
    "export_onnx",
    "read_onnx_metadata",
    "sha256_file",
]

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
    """What `export_onnx` wrote and how closely ONNX Runtime matched PyTorch."""

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


# --- wrappers that put precision and io handling inside the graph ---------------------------


class _Float32Norm(nn.Module):
    """Runs a normalisation layer in float32: its mean/variance lose accuracy in float16."""

    def __init__(self, norm: nn.Module) -> None:
        super().__init__()
        self.norm = norm.float()

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x.float()).to(x.dtype)


class _HalfCompute(nn.Module):
    """float32 `(B, C, H, W)` in, float16 weights and compute, float32 out."""

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


class _Uint8IO(nn.Module):
    """`(B, H, W, C)` uint8 in, `(B, H, W, C_out)` uint8 out; [-1, 1] float inside (as `to_pil` does)."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, image: Tensor) -> Tensor:
        x = image.permute(0, 3, 1, 2).float() / 127.5 - 1.0
        y = self.generator(x)
        return ((y.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)


def _graph_module(generator: nn.Module, *, half: bool, io: str) -> nn.Module:
    net = _HalfCompute(generator) if half else generator
    return (_Uint8IO(net) if io == "uint8" else net).eval()


# --- helpers --------------------------------------------------------------------------------


# The one file-hash helper; the name stays for the modules that import it from here.


def _default_parity_sizes(multiple: int) -> list[tuple[int, int]]:
    """A square and a wider size, both multiples of `multiple`, around 32-64 px for ResNets."""
    base = multiple * math.ceil(32 / multiple)
    return [(base, base), (base, base + multiple * math.ceil(32 / multiple))]


def _random_input(batch: int, height: int, width: int, channels: int, io: str,
                  generator: torch.Generator) -> Tensor:
    if io == "uint8":
        return torch.randint(0, 256, (batch, height, width, channels), dtype=torch.uint8, generator=generator)
    return torch.rand(batch, channels, height, width, generator=generator) * 2 - 1


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    # The legacy exporter warns that it is deprecated and that InstanceNorm's size check is traced
    # as a constant; neither concerns the user, and parity at several sizes checks the trace.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx")
        yield


def _ort_session(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    # As many threads as PyTorch is allowed: ORT's default (all cores, spinning) competes with
    # other work on small machines.
    options.intra_op_num_threads = max(1, torch.get_num_threads())
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def _metadata(config: dict[str, Any], *, direction: str | None, io: str, precision: str, opset: int,
              source: Path) -> dict[str, str]:
    architecture = config["architecture"]
    return {
        "format": ONNX_FORMAT,
        "format_version": str(ONNX_FORMAT_VERSION),
        "architecture": json.dumps(architecture, sort_keys=True),
        "task": str(config.get("task") or ""),
        "direction": str(direction or config.get("direction") or ""),
        "domains": json.dumps(config.get("domains")),
        "input_channels": str(architecture["input_nc"]),
        "output_channels": str(architecture["output_nc"]),
        "normalization": json.dumps(config.get("normalization")),
        "size_multiple": str(config["size_multiple"]),
        "toolkit_version": __version__,
        "source_toolkit_version": str(config.get("toolkit_version", "unknown")),
        "source_file": source.name,
        "source_sha256": sha256_file(source),
        "io": io,
        "layout": "NHWC" if io == "uint8" else "NCHW",
        "input_dtype": "uint8" if io == "uint8" else "float32",
        "precision": precision,
        "opset": str(opset),
    }


# --- export ---------------------------------------------------------------------------------


def _check_options(io: str, opset: int, half: bool) -> None:
    if io not in IO_MODES:
        raise ValueError(f"unknown io {io!r}; expected one of {', '.join(IO_MODES)} "
                         f"(float: NCHW float32 in [-1, 1]; uint8: NHWC uint8 images)")
    if isinstance(opset, bool) or not isinstance(opset, int) or opset not in SUPPORTED_OPSETS:
        raise ValueError(f"opset {opset!r} is not supported; expected one of "
                         f"{', '.join(map(str, SUPPORTED_OPSETS))} (default {DEFAULT_OPSET})")
    if not isinstance(half, bool):
        raise ValueError(f"half must be True or False, got {half!r}")


def export_onnx(model: str | Path, out_path: str | Path, *, direction: str | None = None,
                half: bool = False, io: str = "float", opset: int = DEFAULT_OPSET, check: bool = True,
                parity_sizes: Sequence[tuple[int, int]] | None = None,
                parity_batches: Sequence[int] = (1, 2), seed: int = 0, text_input: str | None = None,
                bake_prompts: Sequence[str] | None = None, bake_domain_prompts: bool = False) -> ExportReport:
    """Export one generator of `model` to `out_path` (.onnx) and check it against PyTorch.

    A text model (text2image / textcycle folder or run) goes to `translate.deploy.text_export.export_text_onnx`
    with `text_input` ("ids" by default | "embedding"), `bake_prompts` and `bake_domain_prompts`
    (parity there runs batch 1 and 3, so `parity_batches` does not apply).

    Args:
        model: a weights folder, a run directory or a training checkpoint (see `translate.load`).
        direction: AtoB | BtoA, for models holding both generators (CycleGAN runs).
        half: float16 weights and compute (normalisation layers stay float32).
        io: "float" (`(B, C, H, W)` float32 in [-1, 1]) or "uint8" (`(B, H, W, C)` uint8 images).
        opset: ONNX opset, one of SUPPORTED_OPSETS.
        check: run onnx's full checker and the ONNX Runtime vs PyTorch parity check.
        parity_sizes: (height, width) pairs, multiples of the size multiple; default a square and
            a wider size (32x32 and 32x64 for ResNets, 128x128 and 128x256 for unet_128).
        parity_batches: batch sizes run at every parity size.
        seed: seed of the random parity inputs.

    Returns:
        ExportReport with the per-case max abs errors and the metadata stored in the file.

    Raises:
        FileNotFoundError: no model at `model`.
        ValueError: bad io / opset / direction, a discriminator, or a parity size that is not a
            multiple of the size multiple.
        ExportParityError: ONNX Runtime differs from PyTorch beyond PARITY_TOLERANCES; no file is written.
    """
    import onnx

    _check_options(io, opset, half)
    model, out_path = Path(model), Path(out_path)
    source = locate(model)
    if source.is_text and not source.is_onnx:
        if direction is not None:
            raise ValueError(f"--direction {direction} applies to CycleGAN runs; a text model has one generator")
        from translate.deploy.text_export import export_text_onnx

        return export_text_onnx(model, out_path, text_input=text_input or "ids", bake_prompts=bake_prompts,
                                bake_domain_prompts=bake_domain_prompts, half=half, io=io, opset=opset, check=check,
                                parity_sizes=parity_sizes, seed=seed)
    if text_input is not None or bake_prompts or bake_domain_prompts:
        raise ValueError(f"--text-input and --bake-prompts apply to text models (text2image, textcycle); "
                         f"{str(model)!r} holds an image generator: drop them")
    network, config = load_with_config(model, direction=direction, device="cpu")
    if config.get("kind") != "generator":
        raise ValueError(f"{str(model)!r} holds a {config.get('kind')}; only generators are exported")
    multiple = int(config["size_multiple"])
    sizes = list(parity_sizes) if parity_sizes is not None else _default_parity_sizes(multiple)
    for height, width in sizes:
        if height % multiple or width % multiple or height < 1 or width < 1:
            raise ValueError(f"parity size {height}x{width} is not a multiple of the model's size "
                             f"multiple {multiple}; pick sizes such as {multiple}x{2 * multiple}")
    if not parity_batches or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in parity_batches):
        raise ValueError(f"parity_batches must be positive integers, got {list(parity_batches)!r}")

    precision = "float16" if half else "float32"
    channels_in = int(config["architecture"]["input_nc"])
    graph = _graph_module(network, half=half, io=io)
    reference = _graph_module(network, half=False, io=io)  # PyTorch float32 is the yardstick
    source = source_file(model, direction)
    metadata = _metadata(config, direction=direction, io=io, precision=precision, opset=opset, source=source)
    report = ExportReport(path=out_path, opset=opset, precision=precision, io=io,
                          tolerance=PARITY_TOLERANCES[(precision, io)])

    dims = {0: "batch", 1: "height", 2: "width"} if io == "uint8" else {0: "batch", 2: "height", 3: "width"}
    example = _random_input(1, *sizes[0], channels_in, io, torch.Generator().manual_seed(seed))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=out_path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with _quiet_exporter(), torch.no_grad():
            torch.onnx.export(graph, (example,), str(tmp), dynamo=False, opset_version=opset,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes={INPUT_NAME: dims, OUTPUT_NAME: dims}, do_constant_folding=True)
        proto = onnx.load(str(tmp))
        onnx.helper.set_model_props(proto, metadata)
        onnx.save(proto, str(tmp))
        if check:
            onnx.checker.check_model(proto, full_check=True)
            report.cases = _parity(tmp, reference, sizes, parity_batches, channels_in, io, seed)
            metadata["parity_max_abs_error"] = f"{report.max_abs_error:.3g}"
            metadata["parity_tolerance"] = f"{report.tolerance:g}"
            metadata["parity_cases"] = json.dumps([vars(case) for case in report.cases])
            report.metadata = metadata
            if report.max_abs_error > report.tolerance:
                figures = ", ".join(f"batch {c.batch} {c.height}x{c.width}: {c.max_abs_error:.3g}"
                                    for c in report.cases)
                raise ExportParityError(
                    f"ONNX Runtime differs from PyTorch by up to {report.max_abs_error:.3g} "
                    f"(bound {report.tolerance:g} for {precision}, io {io}; {figures}); "
                    f"{str(out_path)!r} was not written. Try another --opset or float32", report)
            onnx.helper.set_model_props(proto, metadata)
            onnx.save(proto, str(tmp))
        report.metadata = metadata
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    logger.info("exported %s (%s, io %s, opset %d) to %s; max abs error %.3g",
                config["architecture"]["name"], precision, io, opset, out_path, report.max_abs_error)
    return report


def _parity(path: Path, reference: nn.Module, sizes: Sequence[tuple[int, int]], batches: Sequence[int],
            channels: int, io: str, seed: int) -> list[ParityCase]:
    session = _ort_session(path)
    generator = torch.Generator().manual_seed(seed)
    cases = []
    for height, width in sizes:
        for batch in batches:
            x = _random_input(batch, height, width, channels, io, generator)
            with torch.inference_mode():
                expected = reference(x).numpy()
            got = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]
            if got.shape != expected.shape:
                raise ValueError(f"the exported graph returned shape {got.shape} for input {tuple(x.shape)}, "
                                 f"PyTorch {expected.shape}; the export is broken")
            error = float(np.abs(got.astype(np.float64) - expected.astype(np.float64)).max())
            cases.append(ParityCase(batch=batch, height=height, width=width, max_abs_error=error))
    return cases

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
leaves no file at `out_path`. A text model (text2image, textcycle) is exported by
`translate.deploy.text_export.export_text_onnx`, which `export_onnx` hands it to.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from translate.core.errors import InvalidCombinationError, InvalidValueError
from translate.core.files import sha256_file
from translate.core.images import from_uint8, to_uint8
from translate.deploy.onnx_common import (
    DEFAULT_OPSET,
    INPUT_NAME,
    IO_MODES,
    OUTPUT_NAME,
    PARITY_TOLERANCES,
    SUPPORTED_OPSETS,
    ExportParityError,
    ExportReport,
    HalfCompute,
    ParityCase,
    check_options,
    check_parity_sizes,
    common_metadata,
    default_parity_sizes,
    parity_metadata,
    quiet_exporter,
    raise_on_parity_failure,
    random_input,
    run_parity,
    staged_files,
    write_metadata,
)
from translate.deploy.text_export import export_text_onnx
from translate.formats.locator import ModelSource, as_source
from translate.formats.onnx_metadata import read_onnx_metadata
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


class _Uint8IO(nn.Module):
    """`(B, H, W, C)` uint8 in, `(B, H, W, C_out)` uint8 out; [-1, 1] float inside (as `tensor_to_pil` does)."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, image: Tensor) -> Tensor:
        y = self.generator(from_uint8(image.permute(0, 3, 1, 2)))
        return to_uint8(y).permute(0, 2, 3, 1)


def _graph_module(generator: nn.Module, *, half: bool, io: str) -> nn.Module:
    net = HalfCompute(generator) if half else generator
    return (_Uint8IO(net) if io == "uint8" else net).eval()


@dataclass(frozen=True)
class _ImageExport:
    """One image generator, loaded and checked, ready to be written (see `export_onnx`)."""

    graph: nn.Module  # what the file computes
    reference: nn.Module  # PyTorch float32 with the same io: the yardstick
    config: dict[str, Any]
    metadata: dict[str, str]
    sizes: list[tuple[int, int]]
    batches: list[int]
    channels: int
    io: str
    opset: int
    precision: str

    @classmethod
    def load(cls, source: ModelSource, *, direction: str | None, half: bool, io: str, opset: int,
             parity_sizes: Sequence[tuple[int, int]] | None, parity_batches: Sequence[int]) -> _ImageExport:
        network, config = load_with_config(source, direction=direction, device="cpu")
        if config.get("kind") != "generator":
            raise ValueError(f"{source.requested!r} holds a {config.get('kind')}; only generators are exported")
        multiple = int(config["size_multiple"])
        sizes = list(parity_sizes) if parity_sizes is not None else default_parity_sizes(multiple)
        check_parity_sizes(sizes, multiple)
        if not parity_batches or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in parity_batches):
            raise InvalidValueError("parity_batches", list(parity_batches), "positive integers")
        precision = "float16" if half else "float32"
        metadata = _metadata(config, direction=direction, io=io, precision=precision, opset=opset,
                             source=source_file(source, direction))
        return cls(_graph_module(network, half=half, io=io), _graph_module(network, half=False, io=io), config,
                   metadata, sizes, list(parity_batches), int(config["architecture"]["input_nc"]), io, opset,
                   precision)

    def write(self, path: Path, seed: int) -> None:
        """The traced graph and its metadata, unchecked, at `path`."""
        dims = {0: "batch", 1: "height", 2: "width"} if self.io == "uint8" else {0: "batch", 2: "height", 3: "width"}
        example = random_input(1, *self.sizes[0], self.channels, self.io, torch.Generator().manual_seed(seed))
        with quiet_exporter(), torch.no_grad():
            torch.onnx.export(self.graph, (example,), str(path), dynamo=False, opset_version=self.opset,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes={INPUT_NAME: dims, OUTPUT_NAME: dims}, do_constant_folding=True)
        write_metadata(path, self.metadata)

    def check(self, path: Path, report: ExportReport, seed: int) -> None:
        """onnx's full checker, then parity at every size x batch; raises ExportParityError beyond the bound."""
        write_metadata(path, self.metadata, check=True)
        generator = torch.Generator().manual_seed(seed)
        shapes = [(batch, height, width) for height, width in self.sizes for batch in self.batches]
        feeds = [{INPUT_NAME: random_input(*shape, self.channels, self.io, generator)} for shape in shapes]
        errors = run_parity(path, self.reference, feeds, OUTPUT_NAME)
        report.cases = [ParityCase(*shape, error) for shape, error in zip(shapes, errors, strict=True)]
        self.metadata.update(parity_metadata(report))
        report.metadata = self.metadata
        raise_on_parity_failure(report, ", ".join(f"batch {c.batch} {c.height}x{c.width}: {c.max_abs_error:.3g}"
                                                  for c in report.cases))
        write_metadata(path, self.metadata)


def _metadata(config: dict[str, Any], *, direction: str | None, io: str, precision: str, opset: int,
              source: Path) -> dict[str, str]:
    architecture = config["architecture"]
    return {
        **common_metadata(config, io=io, precision=precision, opset=opset, source=source),
        "task": str(config.get("task") or ""),
        "direction": str(direction or config.get("direction") or ""),
        "input_channels": str(architecture["input_nc"]),
        "output_channels": str(architecture["output_nc"]),
        "size_multiple": str(config["size_multiple"]),
    }


def export_onnx(model: str | Path | ModelSource, out_path: str | Path, *, direction: str | None = None,
                half: bool = False, io: str = "float", opset: int = DEFAULT_OPSET, check: bool = True,
                parity_sizes: Sequence[tuple[int, int]] | None = None,
                parity_batches: Sequence[int] = (1, 2), seed: int = 0, text_input: str | None = None,
                bake_prompts: Sequence[str] | None = None, bake_domain_prompts: bool = False) -> ExportReport:
    """Export one generator of `model` to `out_path` (.onnx) and check it against PyTorch.

    A text model (text2image / textcycle folder or run) goes to `translate.deploy.text_export.export_text_onnx`
    with `text_input` ("ids" by default | "embedding"), `bake_prompts` and `bake_domain_prompts`
    (parity there runs batch 1 and 3, so `parity_batches` does not apply).

    Args:
        model: a weights folder, a run directory, a training checkpoint or a bundled or installed
            model name, or what `translate.formats.locator.locate` found for one.
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
        ParameterError: a bad io / opset / half / direction / parity size or batch.
        InvalidCombinationError: text options for an image model, a direction for a text model.
        ValueError: a discriminator.
        ExportParityError: ONNX Runtime differs from PyTorch beyond PARITY_TOLERANCES; no file is written.
    """
    check_options(io, opset, half)
    out_path, source = Path(out_path), as_source(model)
    if source.is_text and not source.is_onnx:
        if direction is not None:
            raise InvalidCombinationError(f"direction={direction!r} applies to CycleGAN runs; a text model has one "
                                          "generator: drop direction", "direction")
        return export_text_onnx(source, out_path, text_input=text_input or "ids", bake_prompts=bake_prompts,
                                bake_domain_prompts=bake_domain_prompts, half=half, io=io, opset=opset, check=check,
                                parity_sizes=parity_sizes, seed=seed)
    if text_input is not None or bake_prompts or bake_domain_prompts:
        raise InvalidCombinationError(f"text_input, bake_prompts and bake_domain_prompts apply to text models "
                                      f"(text2image, textcycle); {source.requested!r} holds an image generator: "
                                      "drop them",
                                      "text_input", "bake_prompts", "bake_domain_prompts")
    export = _ImageExport.load(source, direction=direction, half=half, io=io, opset=opset,
                               parity_sizes=parity_sizes, parity_batches=parity_batches)
    report = ExportReport(path=out_path, opset=opset, precision=export.precision, io=io,
                          tolerance=PARITY_TOLERANCES[(export.precision, io)])
    with staged_files(out_path) as (temporary,):
        export.write(temporary, seed)
        if check:
            export.check(temporary, report, seed)
        report.metadata = export.metadata
    logger.info("exported %s (%s, io %s, opset %d) to %s; max abs error %.3g", export.config["architecture"]["name"],
                export.precision, io, opset, out_path, report.max_abs_error)
    return report

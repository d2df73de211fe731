"""ONNX export of text models (text2image, textcycle); `OnnxTextModel` (in `text_runner`) runs the files.

    report = export_text_onnx("runs/shapes", "shapes.onnx")        # the byte encoder inside the graph
    model = OnnxTextModel("shapes.onnx")
    images = model.generate(["a red circle"], n=4, seed=0)         # (4, 3, S, S) in [-1, 1], as PyTorch

One file holds the generator and, with text_input "ids", the byte text encoder. Its inputs:
- text2image: `noise (B, noise_dim)` float32; textcycle: `image (B, C, H, W)` float32 in [-1, 1]
  (io "uint8": `(B, H, W, C)` uint8), H and W multiples of the metadata's `size_multiple`;
- then the text, by text input:
  "ids": `ids (B, L)` int64 and `mask (B, L)` bool, 2 <= L <= max_length, from
      `ByteTokenizer(max_length)` (docs/text.md states the rule for clients in other languages);
  "embedding": `embedding (B, D)` float32. A byte encoder is written beside as
      OUT.text_encoder.onnx (`ids`, `mask` -> `embedding`); a frozen encoder (minilm, clip) is
      not exported: the client computes embeddings with that same model;
  "baked": `prompt_index (B,)` int64, a row of a table of embeddings computed at export (any
      encoder); the metadata's `baked_prompts` lists the prompts in order.
The output `output`: `(B, C_out, S, S)` / `(B, C_out, H, W)` float32 in [-1, 1], or `(B, H, W, C_out)`
uint8 with io "uint8".

Parity: ONNX Runtime against float32 PyTorch on random noise / images and real prompts (batch 1 and
3, several text lengths up to max_length) within onnx_common.PARITY_TOLERANCES, else ExportParityError.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from translate.core.errors import InvalidCombinationError, InvalidValueError, check_choice
from translate.core.images import from_uint8, to_uint8
from translate.deploy.onnx_common import (
    DEFAULT_OPSET,
    OUTPUT_NAME,
    PARITY_TOLERANCES,
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
from translate.deploy.text_runner import OnnxTextModel
from translate.formats.locator import ModelSource, as_source
from translate.text.model import TEXT2IMAGE_KIND, load_text_model
from translate.text.tokenizer import BOS_ID, EOS_ID, PAD_ID, ByteTokenizer, normalize_text

logger = logging.getLogger(__name__)

__all__ = ["TEXT_INPUTS", "TextParityCase", "TextExportReport", "export_text_onnx", "OnnxTextModel",
           "encoder_file_path", "text_size_multiple"]

TEXT_INPUTS = ("ids", "embedding", "baked")
# Longer than any max_length up to 64 once tokenised: parity covers the longest ids allowed.
_LONG_PROMPT = "a large red circle on the left of a small blue square, drawn on a white background " * 2
# Fields of the model file's metadata that the encoder file (text input "embedding") repeats.
_ENCODER_KEYS = ("format", "format_version", "text_encoder", "embedding_dim", "tokenizer", "max_length", "pad_id",
                 "bos_id", "eos_id", "toolkit_version", "source_toolkit_version", "source_file", "source_sha256",
                 "opset")


@dataclass
class TextParityCase(ParityCase):
    """A text model's parity case: `length` tokens per text (0 when the file takes no ids); `part`
    the file checked, "model" or "text_encoder" (whose height and width are 0)."""

    length: int = 0
    part: str = "model"


@dataclass
class TextExportReport(ExportReport):
    """ExportReport of a text model; `text_encoder_path`: the encoder file (text input "embedding")."""

    text_input: str = "ids"
    text_encoder_path: Path | None = None


def text_size_multiple(architecture: dict[str, Any]) -> int:
    """What image sides must be multiples of: 4 for text_resnet, 2**num_downs for text_unet, else 1."""
    if architecture.get("name") == "text_unet":
        return 2 ** int(architecture.get("num_downs", 8))
    return 4 if architecture.get("name") == "text_resnet" else 1


def encoder_file_path(out_path: str | Path) -> Path:
    """Where text input "embedding" writes the byte encoder: OUT.onnx -> OUT.text_encoder.onnx."""
    return Path(out_path).with_name(f"{Path(out_path).stem}.text_encoder.onnx")


# --- graphs ---------------------------------------------------------------------------------


class _HalfGenerator(HalfCompute):
    """`HalfCompute` for a `(x, cond)` generator: float16 inside, float32 at both ends."""

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:  # type: ignore[override]
        return self.generator(x.half(), cond.half()).float()


class _TextGraph(nn.Module):
    """`(noise | image, *text) -> image`, the text turned into the generator's embedding in the graph."""

    def __init__(self, generator: nn.Module, mode: str, encoder: nn.Module, table: Tensor | None,
                 uint8_io: bool) -> None:
        super().__init__()
        self.generator, self.mode, self.uint8_io = generator, mode, uint8_io
        self.encoder = encoder if mode == "ids" else None
        if table is not None:
            self.register_buffer("table", table)

    def forward(self, first: Tensor, *text: Tensor) -> Tensor:
        if self.mode == "ids":
            cond = self.encoder(*text)  # ids, mask
        elif self.mode == "baked":
            cond = self.table.index_select(0, text[0])  # prompt_index
        else:
            cond = text[0]  # embedding
        if not self.uint8_io:
            return self.generator(first, cond)
        y = self.generator(from_uint8(first.permute(0, 3, 1, 2)), cond)
        return to_uint8(y).permute(0, 2, 3, 1)


# --- export ---------------------------------------------------------------------------------


class _TextExport:
    """One text model, loaded and checked, ready to be written (see `export_text_onnx`)."""

    def __init__(self, source: ModelSource, config: dict[str, Any], mode: str, prompts: list[str], *, half: bool,
                 io: str, opset: int, parity_sizes: Sequence[tuple[int, int]] | None) -> None:
        self.config, self.mode, self.prompts, self.io, self.opset = config, mode, prompts, io, opset
        self.kind, self.precision = config["kind"], "float16" if half else "float32"
        self.source = source
        loaded = load_text_model(source, "cpu")
        self.generator, self.encoder = loaded.generator.float().eval(), loaded.text_encoder.float().eval()
        multiple = text_size_multiple(config["architecture"])
        if self.kind == TEXT2IMAGE_KIND:
            self.sizes = [(self.generator.image_size, self.generator.image_size)]
        else:
            self.sizes = list(parity_sizes) if parity_sizes is not None else default_parity_sizes(multiple)
            check_parity_sizes(self.sizes, multiple)
        with torch.no_grad():
            table = self.encoder.encode(prompts).float().contiguous() if prompts else None
        generator = _HalfGenerator(self.generator) if half else self.generator
        self.graph = _TextGraph(generator, mode, self.encoder, table, io == "uint8").eval()
        self.reference = _TextGraph(self.generator, mode, self.encoder, table, io == "uint8").eval()  # float32
        self.metadata = _metadata(config, mode=mode, prompts=prompts, io=io, precision=self.precision, opset=opset,
                                  source=source.source_file(), generator=self.generator, encoder=self.encoder)
        self.writes_encoder = mode == "embedding" and config["text_encoder"]["name"] == "byte"
        self.channels = int(config["architecture"].get("input_nc", 3))

    def feed(self, texts: list[str], size: tuple[int, int], rows: list[int], rng: torch.Generator
             ) -> dict[str, Tensor]:
        """The graph's inputs, in order: random noise / images and `texts` (baked: the `rows`)."""
        if self.kind == TEXT2IMAGE_KIND:
            first = {"noise": torch.randn(len(texts), self.generator.noise_dim, generator=rng)}
        else:
            first = {"image": random_input(len(texts), *size, self.channels, self.io, rng)}
        if self.mode == "ids":
            return {**first, **_ids(self.encoder, texts)}
        if self.mode == "embedding":
            with torch.no_grad():
                return {**first, "embedding": self.encoder.encode(texts).float()}
        return {**first, "prompt_index": torch.tensor(rows, dtype=torch.int64)}

    def parity_feeds(self, seed: int) -> tuple[list[tuple[TextParityCase, dict[str, Tensor], list[str]]],
                                                dict[str, Tensor]]:
        """(cases with their inputs and texts, the export's example input). Per size, batch 1 and 3;
        three texts of different lengths, one cut at max_length."""
        rng = torch.Generator().manual_seed(seed)
        real = self.prompts or [*_domain_prompts(self.config), "a map"]
        cases = []
        for step, size in enumerate(self.sizes):
            for rows in ([step % len(real)], [(step + i) % len(real) for i in range(3)]):
                single = self.mode == "baked" or len(rows) == 1
                texts = [real[i] for i in rows] if single else [real[-1], "x", _LONG_PROMPT]
                inputs = self.feed(texts, size, rows, rng)
                length = int(inputs["ids"].shape[1]) if "ids" in inputs else 0
                cases.append((TextParityCase(len(rows), *size, 0.0, length=length), inputs, texts))
        example = self.feed(["a map", "x"], self.sizes[0], [0, len(real) - 1], rng)  # batch 2: nothing fixed to 1
        return cases, example

    def encoder_metadata(self, out_path: Path) -> dict[str, str]:
        """The encoder file's metadata (text input "embedding" with the byte encoder)."""
        return {**{key: self.metadata[key] for key in _ENCODER_KEYS}, "kind": "text_encoder", "precision": "float32",
                "model_file": out_path.name,
                "inputs": json.dumps(_inputs_doc("", "ids", max_length=self.encoder.max_length))}

    def check(self, files: list[Path], report: TextExportReport,
              cases: list[tuple[TextParityCase, dict[str, Tensor], list[str]]], encoder_metadata: dict[str, str]
              ) -> None:
        """Parity of the model file (and the encoder file); raises ExportParityError beyond the bounds,
        else records the figures in both files, which onnx's full checker then checks."""
        errors = run_parity(files[0], self.reference, [feed for _, feed, _ in cases], OUTPUT_NAME)
        for (case, _, _), error in zip(cases, errors, strict=True):
            case.max_abs_error = error
        report.cases = [case for case, _, _ in cases]
        if self.writes_encoder:
            encoder_feeds = [_ids(self.encoder, texts) for _, _, texts in cases[:2]]
            errors = run_parity(files[1], self.encoder, encoder_feeds, "embedding")
            report.cases += [TextParityCase(case.batch, 0, 0, error, length=int(feed["ids"].shape[1]),
                                            part="text_encoder")
                             for (case, _, _), feed, error in zip(cases[:2], encoder_feeds, errors, strict=True)]
        parity = parity_metadata(report)
        self.metadata.update(parity)
        report.metadata = self.metadata
        encoder_bound = PARITY_TOLERANCES[("float32", "float")]  # the encoder file is always float32
        failed = report.max_abs_error > report.tolerance or any(
            c.part == "text_encoder" and c.max_abs_error > encoder_bound for c in report.cases)
        raise_on_parity_failure(report, ", ".join(f"{c.part} batch {c.batch} {c.height}x{c.width} length {c.length}: "
                                                  f"{c.max_abs_error:.3g}" for c in report.cases), failed)
        if self.writes_encoder:
            write_metadata(files[1], {**encoder_metadata, **parity}, check=True)
        write_metadata(files[0], self.metadata, check=True)


def _load(model: str | Path | ModelSource, *, text_input: str, bake_prompts: Sequence[str] | None,
          bake_domain_prompts: bool, half: bool, io: str, opset: int, parity_sizes: Sequence[tuple[int, int]] | None) -> _TextExport:
    """The checked `_TextExport` of the text model at `model`; options are checked before it is loaded."""
    source = as_source(model)
    if not source.is_text or source.is_onnx or source.folder is None:
        raise FileNotFoundError(f"no text model weights folder at {source.requested!r} (config.json of kind text2image "
                                "or textcycle, as `translate train` writes under RUN/weights/<task>)")
    config = source.config()
    mode, prompts = _resolve_mode(config, text_input, bake_prompts, bake_domain_prompts)
    if io == "uint8" and config["kind"] == TEXT2IMAGE_KIND:
        raise InvalidCombinationError('io="uint8" applies to textcycle models (image in, image out); a text2image '
                                      'graph takes noise: use io="float" and map its output with (y + 1) * 127.5',
                                      "io")
    return _TextExport(source, config, mode, prompts, half=half, io=io, opset=opset,
                       parity_sizes=parity_sizes)


def export_text_onnx(model: str | Path | ModelSource, out_path: str | Path, *, text_input: str = "ids",
                     bake_prompts: Sequence[str] | None = None, bake_domain_prompts: bool = False,
                     half: bool = False, io: str = "float", opset: int = DEFAULT_OPSET, check: bool = True,
                     parity_sizes: Sequence[tuple[int, int]] | None = None, seed: int = 0) -> TextExportReport:
    """Export a text model (weights folder or run) to one `.onnx` file, see the module doc, and check it.

    Args:
        text_input: "ids" (the byte encoder in the graph) | "embedding" (the generator only, and for
            a byte encoder the encoder file OUT.text_encoder.onnx).
        bake_prompts: prompts whose embeddings the file stores; its text input is then `prompt_index`.
        bake_domain_prompts: also bake every prompt of the model's domains (textcycle).
        half: float16 generator (the encoder, the table and the graph's ends stay float32).
        io: "float", or "uint8" (textcycle only: NHWC uint8 image in and out).
        parity_sizes: textcycle (height, width) pairs, multiples of size_multiple (default: two).

    Raises:
        FileNotFoundError: no text model at `model`.
        ParameterError: a bad option or baked prompt list.
        InvalidCombinationError: a frozen encoder with text input "ids", options that exclude each other.
        ExportParityError: ONNX Runtime differs from PyTorch beyond PARITY_TOLERANCES; nothing written.
    """
    check_options(io, opset, half)
    out_path = Path(out_path)
    export = _load(model, text_input=text_input, bake_prompts=bake_prompts,
                   bake_domain_prompts=bake_domain_prompts, half=half, io=io, opset=opset, parity_sizes=parity_sizes)
    encoder_path = encoder_file_path(out_path) if export.writes_encoder else None
    report = TextExportReport(path=out_path, opset=opset, precision=export.precision, io=io,
                              tolerance=PARITY_TOLERANCES[(export.precision, io)], text_input=export.mode,
                              text_encoder_path=encoder_path)
    cases, example = export.parity_feeds(seed)
    encoder_metadata: dict[str, str] = {}
    if encoder_path is not None:
        export.metadata["text_encoder_file"] = encoder_path.name
        encoder_metadata = export.encoder_metadata(out_path)
    with staged_files(out_path, *([encoder_path] if encoder_path is not None else [])) as files:
        _save(export.graph, example, OUTPUT_NAME, files[0], opset, io, export.metadata)
        if encoder_path is not None:
            _save(export.encoder, _ids(export.encoder, ["a map", "x"]), "embedding", files[1], opset, io,
                  encoder_metadata)
        if check:
            export.check(files, report, cases, encoder_metadata)
        report.metadata = export.metadata
    logger.info("exported the %s model %s (text input %s, %s, io %s) to %s; max abs error %.3g", export.kind,
                export.source.requested, export.mode, export.precision, io, out_path, report.max_abs_error)
    return report


def _resolve_mode(config: dict[str, Any], text_input: str, bake_prompts: Sequence[str] | None,
                  bake_domain_prompts: bool) -> tuple[str, list[str]]:
    """(text input mode, baked prompts), checked before anything is loaded."""
    check_choice("text_input", text_input, ("ids", "embedding"),
                 "bake prompts with bake_prompts=[...] or bake_domain_prompts=True")
    if isinstance(bake_prompts, str):
        raise InvalidValueError("bake_prompts", bake_prompts, "a list of prompts", f"pass [{bake_prompts!r}]")
    prompts = list(bake_prompts or [])
    if bake_domain_prompts:
        if not config.get("domains"):
            raise InvalidCombinationError(f"this {config['kind']} model has no domains to bake prompts from "
                                          "(bake_domain_prompts=True); name the prompts with bake_prompts=[...]",
                                          "bake_domain_prompts")
        prompts += _domain_prompts(config)
    encoder_name = config["text_encoder"]["name"]
    if not prompts:
        if text_input == "ids" and encoder_name != "byte":
            raise InvalidCombinationError(
                f"the {encoder_name} text encoder is a pretrained model that is not exported to ONNX; use "
                f'text_input="embedding" (the file takes embeddings that the client computes with the same '
                f"{encoder_name} model) or bake_prompts=[...] / bake_domain_prompts=True (embeddings computed now "
                "and stored in the file)", "text_input")
        return text_input, []
    if text_input == "embedding":
        raise InvalidCombinationError('text_input="embedding" and baked prompts exclude each other (a baked file '
                                      "takes prompt_index, not embeddings); drop one of them",
                                      "text_input", "bake_prompts")
    _check_baked(prompts)
    return "baked", prompts


def _check_baked(prompts: list[str]) -> None:
    seen: dict[str, str] = {}
    for prompt in prompts:
        if not isinstance(prompt, str) or not prompt.strip():
            raise InvalidValueError("bake_prompts", prompts, "non-empty strings")
        if normalize_text(prompt) in seen:
            raise InvalidValueError("bake_prompts", prompts, "each prompt once",
                                    f"{prompt!r} repeats {seen[normalize_text(prompt)]!r} (prompts are compared "
                                    "lowercased, whitespace collapsed)")
        seen[normalize_text(prompt)] = prompt


def _domain_prompts(config: dict[str, Any]) -> list[str]:
    return [p for prompts in (config.get("domains") or {}).values() for p in prompts]


def _inputs_doc(first: str, mode: str, *, io: str = "float", channels: int = 3, noise_dim: int = 0, dim: int = 0,
                max_length: int | None = None) -> dict[str, str]:
    docs = {"noise": f"(B, {noise_dim}) float32, standard normal",
            "image": f"(B, H, W, {channels}) uint8" if io == "uint8" else f"(B, {channels}, H, W) float32 in [-1, 1]"}
    text = {"ids": {"ids": f"(B, L) int64, 2 <= L <= {max_length}, byte-v1 tokens", "mask": "(B, L) bool, ids != 0"},
            "embedding": {"embedding": f"(B, {dim}) float32, the text encoder's output"},
            "baked": {"prompt_index": "(B,) int64, a row of baked_prompts"}}[mode]
    return {**({first: docs[first]} if first else {}), **text}


def _metadata(config: dict[str, Any], *, mode: str, prompts: list[str], io: str, precision: str, opset: int,
              source: Path, generator: nn.Module, encoder: nn.Module) -> dict[str, str]:
    kind, architecture = config["kind"], config["architecture"]
    channels = int(architecture.get("input_nc", 3))
    max_length = int(encoder.max_length) if config["text_encoder"]["name"] == "byte" else None
    noise_dim = generator.noise_dim if kind == TEXT2IMAGE_KIND else 0
    first = "noise" if kind == TEXT2IMAGE_KIND else "image"
    metadata = {
        **common_metadata(config, io=io, precision=precision, opset=opset, source=source), "kind": kind, "task": kind,
        "text_encoder": json.dumps(config["text_encoder"], sort_keys=True), "embedding_dim": str(encoder.dim),
        "text_input": mode, "baked_prompts": json.dumps(prompts or None),
        "inputs": json.dumps(_inputs_doc(first, mode, io=io, channels=channels, noise_dim=noise_dim, dim=encoder.dim,
                                         max_length=max_length)),
        "output_channels": str(architecture.get("output_nc", 3))}
    if max_length is not None:
        metadata.update(tokenizer=str(config.get("tokenizer", "byte-v1")), max_length=str(max_length),
                        pad_id=str(PAD_ID), bos_id=str(BOS_ID), eos_id=str(EOS_ID))
    if kind == TEXT2IMAGE_KIND:
        metadata.update(noise_dim=str(noise_dim), image_size=str(generator.image_size))
    else:
        metadata.update(input_channels=str(channels), size_multiple=str(text_size_multiple(architecture)))
    return metadata


def _save(module: nn.Module, example: dict[str, Tensor], output: str, path: Path, opset: int, io: str,
          metadata: dict[str, str]) -> None:
    image_axes = {0: "batch", 1: "height", 2: "width"} if io == "uint8" else {0: "batch", 2: "height", 3: "width"}
    axes = {"noise": {0: "batch"}, "image": image_axes, "ids": {0: "batch", 1: "length"},
            "mask": {0: "batch", 1: "length"}, "embedding": {0: "batch"}, "prompt_index": {0: "batch"}}
    axes[output] = image_axes if "image" in example else {0: "batch"}
    with quiet_exporter(), torch.no_grad():
        torch.onnx.export(module, tuple(example.values()), str(path), dynamo=False, opset_version=opset,
                          input_names=list(example), output_names=[output],
                          dynamic_axes={name: axes[name] for name in [*example, output]}, do_constant_folding=True)
    write_metadata(path, metadata)


def _ids(encoder: nn.Module, texts: list[str]) -> dict[str, Tensor]:
    ids, mask = ByteTokenizer(encoder.max_length).encode(texts)
    return {"ids": ids, "mask": mask}

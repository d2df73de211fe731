"""ONNX export of text models (text2image, textcycle), and an ONNX Runtime runner for the files.

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
3, several text lengths up to max_length) within export.PARITY_TOLERANCES, else ExportParityError.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from translate.core.version import __version__
from translate.deploy.export import (
    DEFAULT_OPSET,
    ONNX_FORMAT,
    ONNX_FORMAT_VERSION,
    PARITY_TOLERANCES,
    ExportParityError,
    ExportReport,
    ParityCase,
    _check_options,
    _default_parity_sizes,
    _HalfCompute,
    _ort_session,
    _quiet_exporter,
    _random_input,
    sha256_file,
)
from translate.formats.onnx_metadata import read_onnx_metadata
from translate.text.model import KIND, TEXT_KINDS, TEXTCYCLE_KIND, _check_prompts, find_text_model, load_text_model
from translate.text.tokenizer import BOS_ID, EOS_ID, PAD_ID, ByteTokenizer, normalize_text

logger = logging.getLogger(__name__)

__all__ = ["TEXT_INPUTS", "TextParityCase", "TextExportReport", "export_text_onnx", "OnnxTextModel",
           "encoder_file_path", "text_size_multiple"]

TEXT_INPUTS = ("ids", "embedding", "baked")
OUTPUT_NAME = "output"
# Longer than any max_length up to 64 once tokenised: parity covers the longest ids allowed.
_LONG_PROMPT = "a large red circle on the left of a small blue square, drawn on a white background " * 2


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


class _HalfGenerator(_HalfCompute):
    """`_HalfCompute` for a `(x, cond)` generator: float16 inside, float32 at both ends."""

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
        y = self.generator(first.permute(0, 3, 1, 2).float() / 127.5 - 1.0, cond)
        return ((y.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)


# --- export ---------------------------------------------------------------------------------


def _resolve_mode(config: dict[str, Any], text_input: str, bake_prompts: Sequence[str] | None,
                  bake_domain_prompts: bool) -> tuple[str, list[str]]:
    """(text input mode, baked prompts), checked before anything is loaded."""
    if text_input not in ("ids", "embedding"):
        raise ValueError(f"text input {text_input!r} is not one of ids, embedding (bake prompts with "
                         "--bake-prompts / --bake-prompts-from-domains)")
    if isinstance(bake_prompts, str):
        raise ValueError(f"bake_prompts must be a list of prompts, got the str {bake_prompts!r}; pass [prompt]")
    prompts = list(bake_prompts or [])
    if bake_domain_prompts:
        if not config.get("domains"):
            raise ValueError(f"this {config['kind']} model has no domains to bake prompts from; name the prompts "
                             "with --bake-prompts")
        prompts += _domain_prompts(config)
    encoder_name = config["text_encoder"]["name"]
    if not prompts:
        if text_input == "ids" and encoder_name != "byte":
            raise ValueError(f"the {encoder_name} text encoder is a pretrained model that is not exported to ONNX; "
                             f"use --text-input embedding (the file takes embeddings that the client computes with "
                             f"the same {encoder_name} model) or --bake-prompts P / --bake-prompts-from-domains "
                             "(embeddings computed now and stored in the file)")
        return text_input, []
    if text_input == "embedding":
        raise ValueError("--text-input embedding and baked prompts exclude each other (a baked file takes "
                         "prompt_index, not embeddings); drop one of them")
    seen: dict[str, str] = {}
    for prompt in prompts:
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"baked prompts must be non-empty strings, got {prompt!r}")
        if normalize_text(prompt) in seen:
            raise ValueError(f"baked prompt {prompt!r} repeats {seen[normalize_text(prompt)]!r} (prompts are "
                             "compared lowercased, whitespace collapsed); list each once")
        seen[normalize_text(prompt)] = prompt
    return "baked", prompts


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
    noise_dim = generator.noise_dim if kind == KIND else 0
    first = "noise" if kind == KIND else "image"
    metadata = {
        "format": ONNX_FORMAT, "format_version": str(ONNX_FORMAT_VERSION), "kind": kind, "task": kind,
        "architecture": json.dumps(architecture, sort_keys=True),
        "text_encoder": json.dumps(config["text_encoder"], sort_keys=True), "embedding_dim": str(encoder.dim),
        "text_input": mode, "baked_prompts": json.dumps(prompts or None), "domains": json.dumps(config.get("domains")),
        "inputs": json.dumps(_inputs_doc(first, mode, io=io, channels=channels, noise_dim=noise_dim, dim=encoder.dim,
                                         max_length=max_length)),
        "output_channels": str(architecture.get("output_nc", 3)),
        "normalization": json.dumps(config.get("normalization")),
        "toolkit_version": __version__, "source_toolkit_version": str(config.get("toolkit_version", "unknown")),
        "source_file": source.name, "source_sha256": sha256_file(source), "io": io,
        "layout": "NHWC" if io == "uint8" else "NCHW", "input_dtype": "uint8" if io == "uint8" else "float32",
        "precision": precision, "opset": str(opset)}
    if max_length is not None:
        metadata.update(tokenizer=str(config.get("tokenizer", "byte-v1")), max_length=str(max_length),
                        pad_id=str(PAD_ID), bos_id=str(BOS_ID), eos_id=str(EOS_ID))
    if kind == KIND:
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
    with _quiet_exporter(), torch.no_grad():
        torch.onnx.export(module, tuple(example.values()), str(path), dynamo=False, opset_version=opset,
                          input_names=list(example), output_names=[output],
                          dynamic_axes={name: axes[name] for name in [*example, output]}, do_constant_folding=True)
    _set_metadata(path, metadata)


def _set_metadata(path: Path, metadata: dict[str, str], check: bool = False) -> None:
    import onnx

    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, metadata)
    if check:
        onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))


def _compare(path: Path, reference: nn.Module, feeds: list[tuple[TextParityCase, dict[str, Tensor]]],
             output: str) -> list[TextParityCase]:
    session = _ort_session(path)
    for case, feed in feeds:
        with torch.inference_mode():
            expected = reference(*feed.values()).numpy()
        got = session.run([output], {name: value.numpy() for name, value in feed.items()})[0]
        if got.shape != expected.shape:
            raise ValueError(f"the exported graph returned shape {got.shape}, PyTorch {expected.shape}; "
                             "the export is broken")
        case.max_abs_error = float(np.abs(got.astype(np.float64) - expected.astype(np.float64)).max())
    return [case for case, _ in feeds]


def export_text_onnx(model: str | Path, out_path: str | Path, *, text_input: str = "ids",
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
        ValueError: a frozen encoder with text input "ids", a bad option or baked prompt list.
        ExportParityError: ONNX Runtime differs from PyTorch beyond PARITY_TOLERANCES; nothing written.
    """
    _check_options(io, opset, half)
    model, out_path = Path(model), Path(out_path)
    folder = find_text_model(model)
    if folder is None:
        raise FileNotFoundError(f"no text model weights folder at {str(model)!r} (config.json of kind text2image "
                                "or textcycle, as `translate train` writes under RUN/weights/<task>)")
    config = json.loads((folder / "config.json").read_text())
    kind, byte_encoder = config["kind"], config["text_encoder"]["name"] == "byte"
    mode, prompts = _resolve_mode(config, text_input, bake_prompts, bake_domain_prompts)
    if io == "uint8" and kind == KIND:
        raise ValueError("io uint8 applies to textcycle models (image in, image out); a text2image graph takes "
                         "noise: use io float and map its output with (y + 1) * 127.5")
    loaded = load_text_model(folder, "cpu")
    generator, encoder = loaded.generator.float().eval(), loaded.text_encoder.float().eval()
    multiple = text_size_multiple(config["architecture"])
    sizes = [(generator.image_size, generator.image_size)] if kind == KIND else \
        list(parity_sizes) if parity_sizes is not None else _default_parity_sizes(multiple)
    if any(h < 1 or w < 1 or h % multiple or w % multiple for h, w in sizes):
        raise ValueError(f"parity sizes {sizes} are not all multiples of the model's size multiple {multiple}; "
                         f"pick sizes such as {multiple}x{2 * multiple}")
    with torch.no_grad():
        table = encoder.encode(prompts).float().contiguous() if prompts else None
    precision = "float16" if half else "float32"
    graph = _TextGraph(_HalfGenerator(generator) if half else generator, mode, encoder, table, io == "uint8").eval()
    reference = _TextGraph(generator, mode, encoder, table, io == "uint8").eval()  # float32 is the yardstick
    metadata = _metadata(config, mode=mode, prompts=prompts, io=io, precision=precision, opset=opset,
                         source=folder / "model.safetensors", generator=generator, encoder=encoder)
    encoder_path = encoder_file_path(out_path) if mode == "embedding" and byte_encoder else None
    report = TextExportReport(path=out_path, opset=opset, precision=precision, io=io,
                              tolerance=PARITY_TOLERANCES[(precision, io)], text_input=mode,
                              text_encoder_path=encoder_path)

    def feed(texts: list[str], size: tuple[int, int], rows: list[int]) -> dict[str, Tensor]:
        """The graph's inputs, in order: random noise / images and `texts` (baked: the `rows`)."""
        if kind == KIND:
            first = {"noise": torch.randn(len(texts), generator.noise_dim, generator=rng)}
        else:
            first = {"image": _random_input(len(texts), *size, channels, io, rng)}
        if mode == "ids":
            return {**first, **_ids(encoder, texts)}
        if mode == "embedding":
            with torch.no_grad():
                return {**first, "embedding": encoder.encode(texts).float()}
        return {**first, "prompt_index": torch.tensor(rows, dtype=torch.int64)}

    rng, channels = torch.Generator().manual_seed(seed), int(config["architecture"].get("input_nc", 3))
    real = prompts or [*_domain_prompts(config), "a map"]
    cases: list[tuple[TextParityCase, dict[str, Tensor], list[str]]] = []
    for step, size in enumerate(sizes):  # batch 1 and 3; three texts of different lengths, one cut at max_length
        for rows in ([step % len(real)], [(step + i) % len(real) for i in range(3)]):
            texts = [real[i] for i in rows] if mode == "baked" or len(rows) == 1 else [real[-1], "x", _LONG_PROMPT]
            inputs = feed(texts, size, rows)
            length = int(inputs["ids"].shape[1]) if "ids" in inputs else 0
            cases.append((TextParityCase(len(rows), *size, 0.0, length=length), inputs, texts))
    example = feed(["a map", "x"], sizes[0], [0, len(real) - 1])  # batch 2: nothing specialised to 1
    if encoder_path is not None:
        metadata["text_encoder_file"] = encoder_path.name
        encoder_metadata = {**{key: metadata[key] for key in (
            "format", "format_version", "text_encoder", "embedding_dim", "tokenizer", "max_length", "pad_id", "bos_id",
            "eos_id", "toolkit_version", "source_toolkit_version", "source_file", "source_sha256", "opset")},
            "kind": "text_encoder", "precision": "float32", "model_file": out_path.name,
            "inputs": json.dumps(_inputs_doc("", "ids", max_length=encoder.max_length))}
        encoder_feeds = [(TextParityCase(case.batch, 0, 0, 0.0, length=int(_ids(encoder, texts)["ids"].shape[1]),
                                         part="text_encoder"), _ids(encoder, texts)) for case, _, texts in cases[:2]]

    out_path.parent.mkdir(parents=True, exist_ok=True)
    targets = [out_path] + ([encoder_path] if encoder_path is not None else [])
    temporaries = [target.with_name(f".{target.name}.{os.getpid()}.tmp") for target in targets]
    try:
        _save(graph, example, OUTPUT_NAME, temporaries[0], opset, io, metadata)
        if encoder_path is not None:
            _save(encoder, _ids(encoder, ["a map", "x"]), "embedding", temporaries[1], opset, io, encoder_metadata)
        if check:
            report.cases = _compare(temporaries[0], reference, [(c, f) for c, f, _ in cases], OUTPUT_NAME)
            if encoder_path is not None:
                report.cases += _compare(temporaries[1], encoder, encoder_feeds, "embedding")
            parity = {"parity_max_abs_error": f"{report.max_abs_error:.3g}",
                      "parity_tolerance": f"{report.tolerance:g}",
                      "parity_cases": json.dumps([vars(case) for case in report.cases])}
            metadata.update(parity)
            report.metadata = metadata
            encoder_bound = PARITY_TOLERANCES[("float32", "float")]  # the encoder file is always float32
            if report.max_abs_error > report.tolerance or any(
                    c.part == "text_encoder" and c.max_abs_error > encoder_bound for c in report.cases):
                figures = ", ".join(f"{c.part} batch {c.batch} {c.height}x{c.width} length {c.length}: "
                                    f"{c.max_abs_error:.3g}" for c in report.cases)
                raise ExportParityError(
                    f"ONNX Runtime differs from PyTorch by up to {report.max_abs_error:.3g} (bound "
                    f"{report.tolerance:g} for {precision}, io {io}; {figures}); {str(out_path)!r} was not written. "
                    "Try another --opset or float32", report)
            if encoder_path is not None:
                _set_metadata(temporaries[1], {**encoder_metadata, **parity}, check=True)
            _set_metadata(temporaries[0], metadata, check=True)
        report.metadata = metadata
        for temporary, target in reversed(list(zip(temporaries, targets, strict=False))):  # the model file last
            os.replace(temporary, target)
    finally:
        for temporary in temporaries:
            temporary.unlink(missing_ok=True)
    logger.info("exported the %s model %s (text input %s, %s, io %s) to %s; max abs error %.3g", kind, folder, mode,
                precision, io, out_path, report.max_abs_error)
    return report


def _ids(encoder: nn.Module, texts: list[str]) -> dict[str, Tensor]:
    ids, mask = ByteTokenizer(encoder.max_length).encode(texts)
    return {"ids": ids, "mask": mask}


# --- running --------------------------------------------------------------------------------


class OnnxTextModel:
    """A file written by `export_text_onnx` on ONNX Runtime, with the PyTorch classes' methods:
    `generate` (text2image, as Text2ImageModel.generate) and `translate` (textcycle, as
    TextTranslationModel.translate). Texts are tokenised with ByteTokenizer(the file's max_length).

    Raises:
        ValueError: the file is not an exported text model.
        FileNotFoundError: the encoder file (text input "embedding") is not beside it.
    """

    def __init__(self, path: str | Path, *, providers: Sequence[str] | None = None,
                 threads: int | None = None) -> None:
        self.path = Path(path)
        self.metadata = read_onnx_metadata(self.path)
        self.kind = self.metadata.get("kind")
        if self.kind not in TEXT_KINDS:
            raise ValueError(f"{str(self.path)!r} is not an exported text model (metadata kind {self.kind!r}, "
                             f"expected one of {', '.join(TEXT_KINDS)})")
        self.text_input = str(self.metadata["text_input"])
        self.baked_prompts: list[str] = list(self.metadata.get("baked_prompts") or [])
        self.domains: dict[str, list[str]] = dict(self.metadata.get("domains") or {})
        self.max_length = int(self.metadata.get("max_length") or 0)
        self.uint8_io = self.metadata.get("io") == "uint8"
        self.size_multiple = int(self.metadata.get("size_multiple", 1))
        self.session = _session(self.path, providers, threads)
        self.provider = self.session.get_providers()[0]
        self.encoder_session = None
        if self.metadata.get("text_encoder_file"):
            encoder_path = self.path.with_name(str(self.metadata["text_encoder_file"]))
            if not encoder_path.is_file():
                raise FileNotFoundError(f"{self.path.name} takes embeddings from its encoder file "
                                        f"{encoder_path.name}, which is not beside it ({str(encoder_path)!r})")
            self.encoder_session = _session(encoder_path, providers, threads)

    def prompt_index(self, prompt: str) -> int:
        """The baked row of `prompt` (compared lowercased, whitespace collapsed)."""
        keys = [normalize_text(p) for p in self.baked_prompts]
        if normalize_text(prompt) not in keys:
            raise ValueError(f"prompt {prompt!r} is not baked into {self.path.name}; its prompts are "
                             f"{', '.join(map(repr, self.baked_prompts))} (export again to bake others)")
        return keys.index(normalize_text(prompt))

    def _ids(self, prompts: list[str]) -> dict[str, np.ndarray]:
        ids, mask = ByteTokenizer(self.max_length).encode(prompts)
        return {"ids": ids.numpy(), "mask": mask.numpy()}

    def embed(self, prompts: Sequence[str]) -> np.ndarray:
        """`(B, D)` float32 embeddings from the encoder file (text input "embedding", byte encoder)."""
        if self.encoder_session is None:
            raise ValueError(f"{self.path.name} takes embeddings of the text encoder "
                             f"{self.metadata.get('text_encoder')}, which is not in ONNX: compute them with that "
                             "model (translate.text.build_text_encoder(...).encode), or export with --bake-prompts")
        return self.encoder_session.run(["embedding"], self._check(self._ids(_prompts(prompts))))[0]

    def text_feed(self, prompts: Sequence[str]) -> dict[str, np.ndarray]:
        """The file's text inputs for B prompts: ids and mask, embedding, or prompt_index."""
        prompts = _prompts(prompts)
        if self.text_input == "baked":
            return {"prompt_index": np.array([self.prompt_index(p) for p in prompts], dtype=np.int64)}
        return self._ids(prompts) if self.text_input == "ids" else {"embedding": self.embed(prompts)}

    def _check(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ids, mask = feed.get("ids"), feed.get("mask")
        if ids is None:
            return feed
        if ids.ndim != 2 or mask is None or mask.shape != ids.shape:
            raise ValueError(f"expected ids and mask of the same shape (B, L), got {ids.shape} and "
                             f"{None if mask is None else mask.shape}")
        if not 2 <= ids.shape[1] <= self.max_length:
            raise ValueError(f"ids are {ids.shape[1]} tokens long; {self.path.name} takes 2 to max_length "
                             f"{self.max_length}: tokenize with ByteTokenizer({self.max_length}), which cuts "
                             "longer texts")
        return {**feed, "ids": ids.astype(np.int64), "mask": mask.astype(bool)}

    def run(self, x: Tensor, text: dict[str, np.ndarray]) -> Tensor:
        """`x`: noise `(B, noise_dim)` or images `(B, C, H, W)` in [-1, 1]; `text`: B rows as from
        `text_feed`. Returns `(B, C_out, H, W)` float32 in [-1, 1] on the CPU."""
        x = x.detach().float().cpu()
        if self.uint8_io:
            first = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        else:
            first = x.contiguous().numpy()
        text = self._check(text)
        if any(len(value) != len(x) for value in text.values()):
            raise ValueError(f"got {len(x)} rows of noise / images and "
                             f"{', '.join(f'{len(v)} of {k}' for k, v in text.items())}; pass one text row per row")
        out = torch.from_numpy(self.session.run([OUTPUT_NAME], {"noise" if self.kind == KIND else "image": first,
                                                                **text})[0])
        return out.permute(0, 3, 1, 2).float() / 127.5 - 1 if self.uint8_io else out

    def generate(self, prompts: Sequence[str], n: int = 1, seed: int | None = None) -> Tensor:
        """`n` images per prompt: `(len(prompts) * n, C, S, S)` in [-1, 1], prompt-major; the noise is
        Text2ImageModel.generate's for the same seed."""
        if self.kind != KIND:
            raise ValueError(f"{self.path.name} is a {self.kind} model: it translates images (translate, convert)")
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        texts = [p for p in _prompts(prompts) for _ in range(n)]
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        return self.run(torch.randn(len(texts), int(self.metadata["noise_dim"]), generator=generator),
                        self.text_feed(texts))

    def translate(self, images: Tensor, prompt: str | Sequence[str]) -> Tensor:
        """`images` `(B, C, H, W)` in [-1, 1], H and W multiples of size_multiple, translated to what
        `prompt` names (one for all, or B) -> `(B, C_out, H, W)` in [-1, 1]."""
        if self.kind != TEXTCYCLE_KIND:
            raise ValueError(f"{self.path.name} is a {self.kind} model: it generates images (generate)")
        if images.ndim != 4 or images.shape[-1] % self.size_multiple or images.shape[-2] % self.size_multiple:
            raise ValueError(f"expected images (B, C, H, W) with H and W multiples of {self.size_multiple}, got "
                             f"{tuple(images.shape)}; pad them (translate.deploy.inference.pad_to_multiple)")
        return self.run(images, self.text_feed([prompt] * len(images) if isinstance(prompt, str) else list(prompt)))


def _prompts(prompts: Sequence[str]) -> list[str]:
    _check_prompts(prompts)  # the PyTorch classes' rule
    return list(prompts)


def _session(path: Path, providers: Sequence[str] | None, threads: int | None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or max(1, torch.get_num_threads())
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as backends.OrtBackend
    return ort.InferenceSession(str(path), sess_options=options, providers=list(providers or ["CPUExecutionProvider"]))

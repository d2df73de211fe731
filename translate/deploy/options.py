"""The options of folder conversion and serving, each declared once as a field
(translate.core.options): the model choices that `convert_folder` and `translate serve` share
(`backend_option`, `precision_option`, `device_option`, `provider_option`), and `ConvertOptions`,
the keywords of `convert_folder`.

    ConvertOptions.from_keywords(precision="int9")
    # InvalidChoiceError: precision='int9' is not one of auto, fp32, fp16, bf16, int8

A new convert option is one field of `ConvertOptions` (its help, panel, check) plus the code that
uses it: `convert_folder` takes it as a keyword and `translate convert` as a flag.

Nothing heavy is imported here (no torch): `translate convert --help` and `translate serve
--help` are built from these fields.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from translate.core.device import DEVICES, Capabilities
from translate.core.errors import InvalidValueError
from translate.core.options import check_options, integer, option
from translate.formats.locator import DIRECTIONS

__all__ = ["BACKENDS", "PRECISIONS", "PROVIDER_NAMES", "OUTPUT_FORMATS", "DEFAULT_MAX_PIXELS", "NATIVE",
           "ConvertOptions", "backend_option", "precision_option", "device_option", "provider_option",
           "parse_resize", "parse_shard", "shard_from_environment"]

BACKENDS = ("auto", "onnxruntime", "torch")
PRECISIONS = ("auto", "fp32", "fp16", "bf16", "int8")
PROVIDER_NAMES = ("auto", "tensorrt", "cuda", "cpu")  # `selection.PROVIDERS` maps them to ONNX Runtime's
OUTPUT_FORMATS = ("png", "jpg", "webp")
DEFAULT_MAX_PIXELS = 100_000_000  # ~10000 x 10000; a 4-byte float copy of it is 1.2 GB
NATIVE = "native"

MODEL, INPUT, OUTPUT, THROUGHPUT = "Model", "Input", "Output", "Throughput"


# --- the model choices convert and serve share ------------------------------------------------------
# Functions, not fields: a dataclass field belongs to one class, so each options class calls them.

def backend_option() -> Any:
    """The `backend` field (None keeps the model's own form: `.onnx` on ONNX Runtime, else PyTorch)."""
    return option("auto", "Which runtime runs the model; auto: onnxruntime, or torch where the precision is bf16 "
                  "or the device mps.", panel=MODEL, choices=BACKENDS, optional=True)


def precision_option(choices: tuple[str, ...] = PRECISIONS, fix: str = "") -> Any:
    """The `precision` field; `choices` and `fix` narrow it where some precisions cannot run."""
    return option("auto", "Number format; auto: fp16 on a GPU, bf16 on CPUs with native bfloat16, int8 (checked "
                  ">= 35 dB) on CPUs with VNNI where calibration images exist, else fp32. Text models run in "
                  "fp32.", panel=MODEL, choices=choices, fix=fix)


def device_option() -> Any:
    """The `device` field."""
    return option("auto", "Where the model runs; auto: CUDA, else MPS, else the CPU.", panel=MODEL, choices=DEVICES)


def provider_option() -> Any:
    """The `provider` field (None: the best available)."""
    return option(None, "Force an ONNX Runtime provider.", panel=MODEL, choices=PROVIDER_NAMES, optional=True,
                  default_help="the best available")


# --- resize and shard: parsed from text, checked in their parsed form --------------------------------

_SHARD_FORM = "I/N with 0 <= I < N, e.g. 0/4 for the first of four shards (numbered from 0, like RANK)"
_RESIZE_FORM = "N (shorter side, aspect kept), WxH or native, e.g. 512 or 640x480"


def parse_shard(text: str) -> tuple[int, int]:
    """"I/N" -> (I, N) with 0 <= I < N: this process converts shard I of N."""
    try:
        index_text, count_text = text.split("/")
        index, count = int(index_text), int(count_text)
    except ValueError:
        raise InvalidValueError("shard", text, _SHARD_FORM) from None
    _check_shard("shard", (index, count), text)
    return index, count


def _check_shard(name: str, value: Any, given: Any = None) -> None:
    if value is None:
        return
    if not (isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value)
            and value[1] >= 1 and 0 <= value[0] < value[1]):
        raise InvalidValueError(name, value if given is None else given, _SHARD_FORM)


def shard_from_environment() -> tuple[int, int] | None:
    """(RANK, WORLD_SIZE) when launched by torchrun with more than one process, else None."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return (int(os.environ.get("RANK", "0")), world) if world > 1 else None


def parse_resize(text: str | None) -> tuple[int, int] | int | str | None:
    """"N" (shorter side to N, aspect kept) or "WxH" (exact size) -> N or (W, H); "native" (full
    resolution, also for a model whose config asks for another input size) -> "native"."""
    if text is None:
        return None
    if text.strip().lower() == NATIVE:
        return NATIVE
    try:
        if "x" in text.lower():
            width, height = (int(v) for v in text.lower().split("x"))
            if width > 0 and height > 0:
                return width, height
        elif int(text) > 0:
            return int(text)
    except ValueError:
        pass
    raise InvalidValueError("resize", text, _RESIZE_FORM)


def _check_resize(name: str, value: Any) -> None:
    if value is None or value == NATIVE:
        return
    sides = value if isinstance(value, tuple) and len(value) == 2 else (value,)
    if isinstance(value, str) or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sides):
        raise InvalidValueError(name, value, _RESIZE_FORM)


def _check_file_name_part(name: str, value: Any) -> None:
    if not isinstance(value, str) or any(c in value for c in "/\\\0"):
        raise InvalidValueError(name, value, "text without / or \\", "it becomes part of each file name")


# --- convert_folder's keywords -----------------------------------------------------------------------

@dataclass(frozen=True)
class ConvertOptions:
    """`convert_folder`'s keywords (and `translate convert`'s flags), checked, with resize and shard
    parsed and the defaults that depend on other values filled in (`from_keywords`)."""

    direction: str | None = option(None, "Which generator of a model that holds both directions (CycleGAN).",
                                   panel=MODEL, choices=DIRECTIONS, optional=True)
    backend: str | None = backend_option()
    precision: str = precision_option()
    device: str = device_option()
    provider: str | None = provider_option()
    prompt: str | None = option(None, 'textcycle models: what to translate to (e.g. "map"); embedded once. '
                                "Refused for image models.", panel=MODEL)
    resize: tuple[int, int] | int | str | None = option(
        None, "N (shorter side to N, aspect kept), WxH or native.", panel=INPUT, flag_type=str, check=_check_resize,
        default_help="the model's input_resize if its card gives one, else full resolution")
    tile: int | None = option(None, "Run images in SIZE x SIZE tiles with blended seams (large images, little "
                              "memory).", panel=INPUT, check=integer(1, optional=True))
    overlap: int = option(0, "Pixels shared by neighbouring tiles.", panel=INPUT, check=integer(0),
                          default_help="tile / 8")
    max_pixels: int = option(DEFAULT_MAX_PIXELS, "Images with more pixels are reported as failed instead of "
                             "exhausting memory.", panel=INPUT, check=integer(1))
    fmt: str = option("png", "Output image format.", panel=OUTPUT, choices=OUTPUT_FORMATS, flag="--format")
    quality: int = option(95, "jpg / webp quality.", panel=OUTPUT, check=integer(1, maximum=100))
    png_compression: int = option(1, "png zlib level; 1 encodes ~4x faster than Pillow's 6 for files ~15% larger "
                                  "(encoding is often the slowest stage).", panel=OUTPUT,
                                  check=integer(0, maximum=9))
    overwrite: bool = option(False, "Redo outputs that already exist (otherwise they are skipped).", panel=OUTPUT)
    suffix: str = option("", "Text added to each output's name before its extension (photo.png -> photo_map.png "
                         "with _map), e.g. for several models' outputs in one folder.", panel=OUTPUT,
                         check=_check_file_name_part)
    report: Path | None = option(None, "JSON report path.", panel=OUTPUT, path=True,
                                 default_help="OUTPUT_DIR/convert_report[.shardIofN].json")
    batch_size: int = option(4, "Images per model call (images of equal size only).", panel=THROUGHPUT,
                             check=integer(1))
    workers: int = option(1, "Decode threads, and as many encode threads.", panel=THROUGHPUT, check=integer(1),
                          default_help="the CPU count, at most 32")
    shard: tuple[int, int] | None = option(None, "I/N: convert only shard I (from 0) of N.", panel=THROUGHPUT,
                                           flag_type=str, check=_check_shard,
                                           default_help="RANK/WORLD_SIZE under torchrun, else all")
    capabilities: Capabilities | None = option(None, "The machine's capabilities, for the auto choices.",
                                               panel=MODEL, cli=False, default_help="this machine's")

    @classmethod
    def from_keywords(cls, *, workers: int | None = None, resize: str | tuple[int, int] | int | None = None,
                      shard: str | tuple[int, int] | None = None, tile: int | None = None,
                      overlap: int | None = None, report: str | Path | None = None, **rest: Any) -> ConvertOptions:
        """The options of `convert_folder(**keywords)`: text forms parsed ("512", "0/4"), `workers`,
        `shard` and `overlap` defaulted from the machine, the environment and `tile`; raises what
        `check` raises (TypeError for an unknown keyword)."""
        options = cls(workers=workers if workers is not None else min(32, os.cpu_count() or 1),
                      resize=parse_resize(resize) if isinstance(resize, str) else resize,
                      shard=parse_shard(shard) if isinstance(shard, str) else
                      shard if shard is not None else shard_from_environment(),
                      tile=tile, overlap=(tile // 8 if isinstance(tile, int) else 0) if overlap is None else overlap,
                      report=Path(report) if report is not None else None, **rest)
        options.check()
        return options

    def check(self) -> None:
        """Raise `ParameterError` for a bad value, before any work (and on every machine alike)."""
        check_options(self)
        if self.tile is not None:
            # Imported here: tiling imports torch, and `translate convert --help` reads these fields.
            from translate.deploy.tiling import check_tile

            check_tile(self.tile, self.overlap, 1)  # the model's own size multiple is checked once it is loaded

"""The weights folder format, written and read here for every model, image and text alike.

A weights folder is `config.json` (the model's description, headed by the format's name and
version) beside `model.safetensors` (its tensors; no pickle, so reading never runs code). What
the description holds is its writer's business: `translate.formats.weights` (image generators
and discriminators) and `translate.text.model` (text models) build it; this module owns what
every folder shares: the format name and version, the version check, the storage dtypes and the
cast to them, and the write order.

    write_weights_folder(out_dir, {"conv.weight": w}, {"kind": "generator", ...}, torch.float16)
    config, tensors = read_weights_folder(out_dir)   # floating tensors back in float32
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from translate.core.errors import UnsupportedFormatVersionError, check_choice
from translate.core.files import atomic_write, atomic_write_text
from translate.core.version import __version__

# The locator (which must not import torch, for the command line's start-up time) owns the names.
from translate.formats.locator import CONFIG_FILE, WEIGHTS_FILE

__all__ = ["FORMAT", "FORMAT_VERSION", "READABLE_VERSIONS", "CONFIG_FILE", "WEIGHTS_FILE", "DTYPES",
           "check_format_version", "write_weights_folder", "read_folder_config", "read_weights_folder"]

logger = logging.getLogger(__name__)

FORMAT = "translate.weights"
FORMAT_VERSION = 1  # what this release writes
READABLE_VERSIONS = (1,)  # what it reads: every version an earlier release wrote
# How floating-point tensors may be stored, and the name config.json records for each.
DTYPES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}
# Written first in config.json, by this module only.
_HEADER = ("format", "format_version", "toolkit_version")


def check_format_version(found: Any, path: str | Path, readable: tuple[int, ...] = READABLE_VERSIONS) -> int:
    """`found` (a file's `format_version`), when this release reads it.

    Raises:
        UnsupportedFormatVersionError: not an int in `readable` (a newer release wrote the file),
            naming `path`, the version found and the readable ones.
    """
    if isinstance(found, bool) or not isinstance(found, int) or found not in readable:
        raise UnsupportedFormatVersionError(str(path), found, readable)
    return found


def write_weights_folder(out_dir: str | Path, tensors: Mapping[str, Tensor], config: Mapping[str, Any],
                         dtype: torch.dtype = torch.float32) -> Path:
    """Write `out_dir/{model.safetensors, config.json}`; return `out_dir`.

    `tensors`: the state dict to store; floating tensors are stored in `dtype` (float32, or
    float16 / bfloat16 to halve the file), others (BatchNorm's counters) as they are, all
    contiguous on the CPU. `config`: the model's description; its format name and version, the
    toolkit version and `dtype` are set here (a `dtype` key it has keeps its place). Each file is
    written under a temporary name and renamed; the weights go first, so a folder whose
    config.json exists is complete.
    """
    check_choice("dtype", dtype, tuple(DTYPES))
    stored = {}
    for key, tensor in tensors.items():
        tensor = tensor.detach().to("cpu")
        stored[key] = (tensor.to(dtype) if tensor.is_floating_point() else tensor).contiguous()
    document: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION, "toolkit_version": __version__}
    document.update((key, value) for key, value in config.items() if key not in _HEADER)
    document["dtype"] = DTYPES[dtype]

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"cannot write a weights folder at {str(out_dir)!r}: it is a file")
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / WEIGHTS_FILE, lambda tmp: save_file(stored, str(tmp), metadata={"format": "pt"}))
    atomic_write_text(out_dir / CONFIG_FILE, json.dumps(document, indent=2) + "\n")
    logger.debug("wrote weights folder %s (%s, %d tensors)", out_dir, document["dtype"], len(stored))
    return out_dir


def read_folder_config(folder: str | Path) -> dict[str, Any]:
    """The config.json of the weights folder `folder`, its format name and version checked.

    Raises:
        FileNotFoundError: no config.json there.
        ValueError: it is not JSON, or not a translate weights config.
        UnsupportedFormatVersionError: a format version this release does not read.
    """
    folder = Path(folder)
    path = folder / CONFIG_FILE
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"no {CONFIG_FILE} in {str(folder)!r}: a weights folder holds "
                                f"{CONFIG_FILE} and {WEIGHTS_FILE}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{str(path)!r} is not valid JSON ({err}); re-export the weights folder") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        found = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise ValueError(f"{str(path)!r} is not a translate weights config (format {found!r}, "
                         f"expected {FORMAT!r})")
    check_format_version(config.get("format_version"), path)
    return config


def read_weights_folder(folder: str | Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """(config.json, tensors) of the weights folder `folder`, on the CPU; floating tensors in
    float32 whatever `dtype` they were stored in.

    Raises what `read_folder_config` raises, and FileNotFoundError / ValueError for a missing or
    unreadable model.safetensors.
    """
    folder = Path(folder)
    config = read_folder_config(folder)
    weights_path = folder / WEIGHTS_FILE
    if not weights_path.is_file():
        raise FileNotFoundError(f"no {WEIGHTS_FILE} in weights folder {str(folder)!r}; "
                                f"the export is incomplete, re-export it")
    try:
        tensors = load_file(str(weights_path), device="cpu")
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{str(weights_path)!r} is not a readable safetensors file ({err})") from None
    return config, {key: value.float() if value.is_floating_point() else value for key, value in tensors.items()}

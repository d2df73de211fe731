"""Image networks as weights folders, training checkpoints, and `load()`, which reads every image form.

An image weights folder is the deployable form of one generator or discriminator: the
architecture and preprocessing in config.json, the tensors in model.safetensors (the folder
format itself, shared with text models, is `translate.formats.folder`). `load()` also accepts a
training checkpoint file or a run directory, and always returns a network ready for inference:
eval mode, gradients off. (`translate.load` also gives text models: it sends them to
`translate.text.model.load_text_model`.)

    g = translate.load("runs/horse2zebra")          # run dir -> weights/AtoB/ or checkpoints/latest.pt
    fake_b = g(real_a)                              # (B, C, H, W) in [-1, 1]
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from translate.core.errors import InvalidValueError, check_choice
from translate.core.torch_files import torch_load_safely
from translate.core.version import __version__
from translate.formats.folder import (
    CONFIG_FILE,
    DTYPES,
    FORMAT,
    FORMAT_VERSION,
    WEIGHTS_FILE,
    check_format_version,
    read_folder_config,
    read_weights_folder,
    write_weights_folder,
)
from translate.formats.locator import ModelSource, as_source, pick_direction
from translate.models import (
    DiscriminatorConfig,
    GeneratorConfig,
    build_discriminator,
    build_generator,
    config_from_dict,
    config_to_dict,
    generator_config_from_dict,
    size_multiple,
)

logger = logging.getLogger(__name__)

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "CONFIG_FILE",
    "WEIGHTS_FILE",
    "StateDictDiff",
    "StateDictMismatchError",
    "state_dict_diff",
    "load_state_dict_strict",
    "build_model",
    "save_weights",
    "read_model_config",
    "load",
    "load_with_config",
    "torch_load_safely",
]

CHECKPOINT_FORMAT = "translate.checkpoint"
CHECKPOINT_FORMAT_VERSION = 1
CHECKPOINT_READABLE_VERSIONS = (1,)
# The `task` a weights folder records is provenance (which training task wrote it), any task name.
_TASK_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
DIRECTIONS = ("AtoB", "BtoA")
_ACCEPTED = ("a weights folder (config.json + model.safetensors), a training checkpoint file written by "
             "`translate train`, or a run directory (weights/<direction>/ or checkpoints/latest.pt)")

Architecture = GeneratorConfig | DiscriminatorConfig


# --- strict state-dict loading --------------------------------------------------------------


@dataclass
class StateDictDiff:
    """How a state dict differs from the one a model expects."""

    missing: list[str] = field(default_factory=list)  # the model has them, the state dict does not
    unexpected: list[str] = field(default_factory=list)  # the state dict has them, the model does not
    shape_mismatches: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    # (key, shape in the state dict, shape in the model)

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.shape_mismatches)

    def summary(self, limit: int = 10) -> str:
        """Multi-line description listing the first `limit` keys of each kind, with counts."""

        def listing(items: list[str]) -> str:
            more = f", ... (+{len(items) - limit} more)" if len(items) > limit else ""
            return ", ".join(items[:limit]) + more

        lines = []
        if self.missing:
            lines.append(f"  missing keys ({len(self.missing)}): {listing(self.missing)}")
        if self.unexpected:
            lines.append(f"  unexpected keys ({len(self.unexpected)}): {listing(self.unexpected)}")
        if self.shape_mismatches:
            shapes = [f"{k}: file {tuple(a)} vs model {tuple(b)}" for k, a, b in self.shape_mismatches]
            lines.append(f"  shape mismatches ({len(shapes)}): {listing(shapes)}")
        return "\n".join(lines)


class StateDictMismatchError(ValueError):
    """A state dict does not fit its architecture (missing / unexpected keys or shapes)."""

    def __init__(self, message: str, diff: StateDictDiff) -> None:
        super().__init__(message)
        self.diff = diff


def state_dict_diff(expected: Mapping[str, Tensor], got: Mapping[str, Tensor]) -> StateDictDiff:
    """Compare `got` against `expected` (e.g. `model.state_dict()`), keeping `expected`'s key order."""
    diff = StateDictDiff(
        missing=[k for k in expected if k not in got],
        unexpected=[k for k in got if k not in expected],
    )
    for key, tensor in expected.items():
        if key in got and tuple(got[key].shape) != tuple(tensor.shape):
            diff.shape_mismatches.append((key, tuple(got[key].shape), tuple(tensor.shape)))
    return diff


def load_state_dict_strict(module: nn.Module, state_dict: Mapping[str, Tensor], *, what: str) -> None:
    """`module.load_state_dict(state_dict, strict=True)` with a readable error naming `what`."""
    diff = state_dict_diff(module.state_dict(), state_dict)
    if diff:
        raise StateDictMismatchError(
            f"the weights in {what} do not fit the {type(module).__name__} they are loaded into:\n"
            f"{diff.summary()}", diff)
    module.load_state_dict(state_dict, strict=True)


def build_model(architecture: Architecture, init: bool = False) -> nn.Module:
    """The (uninitialised unless `init`) network for a generator or discriminator config."""
    if isinstance(architecture, GeneratorConfig):
        return build_generator(architecture, init=init)
    if isinstance(architecture, DiscriminatorConfig):
        return build_discriminator(architecture, init=init)
    raise TypeError(f"architecture must be a GeneratorConfig or DiscriminatorConfig, "
                    f"got {type(architecture).__name__}")


# --- config.json ----------------------------------------------------------------------------


def _default_domains(kind: str, direction: str | None) -> dict[str, str] | None:
    if kind != "generator":
        return None
    return {"source": "B", "target": "A"} if direction == "BtoA" else {"source": "A", "target": "B"}


def _model_config(architecture: Architecture, *, task: str | None, direction: str | None,
                  domains: Mapping[str, str] | None, source: Mapping[str, Any] | None,
                  dtype: str = "float32", toolkit_version: str = __version__,
                  input_resize: int | None = None) -> dict[str, Any]:
    kind = "generator" if isinstance(architecture, GeneratorConfig) else "discriminator"
    if task is not None and not (isinstance(task, str) and _TASK_NAME.match(task)):
        raise InvalidValueError("task", task, "None or a training task's name (lowercase letters, digits, _)")
    check_choice("direction", direction, (*DIRECTIONS, None))
    if domains is None:
        domains = _default_domains(kind, direction)
    elif not (isinstance(domains, Mapping) and set(domains) == {"source", "target"}
              and all(isinstance(v, str) for v in domains.values())):
        raise ValueError(f"domains must be {{'source': str, 'target': str}}, got {domains!r}")
    channels = architecture.input_nc
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "toolkit_version": toolkit_version,
        "kind": kind,
        "architecture": config_to_dict(architecture),
        "task": task,
        "direction": direction,
        "domains": dict(domains) if domains is not None else None,
        # Images enter as (x - mean) / std of [0, 1] values, i.e. [-1, 1]; outputs leave in [-1, 1].
        "normalization": {"range": [-1.0, 1.0], "mean": [0.5] * channels, "std": [0.5] * channels},
        "size_multiple": size_multiple(architecture.name),
        "dtype": dtype,
        "source": dict(source) if source else {},
    }
    if input_resize is not None:
        if isinstance(input_resize, bool) or not isinstance(input_resize, int) or input_resize < 1:
            raise InvalidValueError("input_resize", input_resize, "None or a positive integer (a shorter side in pixels)")
        # Only written when set: folders without it are byte-identical to earlier releases'.
        config["input_resize"] = input_resize
    return config


def _check_image_config(config: dict[str, Any], folder: Path) -> dict[str, Any]:
    """`config` (a weights folder's, format checked), when it describes an image network."""
    path = folder / CONFIG_FILE
    if config.get("kind") not in ("generator", "discriminator"):
        raise ValueError(f"{str(path)!r} has kind {config.get('kind')!r}; expected 'generator' or "
                         f"'discriminator'")
    if not isinstance(config.get("architecture"), dict):
        raise ValueError(f"{str(path)!r} has no 'architecture' object")
    return config


# --- saving ---------------------------------------------------------------------------------


def save_weights(module: nn.Module, out_dir: str | Path, architecture: Architecture, *,
                 task: str | None = None, direction: str | None = None,
                 domains: Mapping[str, str] | None = None, source: Mapping[str, Any] | None = None,
                 dtype: torch.dtype = torch.float32, input_resize: int | None = None) -> Path:
    """Write `module` as a weights folder `out_dir/{config.json, model.safetensors}`; return out_dir.

    `architecture` must describe `module` exactly (checked against its state dict). Floating
    tensors are stored contiguous in `dtype` (float32, or float16 / bfloat16 to halve the size);
    BatchNorm's integer counters keep their dtype. `domains` defaults to A->B (B->A for "BtoA").
    `input_resize`: the shorter side, in pixels, that `convert` scales inputs to by default (for a
    model that does better at its training scale than at a photo's native size); None: native.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"save_weights expects an nn.Module, got {type(module).__name__}")
    if not isinstance(architecture, (GeneratorConfig, DiscriminatorConfig)):
        raise TypeError(f"architecture must be a GeneratorConfig or DiscriminatorConfig, "
                        f"got {type(architecture).__name__}")
    check_choice("dtype", dtype, tuple(DTYPES))
    config = _model_config(architecture, task=task, direction=direction, domains=domains, source=source,
                           dtype=DTYPES[dtype], input_resize=input_resize)
    state = module.state_dict()
    with torch.device("meta"):
        expected = build_model(architecture).state_dict()
    diff = state_dict_diff(expected, state)
    if diff:
        raise StateDictMismatchError(
            f"the module does not match the architecture {config['architecture']}; "
            f"saving it would write a weights folder that cannot be loaded:\n{diff.summary()}", diff)
    out_dir = write_weights_folder(out_dir, state, config, dtype)
    logger.info("saved %s %s to %s", config["kind"], architecture.name, out_dir)
    return out_dir


# --- locating and reading any model form ----------------------------------------------------


@dataclass(frozen=True)
class _Located:
    kind: str  # "folder" | "checkpoint"
    path: Path


def _locate(path: str | Path | ModelSource, direction: str | None) -> _Located:
    """The weights folder or checkpoint file of `path`'s image generator for `direction`."""
    form, found = as_source(path).image_weights(direction)
    return _Located(form, found)


def source_file(path: str | Path | ModelSource, direction: str | None = None) -> Path:
    """The file whose bytes a model's weights come from: its model.safetensors or its checkpoint."""
    located = _locate(path, direction)
    return located.path / WEIGHTS_FILE if located.kind == "folder" else located.path


def read_training_checkpoint(path: Path) -> dict[str, Any]:
    """A `translate train` checkpoint file as a dict, read with weights_only=True; clear errors otherwise."""
    state = torch_load_safely(path, _ACCEPTED)
    if isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT:
        check_format_version(state.get("format_version"), path, readable=CHECKPOINT_READABLE_VERSIONS)
        return state
    if isinstance(state, dict) and state and all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{str(path)!r} is a plain state_dict (such as a reference CycleGAN/pix2pix "
                         f"checkpoint), which does not record its architecture; convert it first with "
                         f"`translate import-reference` (translate.hub.reference.import_reference)")
    found = state.get("format") if isinstance(state, dict) else type(state).__name__
    raise ValueError(f"{str(path)!r} is not a translate training checkpoint (format {found!r}); "
                     f"load accepts {_ACCEPTED}")


def _checkpoint_generator(state: dict[str, Any], path: Path, direction: str | None
                          ) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """config.json-style dict and state dict of one generator in a training checkpoint."""
    generators = state.get("generators")
    if not isinstance(generators, dict) or not generators:
        raise ValueError(f"checkpoint {str(path)!r} lists no generators")
    chosen = pick_direction(direction, sorted(generators), f"checkpoint {str(path)!r}")
    spec = generators[chosen]
    try:
        model_key, architecture = spec["model"], generator_config_from_dict(spec["architecture"])
        state_dict = state["models"][model_key]
    except (KeyError, TypeError) as err:
        raise ValueError(f"checkpoint {str(path)!r} is incomplete: no {err} for direction {chosen!r}") from None
    names = state.get("domains") or {}
    source_domain, target_domain = ("A", "B") if chosen == "AtoB" else ("B", "A")
    domains = {"source": str(names.get(source_domain, source_domain)),
               "target": str(names.get(target_domain, target_domain))}
    task = state.get("task") if isinstance(state.get("task"), str) and _TASK_NAME.match(state["task"]) else None
    provenance = {"checkpoint": str(path), "model": model_key, "epoch": state.get("epoch"),
                  "step": state.get("step")}
    config = _model_config(architecture, task=task, direction=chosen, domains=domains, source=provenance,
                           toolkit_version=str(state.get("toolkit_version", "unknown")))
    return config, state_dict


def read_model_config(path: str | Path | ModelSource, direction: str | None = None) -> dict[str, Any]:
    """The config.json dict of any model form `load` accepts (built on the fly for checkpoints)."""
    located = _locate(path, direction)
    if located.kind == "folder":
        config = _check_image_config(read_folder_config(located.path), located.path)
        return _check_folder_direction(config, located.path, direction)
    config, _ = _checkpoint_generator(read_training_checkpoint(located.path), located.path, direction)
    return config


def _check_folder_direction(config: dict[str, Any], folder: Path, direction: str | None) -> dict[str, Any]:
    check_choice("direction", direction, (*DIRECTIONS, None))
    stored = config.get("direction")
    if direction is not None and stored is not None and direction != stored:
        raise ValueError(f"weights folder {str(folder)!r} holds the {stored} generator, not {direction!r}; "
                         f"pass direction={stored!r} or load the other folder")
    return config


def load_with_config(path: str | Path | ModelSource, direction: str | None = None, device: str | torch.device = "cpu"
                     ) -> tuple[nn.Module, dict[str, Any]]:
    """Like `load`, also returning the model's config.json-style dict (architecture, normalization,
    size_multiple, domains...)."""
    check_choice("direction", direction, (*DIRECTIONS, None))
    located = _locate(path, direction)
    if located.kind == "folder":
        config, state_dict = read_weights_folder(located.path)
        config = _check_folder_direction(_check_image_config(config, located.path), located.path, direction)
        what = str(located.path / WEIGHTS_FILE)
    else:
        config, state_dict = _checkpoint_generator(read_training_checkpoint(located.path), located.path, direction)
        what = f"checkpoint {str(located.path)!r} ({config['source']['model']})"

    network = build_model(config_from_dict(config["kind"], config["architecture"]), init=False)
    load_state_dict_strict(network, state_dict, what=what)
    network.to(device).eval().requires_grad_(False)
    logger.debug("loaded %s %s from %s", config["kind"], config["architecture"]["name"], located.path)
    return network, config


def load(path: str | Path, direction: str | None = None, device: str | torch.device = "cpu") -> nn.Module:
    """A ready network (eval mode, requires_grad False) from any saved form.

    path: a weights folder; a training checkpoint file; a run directory (its
    weights/<direction>/ folder when present, else checkpoints/latest.pt); or the name of a bundled
    model or one installed by `translate pretrained`. direction: "AtoB" or
    "BtoA" for files holding both generators; None picks "AtoB", or the only one.
    A generator maps `(B, input_nc, H, W)` in [-1, 1] to `(B, output_nc, H, W)` in [-1, 1] with H, W
    multiples of its config's size_multiple.
    """
    network, _ = load_with_config(path, direction=direction, device=device)
    return network

"""The one model locator: `locate(model) -> ModelSource`.

This is the only code that decides what a name or path is. A model comes as

- a bundled name (a folder in the checkout's `weights/`), or an installed name (a folder in
  `translate.core.paths.models_dir()`, written by `translate pretrained`);
- a weights folder (config.json + model.safetensors), image or text;
- a run directory (`weights/<AtoB|BtoA|text2image|textcycle>/`, and `checkpoints/latest.pt`);
- a training checkpoint file;
- an exported `.onnx` file (image or text, told apart by its metadata).

    source = locate("maps_aerial2map")      # ModelSource(form='weights', kind='generator', ...)
    source.is_text, source.directions       # False, ('AtoB',)
    form, path = source.image_weights("AtoB")   # ('folder', .../weights/maps_aerial2map)

`translate.load`, `Translator`, `convert`, `export`, `info` and `eval` all start here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from translate.core.errors import check_choice
from translate.core.paths import bundled_dir, models_dir
from translate.formats.onnx_metadata import read_onnx_metadata

__all__ = ["DIRECTIONS", "FORMS", "IMAGE_KINDS", "TEXT_KINDS", "ModelSource", "as_source", "locate", "resolve_path",
           "ACCEPTED_FORMS"]

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
DIRECTIONS = ("AtoB", "BtoA")
TEXT_KINDS = ("text2image", "textcycle")
IMAGE_KINDS = ("generator", "discriminator")
FORMS = ("weights", "run", "checkpoint", "onnx")
ACCEPTED_FORMS = ("a weights folder (config.json + model.safetensors), a training checkpoint file written by "
                  "`translate train`, a run directory (weights/<direction>/ or checkpoints/latest.pt), an "
                  "exported .onnx file, or the name of a bundled or installed model")


@dataclass(frozen=True)
class ModelSource:
    """What `locate` found.

    Attributes:
        requested: the name or path as given.
        path: where it is (a folder, a run directory, a checkpoint file or an `.onnx` file).
        origin: "path" | "bundled" | "installed".
        form: "weights" | "run" | "checkpoint" | "onnx".
        kind: "generator" | "discriminator" (image networks) | "text2image" | "textcycle".
        directions: the CycleGAN directions an image model holds as weights folders (a checkpoint
            may hold more: `image_weights` reads it); () for text models.
        folder: the weights folder of a text model, or of a single-folder image model; else None.
    """

    requested: str
    path: Path
    origin: str
    form: str
    kind: str
    directions: tuple[str, ...] = ()
    folder: Path | None = None

    @property
    def is_text(self) -> bool:
        return self.kind in TEXT_KINDS

    @property
    def is_onnx(self) -> bool:
        return self.form == "onnx"

    def config(self) -> dict[str, Any]:
        """The text model's config.json, or an `.onnx` file's metadata (image weights: use
        `translate.formats.weights.read_model_config`, which also reads checkpoints)."""
        if self.is_onnx:
            return read_onnx_metadata(self.path)
        if self.folder is None:
            raise ValueError(f"{str(self.path)!r} is a {self.form} without a weights folder; read it with "
                             "translate.formats.weights.read_model_config")
        return _read_json(self.folder / CONFIG_FILE)

    def image_weights(self, direction: str | None = None) -> tuple[str, Path]:
        """("folder", weights folder) or ("checkpoint", file) holding the image generator of
        `direction` (None: AtoB, or the only one). Exported folders are preferred; a run's
        checkpoint serves a direction they lack."""
        check_choice("direction", direction, (None, *DIRECTIONS))
        if self.is_text or self.is_onnx:
            raise ValueError(f"{str(self.path)!r} holds a {'an ONNX' if self.is_onnx else self.kind} model, "
                             f"not PyTorch image weights; load accepts {ACCEPTED_FORMS}")
        if self.form == "checkpoint":
            return "checkpoint", self.path
        if self.form == "weights":
            return "folder", self.path
        checkpoint = self.path / "checkpoints" / "latest.pt"
        if checkpoint.is_file() and (not self.directions or direction not in (None, *self.directions)):
            return "checkpoint", checkpoint
        if self.directions:
            chosen = pick_direction(direction, list(self.directions), str(self.path / "weights"))
            return "folder", self.path / "weights" / chosen
        raise ValueError(f"{str(self.path)!r} is a directory without {CONFIG_FILE}, weights/<direction>/ or "
                         f"checkpoints/latest.pt; load accepts {ACCEPTED_FORMS}")

    def source_file(self, direction: str | None = None) -> Path:
        """The file whose bytes the weights come from (its model.safetensors, checkpoint or .onnx)."""
        if self.is_onnx:
            return self.path
        if self.is_text:
            return self.folder / WEIGHTS_FILE  # type: ignore[operator]
        form, path = self.image_weights(direction)
        return path / WEIGHTS_FILE if form == "folder" else path


def pick_direction(direction: str | None, available: list[str], where: str) -> str:
    """`direction`, checked against `available`; None picks AtoB, or the only one."""
    if direction is None:
        if "AtoB" in available:
            return "AtoB"
        if len(available) == 1:
            return available[0]
        raise ValueError(f"{where} holds several directions ({', '.join(available)}); pick one with direction=")
    if direction not in available:
        raise ValueError(f"direction {direction!r} is not in {where}; available: {', '.join(available)}")
    return direction


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{str(path)!r} is not valid JSON ({err}); re-export the weights folder") from None
    if not isinstance(value, dict):
        raise ValueError(f"{str(path)!r} does not hold a JSON object")
    return value


def _folder_kind(folder: Path) -> str | None:
    """The `kind` of a weights folder's config.json, or None when it has none or it is unreadable."""
    try:
        kind = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8")).get("kind")
    except (OSError, ValueError, AttributeError):
        return None
    return kind if isinstance(kind, str) else None


def _holds_model(folder: Path) -> bool:
    """A weights folder or a run directory."""
    return any((folder / name).exists() for name in (CONFIG_FILE, "checkpoints", "weights"))


def resolve_path(model: str | os.PathLike[str]) -> tuple[Path, str]:
    """(path, origin): the path as given when it exists, else the bundled model of that name,
    else the installed one.

    Raises:
        FileNotFoundError: none of the three, listing the bundled and installed names.
    """
    path = Path(model)
    # A plain name that is also a folder here without a model in it (e.g. the data set
    # `translate data download horse2zebra .` made) still means the installed model.
    plain_name = isinstance(model, str) and "/" not in model and os.sep not in model
    if path.exists() and not (plain_name and path.is_dir() and not _holds_model(path)):
        return path, "path"
    for folder, origin in ((bundled_dir(), "bundled"), (models_dir(), "installed")):
        if (folder / str(model)).exists():
            return folder / str(model), origin
    if path.exists():
        return path, "path"
    raise FileNotFoundError(f"no model at {str(model)!r} (expected {ACCEPTED_FORMS}), and no bundled or installed "
                            f"model of that name; bundled: "
                            f"{', '.join(_names(bundled_dir())) or 'none'}; installed in {models_dir()}: "
                            f"{', '.join(_names(models_dir())) or 'none'} (install one with "
                            "`translate pretrained NAME`)")


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if (p / CONFIG_FILE).is_file()) if folder.is_dir() else []


def locate(model: str | os.PathLike[str]) -> ModelSource:
    """Find `model` and tell what it is (see the module docstring for the forms).

    Raises:
        FileNotFoundError: nothing at that path and no bundled or installed model of that name.
        ValueError: something is there but it is no model form (a bare .safetensors file, a
            folder without a model).
    """
    path, origin = resolve_path(model)
    requested = str(model)
    if path.is_file():
        return _locate_file(requested, path, origin)
    if (path / CONFIG_FILE).is_file():
        kind = _folder_kind(path) or "generator"
        directions = () if kind in TEXT_KINDS else _folder_directions(path)
        return ModelSource(requested, path, origin, "weights", kind, directions, folder=path)
    return _locate_run(requested, path, origin)


def as_source(model: str | os.PathLike[str] | ModelSource) -> ModelSource:
    """`model` itself when it is a `ModelSource` already (located once by the caller, which then
    passes it down), else `locate(model)`."""
    return model if isinstance(model, ModelSource) else locate(model)


def _locate_file(requested: str, path: Path, origin: str) -> ModelSource:
    if path.name in (CONFIG_FILE, WEIGHTS_FILE):
        return locate(path.parent)
    if path.suffix.lower() == ".onnx":
        metadata = read_onnx_metadata(path)
        kind = metadata.get("kind") if metadata.get("kind") in TEXT_KINDS else "generator"
        direction = metadata.get("direction")
        return ModelSource(requested, path, origin, "onnx", kind, (direction,) if direction in DIRECTIONS else ())
    if path.suffix == ".safetensors":
        raise ValueError(f"{str(path)!r} is a bare safetensors file with no architecture; load the "
                         f"weights folder holding it and its {CONFIG_FILE}")
    return ModelSource(requested, path, origin, "checkpoint", "generator")


def _folder_directions(folder: Path) -> tuple[str, ...]:
    try:
        direction = _read_json(folder / CONFIG_FILE).get("direction")
    except (OSError, ValueError):
        return ()
    return (direction,) if direction in DIRECTIONS else ()


def _locate_run(requested: str, path: Path, origin: str) -> ModelSource:
    weights_root = path / "weights"
    for kind in TEXT_KINDS:
        if _folder_kind(weights_root / kind) in TEXT_KINDS:
            return ModelSource(requested, path, origin, "run", kind, folder=weights_root / kind)
    directions = tuple(d for d in DIRECTIONS if (weights_root / d / CONFIG_FILE).is_file())
    if directions or (path / "checkpoints" / "latest.pt").is_file():
        folder = weights_root / directions[0] if len(directions) == 1 else None
        return ModelSource(requested, path, origin, "run", "generator", directions, folder=folder)
    raise ValueError(f"{str(path)!r} is a directory without {CONFIG_FILE}, weights/<direction>/ or "
                     f"checkpoints/latest.pt; load accepts {ACCEPTED_FORMS}")

"""The well-known folders: bundled models, installed models and the cache.

The installed models and the cache honour an environment variable first, so tests and services
can move them.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["bundled_dir", "cache_dir", "models_dir", "BUNDLED_DIR"]


def _find_bundled() -> Path:
    """The bundled models: `translate/bundled/` in an installed wheel (setup.py maps the
    repository's weights/ there), else weights/ beside the package (a checkout, an editable install)."""
    package = Path(__file__).resolve().parents[1]
    installed = package / "bundled"
    return installed if installed.is_dir() else package.parent / "weights"


BUNDLED_DIR = _find_bundled()


def bundled_dir() -> Path:
    """The folder of bundled models: `translate/bundled/` of an installed wheel, or `weights/` of
    the checkout."""
    return BUNDLED_DIR


def models_dir() -> Path:
    """Where `translate pretrained` installs models: `$TRANSLATE_MODELS`, else
    `$XDG_DATA_HOME/translate/models`, else `~/.local/share/translate/models`."""
    if os.environ.get("TRANSLATE_MODELS"):
        return Path(os.environ["TRANSLATE_MODELS"])
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "translate" / "models"


def cache_dir() -> Path:
    """Where derived files are kept (ONNX copies of PyTorch models, TensorRT engines, Inception
    features): `$TRANSLATE_CACHE`, else `$XDG_CACHE_HOME/translate`, else `~/.cache/translate`."""
    if os.environ.get("TRANSLATE_CACHE"):
        return Path(os.environ["TRANSLATE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "translate"

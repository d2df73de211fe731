"""ONNX copies of PyTorch models, exported once into the cache and reused.

A copy is keyed by the checksum of the file the weights come from, the direction, the precision
and the toolkit version: $TRANSLATE_CACHE/onnx/ (see `translate.core.paths.cache_dir`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from translate.core.files import sha256_file
from translate.core.paths import cache_dir
from translate.core.version import __version__
from translate.deploy.export import export_onnx
from translate.deploy.text_export import export_text_onnx
from translate.formats.locator import ModelSource

__all__ = ["onnx_copy", "text_onnx_copy"]

logger = logging.getLogger(__name__)


def onnx_copy(source: ModelSource, *, direction: str | None, precision: str) -> Path:
    """Export `source` (a located weights folder / run / checkpoint) to ONNX once; later calls reuse the file."""
    digest = sha256_file(source.source_file(direction))[:16]
    path = cache_dir() / "onnx" / f"{digest}-{direction or 'single'}-{precision}-v{__version__}.onnx"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        logger.info("exporting %s to %s (once; later runs reuse it)", source.requested, path)
        export_onnx(source, path, direction=direction, half=precision == "fp16")
    return path


def text_onnx_copy(source: ModelSource) -> Path:
    """Export a located text model folder / run once (text input "embedding", fp32); later calls reuse the file."""
    if not source.is_text or source.folder is None:
        raise FileNotFoundError(f"no text model weights folder at {source.requested!r}")
    digest = sha256_file(source.source_file())[:16]
    path = cache_dir() / "onnx" / f"{digest}-text-embedding-fp32-v{__version__}.onnx"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        logger.info("exporting %s to %s (once; later runs reuse it)", source.requested, path)
        export_text_onnx(source, path, text_input="embedding")
    return path

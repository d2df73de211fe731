"""The metadata our `.onnx` files carry (string key/value pairs in the model proto), read back typed.

Image exports (`translate.deploy.export`) and text exports (`translate.deploy.text_export`)
write the same format name and version; text models add their own keys (kind, text inputs).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

__all__ = ["ONNX_FORMAT", "ONNX_FORMAT_VERSION", "read_onnx_metadata", "FILE_PRECISION"]

logger = logging.getLogger(__name__)

ONNX_FORMAT = "translate.onnx"
ONNX_FORMAT_VERSION = 1
# The metadata's "precision" -> the precision names of the Python API.
FILE_PRECISION = {"float32": "fp32", "float16": "fp16", "int8": "int8"}
_JSON_KEYS = ("architecture", "domains", "normalization", "parity_cases", "text_encoder", "baked_prompts", "inputs")
_INT_KEYS = ("format_version", "input_channels", "output_channels", "size_multiple", "opset", "embedding_dim",
             "max_length", "pad_id", "bos_id", "eos_id", "noise_dim", "image_size", "input_resize")
_FLOAT_KEYS = ("parity_max_abs_error", "parity_tolerance")


def read_onnx_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata of an exported .onnx file; JSON values decoded, counts as int, errors as float.

    Keys not written by translate are returned as stored (strings).
    """
    import onnx  # imported here: `onnx` takes ~0.15 s to import, and only ONNX files need it

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no ONNX file at {str(path)!r}")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # onnx raises DecodeError / ValueError / OSError depending on the damage
        raise ValueError(f"{str(path)!r} is not a readable ONNX model ({type(err).__name__}: {err})") from None
    metadata: dict[str, Any] = {}
    for prop in proto.metadata_props:
        value: Any = prop.value
        try:
            if prop.key in _JSON_KEYS:
                value = json.loads(value)
            elif prop.key in _INT_KEYS:
                value = int(value)
            elif prop.key in _FLOAT_KEYS:
                value = float(value)
        except ValueError:
            logger.warning("metadata %r of %s is malformed: %r", prop.key, path, prop.value)
        metadata[prop.key] = value
    metadata.setdefault("opset", max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
                                     default=None))
    return metadata

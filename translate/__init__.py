"""translate: image-to-image translation toolkit (CycleGAN, pix2pix, ONNX deployment)."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load"]


def __getattr__(name: str):
    # Lazy so that `import translate` (and the CLI's --help) does not pay for importing torch.
    if name == "load":
        from translate.weights import load

        return load
    raise AttributeError(f"module 'translate' has no attribute {name!r}")

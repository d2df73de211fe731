"""translate: image-to-image translation toolkit (CycleGAN, pix2pix, ONNX deployment)."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Translator", "__version__", "load"]


def __getattr__(name: str):
    # Lazy so that `import translate` (and the CLI's --help) does not pay for importing torch.
    if name == "load":
        from translate.weights import load

        return load
    if name == "Translator":
        from translate.translator import Translator

        return Translator
    raise AttributeError(f"module 'translate' has no attribute {name!r}")

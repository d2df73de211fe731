"""translate: image-to-image translation toolkit (CycleGAN, pix2pix, ONNX deployment)."""

from __future__ import annotations

from translate.core.version import __version__

__all__ = ["Translator", "__version__", "load"]


def __getattr__(name: str):
    # Lazy so that `import translate` (and the CLI's --help) does not pay for importing torch.
    if name == "load":
        from translate.formats.weights import load

        return load
    if name == "Translator":
        from translate.deploy.translator import Translator

        return Translator
    raise AttributeError(f"module 'translate' has no attribute {name!r}")

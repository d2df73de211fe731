"""translate: image-to-image translation toolkit (CycleGAN, pix2pix, ONNX deployment)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from translate.core.version import __version__

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["Translator", "__version__", "load"]


def load(path: str | os.PathLike[str], direction: str | None = None,
         device: str | torch.device = "cpu") -> nn.Module:
    """A ready model (eval mode, no gradients) from any saved PyTorch form, image or text.

    path: a weights folder, a training checkpoint file, a run directory, or the name of a bundled
    model or one installed by `translate pretrained` (see `translate.formats.locator`).

    - An image generator or discriminator (`translate.formats.weights.load`): direction "AtoB" or
      "BtoA" picks one of a run's or checkpoint's generators (None: "AtoB", or the only one). A
      generator maps `(B, input_nc, H, W)` in [-1, 1] to `(B, output_nc, H, W)` in [-1, 1], H and W
      multiples of its config's size_multiple.
    - A text model (`translate.text.model.load_text_model`): a `Text2ImageModel` (`.generate`) or a
      `TextTranslationModel` (`.translate`); it has no direction, so `direction` must be None.

    Raises:
        FileNotFoundError: nothing there. UnsupportedFormatVersionError: a newer release wrote it.
        ValueError: something else than a PyTorch model there (an `.onnx` file: use `Translator`).
    """
    # Imported here: `import translate` (and the command line's --help) must not import torch. The
    # text layer sits above formats, so this is the one place that sees both kinds of model.
    from translate.core.errors import InvalidCombinationError
    from translate.formats.locator import locate
    from translate.formats.weights import load as load_image_model
    from translate.text.model import load_text_model

    source = locate(path)
    if not source.is_text or source.is_onnx:
        return load_image_model(path, direction=direction, device=device)
    if direction is not None:
        raise InvalidCombinationError(f"{str(path)!r} holds a {source.kind} text model, which has no direction; "
                                      "pass direction=None", "direction")
    return load_text_model(path, device=device)


def __getattr__(name: str):
    # Lazy so that `import translate` (and the CLI's --help) does not pay for importing torch.
    if name == "Translator":
        from translate.deploy.translator import Translator

        return Translator
    raise AttributeError(f"module 'translate' has no attribute {name!r}")

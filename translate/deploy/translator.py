"""`Translator`: translate PIL images, numpy arrays or tensors with any model form.

    from translate import Translator
    t = Translator("runs/h2z")                 # weights folder, run dir, checkpoint, .onnx, or a name in weights/
    zebra = t(Image.open("horse.jpg"))         # PIL in, PIL out (same size)
    batch = t(np.stack([a, b]))                # (N, H, W, C) uint8 in, (N, H, W, C_out) uint8 out
    y = t(torch.rand(2, 3, 100, 90) * 2 - 1)   # (B, C, H, W) in [-1, 1] in, same layout out

Every input keeps its size: it is padded by reflection to the model's size multiple and cropped
back. PyTorch checkpoints run on PyTorch; `.onnx` files on ONNX Runtime (CPU here, CUDA where
onnxruntime-gpu finds a GPU), so a service needs no PyTorch model code for them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from translate.core.device import Capabilities
from translate.core.images import array_to_tensor, pil_to_tensor, tensor_to_array, tensor_to_pil
from translate.data.images import convert_channels
from translate.deploy.backends import Backend, make_backend
from translate.deploy.inference import translate_tensor

logger = logging.getLogger(__name__)

ImageInput = Union[Image.Image, np.ndarray, Tensor, list]


class Translator:
    """Load a model once, translate many inputs.

    Args:
        model: a weights folder, run directory, training checkpoint, `.onnx` file, or the name of a
            bundled model in weights/.
        direction: AtoB | BtoA for files that hold both CycleGAN generators.
        device: auto | cpu | cuda | mps.
        backend: None runs the model in its own form (`.onnx` on ONNX Runtime, the rest on PyTorch);
            "onnxruntime" exports a PyTorch model once (cached) and runs it there; "auto" picks the
            fastest for `precision` (see `translate.deploy.backends`).
        precision: fp32 (default: exact) | fp16 | bf16 | int8 | auto (fastest the device runs well).
        provider: tensorrt | cuda | cpu to force an ONNX Runtime provider.
        calibration: image files for int8 (ranges measured on the first 16, checked on the next 4).
        capabilities: the machine's, for the auto choices (default: this machine's).

    Attributes:
        backend: the `Backend` that runs the model (its `describe()` says on what, at what precision).
        backend_name: "torch" | "onnxruntime".

    Raises:
        InvalidChoiceError / InvalidCombinationError / FileNotFoundError: see `make_backend`.
    """

    def __init__(self, model: str | Path, *, direction: str | None = None, device: str = "auto",
                 backend: str | None = None, precision: str = "fp32", provider: str | None = None,
                 calibration: list[str | Path] | None = None, capabilities: Capabilities | None = None) -> None:
        self.backend: Backend = make_backend(model, backend=backend, precision=precision, device=device,
                                             provider=provider, direction=direction,
                                             calibration=[Path(p) for p in calibration] if calibration else None,
                                             capabilities=capabilities)
        self.config: dict[str, Any] = self.backend.config
        self.backend_name = self.backend.name  # "torch" | "onnxruntime"
        self.precision = self.backend.precision
        self.device = self.backend.device
        self.input_channels = self.backend.input_channels
        self.output_channels = self.backend.output_channels
        self.size_multiple = self.backend.size_multiple

    def translate_tensor(self, x: Tensor) -> Tensor:
        """`(B, C_in, H, W)` in [-1, 1], any H and W -> `(B, C_out, H, W)` in [-1, 1]."""
        if x.ndim != 4 or x.shape[1] != self.input_channels:
            raise ValueError(f"expected a (B, {self.input_channels}, H, W) tensor in [-1, 1], got shape "
                             f"{tuple(x.shape)}")
        out = translate_tensor(self.backend, x.to(self.backend.device, torch.float32), self.size_multiple)
        return out.to(x.device)

    def __call__(self, images: ImageInput) -> ImageInput:
        """Translate one input or a batch; the output has the input's kind, layout and size.

        - PIL image -> PIL image; a list of PIL images -> a list (sizes may differ).
        - numpy uint8 `(H, W)`, `(H, W, C)` or `(N, H, W, C)` -> numpy uint8 `(..., H, W, C_out)`
          (a batch of grayscale images is `(N, H, W, 1)`).
        - torch `(C, H, W)` or `(B, C, H, W)` float in [-1, 1] -> the same layout in [-1, 1].
        """
        if isinstance(images, Image.Image):
            return tensor_to_pil(self.translate_tensor(pil_to_tensor(convert_channels(images, self.input_channels)))[0])
        if isinstance(images, list):
            return [self(image) for image in images]
        if isinstance(images, np.ndarray):
            return self._translate_array(images)
        if isinstance(images, Tensor):
            if images.ndim == 3:
                return self.translate_tensor(images[None])[0]
            return self.translate_tensor(images)
        raise TypeError(f"cannot translate a {type(images).__name__}; pass a PIL image, a numpy uint8 array "
                        "(H, W[, C]) or (N, H, W, C), a torch tensor (B, C, H, W) in [-1, 1], or a list of these")

    def _translate_array(self, array: np.ndarray) -> np.ndarray:
        if array.dtype != np.uint8:
            raise ValueError(f"numpy input must be uint8 images in 0..255, got dtype {array.dtype}; "
                             "pass a float tensor in [-1, 1] for other ranges")
        single = array.ndim in (2, 3)
        batch = array[None] if single else array
        if batch.ndim == 3:  # a single grayscale (H, W), now (1, H, W); batches need (N, H, W, 1)
            batch = batch[..., None]
        if batch.ndim != 4 or batch.shape[-1] != self.input_channels:
            raise ValueError(f"expected uint8 arrays (H, W, {self.input_channels}) or (N, H, W, "
                             f"{self.input_channels}), got shape {array.shape}")
        result = tensor_to_array(self.translate_tensor(array_to_tensor(batch)))
        return result[0] if single else result

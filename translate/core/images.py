"""Image value conversions, written once: [-1, 1] float <-> uint8, and PIL <-> tensor.

Networks see `(B, C, H, W)` float in [-1, 1]; files and clients see uint8 in 0..255. The mapping
is x / 127.5 - 1 one way and round((clamp(y, -1, 1) + 1) * 127.5) the other, so uint8 -> float
-> uint8 is exact.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import Tensor

__all__ = ["from_uint8", "to_uint8", "pil_to_tensor", "tensor_to_pil", "array_to_tensor", "tensor_to_array"]


def from_uint8(x: Tensor) -> Tensor:
    """uint8 (any shape) in 0..255 -> float32 in [-1, 1], same shape."""
    return x.to(torch.float32) / 127.5 - 1.0


def to_uint8(x: Tensor) -> Tensor:
    """float (any shape) in [-1, 1] -> uint8 in 0..255 (clamped, rounded), same shape and device."""
    return ((x.float().clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)


def array_to_tensor(array: np.ndarray) -> Tensor:
    """uint8 `(N, H, W, C)` -> float32 `(N, C, H, W)` in [-1, 1] (a copy: the array may be read-only)."""
    return from_uint8(torch.from_numpy(np.array(array)).permute(0, 3, 1, 2))


def tensor_to_array(x: Tensor) -> np.ndarray:
    """`(N, C, H, W)` in [-1, 1] -> uint8 `(N, H, W, C)` on the host."""
    return to_uint8(x).permute(0, 2, 3, 1).cpu().numpy()


def pil_to_tensor(image: Image.Image) -> Tensor:
    """A PIL image (already in the wanted mode) -> `(1, C, H, W)` float32 in [-1, 1]."""
    array = np.asarray(image)
    array = array[..., None] if array.ndim == 2 else array
    return array_to_tensor(array[None])


def tensor_to_pil(x: Tensor) -> Image.Image:
    """`(C, H, W)` in [-1, 1] with C in {1, 3, 4} -> a PIL image ("L", "RGB" or "RGBA")."""
    mode = {1: "L", 3: "RGB", 4: "RGBA"}.get(x.shape[0]) if x.ndim == 3 else None
    if mode is None:
        raise ValueError(f"expected a (C, H, W) tensor with C = 1, 3 or 4 to make an image, got shape "
                         f"{tuple(x.shape)}")
    array = tensor_to_array(x[None])[0]
    return Image.fromarray(array[..., 0] if mode == "L" else array, mode)

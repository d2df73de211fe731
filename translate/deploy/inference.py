"""Full-resolution inference helpers shared by `Translator` and `translate.deploy.convert`.

Each image is padded (by reflection where it can be) to the model's size multiple (4 for ResNet
generators, 256 for unet_256), translated, and cropped back, so the output has the input's size.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from translate.core.images import from_uint8, to_uint8
from translate.deploy.tiling import pad_end


def pad_to_multiple(x: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """Pad `(B, C, H, W)` on the bottom/right to multiples of `multiple` (by `tiling.pad_end`'s rule:
    reflection, or the edge repeated where the image is too small to reflect); returns (padded, (H, W))."""
    height, width = x.shape[-2:]
    return pad_end(x, height + (-height) % multiple, width + (-width) % multiple), (height, width)


def translate_tensor(model: Callable[[Tensor], Tensor], x: Tensor, multiple: int) -> Tensor:
    """Run `model` (a generator, or any callable on padded tensors) on `(B, C, H, W)` in [-1, 1] of
    any size; returns `(B, C_out, H, W)` in [-1, 1]."""
    padded, (height, width) = pad_to_multiple(x, multiple)
    with torch.inference_mode():
        out = model(padded)
    return out[..., :height, :width]


def translate_uint8(model: Callable[[Tensor], Tensor], images: Tensor, multiple: int,
                    device: torch.device | str = "cpu") -> np.ndarray:
    """`(B, C_in, H, W)` uint8 images of one size -> `(B, H, W, C_out)` uint8 outputs of that size:
    `convert`'s and `translate serve`'s inference step, so both give the same bytes."""
    x = from_uint8(images.to(device))  # (B, C, H, W) in [-1, 1]
    out = translate_tensor(model, x, multiple)
    # Made contiguous on the device, so the encoders get plain arrays (no strided copies).
    return to_uint8(out).permute(0, 2, 3, 1).contiguous().cpu().numpy()


def output_paths(sources: list[Path], input_dir: Path, output_dir: Path, fmt: str,
                 suffix: str = "") -> dict[Path, Path]:
    """Same relative path and stem (plus `suffix`), new extension. Where two inputs would collide
    (a.jpg and a.png both -> a.png), each keeps its old extension in the name: a_jpg.png, a_png.png."""
    plain = {s: (output_dir / s.relative_to(input_dir)).with_name(f"{s.stem}{suffix}.{fmt}") for s in sources}
    counts: dict[Path, int] = defaultdict(int)
    for path in plain.values():
        counts[path] += 1
    return {s: p if counts[p] == 1 else p.with_name(f"{s.stem}_{s.suffix.lstrip('.').lower()}{suffix}.{fmt}")
            for s, p in plain.items()}

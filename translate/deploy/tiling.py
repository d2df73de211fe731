"""Tiled inference with blended seams, for images too large to translate whole.

A generator's activations grow with the image area, so a large image (a 10k x 10k aerial scan)
can exceed the memory of the device. Here the image is cut into `tile` x `tile` tiles that share
`overlap` pixels with their neighbours, the tiles are translated in batches of at most
`max_batch`, and the outputs are stitched back.

Why the overlap and the blend: an instance-norm generator normalises with the statistics of
what it sees, so each tile is translated with its own statistics, and convolutions see padding
at the tile edges. Two neighbouring tiles therefore disagree near their shared edge, and pasting
them side by side leaves a visible seam. With an overlap, each output pixel near a shared edge
is a weighted mean of the tiles covering it, with weights that fall smoothly (raised cosine) to
almost 0 at a tile's inner edge, so one tile's prediction fades into the next. At the image
border there is no neighbour to fade into, and the weight stays 1 there.

Blending hides seams; it does not give the whole-image result: each tile still keeps its own
statistics, so use the largest tile that fits in memory and tile only images that need it.

Cost: every pixel inside an overlap is computed by two (four at corners) tiles, so the work is
about `(tile / (tile - overlap)) ** 2` times that of a whole-image pass (1.78x for tile 64,
overlap 16; 1.14x for tile 512, overlap 32). Large tiles with a modest overlap are cheapest.
"""

from __future__ import annotations

import logging
import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from translate.core.errors import InvalidValueError

logger = logging.getLogger(__name__)

__all__ = ["check_tile", "pad_end", "tile_grid", "translate_tiled"]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_positive(name: str, value: int) -> None:
    if not _is_int(value) or value < 1:
        raise InvalidValueError(name, value, "a positive integer")


def _nearest_multiple(value: int, multiple: int) -> int:
    """The positive multiple of `multiple` nearest to `value`; a tie goes to the smaller one (a
    smaller tile never needs more memory, and memory is why one tiles)."""
    if value <= multiple:
        return multiple
    lower = value // multiple * multiple
    upper = lower + multiple
    return upper if value - lower > upper - value else lower


def check_tile(tile: int, overlap: int, multiple: int) -> None:
    """Raise `InvalidValueError` unless `tile` is a positive multiple of `multiple` (the model's size
    multiple; 1 before the model is known) and `overlap` an integer with `0 <= overlap < tile // 2`
    (0 is always allowed). The error names the bad value, what was expected and the nearest valid
    value.

    Why `tile // 2`: each tile ramps down over `overlap` pixels at both ends; two ramps that meet
    would leave no pixel of the tile with full weight.
    """
    _check_positive("multiple", multiple)
    if not _is_int(tile) or tile < 1 or tile % multiple:
        expected = "a positive integer" if multiple == 1 else \
            f"a positive multiple of the model's size multiple {multiple}"
        nearest = _nearest_multiple(tile, multiple) if _is_int(tile) else multiple
        raise InvalidValueError("tile", tile, expected, f"the nearest is {nearest}")
    highest = max(0, tile // 2 - 1)
    if not _is_int(overlap) or not 0 <= overlap <= highest:
        nearest = min(max(overlap, 0), highest) if _is_int(overlap) else 0
        raise InvalidValueError("overlap", overlap, f"an integer in 0..{highest} for tile={tile}",
                                f"the nearest is {nearest} (tile // 8 = {tile // 8} is the default)")


def tile_grid(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of the tiles covering `[0, length)` along one axis.

    Tiles start every `tile - overlap` pixels from 0; the last one is shifted back so that it
    ends exactly at `length` (it may then share more than `overlap` pixels with the one before),
    so no tile reaches beyond the image. A single tile `[0]` when `length <= tile` (the caller
    pads that axis up to at most `tile`).

    Example: `tile_grid(160, 64, 16)` -> `[0, 48, 96]`; `tile_grid(40, 64, 16)` -> `[0]`.
    """
    _check_positive("length", length)
    check_tile(tile, overlap, 1)
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, tile - overlap))
    starts.append(length - tile)
    return starts


def _ramp(overlap: int) -> Tensor:
    """`(overlap,)` rising raised-cosine weights, strictly inside (0, 1).

    `ramp[i] + ramp[overlap - 1 - i] == 1`: where two tiles share exactly `overlap` pixels,
    the rising ramp of one and the falling ramp of the other sum to 1 (a partition of unity).
    """
    position = torch.arange(1, overlap + 1, dtype=torch.float64) / (overlap + 1)
    return (torch.sin(position * math.pi / 2) ** 2).float()


def _axis_weights(starts: list[int], size: int, length: int, overlap: int) -> list[Tensor]:
    """One `(size,)` window per tile: 1 inside, ramping down over `overlap` px toward an edge
    that touches another tile; edges at the image border keep weight 1."""
    windows = []
    for start in starts:
        window = torch.ones(size)
        if overlap > 0:
            if start > 0:
                window[:overlap] = _ramp(overlap)
            if start + size < length:
                window[size - overlap:] = _ramp(overlap).flip(0)
        windows.append(window)
    return windows


def pad_end(x: Tensor, height: int, width: int) -> Tensor:
    """Pad `(B, C, H, W)` on the bottom and right up to `(height, width)` (each >= H, W).

    Reflection keeps border statistics natural; along an axis where the pad is as large as the
    image (a small image under a U-Net's multiple of 256), reflection is impossible and the edge
    repeats. The rule is per axis: a wide strip still reflects along its width.
    """
    for dim, target in ((-2, height), (-1, width)):
        pad = target - x.shape[dim]
        if pad > 0:
            pads = (0, pad, 0, 0) if dim == -1 else (0, 0, 0, pad)
            x = F.pad(x, pads, mode="reflect" if pad < x.shape[dim] else "replicate")
    return x


def translate_tiled(run: Callable[[Tensor], Tensor], x: Tensor, *, tile: int, overlap: int,
                    multiple: int, max_batch: int = 4) -> Tensor:
    """Translate `x` tile by tile with `run` and blend the tiles back into one image.

    Args:
        run: the model, `(N, C, h, w) -> (N, C_out, h, w)`, with h and w multiples of `multiple`
            and N <= `max_batch`. Called under the caller's grad mode: wrap the call in
            `torch.inference_mode()` for deployment (gradients do flow through otherwise).
        x: `(B, C, H, W)` float in [-1, 1], any H and W.
        tile: tile side in pixels, a multiple of `multiple`.
        overlap: pixels shared by neighbouring tiles, `0 <= overlap < tile // 2`
            (0: tiles are pasted side by side, with visible seams for instance-norm models).
        multiple: the model's size multiple (4 for ResNet generators, 256 for unet_256).
        max_batch: at most this many tiles per `run` call, which bounds the memory used.

    Returns:
        `(B, C_out, H, W)` float32 on `x`'s device, in `run`'s output range.

    An axis at least `tile` long is covered by tiles that end flush with the border (no
    padding); a shorter axis is padded (reflection where possible) up to `multiple` and
    cropped back afterwards.
    """
    if not isinstance(x, Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"x must be a (B, C, H, W) tensor, got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"x must be a float tensor in [-1, 1], got dtype {x.dtype}; "
                         "convert uint8 images with translate.core.images.from_uint8")
    if x.numel() == 0:
        raise ValueError(f"x must not be empty, got shape {tuple(x.shape)}")
    check_tile(tile, overlap, multiple)
    _check_positive("max_batch", max_batch)

    batch, _, height, width = x.shape
    # An axis shorter than a tile becomes a single tile of its own size, rounded up to `multiple`.
    tile_h = tile if height >= tile else height + (-height) % multiple
    tile_w = tile if width >= tile else width + (-width) % multiple
    padded = pad_end(x, tile_h, tile_w)
    full_h, full_w = padded.shape[-2:]

    starts_y = tile_grid(full_h, tile_h, overlap if height >= tile else 0)
    starts_x = tile_grid(full_w, tile_w, overlap if width >= tile else 0)
    weights_y = _axis_weights(starts_y, tile_h, full_h, overlap)
    weights_x = _axis_weights(starts_x, tile_w, full_w, overlap)
    jobs = [(b, iy, ix) for b in range(batch) for iy in range(len(starts_y)) for ix in range(len(starts_x))]
    logger.debug("tiling %s into %d tiles of %dx%d (overlap %d), %d per call",
                 tuple(x.shape), len(jobs), tile_h, tile_w, overlap, max_batch)

    windows = {(iy, ix): torch.outer(weights_y[iy], weights_x[ix]).to(x.device)
               for iy in range(len(starts_y)) for ix in range(len(starts_x))}
    weight_sum = torch.zeros(full_h, full_w, device=x.device, dtype=torch.float32)
    for (iy, ix), window in windows.items():
        weight_sum[starts_y[iy]:starts_y[iy] + tile_h, starts_x[ix]:starts_x[ix] + tile_w] += window

    accumulated: Tensor | None = None  # allocated once the first call reveals C_out
    for first in range(0, len(jobs), max_batch):
        chunk = jobs[first:first + max_batch]
        tiles = torch.stack([padded[b, :, starts_y[iy]:starts_y[iy] + tile_h,
                                    starts_x[ix]:starts_x[ix] + tile_w] for b, iy, ix in chunk])
        out = run(tiles)
        if not isinstance(out, Tensor) or out.dim() != 4 or out.shape[0] != len(chunk) \
                or tuple(out.shape[-2:]) != (tile_h, tile_w):
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(f"run must map (N, C, h, w) to (N, C_out, h, w); given "
                             f"{tuple(tiles.shape)} it returned {got}")
        if accumulated is None:
            accumulated = torch.zeros(batch, out.shape[1], full_h, full_w, device=x.device,
                                      dtype=torch.float32)
        elif out.shape[1] != accumulated.shape[1]:
            raise ValueError(f"run returned {out.shape[1]} channels, earlier {accumulated.shape[1]}")
        out = out.to(device=x.device, dtype=torch.float32)
        for k, (b, iy, ix) in enumerate(chunk):
            top, left = starts_y[iy], starts_x[ix]
            accumulated[b, :, top:top + tile_h, left:left + tile_w] += out[k] * windows[iy, ix]
    assert accumulated is not None  # internal: x is non-empty, so there was at least one call
    return (accumulated / weight_sum)[..., :height, :width]

"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training"):
the same random, differentiable transformations on every image the discriminator sees, real and
fake alike, so that D cannot memorise a small training set and G still gets gradients through them.

    augment = DiffAugment("color,translation,cutout", seed=0)
    d(augment(real_b)); d(augment(fake_b))       # (B, C, H, W) in [-1, 1], new draws per call

Policies (DiffAugment's, at its strengths):
- color: brightness + U(-0.5, 0.5), saturation x U(0, 2) around the pixel's channel mean, contrast
  x U(0.5, 1.5) around the image's mean; no clamping (a clamp would stop gradients).
- translation: a whole-pixel shift of up to 1/8 of each side, zeros shifted in.
- cutout: a zeroed square of half each side, anywhere (it may hang over the border).

Each image of a batch gets its own draw. The draws come from the object's own generator, whose
state a checkpoint keeps, so a resumed run sees the same augmentations as an uninterrupted one.
"""

from __future__ import annotations

from typing import Any

import kornia.geometry.transform as kgt
import torch
from torch import Tensor

from translate.core.errors import InvalidValueError

__all__ = ["DIFFAUG_POLICIES", "DiffAugment", "parse_policy"]

DIFFAUG_POLICIES = ("color", "translation", "cutout")


def parse_policy(value: Any, name: str = "diffaug") -> tuple[str, ...]:
    """`"color,translation,cutout"` (any subset, any order, or "" for none) -> the policies in
    DIFFAUG_POLICIES' order; InvalidValueError names an unknown or repeated one."""
    expected = f"comma-separated policies from {', '.join(DIFFAUG_POLICIES)} (or '' for none), e.g. 'color,translation,cutout'"
    if not isinstance(value, str):
        raise InvalidValueError(name, value, expected)
    items = [item.strip() for item in value.split(",") if item.strip()]
    if any(item not in DIFFAUG_POLICIES for item in items) or len(set(items)) != len(items):
        raise InvalidValueError(name, value, expected)
    return tuple(policy for policy in DIFFAUG_POLICIES if policy in items)


class DiffAugment:
    """Callable `(B, C, H, W) -> (B, C, H, W)`, differentiable in its input; `policy` as for
    `parse_policy`. An empty policy returns its input unchanged."""

    def __init__(self, policy: str, seed: int = 0) -> None:
        self.policies = parse_policy(policy)
        self.generator = torch.Generator().manual_seed(seed)

    def _uniform(self, batch: int, low: float, high: float, x: Tensor) -> Tensor:
        draw = torch.rand(batch, 1, 1, 1, generator=self.generator)
        return (low + (high - low) * draw).to(device=x.device, dtype=x.dtype)

    def color(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        x = x + self._uniform(n, -0.5, 0.5, x)
        channel_mean = x.mean(dim=1, keepdim=True)
        x = (x - channel_mean) * self._uniform(n, 0.0, 2.0, x) + channel_mean
        image_mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - image_mean) * self._uniform(n, 0.5, 1.5, x) + image_mean

    def translation(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        limits = torch.tensor([w // 8, h // 8])
        # whole pixels in [-limit, limit] for x and y, drawn per image
        shift = (torch.rand(n, 2, generator=self.generator) * (2 * limits + 1)).floor() - limits
        return kgt.translate(x, shift.to(device=x.device, dtype=x.dtype), mode="nearest", padding_mode="zeros",
                             align_corners=True)

    def cutout(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        size_h, size_w = max(h // 2, 1), max(w // 2, 1)
        # the square's top-left corner, so that its centre is anywhere in the image
        top = (torch.rand(n, generator=self.generator) * (h + size_h % 2)).floor().long() - size_h // 2
        left = (torch.rand(n, generator=self.generator) * (w + size_w % 2)).floor().long() - size_w // 2
        rows, cols = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
        inside = ((rows >= top.view(n, 1, 1)) & (rows < (top + size_h).view(n, 1, 1))
                  & (cols >= left.view(n, 1, 1)) & (cols < (left + size_w).view(n, 1, 1)))
        return x * (~inside).unsqueeze(1).to(device=x.device, dtype=x.dtype)

    def __call__(self, x: Tensor) -> Tensor:
        for policy in self.policies:
            x = _OPERATIONS[policy](self, x)
        return x

    def state_dict(self) -> dict[str, Any]:
        return {"policy": ",".join(self.policies), "rng": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["rng"])


_OPERATIONS = {"color": DiffAugment.color, "translation": DiffAugment.translation, "cutout": DiffAugment.cutout}

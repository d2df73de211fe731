"""The image history buffer of Shrivastava et al. (2017), as the reference CycleGAN uses it."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class ImagePool:
    """Feeds the discriminator a mix of current and earlier generated images.

    Until the pool holds `pool_size` images every image passes through and is stored; after that
    each image is, with probability 1/2, swapped for a stored one (which it replaces). Its own
    random generator makes the draws reproducible and lets a checkpoint carry them.
    """

    def __init__(self, pool_size: int, seed: int = 0) -> None:
        if pool_size < 0:
            raise ValueError(f"pool_size must be >= 0, got {pool_size}")
        self.pool_size = pool_size
        self.images: list[Tensor] = []
        self.generator = torch.Generator().manual_seed(seed)

    def query(self, images: Tensor) -> Tensor:
        """`images`: `(B, C, H, W)`; returns `(B, C, H, W)`, detached."""
        images = images.detach()
        if self.pool_size == 0:
            return images
        out = []
        for image in images:
            image = image.unsqueeze(0)
            if len(self.images) < self.pool_size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=self.generator).item() > 0.5:
                index = int(torch.randint(0, self.pool_size, (), generator=self.generator))
                out.append(self.images[index].clone())
                self.images[index] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self) -> dict[str, Any]:
        stored = torch.cat(self.images).cpu() if self.images else torch.empty(0)
        return {"pool_size": self.pool_size, "images": stored, "rng": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str = "cpu") -> None:
        self.pool_size = int(state["pool_size"])
        stored = state["images"]
        self.images = [image.unsqueeze(0).to(device) for image in stored] if stored.numel() else []
        self.generator.set_state(state["rng"])

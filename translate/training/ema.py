"""An exponential moving average of a network's weights (the generator copy GANs sample from).

Averaging G's weights over the last few thousand steps removes the step-to-step wobble that
adversarial training leaves in them; BigGAN and StyleGAN sample from such a copy.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA(nn.Module):
    """`decay`-weighted running average of `model`'s parameters; buffers are copied as they are.

    The first updates average with a smaller effective decay, `min(decay, (1 + n) / (10 + n))`
    after n updates, so the copy follows the model early on instead of remembering its
    initialisation. The update count is a buffer: a checkpointed run resumes the same average.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), e.g. 0.999, got {decay!r}")
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards `model` (a network of the same architecture)."""
        n = int(self.updates)
        decay = min(self.decay, (1 + n) / (10 + n))
        for averaged, current in zip(self.model.parameters(), model.parameters(), strict=False):
            averaged.lerp_(current.detach(), 1.0 - decay)
        for averaged, current in zip(self.model.buffers(), model.buffers(), strict=False):
            averaged.copy_(current)
        self.updates += 1

    def forward(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return self.model(*args, **kwargs)

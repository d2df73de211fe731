"""A DistributedSampler that can resume in the middle of an epoch."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class ResumableSampler(Sampler[int]):
    """Shuffled, sharded dataset indices with ``set_epoch`` and mid-epoch ``set_start``.

    Like ``torch.utils.data.DistributedSampler(drop_last=False)``: the epoch's order (a permutation
    from ``torch.Generator().manual_seed(seed + epoch)``, or ``0..length-1`` without shuffle) is
    padded by repeating its head to a multiple of ``world_size``, and rank ``r`` takes positions
    ``r, r + world_size, ...``. Every rank therefore sees the same number of samples.

    ``set_start(k)`` skips the first ``k`` samples of this rank's order for the current epoch, so a
    run stopped after ``k`` samples continues with exactly the ones it had not seen. Moving to a
    different epoch with :meth:`set_epoch` resets the start to 0; calling it again with the same
    epoch keeps it, so a resume can call ``set_epoch(e); set_start(k)`` before the usual
    ``for epoch in range(e, ...): sampler.set_epoch(epoch)`` loop.

    Raises:
        ValueError: ``length`` < 1, ``world_size`` < 1, or ``rank`` outside ``[0, world_size)``.
    """

    def __init__(
        self, length: int, *, shuffle: bool = True, seed: int = 0, rank: int = 0, world_size: int = 1
    ) -> None:
        if length < 1:
            raise ValueError(f"length must be at least 1 (the dataset's size), got {length}")
        if world_size < 1:
            raise ValueError(f"world_size must be at least 1, got {world_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}) for world_size {world_size}, got {rank}")
        self.length = length
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start = 0

    @property
    def samples_per_rank(self) -> int:
        """Samples each rank gets in a whole epoch (after padding)."""
        return math.ceil(self.length / self.world_size)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's permutation; a different epoch than the current one resets the start."""
        if epoch != self.epoch:
            self.start = 0
        self.epoch = epoch

    def set_start(self, index: int) -> None:
        """Skip the first ``index`` samples of this rank's order in the current epoch.

        Raises:
            ValueError: ``index`` outside ``[0, samples_per_rank]``.
        """
        if not 0 <= index <= self.samples_per_rank:
            raise ValueError(
                f"start index must be in [0, {self.samples_per_rank}] (samples per rank per epoch), got {index}"
            )
        self.start = index

    def epoch_indices(self) -> list[int]:
        """This rank's whole order for the current epoch, ignoring the start."""
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.length, generator=generator).tolist()
        else:
            order = list(range(self.length))
        total = self.samples_per_rank * self.world_size
        # The padding can exceed the dataset when world_size > length, hence the repeat.
        order = (order * math.ceil(total / self.length))[:total]
        return order[self.rank : total : self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.epoch_indices()[self.start :])

    def __len__(self) -> int:
        return self.samples_per_rank - self.start

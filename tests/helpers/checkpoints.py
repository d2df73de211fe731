"""What tests compare between two runs: every tensor a run's latest checkpoint holds."""

from __future__ import annotations

from pathlib import Path

import torch

from translate.training import read_checkpoint


def checkpoint_tensors(run: Path) -> dict[str, torch.Tensor]:
    """The networks' state and the optimisers' slots of `run`'s latest checkpoint, by flat name."""
    state = read_checkpoint(run)
    tensors = {f"{net}.{k}": v for net, sd in state["models"].items() for k, v in sd.items()}
    for name, optimizer in state["optimizers"].items():
        for index, slots in optimizer["state"].items():
            tensors.update({f"opt.{name}.{index}.{k}": v for k, v in slots.items() if torch.is_tensor(v)})
    return tensors

"""Training checkpoints: everything a run needs to continue exactly, written atomically.

A checkpoint is one file read back with `torch.load(weights_only=True)`: only tensors, numbers,
strings and containers, never pickled code. It carries the resolved config and the generator
specs, so `translate.load(checkpoint)` rebuilds a generator from it alone.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from translate.core.files import atomic_write
from translate.core.version import __version__
from translate.formats.weights import CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION, read_training_checkpoint

logger = logging.getLogger(__name__)



def atomic_save(payload: dict[str, Any], path: Path) -> None:
    """torch.save to a temporary file beside `path`, fsync, then rename over it.

    A crash at any moment leaves either the old file or the new one, never a torn file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: torch.save(payload, tmp), durable=True)


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


def make_checkpoint(*, config: dict[str, Any], task_state: dict[str, Any],
                    generators: dict[str, dict[str, Any]], schedulers: dict[str, Any],
                    step: int, epoch: int, samples_in_epoch: int,
                    skipped_files: list[str]) -> dict[str, Any]:
    return {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "toolkit_version": __version__,
        "task": config["task"],
        "domains": {"A": config["name_a"], "B": config["name_b"]},
        "generators": generators,
        "config": config,
        **task_state,
        "schedulers": schedulers,
        "step": step,
        "epoch": epoch,
        "samples_in_epoch": samples_in_epoch,
        "rng": rng_state(),
        "skipped_files": skipped_files,
    }


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a training checkpoint (a file, or a run directory's latest) without running pickled code."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoints" / "latest.pt"
    if not path.is_file():
        raise FileNotFoundError(
            f"no checkpoint at {str(path)!r}: expected a run directory holding checkpoints/latest.pt "
            "(written by `translate train`) or a checkpoint file")
    return read_training_checkpoint(path)

"""Torch files read without running code: `torch.load(weights_only=True)` with errors that name the file."""

from __future__ import annotations

import os
import pickle
from typing import Any

import torch

__all__ = ["torch_load_safely"]


def torch_load_safely(path: str | os.PathLike[str], accepted: str) -> Any:
    """`torch.load(path, weights_only=True)` on the CPU, with a short error naming `path`.

    weights_only refuses both garbage and files that would unpickle arbitrary objects (code);
    `accepted` says what the caller expected, for the error message.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's message is a page long (and suggests allowlisting globals, which we never do);
        # its informative first sentence follows this marker.
        reason = str(err).partition("WeightsUnpickler error:")[2].strip().split("\n")[0].split(". ")[0]
        reason = reason or str(err).split("\n")[0]
        raise ValueError(f"{str(path)!r} could not be loaded with weights_only=True ({reason}): it is not "
                         f"a plain file of tensors and containers, and pickled objects are never loaded; "
                         f"expected {accepted}") from None
    except (RuntimeError, EOFError, OSError) as err:
        raise ValueError(f"{str(path)!r} is not a readable torch file ({err}); expected {accepted}") from None

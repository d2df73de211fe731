"""File helpers written once: atomic writes, SHA-256, and torch files read without running code."""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

__all__ = ["atomic_write", "atomic_write_text", "sha256_file", "torch_load_safely"]


def atomic_write(final: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` on a temporary file beside `final`, then rename it over `final`, so that
    readers never see half a file; the temporary file is removed if `write` fails."""
    final = Path(final)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    try:
        write(Path(tmp_name))
        # mkstemp makes the file private (0600); give it the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_name, 0o666 & ~umask)
        os.replace(tmp_name, final)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return final


def atomic_write_text(final: str | os.PathLike[str], text: str) -> Path:
    """`atomic_write` of a UTF-8 text."""
    return atomic_write(final, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file as 64 lowercase hexadecimal digits, read 1 MiB at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


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

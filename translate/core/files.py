"""File helpers written once: atomic writes and SHA-256 (standard library only, so that commands
that only download or hash files start without importing torch; torch files: `torch_files`)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_text", "sha256_file"]


def atomic_write(final: str | os.PathLike[str], write: Callable[[Path], None], *, durable: bool = False) -> Path:
    """Call `write(tmp)` on a temporary file beside `final`, then rename it over `final`, so that
    readers never see half a file; the temporary file is removed if `write` fails.

    `durable`: also fsync the file before the rename and the folder after it, so that a power
    cut leaves the old file or the new one (training checkpoints), at the cost of a disk flush.
    """
    final = Path(final)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    try:
        write(Path(tmp_name))
        if durable:
            _fsync(tmp_name, os.O_RDONLY)
        # mkstemp makes the file private (0600); give it the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_name, 0o666 & ~umask)
        os.replace(tmp_name, final)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    if durable:
        _fsync(final.parent, os.O_RDONLY)
    return final


def _fsync(path: str | os.PathLike[str], flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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

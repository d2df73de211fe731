"""Extract zip and tar archives safely: every member is checked before it is written, and the result
appears all at once or not at all.

A data set needs only files and folders, so links of any kind (symbolic or hard, wherever they
point) and special files (devices, FIFOs) are refused rather than judged: judging link targets is
where zip-slip / tar-slip bugs live. Member names must be relative, with no `..` and no drive
letter. The members are written into a hidden sibling of the target (`.NAME.partial`: same
parent, so the final rename is atomic) by this module's own loop, not by `extractall`, so the rules
hold on every Python version; the sibling is removed on any error, and one left by a killed process
is cleared by the next call. A zip's members are all checked first (its directory is at the end); a
tar is read once, as a stream, each member checked before it is written, so a multi-GB .tar.gz is
decompressed only once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import IO, Callable, Iterator

logger = logging.getLogger(__name__)

_DRIVE = re.compile(r"^[A-Za-z]:")
# What a damaged archive raises while it is read (gzip raises EOFError or BadGzipFile, an OSError).
_READ_ERRORS = (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError, OSError)

# A checked member: its path parts under the target, and None for a folder or an opener for a file.
_Member = tuple[tuple[str, ...], "Callable[[], IO[bytes]] | None"]


class ArchiveError(ValueError):
    """An archive that cannot be read: not a zip or tar archive, or truncated, or corrupt."""


class UnsafeArchiveError(ArchiveError):
    """An archive member that could write outside the target folder: an absolute path, a `..`, a
    drive letter, a link or a special file."""


def safe_extract(archive: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Extract a .zip, .tar, .tar.gz / .tgz (or .tar.bz2 / .tar.xz) `archive` into the new folder `target`.

    The format is detected from the content, not the name. Every member is checked first; an unsafe
    one raises UnsafeArchiveError naming it, a damaged archive raises ArchiveError, and in both cases
    nothing is left behind: the members are written into a temporary sibling of `target` that is
    renamed to `target` only when all of them are out. Returns `target` as a Path.

    Raises FileExistsError when `target` exists and FileNotFoundError when `archive` does not.
    """
    archive, target = Path(archive), Path(target)
    if not archive.is_file():
        raise FileNotFoundError(f"archive {archive} not found")
    if target.exists():
        raise FileExistsError(f"{target} already exists; remove it or extract the archive somewhere else")
    # Tar first: is_zipfile looks for a zip directory near the end of the file, which an uncompressed
    # tar whose last member is a .zip also has; a zip never starts with a valid tar header.
    if _is_tar(archive):
        with tarfile.open(archive, mode="r|*") as opened:  # a stream: read once, in order
            _extract_all(archive, target, _tar_members(opened, archive))
    elif zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as opened:
            _extract_all(archive, target, iter(_zip_members(opened, archive)()))
    else:
        raise ArchiveError(f"{archive} is not a zip or tar archive, or it is truncated or corrupt; "
                           f"delete it and download it again")
    return target


def _is_tar(archive: Path) -> bool:
    try:
        return tarfile.is_tarfile(archive)
    except _READ_ERRORS:  # some damaged files make the probe itself fail
        return False


def _extract_all(archive: Path, target: Path, members: Iterator[_Member]) -> None:
    made_parent = not target.parent.exists()
    target.parent.mkdir(parents=True, exist_ok=True)
    # A hidden sibling, so that the rename below stays on one file system and is atomic.
    temp = target.parent / f".{target.name}.partial"
    if temp.exists():  # left by a process killed mid-extraction: only this function writes there
        shutil.rmtree(temp)
    temp.mkdir()
    count = 0
    parts: tuple[str, ...] = ()
    try:
        try:
            for parts, opener in members:  # a tar member is read, and checked, only here
                path = temp.joinpath(*parts)
                count += 1
                if opener is None:
                    path.mkdir(parents=True, exist_ok=True)
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                with opener() as source, open(path, "wb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
        except _READ_ERRORS as error:
            if isinstance(error, OSError) and error.errno is not None:
                raise  # a real file-system error (disk full, permissions): report it as it is
            where = f": member {'/'.join(parts)!r}" if parts else ""
            raise ArchiveError(f"{archive}{where} is truncated or corrupt ({error}); delete the archive and "
                               f"download it again") from None
        os.replace(temp, target)
    except BaseException:  # including KeyboardInterrupt: never leave half a data set
        shutil.rmtree(temp, ignore_errors=True)
        if made_parent:
            with contextlib.suppress(OSError):  # only when empty: the folder this call created
                target.parent.rmdir()
        raise
    logger.debug("extracted %d members of %s into %s", count, archive, target)


def _member_parts(name: str, archive: Path) -> tuple[str, ...]:
    """The path parts of a member name below the target, refusing names that could leave it."""
    if "\x00" in name:
        raise UnsafeArchiveError(f"{archive}: member {name!r} has a NUL character in its name; refusing to extract")
    # Backslashes count as separators too: a Windows-made archive's "..\\x" must not slip through.
    parts = tuple(part for part in re.split(r"[\\/]+", name) if part not in ("", "."))
    if name.startswith(("/", "\\")) or any(_DRIVE.match(part) for part in parts):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path or a drive letter; "
                                 f"refusing to extract (a safe archive holds relative paths only)")
    # Windows drops trailing dots and spaces (".. " is ".."), and "x:y" names an alternate data stream.
    if any(part.rstrip(". ") in ("", "..") or ":" in part for part in parts):
        raise UnsafeArchiveError(f"{archive}: member {name!r} points outside the target folder ('..') or has a "
                                 f"name Windows would read as one; refusing to extract")
    return parts


def _file_parts(parts: tuple[str, ...], name: str, archive: Path) -> tuple[str, ...]:
    if not parts:
        raise ArchiveError(f"{archive}: member {name!r} is a file without a name; cannot extract it")
    return parts


def _refuse_kind(archive: Path, name: str, kind: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(f"{archive}: member {name!r} is a {kind}; refusing to extract: links and special "
                              f"files are never extracted (a data set needs only files and folders)")


def _zip_members(opened: zipfile.ZipFile, archive: Path) -> Callable[[], list[_Member]]:
    def members() -> list[_Member]:
        checked: list[_Member] = []
        for info in opened.infolist():
            parts = _member_parts(info.filename, archive)
            kind = stat.S_IFMT(info.external_attr >> 16)  # Unix mode bits, 0 when made elsewhere
            if kind == stat.S_IFLNK:
                raise _refuse_kind(archive, info.filename, "symbolic link")
            if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise _refuse_kind(archive, info.filename, f"special file (mode {kind:o})")
            if info.flag_bits & 0x1:
                raise ArchiveError(f"{archive}: member {info.filename!r} is encrypted; cannot extract it")
            is_dir = info.is_dir() or kind == stat.S_IFDIR
            if parts or not is_dir:  # the archive's own "./" entry needs nothing
                checked.append((_file_parts(parts, info.filename, archive),
                                None if is_dir else (lambda info=info: opened.open(info))))
        return checked

    return members


def _tar_members(opened: tarfile.TarFile, archive: Path) -> Iterator[_Member]:
    """Each member as the stream reaches it, checked; a file's opener must be used before the next."""
    for member in opened:
        parts = _member_parts(member.name, archive)
        if member.issym():
            raise _refuse_kind(archive, member.name, f"symbolic link (to {member.linkname!r})")
        if member.islnk():
            raise _refuse_kind(archive, member.name, f"hard link (to {member.linkname!r})")
        if not (member.isdir() or member.isfile()):
            raise _refuse_kind(archive, member.name, "special file (device or FIFO)")
        if parts or member.isfile():  # the archive's own "./" entry needs nothing
            yield (_file_parts(parts, member.name, archive),
                   None if member.isdir() else (lambda member=member: _tar_reader(opened, member)))


def _tar_reader(opened: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    reader = opened.extractfile(member)
    if reader is None:  # cannot happen for a regular file; guards against a tarfile surprise
        raise ArchiveError(f"cannot read member {member.name!r}")
    return reader


"""Resumable, verified downloads with the standard library only (urllib).

The bytes go to `DEST.part`; an interrupted download keeps it and the next call asks the server for
the rest (`Range: bytes=N-`). Only a complete file (and, given a SHA-256, a verified one) is renamed
to `DEST`, so `DEST` existing means the download finished.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import urlsplit

from translate.core.files import sha256_file
from translate.core.version import __version__

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, Optional[int]], None]
"""`progress(done_bytes, total_bytes)`: total is None when the server does not say."""

_SCHEMES = ("http", "https", "file")
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MIRROR_HINT = ("if the file moved, download it from another server (the mirror parameter of download_dataset and "
                "download_pretrained; --mirror URL on the command line)")


class DownloadError(OSError):
    """A download that failed, arrived short or does not match its checksum; the message says what to do."""


def download_file(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    progress: ProgressCallback | None = None,
    timeout: float = 60.0,
    chunk_size: int = 1 << 20,
) -> Path:
    """Download `url` to `dest`, resuming a previous partial download, and return `dest` as a Path.

    An existing `dest` is returned without a download when `sha256` is None or matches it. The bytes
    go to `dest + ".part"` first, which a dropped connection leaves in place (the next call resumes
    it); a checksum mismatch deletes it. `progress(done, total)` is called as bytes arrive, counting
    resumed bytes. `timeout` is per socket operation, not for the whole download.

    Raises ValueError for a URL that is not http(s):// or file:// or a malformed `sha256`, and
    DownloadError (an OSError) for HTTP errors, short bodies and checksum mismatches.
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme not in _SCHEMES:
        raise ValueError(f"cannot download {url!r}: expected an http://, https:// or file:// URL")
    if sha256 is not None:
        sha256 = sha256.strip().lower()
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"sha256 {sha256!r} is not a SHA-256 digest: expected 64 hexadecimal digits")
    dest = Path(dest)
    if dest.is_file():
        if sha256 is None:
            logger.info("%s already exists; not downloading it again", dest)
            return dest
        if sha256_file(dest) == sha256:
            logger.info("%s already exists with the expected SHA-256", dest)
            return dest
        logger.warning("%s exists but its SHA-256 differs from %s; downloading it again", dest, sha256)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    # The URL a part came from sits beside it: bytes from one server (or --mirror) are never
    # continued from another, whose file may differ.
    origin = dest.with_name(dest.name + ".part.url")
    if part.is_file() and origin.is_file() and origin.read_text() != url:
        logger.info("%s came from another URL; starting %s again", part, url)
        part.unlink()
    origin.write_text(url)
    logger.info("downloading %s to %s", url, dest)
    try:
        _fetch(url, part, progress=progress, timeout=timeout, chunk_size=chunk_size)
    except BaseException:
        if not part.exists():  # nothing arrived: leave no trace
            origin.unlink(missing_ok=True)
        raise
    if sha256 is not None:
        digest = sha256_file(part)
        if digest != sha256:
            part.unlink()
            origin.unlink(missing_ok=True)
            raise DownloadError(f"{url}: SHA-256 mismatch: expected {sha256}, got {digest}; the download was "
                                f"deleted. Check the checksum, or whether the server sends a different file")
    os.replace(part, dest)  # atomic: dest never holds a partial file
    origin.unlink(missing_ok=True)
    return dest


def mirror_url(mirror: str | None, default: str) -> str:
    """`default`, or the same file name under the base URL `mirror` (with or without a final '/')."""
    return f"{mirror.rstrip('/')}/{default.rsplit('/', 1)[-1]}" if mirror else default


def _fetch(url: str, part: Path, *, progress: ProgressCallback | None, timeout: float, chunk_size: int) -> None:
    """Bring `part` to the full content of `url`, continuing from its current size."""
    # Two attempts at most: the second one only after the server said the part cannot be continued.
    for _ in range(2):
        offset = part.stat().st_size if part.is_file() else 0
        headers = {"User-Agent": f"translate-gan/{__version__}"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            logger.info("resuming %s at byte %d", part, offset)
        try:
            response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
        except urllib.error.HTTPError as error:
            error.close()  # only the status and the headers matter
            if error.code == 416 and offset:
                # "Range not satisfiable": the part already holds the whole file, or more than it.
                total = _range_total(error.headers.get("Content-Range"))
                if total == offset:
                    logger.info("%s is already complete (%d bytes)", part, offset)
                    if progress is not None:
                        progress(offset, offset)
                    return
                logger.warning("%s holds %d bytes but %s has %s; starting again", part, offset, url, total)
                part.unlink()
                continue
            raise DownloadError(f"{url}: HTTP {error.code} {error.reason}; {_MIRROR_HINT}") from None
        except (OSError, http.client.HTTPException) as error:  # URLError, refused, DNS, timeout
            reason = getattr(error, "reason", error)
            raise DownloadError(f"cannot download {url}: {reason}; check the connection, or {_MIRROR_HINT}") from None
        with response:
            start, total = _body_range(response, offset)
            if start != offset:
                if start != 0:  # a range we did not ask for: drop the part and ask for everything
                    logger.warning("%s answered bytes %d- to a request for %d-; starting again", url, start, offset)
                    part.unlink()
                    continue
                if offset:
                    logger.info("%s does not support resuming; downloading it from the start", url)
            _copy(response, part, url, start, total, progress, chunk_size)
        return
    raise DownloadError(f"{url}: the server did not continue the partial download {part}; delete it and run again")


def _body_range(response: http.client.HTTPResponse, offset: int) -> tuple[int, int | None]:
    """(first byte of the body within the file, file size or None) for a 200 or 206 response."""
    length = response.headers.get("Content-Length")
    length = int(length) if length and length.isdigit() else None
    if getattr(response, "status", None) == 206:  # file:// responses have no status: a whole file
        match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
        if match:
            start = int(match.group(1))
            total = int(match.group(3)) if match.group(3) != "*" else int(match.group(2)) + 1
            return start, total
        return offset, None if length is None else offset + length
    return 0, length


def _range_total(content_range: str | None) -> int | None:
    """The size in a 416 answer's `Content-Range: bytes */SIZE`, or None."""
    match = re.fullmatch(r"bytes\s+\*/(\d+)", (content_range or "").strip())
    return int(match.group(1)) if match else None


def _copy(response: http.client.HTTPResponse, part: Path, url: str, start: int, total: int | None,
          progress: ProgressCallback | None, chunk_size: int) -> None:
    """Append the body to `part` (or overwrite it when `start` is 0); raise DownloadError when it is short."""
    done = start
    with open(part, "ab" if start else "wb") as file:
        if progress is not None:
            progress(done, total)
        while True:
            try:
                chunk = response.read(chunk_size)
            except (OSError, http.client.HTTPException) as error:  # reset, timeout; not a failed write
                raise DownloadError(_short_message(url, part, done, total, f" ({error})")) from None
            if not chunk:
                break
            file.write(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, total)
    # http.client returns b"" rather than raising when the connection closes early, so count.
    if total is not None and done < total:
        raise DownloadError(_short_message(url, part, done, total, ""))


def _short_message(url: str, part: Path, done: int, total: int | None, why: str) -> str:
    of = f"{done} of {total} bytes" if total is not None else f"{done} bytes"
    return (f"{url}: the connection closed after {of}{why}; {part} is kept and running the download "
            f"again resumes it")

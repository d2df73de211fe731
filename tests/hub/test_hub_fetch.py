"""translate.hub.fetch.download_file against a loopback server: resume, restarts, errors, checksums."""

from __future__ import annotations

import hashlib
import random
import socket
from pathlib import Path

import pytest

from translate.hub import DownloadError, download_file

SIZE = 300_000
BLOB = random.Random(0).randbytes(SIZE)
SHA256 = hashlib.sha256(BLOB).hexdigest()


@pytest.fixture
def served(loopback_server):
    (loopback_server.root / "blob.bin").write_bytes(BLOB)
    return loopback_server


def _part(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def test_download_reports_monotonic_progress_up_to_the_total(served, tmp_path):
    calls: list[tuple[int, int | None]] = []
    dest = download_file(served.url + "/blob.bin", tmp_path / "out" / "blob.bin",
                         progress=lambda done, total: calls.append((done, total)), chunk_size=1 << 16)
    assert dest == tmp_path / "out" / "blob.bin" and dest.read_bytes() == BLOB
    assert not _part(dest).exists()
    done = [d for d, _ in calls]
    assert done == sorted(done) and len(calls) > 3
    assert calls[-1] == (SIZE, SIZE) and all(total == SIZE for _, total in calls)
    assert served.requests == [("/blob.bin", None)]


def test_a_truncated_download_keeps_the_part_and_the_next_call_resumes(served, tmp_path):
    dest = tmp_path / "blob.bin"
    served.truncate["/blob.bin"] = 100_000
    with pytest.raises(DownloadError, match="100000 of 300000 bytes") as caught:
        download_file(served.url + "/blob.bin", dest)
    assert "resume" in str(caught.value) and isinstance(caught.value, OSError)
    assert not dest.exists() and _part(dest).read_bytes() == BLOB[:100_000]

    del served.truncate["/blob.bin"]
    calls: list[tuple[int, int | None]] = []
    download_file(served.url + "/blob.bin", dest, sha256=SHA256, progress=lambda *call: calls.append(call))
    assert served.requests[-1] == ("/blob.bin", "bytes=100000-")
    assert dest.read_bytes() == BLOB and not _part(dest).exists()
    assert calls[0] == (100_000, SIZE) and calls[-1] == (SIZE, SIZE)


def test_a_server_that_ignores_range_restarts_from_zero(served, tmp_path):
    dest = tmp_path / "blob.bin"
    _part(dest).write_bytes(b"stale bytes that must not stay in front")
    served.ignore_range.add("/blob.bin")
    download_file(served.url + "/blob.bin", dest)
    assert served.requests[-1][1] == "bytes=39-"  # asked to resume, answered 200 with everything
    assert dest.read_bytes() == BLOB


def test_a_complete_part_answered_416_is_finished_without_a_body(served, tmp_path):
    dest = tmp_path / "blob.bin"
    _part(dest).write_bytes(BLOB)
    calls: list[tuple[int, int | None]] = []
    download_file(served.url + "/blob.bin", dest, sha256=SHA256, progress=lambda *call: calls.append(call))
    assert served.requests == [("/blob.bin", f"bytes={SIZE}-")] and calls == [(SIZE, SIZE)]
    assert dest.read_bytes() == BLOB and not _part(dest).exists()


def test_a_part_longer_than_the_file_is_discarded(served, tmp_path):
    dest = tmp_path / "blob.bin"
    _part(dest).write_bytes(BLOB + b"extra")
    download_file(served.url + "/blob.bin", dest)
    assert [range_ for _, range_ in served.requests] == [f"bytes={SIZE + 5}-", None]
    assert dest.read_bytes() == BLOB


@pytest.mark.parametrize("status", [404, 500])
def test_http_errors_name_the_url_the_status_and_the_mirror_option(served, tmp_path, status):
    served.fail["/blob.bin"] = status
    url = served.url + "/blob.bin"
    with pytest.raises(DownloadError) as caught:
        download_file(url, tmp_path / "blob.bin")
    message = str(caught.value)
    assert url in message and str(status) in message and "--mirror" in message
    assert list(tmp_path.iterdir()) == [served.root]  # no dest, no .part


def test_a_missing_file_is_a_404(served, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(served.url + "/nothing.zip", tmp_path / "nothing.zip")


def test_a_checksum_mismatch_deletes_the_download(served, tmp_path):
    dest = tmp_path / "blob.bin"
    wrong = "0" * 64
    with pytest.raises(DownloadError) as caught:
        download_file(served.url + "/blob.bin", dest, sha256=wrong)
    assert f"expected {wrong}, got {SHA256}" in str(caught.value)
    assert not dest.exists() and not _part(dest).exists()


def test_an_existing_file_is_not_downloaded_again(served, tmp_path):
    dest = tmp_path / "blob.bin"
    download_file(served.url + "/blob.bin", dest, sha256=SHA256.upper())  # case does not matter
    download_file(served.url + "/blob.bin", dest)  # no checksum: any existing file is taken
    download_file(served.url + "/blob.bin", dest, sha256=SHA256)
    assert len(served.requests) == 1
    dest.write_bytes(b"something else")
    download_file(served.url + "/blob.bin", dest, sha256=SHA256)  # wrong content: fetched again
    assert len(served.requests) == 2 and dest.read_bytes() == BLOB


def test_file_urls_work(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(BLOB)
    calls: list[tuple[int, int | None]] = []
    dest = download_file(source.as_uri(), tmp_path / "copy.bin", progress=lambda *call: calls.append(call))
    assert dest.read_bytes() == BLOB and calls[-1] == (SIZE, SIZE)


@pytest.mark.parametrize("url", ["ftp://example.org/a.zip", "/local/path.zip", "javascript:alert(1)"])
def test_other_schemes_are_refused(tmp_path, url):
    with pytest.raises(ValueError, match="expected an http://, https:// or file:// URL") as caught:
        download_file(url, tmp_path / "a.zip")
    assert url in str(caught.value)


def test_a_malformed_checksum_is_refused_before_downloading(tmp_path):
    with pytest.raises(ValueError, match="64 hexadecimal digits"):
        download_file("http://127.0.0.1:9/a.zip", tmp_path / "a.zip", sha256="abc")


def test_a_refused_connection_is_a_download_error(tmp_path):
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DownloadError, match=f"cannot download http://127.0.0.1:{port}/a.zip"):
        download_file(f"http://127.0.0.1:{port}/a.zip", tmp_path / "a.zip", timeout=5)
    assert not (tmp_path / "a.zip.part").exists()


def test_a_part_from_another_url_is_not_continued(served, tmp_path):
    dest = tmp_path / "blob.bin"
    _part(dest).write_bytes(b"bytes from the old mirror")
    dest.with_name(dest.name + ".part.url").write_text("http://old-mirror.example/blob.bin")
    download_file(served.url + "/blob.bin", dest)
    assert served.requests == [("/blob.bin", None)], "no Range: the old bytes were dropped"
    assert dest.read_bytes() == BLOB and not dest.with_name(dest.name + ".part.url").exists()

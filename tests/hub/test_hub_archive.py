"""translate.hub.archive.safe_extract: good archives extract, unsafe and damaged ones leave nothing."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from translate.hub import ArchiveError, UnsafeArchiveError, safe_extract

GOOD = {"data/trainA/1.png": b"a" * 5000, "data/trainB/2.png": b"b" * 7000, "data/README": b"hello"}


def make_zip(path: Path, files: dict[str, bytes], symlinks: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as archive:  # stored, so a byte flip hits member data
        for name, data in files.items():
            archive.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16  # how Info-ZIP marks a symbolic link
            archive.writestr(info, target)
    return path


def make_tar(path: Path, files: dict[str, bytes], extra: list[tarfile.TarInfo] = (), mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for info in extra:
            archive.addfile(info)
    return path


def _link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def _special(name: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    return info


def _contents(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


@pytest.mark.parametrize("maker, name", [(make_zip, "a.zip"), (make_tar, "a.tar.gz"),
                                         (lambda p, f: make_tar(p, f, mode="w"), "a.tar")])
def test_good_archives_extract_every_file(tmp_path, maker, name):
    archive = maker(tmp_path / name, GOOD)
    target = safe_extract(archive, tmp_path / "out" / "x")
    assert target == tmp_path / "out" / "x"
    assert _contents(target) == GOOD
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x"]  # no temporary folder left


def test_the_format_is_detected_from_the_content_not_the_name(tmp_path):
    archive = make_zip(tmp_path / "misnamed.tar.gz", GOOD)
    assert _contents(safe_extract(archive, tmp_path / "x")) == GOOD


def test_a_tar_ending_with_a_zip_member_is_read_as_a_tar(tmp_path):
    inner = make_zip(tmp_path / "inner.zip", {"inner.txt": b"x"}).read_bytes()
    archive = make_tar(tmp_path / "a.tar", {"data/file.txt": b"abc", "data/inner.zip": inner}, mode="w")
    assert zipfile.is_zipfile(archive)  # the trap: a zip directory near the end of the file
    assert _contents(safe_extract(archive, tmp_path / "x")) == {"data/file.txt": b"abc", "data/inner.zip": inner}


def test_dot_entries_and_explicit_folders_are_fine(tmp_path):
    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w") as tar:
        for folder in (".", "./top", "./top/empty"):
            info = tarfile.TarInfo(folder)
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        info = tarfile.TarInfo("./top/file.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    target = safe_extract(archive, tmp_path / "x")
    assert (target / "top" / "empty").is_dir() and (target / "top" / "file.txt").read_bytes() == b"abc"


UNSAFE_TARS = {
    "parent": ({"../evil": b"x"}, []),
    "deep parent": ({"data/../../evil": b"x"}, []),
    "absolute": ({"/tmp/translate-test-evil": b"x"}, []),
    "backslash parent": ({"..\\evil": b"x"}, []),
    "drive letter": ({"C:/evil": b"x"}, []),
    "symlink to /etc": ({}, [_link("data/etc", "/etc", tarfile.SYMTYPE)]),
    "symlink up": ({}, [_link("data/up", "../..", tarfile.SYMTYPE)]),
    "hardlink out": ({}, [_link("data/passwd", "../../etc/passwd", tarfile.LNKTYPE)]),
    "hardlink inside": ({}, [_link("data/copy", "data/README", tarfile.LNKTYPE)]),
    "fifo": ({}, [_special("data/pipe", tarfile.FIFOTYPE)]),
    "device": ({}, [_special("data/null", tarfile.CHRTYPE)]),
}
UNSAFE_ZIPS = {
    "parent": ({"../evil": b"x"}, {}),
    "absolute": ({"/tmp/translate-test-evil": b"x"}, {}),
    "backslash parent": ({"data\\..\\..\\evil": b"x"}, {}),
    "drive letter": ({"C:\\evil": b"x"}, {}),
    "symlink": ({}, {"data/etc": "/etc"}),
    "symlink up": ({}, {"data/up": "../.."}),
}


def _assert_nothing_written(tmp_path: Path, archive: Path) -> None:
    # The good members come first in every unsafe archive, so this also shows the checks ran first.
    assert sorted(tmp_path.iterdir()) == [archive]
    assert not Path("/tmp/translate-test-evil").exists()


@pytest.mark.parametrize("case", UNSAFE_TARS)
def test_unsafe_tar_members_are_refused_and_nothing_is_left(tmp_path, case):
    files, extra = UNSAFE_TARS[case]
    archive = make_tar(tmp_path / "evil.tar.gz", {**GOOD, **files}, extra)
    bad = next(iter(files)) if files else extra[0].name
    with pytest.raises(UnsafeArchiveError) as caught:
        safe_extract(archive, tmp_path / "out" / "x")
    assert repr(bad) in str(caught.value)
    _assert_nothing_written(tmp_path, archive)


@pytest.mark.parametrize("case", UNSAFE_ZIPS)
def test_unsafe_zip_members_are_refused_before_anything_is_written(tmp_path, case):
    files, symlinks = UNSAFE_ZIPS[case]
    archive = make_zip(tmp_path / "evil.zip", {**GOOD, **files}, symlinks)
    bad = next(iter(files or symlinks))
    with pytest.raises(UnsafeArchiveError) as caught:
        safe_extract(archive, tmp_path / "out" / "x")
    assert repr(bad) in str(caught.value) and isinstance(caught.value, ValueError)
    _assert_nothing_written(tmp_path, archive)


def test_a_truncated_tar_gz_leaves_nothing(tmp_path):
    whole = make_tar(tmp_path / "whole.tar.gz", {f"data/{i}.bin": bytes([i]) * 20_000 for i in range(20)})
    archive = tmp_path / "cut.tar.gz"
    archive.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    whole.unlink()
    with pytest.raises(ArchiveError, match="truncated or corrupt"):
        safe_extract(archive, tmp_path / "x")
    assert sorted(tmp_path.iterdir()) == [archive]


def test_a_tar_cut_inside_a_member_leaves_nothing(tmp_path):
    whole = make_tar(tmp_path / "whole.tar", {"data/a.bin": b"a" * 10_000, "data/b.bin": b"b" * 10_000}, mode="w")
    archive = tmp_path / "cut.tar"
    archive.write_bytes(whole.read_bytes()[:15_000])  # inside b.bin's data
    whole.unlink()
    with pytest.raises(ArchiveError, match="truncated or corrupt"):
        safe_extract(archive, tmp_path / "x")
    assert sorted(tmp_path.iterdir()) == [archive]


def test_a_truncated_zip_leaves_nothing(tmp_path):
    whole = make_zip(tmp_path / "whole.zip", GOOD)
    archive = tmp_path / "cut.zip"
    archive.write_bytes(whole.read_bytes()[:-100])  # the central directory is at the end
    whole.unlink()
    with pytest.raises(ArchiveError, match="not a zip or tar archive, or it is truncated or corrupt"):
        safe_extract(archive, tmp_path / "x")
    assert sorted(tmp_path.iterdir()) == [archive]


def test_a_corrupt_zip_member_removes_the_partial_extraction(tmp_path):
    archive = make_zip(tmp_path / "a.zip", GOOD)
    data = bytearray(archive.read_bytes())
    at = data.index(b"b" * 7000) + 3000
    data[at:at + 10] = b"X" * 10  # fails the CRC of the second member, after the first was written
    archive.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="'data/trainB/2.png' is truncated or corrupt"):
        safe_extract(archive, tmp_path / "x")
    assert sorted(tmp_path.iterdir()) == [archive]


def test_something_that_is_not_an_archive_is_refused(tmp_path):
    archive = tmp_path / "page.zip"
    archive.write_bytes(b"<html>Service unavailable</html>")
    with pytest.raises(ArchiveError, match="not a zip or tar archive"):
        safe_extract(archive, tmp_path / "x")


def test_an_existing_target_is_not_overwritten(tmp_path):
    archive = make_zip(tmp_path / "a.zip", GOOD)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="already exists"):
        safe_extract(archive, tmp_path / "x")
    assert (tmp_path / "x" / "mine.txt").read_text() == "keep me"


def test_a_missing_archive_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.zip"):
        safe_extract(tmp_path / "nothing.zip", tmp_path / "x")


@pytest.mark.parametrize("member", [".. /evil.txt", "data/.../x.txt", "data/x.txt:stream"])
def test_names_windows_would_read_as_parent_or_stream_are_refused(tmp_path, member):
    archive = tmp_path / "w.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr(member, b"x")
    with pytest.raises(UnsafeArchiveError, match="Windows"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_staging_folder_left_by_a_killed_run_is_cleared(tmp_path):
    archive = make_tar(tmp_path / "a.tar.gz", GOOD)
    stale = tmp_path / "out" / ".x.partial"
    (stale / "half").mkdir(parents=True)
    (stale / "half" / "file.png").write_bytes(b"from a killed extraction")
    safe_extract(archive, tmp_path / "out" / "x")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x"]
    assert not (tmp_path / "out" / "x" / "half").exists()

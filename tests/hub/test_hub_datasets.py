"""translate.hub.datasets and `translate data`: the registry, download_dataset and the CLI, served from
127.0.0.1 through `--mirror` (never the real server)."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from translate.cli import app
from translate.hub import (
    DATASETS,
    ArchiveError,
    DownloadError,
    UnsafeArchiveError,
    download_dataset,
    get_dataset,
    list_datasets,
)

runner = CliRunner()

CYCLEGAN_NAMES = {"apple2orange", "summer2winter_yosemite", "horse2zebra", "monet2photo", "cezanne2photo",
                  "ukiyoe2photo", "vangogh2photo", "maps", "cityscapes", "facades", "iphone2dslr_flower", "mini",
                  "mini_pix2pix", "mini_colorization", "ae_photos", "grumpifycat"}
PIX2PIX_NAMES = {"cityscapes", "night2day", "edges2handbags", "edges2shoes", "facades", "maps"}
UNPAIRED = {"trainA/1.jpg": b"horse" * 2000, "trainB/2.jpg": b"zebra" * 3000, "testA/3.jpg": b"h",
            "testB/4.jpg": b"z"}
ALIGNED = {"train/1.jpg": b"ab" * 4000, "val/1.jpg": b"AB" * 100}


def serve_zip(server, name: str, files: dict[str, bytes], top: str | None) -> Path:
    path = server.root / name
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in files.items():
            archive.writestr(f"{top}/{member}" if top else member, data)
    return path


def serve_tar_gz(server, name: str, files: dict[str, bytes], top: str | None) -> Path:
    path = server.root / name
    with tarfile.open(path, "w:gz") as archive:
        for member, data in files.items():
            info = tarfile.TarInfo(f"{top}/{member}" if top else member)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def _contents(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


# --- the registry ---

def test_the_registry_holds_the_reference_data_sets():
    assert {info.name for info in DATASETS if info.family == "cyclegan"} >= CYCLEGAN_NAMES
    assert {info.name for info in DATASETS if info.family == "pix2pix"} >= PIX2PIX_NAMES
    assert list_datasets() == list(DATASETS)
    keys = [(info.family, info.name) for info in DATASETS]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize("info", DATASETS, ids=lambda info: f"{info.family}/{info.name}")
def test_every_entry_is_complete(info):
    assert info.family in ("cyclegan", "pix2pix")
    assert info.url.startswith(("http://", "https://"))
    assert info.url.endswith(f"/{info.name}.{info.archive_format}") and info.archive_format in ("zip", "tar.gz")
    assert info.filename == f"{info.name}.{info.archive_format}"
    assert info.layout in ("unpaired", "aligned", "single") and info.description
    assert info.sha256 is None  # none are published; never invented
    assert (info.restricted is not None) == (info.name == "cityscapes")


def test_names_in_both_families_default_to_cyclegan():
    assert get_dataset("maps").family == "cyclegan" and get_dataset("maps").layout == "unpaired"
    assert get_dataset("maps", "pix2pix").url == "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/maps.tar.gz"
    assert get_dataset("horse2zebra").url == "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/horse2zebra.zip"
    assert get_dataset("night2day").family == "pix2pix"  # only in one family: found without asking
    with pytest.raises(ValueError, match="no pix2pix data set 'horse2zebra'; horse2zebra is a cyclegan data set"):
        get_dataset("horse2zebra", "pix2pix")
    with pytest.raises(ValueError, match="unknown data set family 'stylegan'"):
        get_dataset("maps", "stylegan")


def test_an_unknown_name_lists_close_matches_and_every_name():
    with pytest.raises(ValueError) as caught:
        get_dataset("horse2zebr")
    message = str(caught.value)
    assert "did you mean horse2zebra" in message and "edges2shoes" in message and "'horse2zebr'" in message


# --- download_dataset ---

@pytest.mark.parametrize("top", ["horse2zebra", None], ids=["top-folder", "no-top-folder"])
def test_a_zip_data_set_downloads_to_root_name(loopback_server, tmp_path, top):
    serve_zip(loopback_server, "horse2zebra.zip", UNPAIRED, top)
    root = tmp_path / "datasets"
    path = download_dataset("horse2zebra", root, mirror=loopback_server.url + "/")  # trailing slash is fine
    assert path == root / "horse2zebra" and _contents(path) == UNPAIRED
    assert sorted(p.name for p in root.iterdir()) == ["horse2zebra"]  # no archive, no staging left
    assert loopback_server.requests == [("/horse2zebra.zip", None)]


def test_a_tar_gz_pix2pix_data_set_downloads_and_keeps_its_archive_on_request(loopback_server, tmp_path):
    archive = serve_tar_gz(loopback_server, "facades.tar.gz", ALIGNED, "facades")
    path = download_dataset("facades", tmp_path, family="pix2pix", mirror=loopback_server.url, keep_archive=True)
    assert path == tmp_path / "facades" and _contents(path) == ALIGNED
    assert (tmp_path / ".downloads" / "facades.tar.gz").read_bytes() == archive.read_bytes()


def test_a_truncated_data_set_download_resumes(loopback_server, tmp_path):
    archive = serve_zip(loopback_server, "horse2zebra.zip", UNPAIRED, "horse2zebra")
    loopback_server.truncate["/horse2zebra.zip"] = 5000
    root = tmp_path / "datasets"
    with pytest.raises(DownloadError, match=f"5000 of {archive.stat().st_size} bytes"):
        download_dataset("horse2zebra", root, mirror=loopback_server.url)
    assert (root / ".downloads" / "horse2zebra.zip.part").stat().st_size == 5000
    assert not (root / "horse2zebra").exists()
    del loopback_server.truncate["/horse2zebra.zip"]
    path = download_dataset("horse2zebra", root, mirror=loopback_server.url)
    assert loopback_server.requests[-1] == ("/horse2zebra.zip", "bytes=5000-")
    assert _contents(path) == UNPAIRED and sorted(p.name for p in root.iterdir()) == ["horse2zebra"]


def test_an_existing_data_set_is_not_overwritten(loopback_server, tmp_path):
    serve_zip(loopback_server, "horse2zebra.zip", UNPAIRED, "horse2zebra")
    (tmp_path / "horse2zebra").mkdir()
    (tmp_path / "horse2zebra" / "mine.jpg").write_bytes(b"keep")
    with pytest.raises(FileExistsError, match="already exists; delete it to download horse2zebra again"):
        download_dataset("horse2zebra", tmp_path, mirror=loopback_server.url)
    assert loopback_server.requests == []
    (tmp_path / "horse2zebra" / "mine.jpg").unlink()  # an empty folder is taken over
    assert _contents(download_dataset("horse2zebra", tmp_path, mirror=loopback_server.url)) == UNPAIRED


def test_cityscapes_needs_a_mirror(loopback_server, tmp_path):
    for family in ("cyclegan", "pix2pix"):
        with pytest.raises(ValueError, match="cityscapes-dataset.com"):
            download_dataset("cityscapes", tmp_path, family=family)
    serve_tar_gz(loopback_server, "cityscapes.tar.gz", ALIGNED, "cityscapes")
    path = download_dataset("cityscapes", tmp_path, family="pix2pix", mirror=loopback_server.url)
    assert _contents(path) == ALIGNED


def test_an_unsafe_archive_leaves_no_data_set_and_is_deleted(loopback_server, tmp_path):
    serve_zip(loopback_server, "horse2zebra.zip", {**UNPAIRED, "../../evil": b"x"}, "horse2zebra")
    with pytest.raises(UnsafeArchiveError, match="'horse2zebra/../../evil'"):
        download_dataset("horse2zebra", tmp_path / "root", mirror=loopback_server.url)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root", "www"]
    assert [p.name for p in (tmp_path / "root").iterdir()] == [".downloads"]
    assert list((tmp_path / "root" / ".downloads").iterdir()) == []


def test_a_corrupt_archive_is_deleted_so_that_the_next_run_downloads_it_again(loopback_server, tmp_path):
    (loopback_server.root / "horse2zebra.zip").write_bytes(b"<html>maintenance</html>")
    with pytest.raises(ArchiveError, match="running the download again fetches it anew"):
        download_dataset("horse2zebra", tmp_path, mirror=loopback_server.url)
    assert not (tmp_path / "horse2zebra").exists() and list((tmp_path / ".downloads").iterdir()) == []


def test_a_checksum_mismatch_extracts_nothing(loopback_server, tmp_path):
    serve_zip(loopback_server, "horse2zebra.zip", UNPAIRED, "horse2zebra")
    with pytest.raises(DownloadError, match="SHA-256 mismatch"):
        download_dataset("horse2zebra", tmp_path, mirror=loopback_server.url, sha256="ab" * 32)
    assert not (tmp_path / "horse2zebra").exists() and list((tmp_path / ".downloads").iterdir()) == []


# --- the command line ---

def test_cli_downloads_a_data_set(loopback_server, tmp_path):
    serve_zip(loopback_server, "horse2zebra.zip", UNPAIRED, "horse2zebra")
    root = tmp_path / "datasets"
    result = runner.invoke(app, ["data", "download", "horse2zebra", str(root), "--mirror", loopback_server.url])
    assert result.exit_code == 0, result.output
    assert _contents(root / "horse2zebra") == UNPAIRED
    assert f"translate train cyclegan --data {root / 'horse2zebra'}" in result.output


def test_cli_downloads_the_pix2pix_version_with_a_checksum(loopback_server, tmp_path):
    import hashlib

    archive = serve_tar_gz(loopback_server, "maps.tar.gz", ALIGNED, "maps")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    result = runner.invoke(app, ["data", "download", "maps", str(tmp_path), "--pix2pix", "--mirror",
                                 loopback_server.url, "--sha256", digest])
    assert result.exit_code == 0, result.output
    assert _contents(tmp_path / "maps") == ALIGNED and "translate train pix2pix" in result.output


@pytest.mark.parametrize("args, code, needles", [
    (["horse2zebr"], 2, ["did you mean horse2zebra"]),
    (["cityscapes"], 2, ["cityscapes-dataset.com"]),
    (["horse2zebra", "--mirror", "ftp://example.org"], 2, ["ftp://example.org/horse2zebra.zip"]),
    (["horse2zebra"], 1, ["HTTP 404", "/horse2zebra.zip", "--mirror"]),
])
def test_cli_errors_are_one_line(loopback_server, tmp_path, args, code, needles):
    args = [*args, "--mirror", loopback_server.url] if args == ["horse2zebra"] else args
    result = runner.invoke(app, ["data", "download", args[0], str(tmp_path / "root"), *args[1:]])
    assert result.exit_code == code, result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1
    for needle in needles:
        assert needle in result.output


def test_cli_refuses_an_existing_folder(tmp_path):
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "x").write_bytes(b"")
    result = runner.invoke(app, ["data", "download", "maps", str(tmp_path)])
    assert result.exit_code == 2 and "delete it" in result.output


def test_cli_lists_the_data_sets():
    result = runner.invoke(app, ["data", "list"])
    assert result.exit_code == 0, result.output
    for name in CYCLEGAN_NAMES | PIX2PIX_NAMES:
        assert name in result.output
    assert "--pix2pix" in result.output

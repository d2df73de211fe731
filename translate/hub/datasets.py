"""The reference implementation's data sets (junyanz/pytorch-CycleGAN-and-pix2pix, `datasets/
download_cyclegan_dataset.sh` and `download_pix2pix_dataset.sh`) and `download_dataset`.

maps, facades and cityscapes exist in both families: the CycleGAN archive holds unpaired folders
(trainA/, trainB/, ...), the pix2pix one aligned A|B images (train/, val/, ...). A bare name means the
CycleGAN version; `family="pix2pix"` (`--pix2pix` on the command line) picks the other. No checksums
are published for these archives, so `sha256` is None throughout unless the caller gives one.
"""

from __future__ import annotations

import difflib
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from translate.hub.archive import ArchiveError, safe_extract
from translate.hub.fetch import ProgressCallback, download_file, mirror_url

logger = logging.getLogger(__name__)

FAMILIES = ("cyclegan", "pix2pix")
CYCLEGAN_BASE_URL = "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets"
PIX2PIX_BASE_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets"
# The folders each layout should have at its top, used to warn when an archive looks wrong.
LAYOUT_FOLDERS = {"unpaired": ("trainA", "trainB"), "aligned": ("train",), "single": ()}
CITYSCAPES_NOTE = (
    "Cityscapes is licensed and the reference implementation does not redistribute it: register at "
    "https://www.cityscapes-dataset.com, download gtFine_trainvaltest.zip and leftImg8bit_trainvaltest.zip "
    "and prepare them with the reference's datasets/prepare_cityscapes_dataset.py, or pass a mirror you "
    "may use (mirror=URL; --mirror URL on the command line)")


@dataclass(frozen=True)
class DatasetInfo:
    """One downloadable data set: where it comes from and what it unpacks to."""

    name: str
    family: str  # "cyclegan" | "pix2pix"
    url: str
    archive_format: str  # "zip" | "tar.gz"
    layout: str  # "unpaired" (trainA/ trainB/ testA/ testB/), "aligned" (train/ val/ [test/] of A|B images), "single"
    description: str
    sha256: str | None = None  # none are published
    restricted: str | None = None  # why the default URL cannot serve it; then only a mirror can

    @property
    def filename(self) -> str:
        """The archive's file name, e.g. horse2zebra.zip; a mirror must serve the same name."""
        return self.url.rsplit("/", 1)[-1]


def _cyclegan(name: str, description: str, layout: str = "unpaired", restricted: str | None = None) -> DatasetInfo:
    return DatasetInfo(name, "cyclegan", f"{CYCLEGAN_BASE_URL}/{name}.zip", "zip", layout, description,
                       restricted=restricted)


def _pix2pix(name: str, description: str, restricted: str | None = None) -> DatasetInfo:
    return DatasetInfo(name, "pix2pix", f"{PIX2PIX_BASE_URL}/{name}.tar.gz", "tar.gz", "aligned", description,
                       restricted=restricted)


DATASETS: tuple[DatasetInfo, ...] = (
    _cyclegan("apple2orange", "ImageNet apples <-> oranges"),
    _cyclegan("summer2winter_yosemite", "Yosemite photos (Flickr), summer <-> winter"),
    _cyclegan("horse2zebra", "ImageNet horses <-> zebras"),
    _cyclegan("monet2photo", "Monet paintings <-> landscape photos"),
    _cyclegan("cezanne2photo", "Cezanne paintings <-> landscape photos"),
    _cyclegan("ukiyoe2photo", "Ukiyo-e prints <-> landscape photos"),
    _cyclegan("vangogh2photo", "Van Gogh paintings <-> landscape photos"),
    _cyclegan("maps", "aerial photos <-> Google Maps tiles, as unpaired folders"),
    _cyclegan("cityscapes", "Cityscapes label maps <-> street photos, as unpaired folders (licensed)",
              restricted=CITYSCAPES_NOTE),
    _cyclegan("facades", "CMP Facades label maps <-> building photos, as unpaired folders"),
    _cyclegan("iphone2dslr_flower", "flower photos, iPhone <-> DSLR with shallow depth of field"),
    _cyclegan("mini", "a tiny unpaired set for smoke tests (the reference's CI)"),
    _cyclegan("mini_pix2pix", "a tiny aligned A|B set for pix2pix smoke tests (the reference's CI)", "aligned"),
    _cyclegan("mini_colorization", "a tiny photo set for the reference's colorization smoke tests", "single"),
    _cyclegan("ae_photos", "photos for testing the reference's pretrained style_* models", "single"),
    _cyclegan("grumpifycat", "cat faces <-> Grumpy Cat"),
    _pix2pix("cityscapes", "Cityscapes label maps | street photos, aligned (licensed)", restricted=CITYSCAPES_NOTE),
    _pix2pix("night2day", "webcam scenes at night | by day, aligned"),
    _pix2pix("edges2handbags", "edge maps | handbag photos, aligned (large)"),
    _pix2pix("edges2shoes", "edge maps | shoe photos, aligned (large)"),
    _pix2pix("facades", "CMP Facades label maps | building photos, aligned"),
    _pix2pix("maps", "aerial photos | Google Maps tiles, aligned"),
)


def list_datasets() -> list[DatasetInfo]:
    """Every registered data set, CycleGAN ones first, in the reference scripts' order."""
    return list(DATASETS)


def did_you_mean(name: str, names: list[str]) -> str:
    """'did you mean a or b? ' for the known names close to a mistyped one, else ''."""
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    return f"did you mean {' or '.join(close)}? " if close else ""


def get_dataset(name: str, family: str | None = None) -> DatasetInfo:
    """The data set called `name`; for a name in both families, `family` picks one (default cyclegan).

    Raises ValueError for an unknown family or name (naming the closest known names), or for a name
    that exists only in the other family.
    """
    if family is not None and family not in FAMILIES:
        raise ValueError(f"unknown data set family {family!r}: expected one of {', '.join(FAMILIES)}")
    matches = [info for info in DATASETS if info.name == name]
    if not matches:
        names = sorted({info.name for info in DATASETS})
        raise ValueError(f"unknown data set {name!r}; {did_you_mean(name, names)}known data sets: {', '.join(names)}")
    if family is None:
        return matches[0]  # the CycleGAN entry comes first in DATASETS
    for info in matches:
        if info.family == family:
            return info
    raise ValueError(f"there is no {family} data set {name!r}; {name} is a {matches[0].family} data set "
                     f"(pass family=None, or leave out --pix2pix on the command line)")


def download_dataset(
    name: str,
    root: str | os.PathLike,
    *,
    family: str | None = None,
    mirror: str | None = None,
    sha256: str | None = None,
    progress: ProgressCallback | None = None,
    keep_archive: bool = False,
) -> Path:
    """Download and safely extract data set `name` to `root/name`, and return that folder.

    The archive is downloaded into `root/.downloads/` (an interrupted download resumes on the next
    call), extracted (see `safe_extract`) and deleted unless `keep_archive`. Archives with a single
    top folder called `name` (the reference's) and archives without one give the same `root/name`.
    `mirror` replaces the reference's server: the archive is fetched from `mirror + "/" + filename`
    (e.g. https://example.org/datasets/horse2zebra.zip); a trailing slash on `mirror` is fine.
    `sha256`, when given, is checked before extraction.

    Raises ValueError for an unknown name or family and for a licensed data set (cityscapes) without
    a mirror; FileExistsError when `root/name` exists and is not empty (nothing is overwritten);
    DownloadError and ArchiveError when the download or the archive fails.
    """
    info = get_dataset(name, family)
    if info.restricted is not None and mirror is None:
        raise ValueError(f"{info.family} data set {info.name!r} cannot be downloaded from the reference's server. "
                         f"{info.restricted}")
    root = Path(root)
    dest = root / info.name
    if dest.is_dir() and not any(dest.iterdir()):
        dest.rmdir()  # an empty folder (e.g. made by the reference's script) holds nothing to lose
    if dest.exists():
        raise FileExistsError(f"{dest} already exists; delete it to download {info.name} again, "
                              f"or pass another folder")
    url = mirror_url(mirror, info.url)
    archive = download_file(url, root / ".downloads" / info.filename, sha256=sha256 or info.sha256,
                            progress=progress)
    logger.info("extracting %s", archive)
    try:
        _extract_into(archive, dest)
    except ArchiveError as error:
        # A damaged archive would fail the same way on every re-run, so drop it: the next run downloads afresh.
        archive.unlink(missing_ok=True)
        raise type(error)(f"{error} (deleted {archive}; running the download again fetches it anew)") from None
    if not keep_archive:
        archive.unlink()
        _remove_if_empty(archive.parent)
    missing = [folder for folder in LAYOUT_FOLDERS[info.layout] if not (dest / folder).is_dir()]
    if missing:
        logger.warning("%s has no %s folder: the archive does not have the usual %s layout",
                       dest, "/, ".join(missing) + "/", info.layout)
    logger.debug("%s data set %s is in %s", info.family, info.name, dest)
    return dest


def _extract_into(archive: Path, dest: Path) -> None:
    """Extract `archive` so that its content (without a top folder named `dest.name`) becomes `dest`."""
    staging = dest.parent / f".{dest.name}.extracted"
    if staging.exists():  # left by an interrupted earlier call: only this function writes there
        shutil.rmtree(staging)
    safe_extract(archive, staging)
    try:
        shutil.rmtree(staging / "__MACOSX", ignore_errors=True)  # macOS zip metadata, never data
        entries = [entry for entry in staging.iterdir() if not entry.name.startswith(".")]  # .DS_Store
        top = staging / dest.name
        source = top if entries == [top] and top.is_dir() else staging
        os.replace(source, dest)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:  # not empty: another archive (kept or partly downloaded) lives there
        pass

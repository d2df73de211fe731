"""`translate data`: download the reference implementation's data sets; make the text tasks' data sets."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from translate.cli import make_data
from translate.cli.common import download_progress, error_message, fail, library_errors

# download_dataset's parameters whose flag is not `--name-with-dashes`.
DOWNLOAD_FLAGS = {"name": "NAME", "root": "DIR"}

data_app = typer.Typer(
    help="The reference implementation's data sets: list them, download and extract one; make the shapes "
         "data set and textcycle domain folders.",
    no_args_is_help=True,
)

# What to train each layout with, for the hint printed after a download.
_TRAIN_HINT = {"unpaired": "cyclegan", "aligned": "pix2pix"}


@data_app.command("list")
def list_command() -> None:
    """List the data sets `translate data download` knows: name, family, layout, description."""
    from translate.hub import list_datasets

    infos = list_datasets()
    width = max(len(info.name) for info in infos)
    typer.echo(f"{'name':<{width}}  {'family':<8}  {'layout':<8}  description")
    for info in infos:
        typer.echo(f"{info.name:<{width}}  {info.family:<8}  {info.layout:<8}  {info.description}")
    typer.echo("(names in both families download the CycleGAN version; add --pix2pix for the aligned one)")


@data_app.command("download")
def download_command(
    name: str = typer.Argument(..., help="Data set name, e.g. horse2zebra (see `translate data list`)."),
    root: Path = typer.Argument(..., help="Folder to put NAME/ in, e.g. datasets (created if needed)."),
    pix2pix: bool = typer.Option(False, "--pix2pix", help="The pix2pix (aligned A|B) version of maps, facades or cityscapes."),
    mirror: Optional[str] = typer.Option(None, "--mirror", help="Base URL serving the same archive names, instead of the reference's server."),
    sha256: Optional[str] = typer.Option(None, "--sha256", help="Expected SHA-256 of the archive (64 hex digits); checked before extracting."),
    keep_archive: bool = typer.Option(False, "--keep-archive", help="Keep the archive in DIR/.downloads/ after extracting it."),
) -> None:
    """Download data set NAME and extract it safely to DIR/NAME.

    An interrupted download resumes when run again. Nothing is overwritten: an existing DIR/NAME is
    an error. Exit status 2 for bad arguments (unknown name, existing folder, cityscapes without
    --mirror), 1 when the download or the archive fails.
    """
    from translate.hub import ArchiveError, DownloadError, download_dataset, get_dataset

    family = "pix2pix" if pix2pix else None
    with library_errors(DOWNLOAD_FLAGS):
        info = get_dataset(name, family)
    progress, close = download_progress(info.filename)
    try:
        try:
            path = download_dataset(name, root, family=family, mirror=mirror, sha256=sha256, progress=progress,
                                    keep_archive=keep_archive)
        finally:
            close()  # before any message, so that it does not tangle with a live bar
    except (DownloadError, ArchiveError) as error:
        fail(str(error), 1)
    except (ValueError, FileExistsError) as error:
        fail(error_message(error, DOWNLOAD_FLAGS), 2)
    except OSError as error:  # the file system: disk full, permissions
        fail(str(error), 1)
    typer.echo(f"{info.family} data set {info.name} ({info.layout}) is in {path}")
    if info.layout in _TRAIN_HINT:
        typer.echo(f"train on it with: translate train {_TRAIN_HINT[info.layout]} --data {path} --out runs/{info.name}")


data_app.command("make-shapes")(make_data.make_shapes_command)
data_app.command("make-text-domains")(make_data.make_text_domains_command)

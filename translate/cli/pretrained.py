"""`translate pretrained NAME [DIR]`: the reference's published generators."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from translate.cli.common import download_progress, error_message, fail, library_errors
from translate.core.paths import models_dir

# download_pretrained's parameters whose flag is not `--name-with-dashes`.
PRETRAINED_FLAGS = {"name": "NAME", "key": "NAME", "root": "DIR"}


def _list() -> None:
    from translate.hub.pretrained import PRETRAINED

    width = max(len(e.key) for e in PRETRAINED.values())
    typer.echo(f"{'name':<{width}}  {'--model name':<28}  translates")
    for entry in PRETRAINED.values():
        typer.echo(f"{entry.key:<{width}}  {entry.folder_name:<28}  {entry.source} -> {entry.target}")
    typer.echo(f"(installed in {models_dir()} unless DIR is given; plain names in both lists are CycleGAN's, "
               "add --pix2pix for the pix2pix one)")


def pretrained_command(
    name: Optional[str] = typer.Argument(None, help="Model name, e.g. horse2zebra or pix2pix/sat2map (--list shows all)."),
    root: Optional[Path] = typer.Argument(None, help="Models folder to install into [$TRANSLATE_MODELS, else ~/.local/share/translate/models]."),
    pix2pix: bool = typer.Option(False, "--pix2pix", help="The pix2pix model of a name both lists have (sat2map, map2sat, facades_label2photo)."),
    mirror: Optional[str] = typer.Option(None, "--mirror", help="Base URL serving the same .pth names, instead of the reference's server."),
    sha256: Optional[str] = typer.Option(None, "--sha256", help="Expected SHA-256 of the .pth (64 hex digits)."),
    force: bool = typer.Option(False, "--force", help="Download and install again over an installed model."),
    list_models: bool = typer.Option(False, "--list", help="List the available models and exit."),
) -> None:
    """Download one of the original implementation's 18 CycleGAN / 5 pix2pix pretrained generators,
    import it with the options it was trained with, verify it and install it as a weights folder.

    Then use it by name: `translate convert photos/ out/ --model horse2zebra`. An interrupted download
    resumes when run again. Exit status 2 for bad arguments, 1 when the download or the check fails.
    """
    from translate.hub.fetch import DownloadError
    from translate.hub.pretrained import download_pretrained, find_pretrained

    if list_models:
        _list()
        return
    if name is None:
        fail("name a model (e.g. horse2zebra), or pass --list", 2)
    with library_errors(PRETRAINED_FLAGS):
        entry = find_pretrained(name, "pix2pix" if pix2pix else None)
    progress, close = download_progress(entry.filename)
    try:
        try:
            path = download_pretrained(entry.key, root, mirror=mirror, sha256=sha256, force=force, progress=progress)
        finally:
            close()
    except DownloadError as error:
        fail(str(error), 1)
    except ValueError as error:  # includes ReferenceMismatchError: the file is not the stated model
        fail(f"{entry.key}: {error_message(error, PRETRAINED_FLAGS)}", 1)
    except OSError as error:
        fail(str(error), 1)
    typer.echo(f"{entry.key} ({entry.source} -> {entry.target}) is installed in {path}")
    typer.echo(f"use it with: translate convert IN_DIR OUT_DIR --model {path if root is not None else entry.folder_name}")

"""The original implementation's pretrained generators by name (`translate pretrained NAME`).

The reference published 18 CycleGAN generators (`scripts/download_cyclegan_model.sh`) and 5
pix2pix generators (`scripts/download_pix2pix_model.sh`) as bare `state_dict`s. Each entry here
states the options they were trained with (CycleGAN: resnet_9blocks, ngf 64, instance norm, no
dropout; pix2pix: unet_256, ngf 64, batch norm, dropout), so that

    path = download_pretrained("horse2zebra")      # -> ~/.local/share/translate/models/horse2zebra
    translate.load("horse2zebra")                   # found there by name, like a bundled model

downloads the `.pth` (resumable, over a mirror if asked), imports it strictly through
`import_reference`, checks that the imported network runs and that the saved folder reloads to the
same outputs, and only then moves the folder into place, with a model card.

`sat2map` and `map2sat` exist in both lists: the plain names are the CycleGAN models, and
`pix2pix/sat2map` (or `family="pix2pix"`) the pix2pix ones, stored as `sat2map_pix2pix`.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from translate.core.files import sha256_file
from translate.core.paths import models_dir
from translate.formats.weights import load
from translate.hub.datasets import did_you_mean
from translate.hub.fetch import download_file, mirror_url
from translate.hub.reference import import_reference, reference_network
from translate.models import GeneratorConfig

logger = logging.getLogger(__name__)

__all__ = ["PretrainedModel", "PRETRAINED", "models_dir", "find_pretrained", "download_pretrained"]

CYCLEGAN_URL = "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models"
PIX2PIX_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch"
# The options of the reference's test commands for its pretrained models.
CYCLEGAN_G = GeneratorConfig(name="resnet_9blocks", ngf=64, norm="instance", dropout=False)
PIX2PIX_G = GeneratorConfig(name="unet_256", ngf=64, norm="batch", dropout=True)
_VERIFY_SIZE = 256  # a multiple of every generator's size multiple (unet_256 needs 256)


@dataclass(frozen=True)
class PretrainedModel:
    """One published generator: where it is, how it was built, what it translates.

    `direction` is the way it runs on the reference's data set `dataset` (AtoB: left / trainA to
    right / trainB), as in the reference's test commands.
    """

    name: str
    family: str  # "cyclegan" | "pix2pix"
    source: str
    target: str
    dataset: str
    direction: str
    sha256: str | None = None  # none are published; a user may pass one

    @property
    def key(self) -> str:
        return f"{self.family}/{self.name}"

    @property
    def filename(self) -> str:
        return f"{self.name}.pth"

    @property
    def url(self) -> str:
        return f"{CYCLEGAN_URL if self.family == 'cyclegan' else PIX2PIX_URL}/{self.filename}"

    @property
    def architecture(self) -> GeneratorConfig:
        return CYCLEGAN_G if self.family == "cyclegan" else PIX2PIX_G

    @property
    def folder_name(self) -> str:
        """The stored folder (and `--model` name): the name, plus `_pix2pix` where CycleGAN has it too."""
        clash = self.family == "pix2pix" and f"cyclegan/{self.name}" in PRETRAINED
        return f"{self.name}_pix2pix" if clash else self.name


def _cyclegan(name: str, source: str, target: str, dataset: str, direction: str) -> PretrainedModel:
    return PretrainedModel(name, "cyclegan", source, target, dataset, direction)


def _pix2pix(name: str, source: str, target: str, dataset: str, direction: str) -> PretrainedModel:
    return PretrainedModel(name, "pix2pix", source, target, dataset, direction)


_ENTRIES = [
    _cyclegan("apple2orange", "apple", "orange", "apple2orange", "AtoB"),
    _cyclegan("orange2apple", "orange", "apple", "apple2orange", "BtoA"),
    _cyclegan("summer2winter_yosemite", "summer", "winter", "summer2winter_yosemite", "AtoB"),
    _cyclegan("winter2summer_yosemite", "winter", "summer", "summer2winter_yosemite", "BtoA"),
    _cyclegan("horse2zebra", "horse", "zebra", "horse2zebra", "AtoB"),
    _cyclegan("zebra2horse", "zebra", "horse", "horse2zebra", "BtoA"),
    _cyclegan("monet2photo", "Monet painting", "photo", "monet2photo", "AtoB"),
    _cyclegan("style_monet", "photo", "Monet painting", "monet2photo", "BtoA"),
    _cyclegan("style_cezanne", "photo", "Cezanne painting", "cezanne2photo", "BtoA"),
    _cyclegan("style_ukiyoe", "photo", "ukiyo-e print", "ukiyoe2photo", "BtoA"),
    _cyclegan("style_vangogh", "photo", "Van Gogh painting", "vangogh2photo", "BtoA"),
    _cyclegan("sat2map", "aerial photo", "map", "maps", "AtoB"),
    _cyclegan("map2sat", "map", "aerial photo", "maps", "BtoA"),
    _cyclegan("cityscapes_photo2label", "street photo", "label map", "cityscapes", "AtoB"),
    _cyclegan("cityscapes_label2photo", "label map", "street photo", "cityscapes", "BtoA"),
    _cyclegan("facades_photo2label", "facade photo", "label map", "facades", "AtoB"),
    _cyclegan("facades_label2photo", "label map", "facade photo", "facades", "BtoA"),
    _cyclegan("iphone2dslr_flower", "iPhone flower photo", "DSLR flower photo", "iphone2dslr_flower", "AtoB"),
    _pix2pix("edges2shoes", "edges", "shoe photo", "edges2shoes", "AtoB"),
    _pix2pix("sat2map", "aerial photo", "map", "maps", "AtoB"),
    _pix2pix("map2sat", "map", "aerial photo", "maps", "BtoA"),
    _pix2pix("facades_label2photo", "label map", "facade photo", "facades", "BtoA"),
    _pix2pix("day2night", "day photo", "night photo", "night2day", "BtoA"),
]
PRETRAINED: dict[str, PretrainedModel] = {entry.key: entry for entry in _ENTRIES}


def find_pretrained(name: str, family: str | None = None) -> PretrainedModel:
    """The entry for `name` ("horse2zebra", "pix2pix/sat2map", "sat2map_pix2pix"); plain names
    shared by both lists are CycleGAN's unless `family="pix2pix"`."""
    if family not in (None, "cyclegan", "pix2pix"):
        raise ValueError(f"family must be cyclegan or pix2pix, got {family!r}")
    if "/" in name:
        prefix, _, name = name.partition("/")
        if family not in (None, prefix):
            raise ValueError(f"{prefix}/{name} contradicts family={family!r}")
        family = prefix
    candidates = [e for e in PRETRAINED.values() if name in (e.name, e.folder_name) and family in (None, e.family)]
    if candidates:  # a plain name in both lists is CycleGAN's
        return next((e for e in candidates if e.family == "cyclegan"), candidates[0])
    names = sorted({e.name for e in PRETRAINED.values()} | {e.key for e in PRETRAINED.values()})
    raise ValueError(f"no pretrained model {name!r}; {did_you_mean(name, names)}known models: "
                     + ", ".join(e.key for e in PRETRAINED.values()))


def _model_card(entry: PretrainedModel, url: str, sha256: str) -> str:
    arch = entry.architecture
    test_mode = ("The reference's test.py runs pix2pix generators without `--eval`, i.e. with batch "
                 "statistics and dropout on; `translate` runs them in eval mode (the running statistics "
                 "stored in the checkpoint, no dropout), as the reference does with `--eval`. Outputs "
                 "therefore differ slightly from the reference's default test outputs.\n"
                 if entry.family == "pix2pix" else "")
    return (f"# {entry.folder_name}\n\n"
            f"The original CycleGAN/pix2pix implementation's pretrained {entry.family} generator "
            f"`{entry.name}`: {entry.source} -> {entry.target}, trained on the `{entry.dataset}` data set "
            f"(runs {entry.direction} on its layout).\n\n"
            f"- Source: {url}\n- SHA-256 of the downloaded file: `{sha256}`\n"
            f"- Imported with `translate pretrained {entry.key}` as `--netG {arch.name} --ngf {arch.ngf} "
            f"--norm {arch.norm} {'--dropout' if arch.dropout else '--no-dropout'}`; weights kept in float32.\n"
            f"- Licence: the reference code is BSD-licensed; the training images carry their own terms "
            f"(see the data set's source).\n\n{test_mode}")


def _verify(folder: Path, imported: torch.nn.Module) -> None:
    """The saved folder reloads to the outputs of the network built straight from the `.pth`,
    finite and in [-1, 1], on a fixed random probe."""
    first_conv = next(m for m in imported.modules() if isinstance(m, torch.nn.Conv2d))
    probe = torch.rand(1, first_conv.in_channels, _VERIFY_SIZE, _VERIFY_SIZE,
                       generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        expected = imported.eval()(probe)
        got = load(folder)(probe)
    if not torch.isfinite(got).all() or float(got.abs().max()) > 1 + 1e-5:
        raise ValueError("the imported generator gives non-finite or out-of-range outputs: the download is "
                         "damaged; download it again with force=True (--force on the command line)")
    if not torch.allclose(got, expected, atol=1e-5):
        raise ValueError(f"the saved weights folder reloads to different outputs than the downloaded file "
                         f"(max abs difference {float((got - expected).abs().max()):.2e}); nothing was installed")


def download_pretrained(name: str, root: str | os.PathLike[str] | None = None, *, family: str | None = None,
                        mirror: str | None = None, sha256: str | None = None, force: bool = False,
                        progress: Callable[[int, int | None], None] | None = None,
                        keep_download: bool = False) -> Path:
    """Download, import, verify and install a pretrained generator; return its weights folder.

    Args:
        name: a name of `PRETRAINED` ("horse2zebra", "pix2pix/sat2map").
        root: the models folder [`models_dir()`]; the model goes to `root/<folder_name>`.
        family: "cyclegan" | "pix2pix" for names in both lists.
        mirror: base URL replacing the reference's (the file name is appended).
        sha256: expected SHA-256 of the `.pth` (none are published).
        force: replace an installed model; without it an installed model is returned as it is.
        progress: called with (bytes done, bytes in all or None) while downloading.
        keep_download: keep the `.pth` in `root/.downloads/` after the import.
    """
    entry = find_pretrained(name, family)
    root = Path(root) if root is not None else models_dir()
    final = root / entry.folder_name
    if (final / "config.json").is_file() and not force:
        logger.info("%s is installed at %s (force=True replaces it)", entry.key, final)
        return final
    url = mirror_url(mirror, entry.url)
    if final.exists() and not (final / "config.json").is_file():
        raise FileExistsError(f"{final} exists and is not a translate model; nothing was downloaded. Remove it, "
                              f"or install into another folder (translate pretrained {entry.key} DIR)")
    downloads = root / ".downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    checkpoint = download_file(url, downloads / f"{entry.family}_{entry.filename}", sha256=sha256 or entry.sha256,
                               progress=progress)
    # A fixed staging name: a run killed half-way leaves one folder, which the next run clears.
    staging = root / f".{entry.folder_name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        folder = import_reference(checkpoint, staging, entry.architecture, direction=entry.direction,
                                  domains={"source": entry.source, "target": entry.target}, task=entry.family,
                                  origin=url)
        _verify(folder, reference_network(checkpoint, entry.architecture))
        (folder / "README.md").write_text(_model_card(entry, url, sha256_file(checkpoint)))
        if final.exists():
            shutil.rmtree(final)
        os.replace(folder, final)
    except BaseException:
        # A file that does not import is not kept: the next run downloads it again (from a fixed
        # server or --mirror) instead of failing on the same bytes.
        checkpoint.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not keep_download:
        checkpoint.unlink(missing_ok=True)
    logger.info("installed %s at %s", entry.key, final)
    return final

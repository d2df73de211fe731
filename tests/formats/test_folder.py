"""The weights folder format every model shares: the write, the read, the version check, and
`translate.load` giving image and text models alike."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import translate
from tests.helpers.legacy import RELEASES, legacy_folder
from translate.core.errors import InvalidCombinationError, UnsupportedFormatVersionError
from translate.formats import folder as folder_module
from translate.formats.folder import CONFIG_FILE, WEIGHTS_FILE, read_weights_folder, write_weights_folder
from translate.text.model import Text2ImageModel, TextTranslationModel, load_text_model

pytestmark = pytest.mark.usefixtures("single_thread")

# The version check reads only the `format_version` the tests rewrite, so one release's folders
# (the newest, closest to what this release writes) stand for all; loading each release's folders
# is tests/formats/test_legacy_formats.py's job.
LEGACY = legacy_folder(RELEASES[-1])
IMAGE_FOLDER = LEGACY / "pix2pix_weights"
TEXT_FOLDERS = (LEGACY / "text2image_weights", LEGACY / "textcycle_weights")


def _copy_with_version(source: Path, destination: Path, version: object) -> Path:
    shutil.copytree(source, destination)
    config = json.loads((destination / CONFIG_FILE).read_text(encoding="utf-8"))
    (destination / CONFIG_FILE).write_text(json.dumps({**config, "format_version": version}), encoding="utf-8")
    return destination


def test_write_stores_the_dtype_and_read_gives_float32_back(tmp_path: Path) -> None:
    weight = torch.randn(4, 3).t()  # not contiguous: stored contiguous
    tensors = {"conv.weight": weight, "norm.num_batches_tracked": torch.tensor(7)}
    out = write_weights_folder(tmp_path / "w", tensors, {"kind": "generator", "dtype": None, "source": {}},
                               torch.float16)
    assert sorted(p.name for p in out.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]  # no temporary files left
    with safe_open(str(out / WEIGHTS_FILE), "pt") as stored:
        assert stored.get_tensor("conv.weight").dtype == torch.float16
        assert stored.get_tensor("norm.num_batches_tracked").dtype == torch.int64
    document = json.loads((out / CONFIG_FILE).read_text())
    # The header comes first; the writer's "dtype" keeps the place the caller gave it.
    assert list(document) == ["format", "format_version", "toolkit_version", "kind", "dtype", "source"]
    assert (document["format"], document["format_version"], document["dtype"]) == ("translate.weights", 1, "float16")

    config, loaded = read_weights_folder(out)
    assert config == document
    assert loaded["conv.weight"].dtype == torch.float32
    torch.testing.assert_close(loaded["conv.weight"], weight.half().float(), rtol=0, atol=0)
    assert loaded["norm.num_batches_tracked"].item() == 7


def test_write_refuses_a_dtype_and_leaves_no_config_when_the_weights_fail(tmp_path, monkeypatch) -> None:
    with pytest.raises(ValueError, match="dtype=torch.int8 is not one of"):
        write_weights_folder(tmp_path / "w", {"w": torch.zeros(1)}, {}, torch.int8)

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(folder_module, "save_file", broken_save)
    with pytest.raises(OSError, match="disk full"):
        write_weights_folder(tmp_path / "w", {"w": torch.zeros(1)}, {})
    # Weights first: a folder without config.json is no model, so nothing half-written is loaded.
    assert not (tmp_path / "w" / CONFIG_FILE).exists()
    assert not list((tmp_path / "w").iterdir())


@pytest.mark.parametrize("version", [2, 99, "1", 1.0, None, True])
@pytest.mark.parametrize("model", [IMAGE_FOLDER, *TEXT_FOLDERS], ids=["image", "text2image", "textcycle"])
def test_unknown_format_version_is_refused_naming_it(tmp_path, model: Path, version: object) -> None:
    folder = _copy_with_version(model, tmp_path / model.name, version)
    loaders = [translate.load]
    if model != IMAGE_FOLDER:
        loaders.append(load_text_model)
    for load in loaders:
        with pytest.raises(UnsupportedFormatVersionError) as caught:
            load(folder)
        assert caught.value.found == version and caught.value.readable == (1,)
        message = str(caught.value)
        assert f"format_version {version!r}" in message
        assert "reads format_version 1" in message and "upgrade translate" in message
        assert str(folder / CONFIG_FILE) in message


@pytest.mark.parametrize("release", RELEASES)
def test_translate_load_gives_image_and_text_models(release: str) -> None:
    legacy = legacy_folder(release)
    image = translate.load(legacy / "pix2pix_weights")
    assert not isinstance(image, (Text2ImageModel, TextTranslationModel))
    assert image(torch.zeros(1, 1, 128, 128)).shape == (1, 1, 128, 128)

    textcycle = translate.load(legacy / "textcycle_weights")
    assert isinstance(textcycle, TextTranslationModel) and not textcycle.training
    assert textcycle.translate(torch.zeros(1, 3, 32, 32), "a map").shape == (1, 3, 32, 32)
    assert isinstance(translate.load(legacy / "text2image_weights"), Text2ImageModel)
    with pytest.raises(InvalidCombinationError, match="no direction"):
        translate.load(legacy / "textcycle_weights", direction="AtoB")

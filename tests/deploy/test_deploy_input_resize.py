"""A model whose config.json names `input_resize` is converted at that scale by default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from translate.deploy.convert import convert_folder
from translate.deploy.export import export_onnx
from translate.formats.onnx_metadata import read_onnx_metadata
from translate.formats.weights import save_weights
from translate.models import GeneratorConfig, build_generator

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def scaled_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    architecture = GeneratorConfig(name="resnet_6blocks", ngf=4)
    out = tmp_path_factory.mktemp("model") / "scaled"
    return save_weights(build_generator(architecture), out, architecture, direction="AtoB", input_resize=24)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    Image.new("RGB", (64, 48), (200, 30, 30)).save(folder / "wide.png")
    return folder


def test_convert_scales_to_the_models_input_size_unless_told_native(scaled_model: Path, photos: Path,
                                                                    tmp_path: Path) -> None:
    assert json.loads((scaled_model / "config.json").read_text())["input_resize"] == 24
    convert_folder(photos, tmp_path / "default", scaled_model, backend="torch", precision="fp32", device="cpu")
    assert Image.open(tmp_path / "default" / "wide.png").size == (32, 24), "shorter side 24, aspect kept"
    convert_folder(photos, tmp_path / "native", scaled_model, backend="torch", precision="fp32", device="cpu",
                   resize="native")
    assert Image.open(tmp_path / "native" / "wide.png").size == (64, 48)
    convert_folder(photos, tmp_path / "asked", scaled_model, backend="torch", precision="fp32", device="cpu",
                   resize=32)
    assert Image.open(tmp_path / "asked" / "wide.png").size == (43, 32), "an explicit resize wins"


def test_the_onnx_export_carries_it(scaled_model: Path, photos: Path, tmp_path: Path) -> None:
    report = export_onnx(scaled_model, tmp_path / "scaled.onnx", parity_sizes=[(32, 32)])
    assert read_onnx_metadata(report.path)["input_resize"] == 24
    convert_folder(photos, tmp_path / "out", report.path, device="cpu")
    assert Image.open(tmp_path / "out" / "wide.png").size == (32, 24)


def test_folders_without_it_stay_as_before_and_bad_values_are_refused(tmp_path: Path) -> None:
    architecture = GeneratorConfig(name="resnet_6blocks", ngf=4)
    plain = save_weights(build_generator(architecture), tmp_path / "plain", architecture)
    assert "input_resize" not in json.loads((plain / "config.json").read_text())
    with pytest.raises(ValueError, match="input_resize=0: expected None or a positive integer"):
        save_weights(build_generator(architecture), tmp_path / "bad", architecture, input_resize=0)

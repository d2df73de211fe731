"""translate.Translator over PyTorch and ONNX models, for every input kind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from translate import Translator
from translate.deploy.export import export_onnx

# The auto rules pick different paths on different CPUs: CI runs these with bf16 reported both ways.
pytestmark = pytest.mark.selection


@pytest.fixture(scope="module")
def onnx_files(model_dir, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("onnx")
    return {io: export_onnx(model_dir, root / f"{io}.onnx", io=io).path for io in ("float", "uint8")}


def test_every_input_kind_keeps_size_and_kind(model_dir):
    t = Translator(model_dir, device="cpu")
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (37, 50, 3), dtype=np.uint8))
    out = t(image)
    assert isinstance(out, Image.Image) and out.size == (50, 37) and out.mode == "RGB"
    assert [o.size for o in t([image, image.resize((20, 12))])] == [(50, 37), (20, 12)]
    array = np.asarray(image)
    single, batch = t(array), t(np.stack([array, array]))
    assert single.shape == (37, 50, 3) and single.dtype == np.uint8 and batch.shape == (2, 37, 50, 3)
    assert np.array_equal(single, np.asarray(out)) and np.array_equal(batch[1], single)
    x = torch.rand(2, 3, 21, 30) * 2 - 1
    assert t(x).shape == (2, 3, 21, 30) and t(x[0]).shape == (3, 21, 30)
    assert torch.allclose(t(x)[0], t(x[0]), atol=1e-5)


def test_grayscale_and_rgba_inputs_are_converted_to_the_model_channels(model_dir):
    t = Translator(model_dir, device="cpu")
    assert t(Image.new("RGBA", (16, 16), (10, 20, 30, 0))).mode == "RGB"
    assert t(Image.new("L", (16, 16), 100)).size == (16, 16)


@pytest.mark.parametrize("io", ["float", "uint8"])
def test_onnx_model_matches_the_pytorch_model(model_dir, onnx_files, io):
    torch_t, onnx_t = Translator(model_dir, device="cpu"), Translator(onnx_files[io])
    assert onnx_t.backend_name == "onnxruntime" and onnx_t.size_multiple == 4
    array = np.random.default_rng(1).integers(0, 256, (2, 30, 41, 3), dtype=np.uint8)
    difference = np.abs(torch_t(array).astype(int) - onnx_t(array).astype(int))
    assert difference.max() <= 1


def test_bad_inputs_say_what_is_expected(model_dir, tmp_path):
    t = Translator(model_dir, device="cpu")
    with pytest.raises(ValueError, match="uint8"):
        t(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        t(torch.zeros(1, 4, 8, 8))
    with pytest.raises(ValueError, match="got shape"):
        t(np.zeros((8, 8, 5), np.uint8))
    with pytest.raises(TypeError, match="PIL image"):
        t("a string")
    with pytest.raises(FileNotFoundError, match="no bundled or installed model.*translate pretrained NAME"):
        Translator(tmp_path / "missing")


def test_a_plain_name_prefers_an_installed_model_over_a_data_folder(model_dir, tmp_path, monkeypatch):
    import shutil

    from translate.formats.locator import locate, resolve_path

    monkeypatch.setenv("TRANSLATE_MODELS", str(tmp_path / "models"))
    shutil.copytree(model_dir, tmp_path / "models" / "horse2zebra")
    (tmp_path / "here" / "horse2zebra" / "trainA").mkdir(parents=True)  # `translate data download horse2zebra .`
    monkeypatch.chdir(tmp_path / "here")
    assert locate("horse2zebra").path == tmp_path / "models" / "horse2zebra"
    assert resolve_path("./horse2zebra") == (Path("./horse2zebra"), "path"), "a path is taken as given"
    with pytest.raises(ValueError, match="horse2zebra.*without config.json"):
        locate("./horse2zebra")  # ... and it holds no model

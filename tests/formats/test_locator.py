"""`translate.formats.locator.locate`: the one place that decides what a name or path is."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from translate.core import paths
from translate.formats.locator import locate


def _folder(path: Path, **config: object) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"format": "translate.weights", **config}))
    (path / "model.safetensors").write_bytes(b"")
    return path


def _onnx(path: Path, **metadata: str) -> Path:
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["output"])], "g",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph)
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(paths, "BUNDLED_DIR", tmp_path / "bundled")
    monkeypatch.setenv("TRANSLATE_MODELS", str(tmp_path / "installed"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_weights_folders_image_and_text(places: Path) -> None:
    image = locate(_folder(places / "g", kind="generator", direction="BtoA"))
    assert (image.form, image.kind, image.directions, image.is_text, image.origin) == \
        ("weights", "generator", ("BtoA",), False, "path")
    assert image.image_weights() == ("folder", places / "g")
    assert image.source_file() == places / "g" / "model.safetensors"
    text = locate(_folder(places / "t", kind="textcycle", domains={"map": ["map"]}))
    assert (text.form, text.kind, text.is_text, text.folder) == ("weights", "textcycle", True, places / "t")
    assert text.config()["domains"] == {"map": ["map"]}
    assert locate(places / "g" / "config.json").path == places / "g", "a file of a folder means the folder"


def test_run_directories_pick_folders_or_the_checkpoint(places: Path) -> None:
    run = places / "run"
    _folder(run / "weights" / "AtoB", kind="generator", direction="AtoB")
    _folder(run / "weights" / "BtoA", kind="generator", direction="BtoA")
    source = locate(run)
    assert (source.form, source.kind, source.directions) == ("run", "generator", ("AtoB", "BtoA"))
    assert source.image_weights() == ("folder", run / "weights" / "AtoB")
    assert source.image_weights("BtoA") == ("folder", run / "weights" / "BtoA")
    only_checkpoint = places / "stopped"
    (only_checkpoint / "checkpoints").mkdir(parents=True)
    (only_checkpoint / "checkpoints" / "latest.pt").write_bytes(b"")
    assert locate(only_checkpoint).image_weights("BtoA") == ("checkpoint", only_checkpoint / "checkpoints" / "latest.pt")
    text_run = places / "t2i"
    _folder(text_run / "weights" / "text2image", kind="text2image")
    assert locate(text_run).kind == "text2image" and locate(text_run).folder == text_run / "weights" / "text2image"


def test_checkpoints_and_onnx_files(places: Path) -> None:
    checkpoint = places / "latest.pt"
    checkpoint.write_bytes(b"")
    assert (locate(checkpoint).form, locate(checkpoint).kind) == ("checkpoint", "generator")
    image = locate(_onnx(places / "g.onnx", format="translate.onnx", direction="AtoB"))
    assert (image.form, image.kind, image.is_onnx, image.directions) == ("onnx", "generator", True, ("AtoB",))
    text = locate(_onnx(places / "t.onnx", format="translate.onnx", kind="text2image"))
    assert (text.kind, text.is_text, text.source_file()) == ("text2image", True, places / "t.onnx")
    with pytest.raises(ValueError, match="not PyTorch image weights"):
        text.image_weights()


def test_names_resolve_to_bundled_then_installed_models(places: Path) -> None:
    _folder(places / "bundled" / "maps", kind="generator")
    _folder(places / "installed" / "horse2zebra", kind="generator")
    assert (locate("maps").origin, locate("maps").path) == ("bundled", places / "bundled" / "maps")
    assert (locate("horse2zebra").origin, locate("horse2zebra").path) == \
        ("installed", places / "installed" / "horse2zebra")
    (places / "horse2zebra" / "trainA").mkdir(parents=True)  # a data set folder of the same name holds no model
    assert locate("horse2zebra").origin == "installed"
    shutil.rmtree(places / "horse2zebra")
    _folder(places / "horse2zebra", kind="generator")  # a model of that name here wins
    assert locate("horse2zebra").origin == "path"


def test_what_is_not_a_model_is_refused_with_the_accepted_forms(places: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no model at 'nothing'.*weights folder.*bundled: none"):
        locate("nothing")
    (places / "empty").mkdir()
    with pytest.raises(ValueError, match="without config.json"):
        locate(places / "empty")
    (places / "bare.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="bare safetensors"):
        locate(places / "bare.safetensors")
    run = places / "run"
    _folder(run / "weights" / "AtoB", kind="generator", direction="AtoB")
    with pytest.raises(ValueError, match="'BtoA' is not in"):
        locate(run).image_weights("BtoA")
    with pytest.raises(ValueError, match="direction='sideways' is not one of"):
        locate(run).image_weights("sideways")

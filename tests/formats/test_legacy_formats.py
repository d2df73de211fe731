"""Files written by releases 7ce1752 and f926d17 still load, give the same outputs and resume training.

Each fixture (tests/fixtures/legacy_<commit>/) was written by that release's own command line and
Python API with `python -m scripts.dev.make_legacy_fixtures --checkout <worktree of the commit>`; its
expected.safetensors holds what the old code computed on fixed inputs (see manifest.json). Every test
runs once per release.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import translate
from tests.helpers.legacy import RELEASES, legacy_folder
from translate.core.images import from_uint8
from translate.formats.locator import locate
from translate.text.model import TextTranslationModel, load_text_model
from translate.training import load_yaml_config, make_config, read_checkpoint, train

pytestmark = pytest.mark.usefixtures("single_thread")

RUN = "cyclegan_run"
ONNX = "cyclegan_AtoB_uint8.onnx"
ATOL = 1e-5


@dataclass(frozen=True)
class Legacy:
    """One release's fixture folder with its recorded outputs and manifest."""

    release: str
    folder: Path
    expected: dict[str, torch.Tensor]
    manifest: dict


@pytest.fixture(scope="module", params=RELEASES)
def legacy(request: pytest.FixtureRequest) -> Legacy:
    folder = legacy_folder(request.param)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    return Legacy(request.param, folder, load_file(str(folder / "expected.safetensors")), manifest)


def test_fixture_was_written_by_the_release(legacy):
    assert legacy.manifest["commit"].startswith(legacy.release)


@pytest.mark.parametrize(("model", "direction", "key", "form", "kind", "directions"), [
    (f"{RUN}/weights/AtoB", None, "cyclegan_AtoB", "weights", "generator", ("AtoB",)),
    (f"{RUN}/weights/BtoA", None, "cyclegan_BtoA", "weights", "generator", ("BtoA",)),
    (RUN, "BtoA", "cyclegan_BtoA", "run", "generator", ("AtoB", "BtoA")),
    (f"{RUN}/checkpoints/latest.pt", "BtoA", "cyclegan_checkpoint_BtoA", "checkpoint", "generator", ()),
    ("pix2pix_weights", None, "pix2pix", "weights", "generator", ("AtoB",)),
], ids=["AtoB_weights", "BtoA_weights", "run", "checkpoint", "pix2pix_weights"])
def test_image_models_load_with_the_recorded_outputs(legacy, model, direction, key, form, kind, directions):
    path = legacy.folder / model
    source = locate(path)
    assert (source.form, source.kind, source.directions) == (form, kind, directions)
    x = from_uint8(legacy.expected["input_128" if key == "pix2pix" else "input_32"])
    with torch.no_grad():
        out = translate.load(path, direction=direction)(x)
    torch.testing.assert_close(out, legacy.expected[key], atol=ATOL, rtol=0)


def test_checkpoint_and_exported_folder_agree(legacy):
    # The run's weights folder and its checkpoint hold the same generator after the last step.
    expected = legacy.expected
    torch.testing.assert_close(expected["cyclegan_checkpoint_BtoA"], expected["cyclegan_BtoA"], atol=0, rtol=0)


def test_uint8_onnx_export_runs_through_translator(legacy):
    onnx = legacy.folder / ONNX
    source = locate(onnx)
    assert (source.form, source.kind, source.directions) == ("onnx", "generator", ("AtoB",))
    assert source.config()["io"] == "uint8"
    translator = translate.Translator(onnx, device="cpu")
    assert translator.backend_name == "onnxruntime"
    images = legacy.expected["input_32"].permute(0, 2, 3, 1).numpy()
    out = translator(images)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, legacy.expected["onnx_uint8"].numpy())


def test_textcycle_model_loads_with_the_recorded_output(legacy):
    folder = legacy.folder / "textcycle_weights"
    source = locate(folder)
    assert (source.form, source.kind, source.is_text) == ("weights", "textcycle", True)
    model = load_text_model(folder)
    assert isinstance(model, TextTranslationModel)
    assert model.domains == {"aerial": ["an aerial photo", "satellite image"], "map": ["a map", "a street map"]}
    out = model.translate(from_uint8(legacy.expected["input_32"]), legacy.manifest["prompts"]["textcycle"])
    torch.testing.assert_close(out, legacy.expected["textcycle"], atol=ATOL, rtol=0)


def test_text2image_model_loads_with_the_recorded_output(legacy):
    folder = legacy.folder / "text2image_weights"
    assert locate(folder).kind == "text2image"
    model = load_text_model(folder)
    out = model.generate([legacy.manifest["prompts"]["text2image"]], n=2, seed=legacy.manifest["seed"])
    torch.testing.assert_close(out, legacy.expected["text2image"], atol=ATOL, rtol=0)


def test_run_resumes_one_more_step(legacy, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(legacy.folder / RUN, run)
    state = read_checkpoint(run)
    assert state["step"] == 2
    saved = load_yaml_config(run / "config.yaml")
    # The run recorded the temporary folders it was made in; point it at the copies.
    config = make_config(None, base=saved, overrides={"out": str(run), "data": str(legacy.folder / "cyclegan_data"),
                                                      "max_steps": 3})
    assert (config.task, config.netG, config.ngf) == ("cyclegan", "resnet_6blocks", 2)
    result = train(config, resume_state=state)
    assert result.step == 3
    assert read_checkpoint(run)["step"] == 3
    events = [json.loads(line)["event"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert events[:3] == ["start", "losses", "end"] and events[-1] == "end" and len(events) > 3
    # The resumed run still writes weights folders the locator and load read.
    assert locate(run).directions == ("AtoB", "BtoA")
    assert translate.load(run, direction="BtoA")(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)

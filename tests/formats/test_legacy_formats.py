"""Files written by release 7ce1752 still load, give the same outputs and resume training.

The fixture (tests/fixtures/legacy_7ce1752/) was written by that release's own command line and
Python API with `python -m scripts.dev.make_legacy_fixtures --checkout <worktree of 7ce1752>`; its
expected.safetensors holds what the old code computed on fixed inputs (see manifest.json).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import translate
from translate.core.images import from_uint8
from translate.formats.locator import locate
from translate.text.model import TextTranslationModel, load_text_model
from translate.training import load_yaml_config, make_config, read_checkpoint, train

pytestmark = pytest.mark.usefixtures("single_thread")

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "legacy_7ce1752"
RUN = FIXTURE / "cyclegan_run"
ONNX = FIXTURE / "cyclegan_AtoB_uint8.onnx"
ATOL = 1e-5


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Tensor]:
    return load_file(str(FIXTURE / "expected.safetensors"))


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads((FIXTURE / "manifest.json").read_text(encoding="utf-8"))


def test_fixture_was_written_by_the_release(manifest):
    assert manifest["commit"].startswith("7ce1752")


@pytest.mark.parametrize(("model", "direction", "key", "form", "kind", "directions"), [
    (RUN / "weights" / "AtoB", None, "cyclegan_AtoB", "weights", "generator", ("AtoB",)),
    (RUN / "weights" / "BtoA", None, "cyclegan_BtoA", "weights", "generator", ("BtoA",)),
    (RUN, "BtoA", "cyclegan_BtoA", "run", "generator", ("AtoB", "BtoA")),
    (RUN / "checkpoints" / "latest.pt", "BtoA", "cyclegan_checkpoint_BtoA", "checkpoint", "generator", ()),
    (FIXTURE / "pix2pix_weights", None, "pix2pix", "weights", "generator", ("AtoB",)),
])
def test_image_models_load_with_the_recorded_outputs(expected, model, direction, key, form, kind, directions):
    source = locate(model)
    assert (source.form, source.kind, source.directions) == (form, kind, directions)
    x = from_uint8(expected["input_128" if key == "pix2pix" else "input_32"])
    with torch.no_grad():
        out = translate.load(model, direction=direction)(x)
    torch.testing.assert_close(out, expected[key], atol=ATOL, rtol=0)


def test_checkpoint_and_exported_folder_agree(expected):
    # The run's weights folder and its checkpoint hold the same generator after the last step.
    torch.testing.assert_close(expected["cyclegan_checkpoint_BtoA"], expected["cyclegan_BtoA"], atol=0, rtol=0)


def test_uint8_onnx_export_runs_through_translator(expected):
    source = locate(ONNX)
    assert (source.form, source.kind, source.directions) == ("onnx", "generator", ("AtoB",))
    assert source.config()["io"] == "uint8"
    translator = translate.Translator(ONNX, device="cpu")
    assert translator.backend_name == "onnxruntime"
    images = expected["input_32"].permute(0, 2, 3, 1).numpy()
    out = translator(images)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected["onnx_uint8"].numpy())


def test_textcycle_model_loads_with_the_recorded_output(expected, manifest):
    folder = FIXTURE / "textcycle_weights"
    source = locate(folder)
    assert (source.form, source.kind, source.is_text) == ("weights", "textcycle", True)
    model = load_text_model(folder)
    assert isinstance(model, TextTranslationModel)
    assert model.domains == {"aerial": ["an aerial photo", "satellite image"], "map": ["a map", "a street map"]}
    out = model.translate(from_uint8(expected["input_32"]), manifest["prompts"]["textcycle"])
    torch.testing.assert_close(out, expected["textcycle"], atol=ATOL, rtol=0)


def test_text2image_model_loads_with_the_recorded_output(expected, manifest):
    folder = FIXTURE / "text2image_weights"
    assert locate(folder).kind == "text2image"
    model = load_text_model(folder)
    out = model.generate([manifest["prompts"]["text2image"]], n=2, seed=manifest["seed"])
    torch.testing.assert_close(out, expected["text2image"], atol=ATOL, rtol=0)


def test_run_resumes_one_more_step(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(RUN, run)
    state = read_checkpoint(run)
    assert state["step"] == 2
    saved = load_yaml_config(run / "config.yaml")
    # The run recorded the temporary folders it was made in; point it at the copies.
    config = make_config(None, base=saved, overrides={"out": str(run), "data": str(FIXTURE / "cyclegan_data"),
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

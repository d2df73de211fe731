"""`translate eval` of a text2image model on the shapes data set (translate.evaluation.text2image_scores),
on a tiny untrained model saved as a weights folder and as a training checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from translate.cli import app
from translate.evaluation.shapes import make_shapes_dataset
from translate.evaluation.text2image_scores import held_out_prompts, training_captions
from translate.formats.weights import CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION
from translate.models.conditioned import TextToImageGenerator
from translate.text import normalize_text
from translate.text.encoders import ByteTextEncoder
from translate.text.model import save_text_model

pytestmark = pytest.mark.usefixtures("single_thread")

runner = CliRunner()
SIZE, NOISE, DIM, NGF = 32, 8, 16, 8


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shapes") / "data"
    make_shapes_dataset(root, n=12, size=SIZE, seed=0)
    return root


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> tuple[Path, Path]:
    """An untrained text2image model (seed 0) as a weights folder, and the same tensors as a run's
    training checkpoint (generator under `g`, byte encoder under `text`)."""
    torch.manual_seed(0)
    encoder = ByteTextEncoder(dim=DIM)
    generator = TextToImageGenerator(NOISE, DIM, NGF, SIZE, 3)
    root = tmp_path_factory.mktemp("t2i")
    folder = save_text_model(generator, encoder, root / "weights", kind="text2image",
                             architecture={"name": "text2image", "noise_dim": NOISE, "cond_dim": DIM, "ngf": NGF,
                                           "image_size": SIZE, "output_nc": 3},
                             text_encoder_config={"name": "byte", **encoder.config()})
    config = {"task": "text2image", "text_encoder": "byte", "text_dim": DIM, "noise_dim": NOISE, "ngf": NGF,
              "crop_size": SIZE, "output_nc": 3}
    checkpoint = root / "run" / "checkpoints" / "epoch_0001.pt"
    checkpoint.parent.mkdir(parents=True)
    state = {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_FORMAT_VERSION, "config": config,
             "models": {"g": generator.state_dict(), "text": encoder.state_dict()}}
    for name in ("epoch_0001.pt", "epoch_0002.pt", "latest.pt"):
        torch.save(state, checkpoint.with_name(name))
    return folder, checkpoint


def test_held_out_prompts_are_unseen_in_training(shapes):
    seen = training_captions(shapes)
    assert len(seen) > 10
    prompts = held_out_prompts(50, seen, seed=3)
    assert len(set(prompts)) == 50 and not {normalize_text(p) for p in prompts} & seen
    with pytest.raises(ValueError, match="could not draw"):
        held_out_prompts(10, {normalize_text(p) for p in held_out_prompts(5000, set(), 0)}, seed=0)


def test_eval_scores_a_folder_and_its_checkpoint_alike(shapes, tiny_model, tmp_path):
    folder, checkpoint = tiny_model
    grid = tmp_path / "grid.png"
    result = runner.invoke(app, ["eval", "--model", str(folder), "--data", str(shapes), "--limit", "16",
                                 "--json", str(tmp_path / "folder.json"), "--grid", str(grid)])
    assert result.exit_code == 0, result.output
    assert "| held-out prompts | seed | colour |" in result.output
    report = json.loads((tmp_path / "folder.json").read_text())
    assert report["prompts"] == 16 and report["seed"] == 1 and report["training_captions"] > 10
    assert all(0 <= report[name] <= 1 for name in ("color", "position", "size"))
    assert Image.open(grid).size == (8 * (SIZE + 2) + 2, 2 * (SIZE + 2) + 2)  # 16 images, 8 a row
    # The checkpoint holds the same tensors: the same prompts and noise give the same scores.
    result = runner.invoke(app, ["eval", "--model", str(checkpoint), "--data", str(shapes), "--limit", "16",
                                 "--json", str(tmp_path / "checkpoint.json")])
    assert result.exit_code == 0, result.output
    again = json.loads((tmp_path / "checkpoint.json").read_text())
    assert {k: again[k] for k in ("color", "position", "size")} == {k: report[k] for k in ("color", "position", "size")}
    # Every epoch checkpoint of the run, the best named.
    result = runner.invoke(app, ["eval", "--model", str(checkpoint.parents[1]), "--data", str(shapes), "--limit", "4",
                                 "--all-checkpoints", "--seed", "2", "--json", str(tmp_path / "all.json")])
    assert result.exit_code == 0, result.output
    reports = json.loads((tmp_path / "all.json").read_text())
    assert [Path(r["model"]).name for r in reports["reports"]] == ["epoch_0001.pt", "epoch_0002.pt"]
    assert reports["best_by"] == "color" and reports["best"] == str(checkpoint)  # a tie: the first
    assert reports["reports"][0]["seed"] == 2


def test_eval_refuses_textcycle_options_for_a_text2image_model(shapes, tiny_model):
    result = runner.invoke(app, ["eval", "--model", str(tiny_model[0]), "--data", str(shapes), "--names", "a,b"])
    assert result.exit_code == 2 and "--names goes with a textcycle --model" in result.output
    result = runner.invoke(app, ["eval", "--model", str(tiny_model[0]), "--data", str(shapes), "--limit", "0"])
    assert result.exit_code == 2 and "--limit 0: expected a positive number of prompts" in result.output

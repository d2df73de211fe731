"""Evaluation every K epochs during training (`--eval-every`): events, scores, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from tests.helpers.training import tiny_config, tiny_flags
from translate.cli import app
from translate.training import make_config, train
from translate.training.periodic_eval import PeriodicEvaluator

pytestmark = pytest.mark.usefixtures("single_thread")


class MeanColour(nn.Module):
    """A stand-in for the Inception network: 3 features, the mean of each channel."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.float().mean(dim=(2, 3)) + 1e-3 * torch.arange(images.shape[0]).unsqueeze(1)


@pytest.fixture
def fake_inception(monkeypatch):
    monkeypatch.setattr("translate.evaluation.inception.load_inception", lambda path=None, device="cpu": MeanColour())


def pix2pix_config(data: Path, out: Path, **overrides):
    values = dict(preprocess="crop", n_epochs=2, n_epochs_decay=1, eval_every=2, eval_phase="test")
    return tiny_config("pix2pix", data=data, out=out, **{**values, **overrides})


def eval_events(run: Path) -> list[dict]:
    events = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [e for e in events if e["event"] == "eval"]


def test_pix2pix_is_scored_every_k_epochs_and_at_the_end(paired_data, tmp_path, fake_inception):
    result = train(pix2pix_config(paired_data, tmp_path / "run"))
    events = eval_events(tmp_path / "run")
    # epochs 2 (every 2) and 3 (the last, though not a multiple of 2), of 4 steps each
    assert [e["epoch"] for e in events] == [2, 3] == [e["epoch"] for e in result.evaluations]
    for event in events:
        assert {"AtoB/psnr", "AtoB/ssim", "AtoB/l1", "AtoB/rmse", "AtoB/accuracy", "AtoB/fid", "AtoB/kid_mean"} <= set(event)
        assert 0 <= event["AtoB/l1"] <= 255 and 0 <= event["AtoB/accuracy"] <= 1
    assert events[0]["step"] == 8 and events[1]["step"] == 12
    assert any(p.name.startswith("events.") for p in (tmp_path / "run" / "tensorboard").iterdir())


def test_cyclegan_scores_both_directions_with_fid(unpaired_data, tmp_path, fake_inception):
    config = tiny_config("cyclegan", data=unpaired_data, out=tmp_path / "run", n_epochs_decay=0, eval_every=1)
    result = train(config)
    (scores,) = result.evaluations
    assert {"AtoB/fid", "BtoA/fid", "AtoB/kid_mean", "BtoA/kid_std"} <= set(scores)
    assert "AtoB/l1" not in scores  # unpaired: no ground truth


def test_evaluator_scores_a_right_generator_above_a_wrong_one(paired_data, fake_inception):
    config = pix2pix_config(paired_data, Path("unused"), eval_limit=4)
    evaluator = PeriodicEvaluator(config, torch.device("cpu"), MeanColour())
    assert evaluator.sets[0].sources.shape == (4, 3, 32, 32)

    targets = evaluator.sets[0].targets

    class Oracle(nn.Module):  # returns the ground truth of each source it is given
        def forward(self, source):
            index = [int((evaluator.sets[0].sources.float() / 127.5 - 1 - s).abs().flatten(1).sum(1).argmin())
                     for s in source]
            return targets[index].float() / 127.5 - 1

    wrong = nn.Sequential(nn.Conv2d(3, 3, 1), nn.Tanh())
    wrong.train()
    right, bad = evaluator({"AtoB": Oracle()}), evaluator({"AtoB": wrong})
    assert right["AtoB/l1"] == 0 and right["AtoB/accuracy"] == 1 and right["AtoB/psnr"] == 100
    assert bad["AtoB/l1"] > 1 and bad["AtoB/fid"] > right["AtoB/fid"]
    assert wrong.training, "the generator goes back to training mode after the pass"
    assert evaluator({"AtoB": wrong}) == bad, "a fixed set and a fixed generator give the same scores"


def test_without_fid_paired_metrics_still_run(paired_data, tmp_path):
    result = train(pix2pix_config(paired_data, tmp_path / "run", eval_fid=False, n_epochs=1, n_epochs_decay=0,
                                  eval_every=1))
    (scores,) = result.evaluations
    assert "AtoB/l1" in scores and not any(k.endswith("fid") for k in scores)


@pytest.mark.parametrize("overrides, needle", [
    ({"eval_every": -1}, "eval_every=-1: expected an integer >= 0"),
    ({"eval_every": 1, "eval_limit": 1}, "eval_limit=1: expected an integer >= 2"),
])
def test_bad_eval_options_are_refused(overrides, needle):
    with pytest.raises(ValueError, match=needle):
        make_config("pix2pix", overrides=overrides)


def test_eval_is_refused_where_it_cannot_score():
    with pytest.raises(ValueError, match="not text2image"):
        make_config("text2image", overrides={"eval_every": 1, "crop_size": 32})
    with pytest.raises(ValueError, match="cannot run with eval_fid=False"):
        make_config("cyclegan", overrides={"eval_every": 1, "eval_fid": False})


def test_missing_held_out_set_fails_before_training(paired_data, tmp_path):
    with pytest.raises(FileNotFoundError, match="val"):
        train(pix2pix_config(paired_data, tmp_path / "run", eval_phase="val", eval_fid=False))
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_missing_inception_weights_name_the_way_out(paired_data, tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSLATE_INCEPTION", str(tmp_path / "nowhere.pt"))
    with pytest.raises(FileNotFoundError, match="--no-eval-fid"):
        train(pix2pix_config(paired_data, tmp_path / "run"))


def test_cli_reports_the_best_evaluated_epoch(paired_data, tmp_path, fake_inception):
    run = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "train", "pix2pix", "--data", str(paired_data), "--out", str(run),
        *tiny_flags("pix2pix", preprocess="crop", eval_every=1, eval_phase="test", eval_limit=3)])
    assert result.exit_code == 0, result.output
    fids = [e["AtoB/fid"] for e in eval_events(run)]
    assert len(fids) == 2
    assert f"best AtoB/fid {min(fids):.4g} at epoch {fids.index(min(fids)) + 1}" in result.output


def test_evaluation_leaves_the_training_random_stream_alone(paired_data, fake_inception):
    evaluator = PeriodicEvaluator(pix2pix_config(paired_data, Path("unused")), torch.device("cpu"), MeanColour())
    generator = nn.Sequential(nn.Conv2d(3, 3, 1), nn.Dropout(0.5), nn.Tanh())
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    evaluator({"AtoB": generator})
    assert torch.equal(torch.rand(3), expected)


def test_kid_seeding_leaves_accelerator_streams_alone(paired_data, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("an evaluation reseeded the CUDA generators (training dropout would change)")

    monkeypatch.setattr(torch.cuda, "manual_seed_all", refuse)
    monkeypatch.setattr(torch.cuda, "manual_seed", refuse)
    evaluator = PeriodicEvaluator(pix2pix_config(paired_data, Path("unused")), torch.device("cpu"), MeanColour())
    assert "AtoB/kid_mean" in evaluator({"AtoB": nn.Sequential(nn.Conv2d(3, 3, 1), nn.Tanh())})


def test_evaluating_does_not_change_what_is_trained(paired_data, tmp_path, fake_inception):
    """pix2pix has dropout and batch norm: a pass in eval mode with a forked RNG must leave both alone."""
    runs = {}
    for every in (0, 1):
        config = pix2pix_config(paired_data, tmp_path / f"run{every}", eval_every=every, n_epochs=1, n_epochs_decay=1)
        train(config)
        runs[every] = torch.load(tmp_path / f"run{every}" / "checkpoints" / "latest.pt", weights_only=True)
    for name, tensor in runs[0]["models"]["g"].items():
        assert torch.equal(tensor, runs[1]["models"]["g"][name]), name


def test_a_run_stopped_by_max_steps_inside_an_epoch_is_scored_at_the_end(paired_data, tmp_path, fake_inception):
    result = train(pix2pix_config(paired_data, tmp_path / "run", max_steps=5, eval_every=5))
    assert [(e["step"], e["epoch"]) for e in result.evaluations] == [(5, 1)]

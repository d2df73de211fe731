"""EMA of a network's weights and DF-GAN's matching-aware gradient penalty."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from torch import nn

from tests.helpers.training import tiny_config
from translate.models.conditioned import ProjectionDiscriminator
from translate.training import loop as training_loop
from translate.training import read_checkpoint, train
from translate.training.ema import EMA
from translate.training.losses import matching_aware_gradient_penalty

pytestmark = pytest.mark.usefixtures("single_thread")


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))


def test_ema_starts_as_a_frozen_copy():
    net = _net()
    ema = EMA(net, 0.99)
    assert all(torch.equal(a, b) for a, b in zip(ema.model.parameters(), net.parameters(), strict=False))
    assert not any(p.requires_grad for p in ema.model.parameters())
    assert ema.model.parameters().__next__() is not net.parameters().__next__()
    x = torch.randn(5, 4)
    net.eval()
    assert torch.allclose(ema(x), net(x))


def test_ema_update_follows_the_decay_after_warm_up():
    net = _net()
    ema = EMA(net, 0.9)
    start = [p.detach().clone() for p in net.parameters()]
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    ema.update(net)  # first update: effective decay min(0.9, 1 / 10) = 0.1
    for averaged, s in zip(ema.model.parameters(), start, strict=False):
        assert torch.allclose(averaged, s + 0.9)
    ema.updates.fill_(1000)  # warm-up over: decay 0.9
    before = [p.detach().clone() for p in ema.model.parameters()]
    ema.update(net)
    for averaged, b, current in zip(ema.model.parameters(), before, net.parameters(), strict=False):
        assert torch.allclose(averaged, 0.9 * b + 0.1 * current)
    assert int(ema.updates) == 1001


def test_ema_copies_buffers_and_round_trips_its_state():
    net = _net()
    ema = EMA(net, 0.999)
    net.train()
    net(torch.randn(8, 4) * 3 + 2)  # moves the BatchNorm running statistics
    ema.update(net)
    assert torch.equal(ema.model[1].running_mean, net[1].running_mean)
    other = EMA(_net(), 0.999)
    other.load_state_dict(ema.state_dict())
    assert int(other.updates) == 1
    assert all(torch.equal(a, b) for a, b in zip(other.model.parameters(), ema.model.parameters(), strict=False))


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5, 1.5])
def test_ema_rejects_a_decay_outside_0_1(decay):
    with pytest.raises(ValueError, match=f"EMA decay must be in \\(0, 1\\).*{decay}"):
        EMA(_net(), decay)


def test_ma_gp_penalises_the_gradient_on_image_and_caption():
    torch.manual_seed(0)
    d = ProjectionDiscriminator(3, 8, 2, cond_dim=6)
    real, cond = torch.rand(3, 3, 32, 32) * 2 - 1, torch.randn(3, 6)
    penalty = matching_aware_gradient_penalty(d, real, cond, weight=2.0, power=6.0)
    assert penalty.ndim == 0 and penalty > 0
    # The same value by hand: one score per image (patch logits averaged), gradient norm ** 6.
    x, c = real.clone().requires_grad_(True), cond.clone().requires_grad_(True)
    gx, gc = torch.autograd.grad(d(x, c).mean(dim=(1, 2, 3)).sum(), (x, c))
    norms = torch.cat([gx.flatten(1), gc.flatten(1)], 1).norm(dim=1)
    assert torch.allclose(penalty, 2.0 * norms.pow(6).mean(), rtol=1e-4)
    # It trains D (double backward reaches its weights) and leaves the inputs alone.
    penalty.backward()
    assert d.embed.weight.grad is not None and d.embed.weight.grad.abs().sum() > 0
    assert real.grad is None and cond.grad is None
    # A caption-blind, image-blind D has nothing to penalise.
    for p in d.parameters():
        nn.init.zeros_(p)
    assert matching_aware_gradient_penalty(d, real, cond) == 0


# --- the generators' moving average in every image task ------------------------------------------

@pytest.mark.parametrize(("task", "keys"), [("cut", ("g",)), ("cyclegan", ("g_ab", "g_ba")), ("pix2pix", ("g",))])
def test_ema_is_what_the_run_saves_samples_and_scores(task, keys, paired_data, unpaired_data, tmp_path,
                                                       monkeypatch):
    data = paired_data if task == "pix2pix" else unpaired_data
    scored: list[nn.Module] = []

    class Evaluator:  # stands in for the Inception scores: records which networks it was given
        def __init__(self, *args, **kwargs) -> None:
            pass

        def __call__(self, generators):
            scored.extend(generators.values())
            return {"fid_AtoB": 1.0}

    monkeypatch.setattr(training_loop, "PeriodicEvaluator", Evaluator)
    monkeypatch.setattr(training_loop.inception_weights, "load_inception", lambda device: None)
    result = train(tiny_config(task, data=data, out=tmp_path / "run", n_epochs_decay=0, ema_decay=0.5, sample_every=2,
                               max_steps=3, eval_every=1))
    state = read_checkpoint(tmp_path / "run")
    for key in keys:
        ema, trained = state["models"][f"{key}_ema"], state["models"][key]
        assert int(ema["updates"]) == 3
        assert any(not torch.equal(ema[f"model.{k}"], v) for k, v in trained.items() if v.is_floating_point())
    for direction, folder in result.weights.items():
        key = keys[0] if direction == "AtoB" else keys[1]
        saved = load_file(folder / "model.safetensors")
        ema = state["models"][f"{key}_ema"]
        assert all(torch.equal(saved[k], ema[f"model.{k}"]) for k in saved)
        assert json.loads((folder / "config.json").read_text())["source"]["weights"] == "ema"
    assert scored and all(not net.training and not any(p.requires_grad for p in net.parameters()) for net in scored)
    # the grid gains the averages' images: one per generator, after the task's own
    grid = Image.open(sorted((tmp_path / "run" / "samples").glob("*.png"))[-1])
    own = {"cut": 4, "cyclegan": 6, "pix2pix": 3}[task]
    assert grid.width >= 32 * (own + len(keys)) and grid.width < 32 * (own + len(keys) + 1)

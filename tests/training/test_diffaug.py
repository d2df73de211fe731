"""DiffAugment (`--diffaug`): the policies, differentiability, reproducible draws, and that every
image a discriminator sees, real and fake, is augmented in training."""

from __future__ import annotations

import pytest
import torch

from tests.helpers.training import tiny_config
from translate.core.errors import InvalidValueError
from translate.training.diffaug import DiffAugment, parse_policy
from translate.training.tasks import build_step

pytestmark = pytest.mark.usefixtures("single_thread")


def test_policies_parse_in_a_fixed_order_and_bad_ones_are_named():
    assert parse_policy("cutout, color") == ("color", "cutout")
    assert parse_policy("") == ()
    for bad in ("colour", "color,color", 3):
        with pytest.raises(InvalidValueError, match="diffaug="):
            parse_policy(bad)


@pytest.mark.parametrize("policy", ["color", "translation", "cutout", "color,translation,cutout"])
def test_each_policy_is_differentiable(policy):
    augment = DiffAugment(policy, seed=3)
    start = augment.generator.get_state()

    def same_draws(x):
        augment.generator.set_state(start)  # gradcheck calls it many times: the same augmentation each time
        return augment(x)

    # 8 px is the least at which translation still shifts (up to 1/8 of a side); each input element costs
    # gradcheck two calls, so 2x3x8x8 is 4x cheaper than 16 px and covers the same operations.
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    assert not torch.equal(same_draws(x), x)  # the draws at this size do change the images
    assert torch.autograd.gradcheck(same_draws, (x,), eps=1e-6, atol=1e-4)


def test_translation_shifts_whole_pixels_and_cutout_zeroes_a_quarter():
    x = torch.arange(1, 1 + 64 * 64, dtype=torch.float32).view(1, 1, 64, 64).repeat(8, 3, 1, 1)
    shifted = DiffAugment("translation", seed=0)(x)
    for image in shifted:
        kept = image[0][image[0] > 0]
        # every value that is left is an original one (no interpolation), shifted by at most 8 pixels
        assert torch.isin(kept, x[0, 0]).all() and kept.numel() >= 56 * 56
    cut = DiffAugment("cutout", seed=0)(torch.ones(8, 3, 64, 64))
    zero_share = (cut == 0).float().mean(dim=(1, 2, 3))
    assert ((zero_share > 0.05) & (zero_share <= 0.25)).all() and (zero_share == 0.25).any()


def test_draws_differ_per_image_and_resume_from_the_saved_state():
    augment = DiffAugment("color,translation,cutout", seed=0)
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    first = augment(x)
    assert not torch.equal(first[0], first[1] - x[1] + x[0])  # not one draw for the whole batch
    state = augment.state_dict()
    expected = augment(x)
    resumed = DiffAugment("color,translation,cutout", seed=99)
    resumed.load_state_dict(state)
    assert torch.equal(resumed(x), expected)
    assert not torch.equal(first, expected)  # each call draws anew


@pytest.mark.parametrize("task", ["cut", "cyclegan"])
def test_every_image_the_discriminators_see_is_augmented(task, unpaired_data, tmp_path):
    config = tiny_config(task, data=unpaired_data, out=tmp_path / "run", diffaug="cutout")
    step = build_step(config, torch.device("cpu"))
    seen: list[torch.Tensor] = []
    for name in ("d_a", "d_b"):
        if name in step.models:
            step.models[name].register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0].detach()))
    real_a, real_b = torch.full((1, 3, 32, 32), 0.5), torch.full((1, 3, 32, 32), -0.5)
    step.train_step(real_a, real_b)
    # D's step (real and fake in one call, or two) and G's step: each image with its zeroed square
    assert sum(images.shape[0] for images in seen) >= 3
    for images in seen:
        for image in images:
            assert 0.05 < (image == 0).float().mean() <= 0.25

"""Image-text matching: the contrastive loss, the image encoder, and a matcher that learns."""

from __future__ import annotations

import math

import pytest
import torch

from translate.text import build_text_encoder
from translate.text.matching import (
    CaptionBank,
    ImageEncoder,
    ImageTextMatcher,
    fit_image_side,
    image_to_text_loss,
    matching_loss,
)


def test_matching_loss_is_log_batch_at_chance_and_low_when_matched():
    same = torch.ones(4, 8)
    assert matching_loss(same, same, torch.tensor(0.0)).item() == pytest.approx(math.log(4), rel=1e-5)
    eye = torch.eye(4, 8)
    assert matching_loss(eye, eye, torch.tensor(math.log(100.0))).item() < 1e-3
    # Swapping two captions makes those pairs wrong.
    assert matching_loss(eye, eye[[1, 0, 2, 3]], torch.tensor(math.log(100.0))).item() > 10


def test_identical_captions_are_soft_matches():
    image, text = torch.eye(2, 4), torch.eye(2, 4)
    scale = torch.tensor(math.log(100.0))
    # With identical texts the target is 50/50: a loss near log 2 whatever the images, not near 0.
    assert matching_loss(image, text, scale, ["a", "a"]).item() > 0.5 * math.log(2)
    assert matching_loss(image, text, scale, ["a", "b"]).item() < 1e-3


def test_matching_loss_refuses_bad_shapes():
    with pytest.raises(ValueError, match=r"\(3, 4\) and \(3, 5\)"):
        matching_loss(torch.zeros(3, 4), torch.zeros(3, 5), torch.tensor(0.0))
    with pytest.raises(ValueError, match="got 2 texts for 3"):
        matching_loss(torch.zeros(3, 4), torch.zeros(3, 4), torch.tensor(0.0), ["a", "b"])


@pytest.mark.parametrize("size", [16, 32, 64])
def test_image_encoder_shapes_and_gradients(size):
    encoder = ImageEncoder(3, dim=12, ndf=4, image_size=size)
    x = torch.randn(2, 3, size, size, requires_grad=True)
    y = encoder(x)
    assert y.shape == (2, 12)
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_image_encoder_refusals():
    with pytest.raises(ValueError, match="power of two >= 16, got 24"):
        ImageEncoder(image_size=24)
    with pytest.raises(ValueError, match="dim must be a positive integer, got 0"):
        ImageEncoder(dim=0)
    with pytest.raises(ValueError, match=r"expected images \(B, C, 16, 16\), got \(1, 3, 32, 32\)"):
        ImageEncoder(image_size=16)(torch.zeros(1, 3, 32, 32))


def test_matcher_learns_to_tell_colours_apart():
    torch.manual_seed(0)
    colours = {"red": (1, -1, -1), "green": (-1, 1, -1), "blue": (-1, -1, 1), "yellow": (1, 1, -1)}
    texts = [f"a {name} square" for name in colours]
    images = torch.tensor(list(colours.values()), dtype=torch.float32)[:, :, None, None].expand(-1, -1, 16, 16)
    matcher = ImageTextMatcher(build_text_encoder("byte", dim=16, layers=1, heads=2), image_size=16, dim=16, ndf=4)
    optimizer = torch.optim.Adam(matcher.parameters(), lr=3e-3)
    for _ in range(60):
        optimizer.zero_grad()
        loss = matcher(images, texts)
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.2 and matcher.accuracy(images, texts) == 1.0


def test_caption_bank_keeps_the_last_distinct_captions():
    bank = CaptionBank(size=3)
    bank.add(["a", "b", "a"], torch.arange(3.0)[:, None])
    assert bank.texts == ["a", "b"] and bank.embeddings.flatten().tolist() == [0.0, 1.0]
    bank.add(["b", "c", "d"], torch.tensor([[5.0], [6.0], [7.0]]))
    assert bank.texts == ["b", "c", "d"] and bank.embeddings.flatten().tolist() == [1.0, 6.0, 7.0]
    restored = CaptionBank()
    restored.load_state_dict(bank.state_dict())
    assert restored.texts == bank.texts and torch.equal(restored.embeddings, bank.embeddings) and restored.size == 3
    with pytest.raises(ValueError, match="size must be >= 1, got 0"):
        CaptionBank(0)


def test_image_to_text_loss_counts_equal_captions_as_right():
    scale = torch.tensor(math.log(100.0))
    images = torch.eye(2, 4)
    texts = torch.eye(4)
    texts[2] = texts[0]  # the same caption twice among the candidates, same embedding
    # image 0 is "x" (candidates 0 and 2), image 1 is "y": the best split is 50/50 over the two "x",
    # which is the target, so the loss is the targets' entropy (log 2 for image 0, 0 for image 1).
    loss = image_to_text_loss(images, ["x", "y"], texts, ["x", "y", "x", "z"], scale)
    assert loss.item() == pytest.approx(0.5 * math.log(2), abs=1e-3)
    assert image_to_text_loss(images, ["x", "y"], torch.eye(4), ["x", "y", "w", "z"], scale).item() < 1e-3
    with pytest.raises(ValueError, match="must be among the candidates"):
        image_to_text_loss(images, ["x", "q"], texts, ["x", "y", "w", "z"], scale)


def test_bank_loss_sees_hard_negatives_the_batch_lacks():
    """A colour the batch does not hold still counts against an image once it is in the bank."""
    torch.manual_seed(0)
    matcher = ImageTextMatcher(build_text_encoder("byte", dim=8, layers=1, heads=2), image_size=16, dim=8, ndf=4)
    images = torch.randn(2, 3, 16, 16)
    texts = ["a red square", "a blue circle"]
    embedding = matcher.text_encoder.encode(texts)
    bank = CaptionBank(8)
    alone = matcher.bank_loss(images, texts, embedding, bank)
    assert bank.texts == texts
    bank.add(["an orange square", "a green circle"], matcher.text_encoder.encode(["an orange square", "a green circle"]))
    with_bank = matcher.bank_loss(images, texts, embedding, bank)
    assert with_bank.item() > alone.item()  # more candidates to tell apart
    with_bank.backward()
    assert matcher.image_encoder.head.weight.grad is not None


def _colour_squares():
    colours = {"red": (1, -1, -1), "green": (-1, 1, -1), "blue": (-1, -1, 1), "yellow": (1, 1, -1)}
    images = torch.tensor(list(colours.values()), dtype=torch.float32)[:, :, None, None].expand(-1, -1, 16, 16)
    return images, [[f"a {name} square", f"{name} square"] for name in colours]


def test_fit_image_side_learns_against_a_frozen_text_encoder():
    torch.manual_seed(0)
    images, captions = _colour_squares()
    matcher = ImageTextMatcher(build_text_encoder("byte", dim=16, layers=1, heads=2), image_size=16, dim=16, ndf=4)
    text_before = {k: v.clone() for k, v in matcher.text_encoder.state_dict().items()}
    head_before = matcher.image_encoder.head.weight.clone()
    texts = [c[1] for c in captions]
    assert matcher.accuracy(images, texts) < 1.0
    loss = fit_image_side(matcher, images, captions, steps=80, batch_size=4, lr=1e-2, log_every=0)
    assert loss < 0.2 and matcher.accuracy(images, texts) == 1.0
    assert int(matcher.steps) == 80 and not matcher.training
    assert all(torch.equal(text_before[k], v) for k, v in matcher.text_encoder.state_dict().items())
    assert not torch.equal(head_before, matcher.image_encoder.head.weight)


def test_fit_image_side_refusals():
    images, captions = _colour_squares()
    matcher = ImageTextMatcher(build_text_encoder("byte", dim=16, layers=1, heads=2), image_size=16, dim=16, ndf=4)
    with pytest.raises(ValueError, match=r"got \(4, 3, 16, 16\) and 3 lists"):
        fit_image_side(matcher, images, captions[:3], steps=1)
    with pytest.raises(ValueError, match="batch_size <= 4.*batch_size=5"):
        fit_image_side(matcher, images, captions, steps=1, batch_size=5)
    with pytest.raises(ValueError, match="steps=0"):
        fit_image_side(matcher, images, captions, steps=0, batch_size=4)
    with pytest.raises(ValueError, match="at least one caption"):
        fit_image_side(matcher, images, captions[:3] + [[]], steps=1, batch_size=4)

"""FiLM-conditioned generators, the projection discriminator, the matching-aware loss, ONNX export."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from translate.models.conditioned import (
    FiLM,
    ProjectionDiscriminator,
    TextResnetGenerator,
    TextToImageGenerator,
    TextUnetGenerator,
    matching_aware_d_loss,
)
from translate.models.networks import NLayerDiscriminator, ResnetGenerator, init_weights
from translate.text import ByteTextEncoder
from translate.training.losses import GANLoss

pytestmark = pytest.mark.usefixtures("single_thread")

COND_DIM = 16


def _randomize_films(net: nn.Module, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    for module in net.modules():
        if isinstance(module, FiLM):
            with torch.no_grad():
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * 0.1)
                module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.1)


# --- shapes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [32, 64])
def test_shapes(size: int) -> None:
    x, cond = torch.rand(2, 3, size, size) * 2 - 1, torch.randn(2, COND_DIM)
    generators = [TextResnetGenerator(3, 2, ngf=8, n_blocks=2, cond_dim=COND_DIM),
                  TextUnetGenerator(3, 2, num_downs=5, ngf=8, cond_dim=COND_DIM)]
    for generator in generators:
        _randomize_films(generator)
        y = generator(x, cond)
        assert y.shape == (2, 2, size, size) and y.abs().max() <= 1
    y = TextToImageGenerator(noise_dim=8, cond_dim=COND_DIM, ngf=8, image_size=size)(torch.randn(2, 8), cond)
    assert y.shape == (2, 3, size, size) and y.abs().max() <= 1
    logits = ProjectionDiscriminator(3, ndf=8, n_layers=3, cond_dim=COND_DIM)(x, cond)
    assert logits.shape == NLayerDiscriminator(3, ndf=8, n_layers=3)(x).shape


@pytest.mark.parametrize("size", [128, 256])
def test_text_to_image_generator_large_sizes(size: int) -> None:
    generator = TextToImageGenerator(noise_dim=8, cond_dim=COND_DIM, ngf=4, image_size=size)
    _randomize_films(generator)  # FiLM starts as the identity, with no gradient to the text yet
    noise, cond = torch.randn(2, 8), torch.randn(2, COND_DIM, requires_grad=True)
    y = generator(noise, cond)
    assert y.shape == (2, 3, size, size) and y.abs().max() <= 1
    y.mean().backward()
    assert cond.grad is not None and cond.grad.abs().sum() > 0


def test_errors() -> None:
    generator = TextResnetGenerator(3, 3, ngf=8, n_blocks=1, cond_dim=COND_DIM)
    with pytest.raises(ValueError, match=r"\(2, 16\), got \(2, 8\)"):
        generator(torch.zeros(2, 3, 32, 32), torch.zeros(2, 8))
    with pytest.raises(ValueError, match=r"\(2, 16\), got \(3, 16\)"):
        generator(torch.zeros(2, 3, 32, 32), torch.zeros(3, COND_DIM))
    with pytest.raises(ValueError, match="image_size.*48"):
        TextToImageGenerator(image_size=48)
    with pytest.raises(ValueError, match="noise of shape"):
        TextToImageGenerator(8, COND_DIM, 8, 32)(torch.zeros(2, 9), torch.zeros(2, COND_DIM))
    with pytest.raises(ValueError, match="cond_dim"):
        FiLM(0, 4)
    with pytest.raises(ValueError, match="num_downs"):
        TextUnetGenerator(num_downs=4)


# --- FiLM at identity -----------------------------------------------------------------------


def test_film_identity_survives_init_weights() -> None:
    film = FiLM(COND_DIM, 4)
    init_weights(nn.Sequential(film), "normal", 0.02)
    x = torch.randn(2, 4, 5, 5)
    torch.testing.assert_close(film(x, torch.randn(2, COND_DIM)), x, atol=0, rtol=0)


def test_resnet_at_identity_equals_image_generator() -> None:
    torch.manual_seed(0)
    plain = init_weights(ResnetGenerator(3, 3, ngf=8, n_blocks=2), "normal", 0.02).eval()
    text = TextResnetGenerator(3, 3, ngf=8, n_blocks=2, cond_dim=COND_DIM).eval()
    state = {}
    for key, value in plain.state_dict().items():  # model.{k}.rest -> encoder / blocks / decoder
        index, rest = key.split(".", 2)[1:]
        index = int(index)
        if index < 10:
            state[f"encoder.{index}.{rest}"] = value
        elif index < 12:
            state[f"blocks.{index - 10}.block.{rest}"] = value
        else:
            state[f"decoder.{index - 12}.{rest}"] = value
    missing, unexpected = text.load_state_dict(state, strict=False)
    assert not unexpected and all(".film_" in key for key in missing)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(text(x, torch.randn(2, COND_DIM)), plain(x), atol=1e-6, rtol=0)


@pytest.mark.parametrize("make", [
    lambda: TextResnetGenerator(3, 3, ngf=8, n_blocks=1, cond_dim=COND_DIM),
    lambda: TextUnetGenerator(3, 3, num_downs=5, ngf=8, cond_dim=COND_DIM),
    lambda: TextToImageGenerator(8, COND_DIM, ngf=8, image_size=32),
], ids=["resnet", "unet", "text2image"])
def test_cond_has_no_effect_at_init_and_does_after_one_step(make) -> None:
    torch.manual_seed(0)
    generator = make()
    x = torch.randn(2, 8) if isinstance(generator, TextToImageGenerator) else torch.rand(2, 3, 32, 32) * 2 - 1
    cond_a, cond_b = torch.randn(2, COND_DIM), torch.randn(2, COND_DIM)
    with torch.no_grad():
        torch.testing.assert_close(generator(x, cond_a), generator(x, cond_b), atol=0, rtol=0)
    optimizer = torch.optim.SGD(generator.parameters(), lr=0.1)
    generator(x, cond_a).pow(2).mean().backward()
    optimizer.step()
    with torch.no_grad():
        assert (generator(x, cond_a) - generator(x, cond_b)).abs().max() > 1e-6


def test_gradients_reach_the_text_encoder() -> None:
    torch.manual_seed(0)
    encoder = ByteTextEncoder(dim=COND_DIM, layers=1, heads=2, max_length=16)
    generator = TextResnetGenerator(3, 3, ngf=8, n_blocks=1, cond_dim=COND_DIM)
    optimizer = torch.optim.SGD([*generator.parameters(), *encoder.parameters()], lr=0.1)
    x = torch.rand(2, 3, 32, 32) * 2 - 1

    def step() -> None:
        optimizer.zero_grad()
        generator(x, encoder.encode(["red circle", "blue square"])).pow(2).mean().backward()

    step()
    # Zero-initialised FiLMs pass no gradient to the text until their weights move.
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in encoder.parameters())
    optimizer.step()
    step()
    assert encoder.token_embedding.weight.grad.abs().sum() > 0
    assert all(torch.isfinite(p.grad).all() for p in encoder.parameters())


# --- discriminator and loss -----------------------------------------------------------------


def test_projection_discriminator_uses_cond() -> None:
    torch.manual_seed(0)
    d = ProjectionDiscriminator(3, ndf=8, n_layers=2, cond_dim=COND_DIM)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert (d(x, torch.randn(2, COND_DIM)) - d(x, torch.randn(2, COND_DIM))).abs().max() > 1e-6
        # With a zero embedding only the PatchGAN term is left.
        torch.testing.assert_close(d(x, torch.zeros(2, COND_DIM)), d.head(d.features(x)))


def test_matching_aware_d_loss() -> None:
    torch.manual_seed(0)
    d = ProjectionDiscriminator(3, ndf=8, n_layers=2, cond_dim=COND_DIM)
    generator = TextResnetGenerator(3, 3, ngf=8, n_blocks=1, cond_dim=COND_DIM)
    real, cond = torch.rand(2, 3, 32, 32) * 2 - 1, torch.randn(2, COND_DIM)
    mismatched = cond.roll(1, dims=0)
    fake = generator(real, cond)
    gan = GANLoss("lsgan")
    loss = matching_aware_d_loss(d, real, fake, cond, mismatched, gan)
    expected = 0.5 * (gan(d(real, cond), True)
                      + 0.5 * (gan(d(fake, cond), False) + gan(d(real, mismatched), False)))
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert all(p.grad is None for p in generator.parameters())  # fake was detached
    assert d.embed.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="mismatched_cond"):
        matching_aware_d_loss(d, real, fake, cond, mismatched[:1], gan)


# --- ONNX -----------------------------------------------------------------------------------


def _export_and_compare(net: nn.Module, inputs: tuple[torch.Tensor, ...], names: list[str],
                        dynamic: dict[str, dict[int, str]], cases: list[tuple[torch.Tensor, ...]], path) -> None:
    ort = pytest.importorskip("onnxruntime")
    net.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, inputs, str(path), dynamo=False, opset_version=20, input_names=names,
                          output_names=["output"], dynamic_axes={**dynamic, "output": {0: "batch"}})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for case in cases:
        with torch.no_grad():
            expected = net(*case).numpy()
        got = session.run(["output"], {name: t.numpy() for name, t in zip(names, case, strict=False)})[0]
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() < 1e-4


def test_text_resnet_generator_onnx_parity(tmp_path) -> None:
    torch.manual_seed(0)
    generator = TextResnetGenerator(3, 3, ngf=8, n_blocks=2, cond_dim=COND_DIM)
    _randomize_films(generator)
    image = lambda b, h, w: torch.rand(b, 3, h, w) * 2 - 1  # noqa: E731
    _export_and_compare(
        generator, (image(1, 32, 32), torch.randn(1, COND_DIM)), ["image", "embedding"],
        {"image": {0: "batch", 2: "height", 3: "width"}, "embedding": {0: "batch"}},
        [(image(2, 32, 48), torch.randn(2, COND_DIM)), (image(1, 64, 32), torch.randn(1, COND_DIM))],
        tmp_path / "g.onnx")


def test_text_to_image_generator_onnx_parity(tmp_path) -> None:
    torch.manual_seed(0)
    generator = TextToImageGenerator(8, COND_DIM, ngf=8, image_size=32)
    _randomize_films(generator)
    _export_and_compare(
        generator, (torch.randn(1, 8), torch.randn(1, COND_DIM)), ["noise", "embedding"],
        {"noise": {0: "batch"}, "embedding": {0: "batch"}},
        [(torch.randn(3, 8), torch.randn(3, COND_DIM))], tmp_path / "t2i.onnx")

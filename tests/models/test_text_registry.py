"""The text generators in the registry: one table gives construction, size multiple and parameter count."""

from __future__ import annotations

import pytest
import torch

from translate.models import (
    TEXT_GENERATORS,
    build_text_generator,
    list_models,
    size_multiple,
    text_architecture,
    text_generator_names,
    text_size_multiple,
)


@pytest.mark.parametrize("name", text_generator_names("textcycle"))
def test_textcycle_generators_keep_the_size_of_a_multiple_input(name: str) -> None:
    architecture = text_architecture(name, input_nc=3, output_nc=1, ngf=4, cond_dim=8)
    generator = build_text_generator(architecture).eval()
    multiple = size_multiple(name)
    assert text_size_multiple(architecture) == multiple, "the stored architecture and the name agree"
    side = multiple * max(1, 16 // multiple)  # reflection padding inside needs a few pixels at the bottleneck
    x = torch.rand(2, 3, side, 2 * side) * 2 - 1
    with torch.no_grad():
        y = generator(x, torch.randn(2, 8))
    assert y.shape == (2, 1, side, 2 * side)
    assert y.abs().max() <= 1.0


def test_text2image_generator_makes_images_of_its_size() -> None:
    architecture = text_architecture("text2image", noise_dim=6, cond_dim=8, ngf=4, image_size=32)
    generator = build_text_generator(architecture).eval()
    with torch.no_grad():
        images = generator(torch.randn(3, 6), torch.randn(3, 8))
    assert images.shape == (3, 3, 32, 32)
    assert size_multiple("text2image") == text_size_multiple(architecture) == 1


def test_every_text_generator_is_listed_with_its_parameter_count() -> None:
    infos = {info.name: info for info in list_models() if info.kind == "text generator"}
    assert set(infos) == set(TEXT_GENERATORS)
    resnet_6, resnet_9 = infos["text_resnet_6blocks"].num_params, infos["text_resnet_9blocks"].num_params
    assert 0 < resnet_6 < resnet_9, "three more FiLM blocks add parameters"
    built = build_text_generator(text_architecture("text_unet_128"))
    assert infos["text_unet_128"].num_params == sum(p.numel() for p in built.parameters())


def test_unknown_names_are_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="text_resnet_6blocks"):
        text_architecture("text_resnet_7blocks")
    with pytest.raises(ValueError, match="'text_vit'.*text_resnet"):
        build_text_generator({"name": "text_vit"})

"""Networks (reference-compatible layouts) and the registry that builds them from typed configs."""

from __future__ import annotations

from translate.models.networks import (
    INIT_TYPES,
    NORMS,
    NLayerDiscriminator,
    PixelDiscriminator,
    ResnetBlock,
    ResnetGenerator,
    UnetGenerator,
    UnetSkipConnectionBlock,
    init_weights,
)
from translate.models.registry import (
    DiscriminatorConfig,
    GeneratorConfig,
    ModelInfo,
    build_discriminator,
    build_generator,
    config_from_dict,
    config_to_dict,
    discriminator_config_from_dict,
    discriminator_names,
    generator_config_from_dict,
    generator_names,
    list_models,
    register_discriminator,
    register_generator,
    size_multiple,
)

__all__ = [
    "INIT_TYPES",
    "NORMS",
    "DiscriminatorConfig",
    "GeneratorConfig",
    "ModelInfo",
    "NLayerDiscriminator",
    "PixelDiscriminator",
    "ResnetBlock",
    "ResnetGenerator",
    "UnetGenerator",
    "UnetSkipConnectionBlock",
    "build_discriminator",
    "build_generator",
    "config_from_dict",
    "config_to_dict",
    "discriminator_config_from_dict",
    "discriminator_names",
    "generator_config_from_dict",
    "generator_names",
    "init_weights",
    "list_models",
    "register_discriminator",
    "register_generator",
    "size_multiple",
]

"""Networks and the one registry that builds them.

- `networks`: the reference implementation's generators and discriminators (its checkpoint layout).
- `mobile`: the light ResNet generator (depthwise-separable residual blocks, resnet_9blocks' layer indices).
- `conditioned`: text-conditioned generators (FiLM), the text2image generator, the projection
  discriminator.
- `registry`: typed configs and name -> builder tables; `build_generator`, `size_multiple`,
  `list_models`. `text_registry`: the text generators' training names, families and size multiples.

Models import nothing of data, saving, deployment, training or the command line.
"""

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
from translate.models.text_registry import (
    TEXT_DISCRIMINATORS,
    TEXT_GENERATORS,
    build_text_generator,
    text_architecture,
    text_generator_names,
    text_size_multiple,
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
    "TEXT_DISCRIMINATORS",
    "TEXT_GENERATORS",
    "build_text_generator",
    "text_architecture",
    "text_generator_names",
    "text_size_multiple",
]

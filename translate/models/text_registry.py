"""The text-conditioned generators in the registry: training names, stored families, size multiples.

A text generator has two names. The training name (`--netG text_resnet_6blocks`) fixes part of
its constructor's arguments; a saved text model's config.json stores the family and every
argument (`{"name": "text_resnet", "n_blocks": 6, "ngf": 64, ...}`), so a folder rebuilds
without this table's training names. Both lead here:

    architecture = text_architecture("text_unet_128", input_nc=3, output_nc=3, ngf=64, cond_dim=128)
    g = build_text_generator(architecture)            # TextUnetGenerator(num_downs=7, ...)
    text_size_multiple(architecture)                   # 128
    size_multiple("text_unet_128")                     # 128 (translate.models.size_multiple)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from translate.models.conditioned import TextResnetGenerator, TextToImageGenerator, TextUnetGenerator

__all__ = ["TextGeneratorEntry", "TEXT_GENERATORS", "TEXT_DISCRIMINATORS", "text_generator_names",
           "text_architecture", "build_text_generator", "text_size_multiple"]

# The family stored in config.json -> its class.
_FAMILIES: dict[str, type[nn.Module]] = {
    "text_resnet": TextResnetGenerator,
    "text_unet": TextUnetGenerator,
    "text2image": TextToImageGenerator,
}


@dataclass(frozen=True)
class TextGeneratorEntry:
    """One trainable text generator: `name` (the training name), `family` (the class, as stored),
    `task` ("textcycle": image + text -> image; "text2image": noise + text -> image), the
    constructor arguments its name fixes, and the multiple its image sides must be (1: any)."""

    name: str
    family: str
    task: str
    description: str
    fixed: Mapping[str, Any] = field(default_factory=dict)
    size_multiple: int = 1


TEXT_GENERATORS: dict[str, TextGeneratorEntry] = {entry.name: entry for entry in (
    TextGeneratorEntry("text_resnet_6blocks", "text_resnet", "textcycle",
                       "ResNet, 6 FiLM residual blocks, guided by a prompt", {"n_blocks": 6}, 4),
    TextGeneratorEntry("text_resnet_9blocks", "text_resnet", "textcycle",
                       "ResNet, 9 FiLM residual blocks, guided by a prompt", {"n_blocks": 9}, 4),
    TextGeneratorEntry("text_unet_128", "text_unet", "textcycle",
                       "U-Net, 7 downsamplings, FiLM in the decoder", {"num_downs": 7}, 128),
    TextGeneratorEntry("text_unet_256", "text_unet", "textcycle",
                       "U-Net, 8 downsamplings, FiLM in the decoder", {"num_downs": 8}, 256),
    TextGeneratorEntry("text2image", "text2image", "text2image",
                       "noise + caption -> image (DF-GAN-like upsampling blocks)", {}, 1),
)}
# The discriminators of the text tasks (matching-aware projection PatchGAN), by task.
TEXT_DISCRIMINATORS: dict[str, tuple[str, ...]] = {"textcycle": ("projection",), "text2image": ("projection",)}


def text_generator_names(task: str | None = None) -> list[str]:
    """The training names of the text generators, of one task ("textcycle" | "text2image") or all."""
    return sorted(name for name, entry in TEXT_GENERATORS.items() if task in (None, entry.task))


def text_architecture(name: str, **arguments: Any) -> dict[str, Any]:
    """The config.json `architecture` of training name `name` with the other constructor
    `arguments`: `{"name": family, **fixed, **arguments}`."""
    if name not in TEXT_GENERATORS:
        raise ValueError(f"unknown text generator {name!r}; expected one of {', '.join(text_generator_names())}")
    entry = TEXT_GENERATORS[name]
    return {"name": entry.family, **entry.fixed, **arguments}


def build_text_generator(architecture: Mapping[str, Any]) -> nn.Module:
    """The generator a config.json `architecture` describes (`{"name": family, **arguments}`)."""
    arguments = dict(architecture)
    family = arguments.pop("name", None)
    if family not in _FAMILIES:
        raise ValueError(f"unknown text-conditioned generator {family!r} in config.json; expected one of "
                         f"{', '.join(_FAMILIES)} (written by a newer toolkit?)")
    return _FAMILIES[family](**arguments)


def text_size_multiple(architecture: Mapping[str, Any]) -> int:
    """What image sides must be multiples of for a stored architecture: 4 for text_resnet,
    2**num_downs for text_unet, 1 for text2image (it makes images, it takes none)."""
    family = architecture.get("name")
    if family == "text_unet":
        return 2 ** int(architecture.get("num_downs", 8))
    return 4 if family == "text_resnet" else 1

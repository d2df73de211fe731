"""Model registry: typed configs, name -> builder tables and the `build_*` entry points (timm style).

    cfg = GeneratorConfig(name="unet_256", ngf=64, norm="batch", dropout=True)
    g = build_generator(cfg)            # initialised with cfg.init_type / cfg.init_gain

New architectures register themselves with `@register_generator(name, description)` or
`@register_discriminator(...)`; the configs validate names against these tables.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn

from translate.core.errors import InvalidValueError, check_choice
from translate.models.efficientnet_lite import EfficientNetLite0, load_efficientnet_lite0
from translate.models.mobile import MobileResnetGenerator
from translate.models.networks import (
    INIT_TYPES,
    NORMS,
    NLayerDiscriminator,
    PixelDiscriminator,
    ResnetGenerator,
    UnetGenerator,
    init_weights,
)
from translate.models.patch_heads import layer_sequence
from translate.models.projected import JudgeSet, ProjectedDiscriminator
from translate.models.text_registry import TEXT_GENERATORS, build_text_generator, text_architecture

__all__ = [
    "GeneratorConfig",
    "DiscriminatorConfig",
    "ModelInfo",
    "register_generator",
    "register_discriminator",
    "build_generator",
    "build_discriminator",
    "generator_names",
    "discriminator_names",
    "list_models",
    "size_multiple",
    "generator_config_from_dict",
    "discriminator_config_from_dict",
    "config_from_dict",
    "config_to_dict",
]


@dataclass(frozen=True)
class _Entry:
    name: str
    builder: Callable[[Any], nn.Module]
    description: str
    size_multiple: int


_GENERATORS: dict[str, _Entry] = {}
_DISCRIMINATORS: dict[str, _Entry] = {}


def _check_positive_int(field: str, value: Any) -> None:
    # bool is an int subclass; `ngf=True` is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidValueError(field, value, "a positive integer")


def _check_gain(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InvalidValueError("init_gain", value, "a finite number >= 0")


@dataclass
class GeneratorConfig:
    """Architecture of a generator; the field names match the reference's options (netG, ngf...)."""

    name: str = "resnet_9blocks"  # resnet_6blocks | resnet_9blocks | mobile_resnet_9blocks | unet_128 | unet_256
    input_nc: int = 3
    output_nc: int = 3
    ngf: int = 64
    norm: str = "instance"  # instance | batch | none
    dropout: bool = False
    init_type: str = "normal"  # normal | xavier | kaiming | orthogonal
    init_gain: float = 0.02

    def __post_init__(self) -> None:
        check_choice("name", self.name, generator_names(), "see `translate models`")
        _check_positive_int("input_nc", self.input_nc)
        _check_positive_int("output_nc", self.output_nc)
        _check_positive_int("ngf", self.ngf)
        check_choice("norm", self.norm, NORMS)
        if not isinstance(self.dropout, bool):
            raise ValueError(f"dropout must be True or False, got {self.dropout!r}")
        check_choice("init_type", self.init_type, INIT_TYPES)
        _check_gain(self.init_gain)


@dataclass
class DiscriminatorConfig:
    """Architecture of a discriminator. `n_layers` is used by "n_layers"; "basic" is n_layers 3."""

    name: str = "basic"  # basic | n_layers | pixel | projected | projected+basic
    input_nc: int = 3
    ndf: int = 64
    n_layers: int = 3
    norm: str = "instance"  # instance | batch | none
    init_type: str = "normal"
    init_gain: float = 0.02

    def __post_init__(self) -> None:
        check_choice("name", self.name, discriminator_names(), "see `translate models`")
        _check_positive_int("input_nc", self.input_nc)
        _check_positive_int("ndf", self.ndf)
        _check_positive_int("n_layers", self.n_layers)
        if self.name == "basic" and self.n_layers != 3:
            raise ValueError(f"discriminator 'basic' always has 3 layers, got n_layers={self.n_layers}; "
                             f"use name='n_layers' for a different depth")
        check_choice("norm", self.norm, NORMS)
        check_choice("init_type", self.init_type, INIT_TYPES)
        _check_gain(self.init_gain)


@dataclass(frozen=True)
class ModelInfo:
    """One registry entry, as `translate models` lists it."""

    name: str
    kind: str  # "generator" | "text generator" | "discriminator"
    description: str
    num_params: int  # at the default config (3 channels, ngf / ndf 64, instance norm)


_Builder = TypeVar("_Builder", bound=Callable[..., nn.Module])


def register_generator(name: str, description: str, size_multiple: int) -> Callable[[_Builder], _Builder]:
    """Decorator adding `builder(cfg: GeneratorConfig) -> nn.Module` to the generator registry.

    `size_multiple`: input H and W must be multiples of it (the generator's total downsampling).
    """

    def decorate(builder: _Builder) -> _Builder:
        if name in _GENERATORS:
            raise ValueError(f"generator {name!r} is already registered")
        _GENERATORS[name] = _Entry(name, builder, description, size_multiple)
        return builder

    return decorate


def register_discriminator(name: str, description: str) -> Callable[[_Builder], _Builder]:
    """Decorator adding `builder(cfg: DiscriminatorConfig) -> nn.Module` to the discriminator registry."""

    def decorate(builder: _Builder) -> _Builder:
        if name in _DISCRIMINATORS:
            raise ValueError(f"discriminator {name!r} is already registered")
        _DISCRIMINATORS[name] = _Entry(name, builder, description, 1)
        return builder

    return decorate


# --- the built-in architectures -------------------------------------------------------------


@register_generator("resnet_9blocks", "ResNet, 9 residual blocks (CycleGAN default, 256 px)", size_multiple=4)
def _resnet_9blocks(cfg: GeneratorConfig) -> nn.Module:
    return ResnetGenerator(cfg.input_nc, cfg.output_nc, cfg.ngf, cfg.norm, cfg.dropout, n_blocks=9)


@register_generator("resnet_6blocks", "ResNet, 6 residual blocks (CycleGAN, 128 px)", size_multiple=4)
def _resnet_6blocks(cfg: GeneratorConfig) -> nn.Module:
    return ResnetGenerator(cfg.input_nc, cfg.output_nc, cfg.ngf, cfg.norm, cfg.dropout, n_blocks=6)


@register_generator("mobile_resnet_9blocks", "ResNet, 9 depthwise-separable residual blocks (GAN Compression; "
                    "4.5x fewer MACs than resnet_9blocks)", size_multiple=4)
def _mobile_resnet_9blocks(cfg: GeneratorConfig) -> nn.Module:
    return MobileResnetGenerator(cfg.input_nc, cfg.output_nc, cfg.ngf, cfg.norm, cfg.dropout, n_blocks=9)


@register_generator("unet_128", "U-Net, 7 downsamplings (inputs multiple of 128 px)", size_multiple=128)
def _unet_128(cfg: GeneratorConfig) -> nn.Module:
    return UnetGenerator(cfg.input_nc, cfg.output_nc, 7, cfg.ngf, cfg.norm, cfg.dropout)


@register_generator("unet_256", "U-Net, 8 downsamplings (pix2pix default, multiple of 256 px)",
                    size_multiple=256)
def _unet_256(cfg: GeneratorConfig) -> nn.Module:
    return UnetGenerator(cfg.input_nc, cfg.output_nc, 8, cfg.ngf, cfg.norm, cfg.dropout)


@register_discriminator("basic", "70x70 PatchGAN (n_layers 3; CycleGAN and pix2pix default)")
def _basic(cfg: DiscriminatorConfig) -> nn.Module:
    return NLayerDiscriminator(cfg.input_nc, cfg.ndf, 3, cfg.norm)


@register_discriminator("n_layers", "PatchGAN with n_layers stride-2 convolutions")
def _n_layers(cfg: DiscriminatorConfig) -> nn.Module:
    return NLayerDiscriminator(cfg.input_nc, cfg.ndf, cfg.n_layers, cfg.norm)


@register_discriminator("pixel", "1x1 PixelGAN: classifies each pixel independently")
def _pixel(cfg: DiscriminatorConfig) -> nn.Module:
    return PixelDiscriminator(cfg.input_nc, cfg.ndf, cfg.norm)


def _projected(cfg: DiscriminatorConfig) -> ProjectedDiscriminator:
    if cfg.input_nc != 3:
        raise InvalidValueError("input_nc", cfg.input_nc, "3 for a projected discriminator (its feature network "
                                "is an ImageNet RGB classifier)", "use netD='basic' for other channel counts")
    # Counting parameters on the meta device needs the architecture only, not the weights file.
    meta = torch.empty(0).device.type == "meta"
    return ProjectedDiscriminator(cfg.ndf, backbone=EfficientNetLite0 if meta else load_efficientnet_lite0)


@register_discriminator("projected", "Projected GAN: heads on frozen ImageNet EfficientNet-Lite0 features (RGB, "
                        ">= 32 px; needs translate-gan[projected])")
def _projected_alone(cfg: DiscriminatorConfig) -> nn.Module:
    return JudgeSet({"projected": _projected(cfg)})


@register_discriminator("projected+basic", "the projected discriminator and the 70x70 PatchGAN, their losses "
                        "summed (joliGEN's default)")
def _projected_and_basic(cfg: DiscriminatorConfig) -> nn.Module:
    return JudgeSet({"basic": NLayerDiscriminator(cfg.input_nc, cfg.ndf, 3, cfg.norm), "projected": _projected(cfg)})


# --- public entry points --------------------------------------------------------------------


def generator_names(with_layer_sequence: bool = False) -> list[str]:
    """Registered generator names, sorted. with_layer_sequence=True: only those whose layers form one
    flat sequence (`patch_heads.layer_sequence`), which CUT's PatchNCE taps by index (not the U-Nets)."""
    if with_layer_sequence:
        return [name for name in sorted(_GENERATORS) if _has_layer_sequence(name)]
    return sorted(_GENERATORS)


def _has_layer_sequence(name: str) -> bool:
    # On the meta device: the layout without memory or time.
    with torch.device("meta"):
        net = build_generator(GeneratorConfig(name=name, ngf=1), init=False)
    try:
        layer_sequence(net)
    except TypeError:
        return False
    return True


def discriminator_names() -> list[str]:
    """Registered discriminator names, sorted."""
    return sorted(_DISCRIMINATORS)


def build_generator(cfg: GeneratorConfig, init: bool = True) -> nn.Module:
    """Build the generator `cfg` describes, `(B, input_nc, H, W) -> (B, output_nc, H, W)` in [-1, 1].

    init=True applies `cfg.init_type` / `cfg.init_gain`; pass False when weights will be loaded.
    """
    if not isinstance(cfg, GeneratorConfig):
        raise TypeError(f"build_generator expects a GeneratorConfig, got {type(cfg).__name__}")
    net = _GENERATORS[cfg.name].builder(cfg)
    return init_weights(net, cfg.init_type, cfg.init_gain) if init else net


def build_discriminator(cfg: DiscriminatorConfig, init: bool = True) -> nn.Module:
    """Build the discriminator `cfg` describes, `(B, input_nc, H, W) -> (B, 1, h, w)` logits, or for
    the projected ones a `JudgeSet`: `{judge name: logits}` (each judge has its own loss)."""
    if not isinstance(cfg, DiscriminatorConfig):
        raise TypeError(f"build_discriminator expects a DiscriminatorConfig, got {type(cfg).__name__}")
    net = _DISCRIMINATORS[cfg.name].builder(cfg)
    return init_weights(net, cfg.init_type, cfg.init_gain) if init else net


def size_multiple(name: str) -> int:
    """Input H and W must be multiples of this for `name` (resnet: 4, unet_128: 128, unet_256: 256;
    the text generators' training names too: text_resnet_*: 4, text_unet_128: 128).

    Discriminators take any size (1), as long as it is large enough for their depth.
    """
    if name in _GENERATORS:
        return _GENERATORS[name].size_multiple
    if name in TEXT_GENERATORS:
        return TEXT_GENERATORS[name].size_multiple
    if name in _DISCRIMINATORS:
        return _DISCRIMINATORS[name].size_multiple
    raise ValueError(f"unknown model {name!r}; expected one of "
                     f"{', '.join(generator_names() + sorted(TEXT_GENERATORS) + discriminator_names())}")


@functools.cache
def _default_num_params(kind: str, name: str) -> int:
    # On the meta device the modules get shapes but no memory: counting unet_256 stays instant.
    with torch.device("meta"):
        if kind == "generator":
            net = build_generator(GeneratorConfig(name=name), init=False)
        elif kind == "text generator":
            net = build_text_generator(text_architecture(name))
        else:
            net = build_discriminator(DiscriminatorConfig(name=name), init=False)
    return sum(p.numel() for p in net.parameters())


def list_models() -> list[ModelInfo]:
    """Every registered architecture: generators, text generators, then discriminators, each sorted."""
    infos = [ModelInfo(n, "generator", _GENERATORS[n].description, _default_num_params("generator", n))
             for n in generator_names()]
    infos += [ModelInfo(n, "text generator", TEXT_GENERATORS[n].description, _default_num_params("text generator", n))
              for n in sorted(TEXT_GENERATORS)]
    infos += [ModelInfo(n, "discriminator", _DISCRIMINATORS[n].description,
                        _default_num_params("discriminator", n))
              for n in discriminator_names()]
    return infos


_Config = TypeVar("_Config", GeneratorConfig, DiscriminatorConfig)


def _from_dict(cls: type[_Config], data: Mapping[str, Any]) -> _Config:
    if not isinstance(data, Mapping):
        raise ValueError(f"{cls.__name__} must be built from a mapping, got {type(data).__name__}")
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s) {', '.join(map(repr, unknown))}; "
                         f"expected some of {', '.join(known)}")
    return cls(**data)


def generator_config_from_dict(data: Mapping[str, Any]) -> GeneratorConfig:
    """`GeneratorConfig(**data)`, with an error naming unknown keys. Missing keys take defaults."""
    return _from_dict(GeneratorConfig, data)


def discriminator_config_from_dict(data: Mapping[str, Any]) -> DiscriminatorConfig:
    """`DiscriminatorConfig(**data)`, with an error naming unknown keys. Missing keys take defaults."""
    return _from_dict(DiscriminatorConfig, data)


def config_from_dict(kind: str, data: Mapping[str, Any]) -> GeneratorConfig | DiscriminatorConfig:
    """The config of `kind` ("generator" | "discriminator") from a dict such as config.json's
    "architecture"."""
    if kind == "generator":
        return generator_config_from_dict(data)
    if kind == "discriminator":
        return discriminator_config_from_dict(data)
    raise ValueError(f"unknown model kind {kind!r}; expected 'generator' or 'discriminator'")


def config_to_dict(cfg: GeneratorConfig | DiscriminatorConfig) -> dict[str, Any]:
    """The config's fields as a JSON-ready dict (inverse of `config_from_dict`)."""
    return dataclasses.asdict(cfg)

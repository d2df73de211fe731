"""pix2pix (Isola et al. 2017): paired translation, a conditional GAN plus L1.

The step follows the reference: a D step first on (input, fake) vs. (input, target) pairs, then the
G step on GAN + lambda_L1 * L1.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from translate.core.errors import InvalidCombinationError
from translate.data import PairedDataset, PreprocessConfig, augment_pair
from translate.models import build_discriminator, build_generator, discriminator_names, generator_names, size_multiple
from translate.training.config import Task, TrainConfig
from translate.training.periodic_eval import EvalSet, eval_preprocess
from translate.training.tasks.base import (
    TaskStep,
    Wrap,
    domain_channels,
    preprocess_config,
    save_generator_folders,
    set_requires_grad,
    unwrap,
)

__all__ = ["Pix2PixStep", "TASK"]


class Pix2PixStep(TaskStep):
    """Paired translation: a conditional GAN whose discriminator sees input|output, plus L1."""

    task = "pix2pix"

    def __init__(self, config: TrainConfig, device: torch.device, wrap: Wrap | None = None) -> None:
        super().__init__(config, device, wrap)
        self.architectures = {
            "g": self._generator_config(config.input_nc, config.output_nc),
            "d": self._discriminator_config(config.input_nc + config.output_nc),
        }
        self.g = self._build(build_generator, self.architectures["g"])
        self.d = self._build(build_discriminator, self.architectures["d"])
        self.models = {"g": self.g, "d": self.d}
        self.optimizers = {"g": self._adam([self.g]), "d": self._adam([self.d])}
        self._visuals: list[Tensor] = []

    def batch_inputs(self, batch: dict[str, Any], preprocess: PreprocessConfig | None,
                     generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """(input, target) in [-1, 1], aligned: the same crop and flip for both."""
        a, b = augment_pair(batch["a"].to(self.device, non_blocking=True),
                            batch["b"].to(self.device, non_blocking=True), preprocess, generator)
        return (a, b) if self.config.direction == "AtoB" else (b, a)

    def train_step(self, real_a: Tensor, real_b: Tensor) -> dict[str, Tensor]:  # type: ignore[override]
        """`real_a`: the input `(B, input_nc, H, W)`, `real_b`: the target; both in [-1, 1]."""
        c = self.config
        with self.autocast():
            fake_b = self.g(real_a)

        set_requires_grad([self.d], True)
        self.optimizers["d"].zero_grad(set_to_none=True)
        loss_d = self._discriminator_loss(self.d, torch.cat([real_a, real_b], 1),
                                          torch.cat([real_a, fake_b], 1))
        self._backward_and_step(loss_d, self.optimizers["d"])

        set_requires_grad([self.d], False)
        self.optimizers["g"].zero_grad(set_to_none=True)
        with self.autocast():
            pred_fake = unwrap(self.d)(torch.cat([real_a, fake_b], 1))
        loss_gan = self.criterion_gan(pred_fake, True, for_discriminator=False)
        loss_l1 = F.l1_loss(fake_b.float(), real_b) * c.lambda_L1
        loss_g = loss_gan + loss_l1
        self._backward_and_step(loss_g, self.optimizers["g"])

        self._visuals = [real_a, fake_b.detach(), real_b]
        self.sample_sources = {"g": real_a}
        return {"G_GAN": loss_gan.detach(), "G_L1": loss_l1.detach(), "G": loss_g.detach(),
                "D": loss_d.detach()}

    def generator_specs(self) -> dict[str, dict[str, Any]]:
        return {self.config.direction: {"model": "g", "architecture": dataclasses.asdict(self.architectures["g"])}}

    def visuals(self) -> list[Tensor]:
        return self._visuals


def build_dataset(config: TrainConfig) -> PairedDataset:
    nc_a, nc_b = domain_channels(config)
    return PairedDataset(config.data, phase="train", channels_a=nc_a, channels_b=nc_b,
                         preprocess=preprocess_config(config))


def eval_sets(config: TrainConfig, phase: str, limit: int | None) -> list[EvalSet]:
    """The first `limit` pairs of `phase`, in the trained direction, with their ground truth."""
    nc_a, nc_b = domain_channels(config)
    data = PairedDataset(config.data, phase=phase, channels_a=nc_a, channels_b=nc_b,
                         preprocess=eval_preprocess(config))
    items = [data[i] for i in range(min(len(data), limit or len(data)))]
    items = [item for item in items if "a" in item]
    if not items:
        raise FileNotFoundError(f"no readable evaluation pairs in {config.data}/{phase}")
    a, b = torch.stack([item["a"] for item in items]), torch.stack([item["b"] for item in items])
    sources, targets = (a, b) if config.direction == "AtoB" else (b, a)
    return [EvalSet(config.direction, sources, targets, paired=True)]


def check(config: TrainConfig) -> None:
    if config.netD.startswith("projected"):
        raise InvalidCombinationError(
            f"pix2pix cannot train netD={config.netD!r}: its conditional discriminator judges the input and the output "
            f"stacked ({config.input_nc + config.output_nc} channels), which an ImageNet RGB network cannot see; use "
            "netD basic, n_layers or pixel (the projected discriminator serves cyclegan, cut and fastcut)", "netD")


# The reference implementation's defaults (its pix2pix_model.modify_commandline_options); it keeps
# its held-out pairs in val/ (maps, facades).
TASK = Task(
    name="pix2pix", summary="paired translation (train/ of side-by-side A|B images)",
    step=Pix2PixStep,
    defaults={"netG": "unet_256", "netD": "basic", "norm": "batch", "dropout": True, "gan_mode": "vanilla",
              "pool_size": 0, "lambda_identity": 0.0, "lambda_L1": 100.0, "batch_size": 1},
    generators=tuple(generator_names()), discriminators=tuple(discriminator_names()), size_multiple=size_multiple,
    option_groups=frozenset({"image_input", "two_domains", "paired", "wgangp", "eval"}),
    build_dataset=build_dataset, save_weights=save_generator_folders, check=check,
    eval_sets=eval_sets, eval_phase="val",
)

"""CycleGAN (Zhu et al. 2017): unpaired translation with cycle consistency.

The step follows the reference's losses and update order: a G step on the GAN + cycle + identity
losses with the discriminators frozen, then a D step on real vs. pooled fakes, each D loss halved.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from translate.core.errors import InvalidCombinationError
from translate.data import PreprocessConfig, augment_batch
from translate.models import build_discriminator, build_generator, discriminator_names, generator_names, size_multiple
from translate.training.config import Task, TrainConfig
from translate.training.pool import ImagePool
from translate.training.tasks.base import (
    TaskStep,
    Wrap,
    build_unpaired_dataset,
    check_unpaired_eval,
    save_generator_folders,
    set_requires_grad,
    unpaired_eval_sets,
    unwrap,
)

__all__ = ["CycleGANStep", "TASK"]


class CycleGANStep(TaskStep):
    """Unpaired translation with cycle consistency. `batched=False` makes the reference's six
    separate generator calls (used to benchmark against a reference-equivalent step)."""

    task = "cyclegan"

    def __init__(self, config: TrainConfig, device: torch.device, wrap: Wrap | None = None,
                 batched: bool = True) -> None:
        super().__init__(config, device, wrap)
        nc_a, nc_b = config.input_nc, config.output_nc
        self.architectures = {
            "g_ab": self._generator_config(nc_a, nc_b), "g_ba": self._generator_config(nc_b, nc_a),
            "d_a": self._discriminator_config(nc_a), "d_b": self._discriminator_config(nc_b),
        }
        self.models = {
            name: self._build(build_generator if name.startswith("g") else build_discriminator, arch)
            for name, arch in self.architectures.items()
        }
        self.g_ab, self.g_ba = self.models["g_ab"], self.models["g_ba"]
        self.d_a, self.d_b = self.models["d_a"], self.models["d_b"]
        self.optimizers = {"g": self._adam([self.g_ab, self.g_ba]), "d": self._adam([self.d_a, self.d_b])}
        self.pools = {"fake_a": ImagePool(config.pool_size, seed=config.seed + 1),
                      "fake_b": ImagePool(config.pool_size, seed=config.seed + 2)}
        self.batched = batched and config.norm != "batch"
        self._visuals: list[Tensor] = []

    def _translate(self, real_a: Tensor, real_b: Tensor, identity: bool
                   ) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        """fake_b, fake_a and the identity outputs idt_a = g_ab(real_b), idt_b = g_ba(real_a)."""
        if self.batched and identity:
            n = real_a.shape[0]
            out_ab = self.g_ab(torch.cat([real_a, real_b]))
            out_ba = self.g_ba(torch.cat([real_b, real_a]))
            return out_ab[:n], out_ba[:n], out_ab[n:], out_ba[n:]
        fake_b, fake_a = self.g_ab(real_a), self.g_ba(real_b)
        if not identity:
            return fake_b, fake_a, None, None
        return fake_b, fake_a, self.g_ab(real_b), self.g_ba(real_a)

    def batch_inputs(self, batch: dict[str, Any], preprocess: PreprocessConfig | None,
                     generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """(real_a, real_b) in [-1, 1], each cropped and flipped on its own (unpaired)."""
        a = augment_batch(batch["a"].to(self.device, non_blocking=True), preprocess, generator)
        b = augment_batch(batch["b"].to(self.device, non_blocking=True), preprocess, generator)
        return (a, b) if self.config.direction == "AtoB" else (b, a)

    def train_step(self, real_a: Tensor, real_b: Tensor) -> dict[str, Tensor]:  # type: ignore[override]
        """`real_a`, `real_b`: `(B, C, H, W)` in [-1, 1], unpaired images of the two domains."""
        c = self.config
        use_identity = c.lambda_identity > 0
        # G step: D frozen; its forward runs on the plain module so DDP expects no D gradients.
        set_requires_grad([self.d_a, self.d_b], False)
        self.optimizers["g"].zero_grad(set_to_none=True)
        with self.autocast():
            fake_b, fake_a, idt_a, idt_b = self._translate(real_a, real_b, use_identity)
            rec_a = self.g_ba(fake_b)
            rec_b = self.g_ab(fake_a)
            pred_fake_b = self.judge(unwrap(self.d_b), fake_b)
            pred_fake_a = self.judge(unwrap(self.d_a), fake_a)
        losses: dict[str, Tensor] = {
            "G_AB": self.criterion_gan(pred_fake_b, True, for_discriminator=False),
            "G_BA": self.criterion_gan(pred_fake_a, True, for_discriminator=False),
            "cycle_A": F.l1_loss(rec_a.float(), real_a) * c.lambda_A,
            "cycle_B": F.l1_loss(rec_b.float(), real_b) * c.lambda_B,
        }
        if use_identity:
            losses["idt_A"] = F.l1_loss(idt_a.float(), real_b) * c.lambda_B * c.lambda_identity
            losses["idt_B"] = F.l1_loss(idt_b.float(), real_a) * c.lambda_A * c.lambda_identity
        loss_g = sum(losses.values())
        self._backward_and_step(loss_g, self.optimizers["g"])

        # D step on pooled fakes; the pools make D see a history of generators, not just the last.
        set_requires_grad([self.d_a, self.d_b], True)
        self.optimizers["d"].zero_grad(set_to_none=True)
        loss_d_b = self._discriminator_loss(self.d_b, real_b, self.pools["fake_b"].query(fake_b))
        loss_d_a = self._discriminator_loss(self.d_a, real_a, self.pools["fake_a"].query(fake_a))
        self._backward_and_step(loss_d_b + loss_d_a, self.optimizers["d"])

        self._visuals = [real_a, fake_b.detach(), rec_a.detach(), real_b, fake_a.detach(), rec_b.detach()]
        self.sample_sources = {"g_ab": real_a, "g_ba": real_b}
        out = {name: value.detach() for name, value in losses.items()}
        out.update(G=loss_g.detach(), D_B=loss_d_b.detach(), D_A=loss_d_a.detach())
        return out

    def generator_specs(self) -> dict[str, dict[str, Any]]:
        forward, backward = ("g_ab", "g_ba") if self.config.direction == "AtoB" else ("g_ba", "g_ab")
        return {
            "AtoB": {"model": forward, "architecture": dataclasses.asdict(self.architectures[forward])},
            "BtoA": {"model": backward, "architecture": dataclasses.asdict(self.architectures[backward])},
        }

    def visuals(self) -> list[Tensor]:
        return self._visuals


def check(config: TrainConfig) -> None:
    if config.lambda_identity > 0 and config.input_nc != config.output_nc:
        raise InvalidCombinationError(
            f"the identity loss needs input_nc equal to output_nc (got input_nc={config.input_nc} and "
            f"output_nc={config.output_nc}); set lambda_identity=0", "lambda_identity", "input_nc", "output_nc")
    check_unpaired_eval(config)


# The reference implementation's defaults (its cycle_gan_model.modify_commandline_options).
TASK = Task(
    name="cyclegan", summary="unpaired translation between two image folders (trainA/, trainB/)",
    step=CycleGANStep,
    defaults={"netG": "resnet_9blocks", "netD": "basic", "norm": "instance", "dropout": False,
              "gan_mode": "lsgan", "pool_size": 50, "lambda_identity": 0.5, "batch_size": 1},
    generators=tuple(generator_names()), discriminators=tuple(discriminator_names()), size_multiple=size_multiple,
    option_groups=frozenset({"image_input", "two_domains", "cycle", "cycle_ab", "wgangp", "eval", "image_d"}),
    build_dataset=build_unpaired_dataset, save_weights=save_generator_folders, check=check,
    eval_sets=unpaired_eval_sets, eval_phase="test",
)

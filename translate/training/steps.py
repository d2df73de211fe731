"""One optimisation step of each task: the same losses and update order as the reference.

CycleGAN (Zhu et al. 2017): G step on the GAN + cycle + identity losses with the discriminators
frozen, then a D step on real vs. pooled fakes, each D loss halved. pix2pix (Isola et al. 2017):
D step first on (input, fake) vs. (input, target) pairs, then the G step on GAN + lambda_L1 * L1.

Naming: g_ab maps domain A to B, g_ba maps B to A; d_b judges domain B (real_b vs. fake_b) and d_a
judges domain A. The reference calls these G_A, G_B, D_A (judging B!) and D_B.

Where the reference calls a network once per input, we may concatenate the inputs into one call:
instance norm is per sample, so the result is the same and larger batches use the hardware better.
With batch norm the batch statistics would change, so those calls stay separate.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from itertools import chain
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from translate.core.device import cpu_has_native_bf16
from translate.models import DiscriminatorConfig, GeneratorConfig, build_discriminator, build_generator
from translate.training.config import TrainConfig
from translate.training.losses import GANLoss, gradient_penalty
from translate.training.pool import ImagePool

Wrap = Callable[[nn.Module], nn.Module]
logger = logging.getLogger(__name__)


def unwrap(module: nn.Module) -> nn.Module:
    """The plain network inside a DistributedDataParallel wrapper (or the module itself)."""
    return getattr(module, "module", module) if isinstance(
        module, nn.parallel.DistributedDataParallel) else module


def set_requires_grad(modules: list[nn.Module], flag: bool) -> None:
    for module in modules:
        for parameter in module.parameters():
            parameter.requires_grad_(flag)


def amp_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 where the device runs it natively (CPU with AVX-512 BF16 / AMX, CUDA sm80+), else float16."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16


class TaskStep:
    """Networks, optimisers and the step of one task; the loop only calls `train_step`."""

    task: str
    models: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]

    def __init__(self, config: TrainConfig, device: torch.device, wrap: Wrap | None = None) -> None:
        self.config = config
        self.device = device
        self.wrap: Wrap = wrap or (lambda module: module)
        self.criterion_gan = GANLoss(config.gan_mode)
        self.use_amp = config.amp
        self.amp_dtype = amp_dtype(device)
        if config.amp and device.type == "cpu" and not cpu_has_native_bf16():
            logger.warning("--amp on a CPU without AVX-512 BF16 or AMX: bfloat16 is emulated there and "
                           "measured 2.5x slower than float32 (docs/benchmarks.md); consider --no-amp")
        # float16 gradients underflow without loss scaling; bfloat16 has float32's range.
        self.scaler = torch.amp.GradScaler(
            device.type, enabled=config.amp and self.amp_dtype == torch.float16)
        self.gp_generator = torch.Generator().manual_seed(config.seed + 7)

    # -- construction helpers ------------------------------------------------------------------
    def _generator_config(self, input_nc: int, output_nc: int) -> GeneratorConfig:
        c = self.config
        return GeneratorConfig(name=c.netG, input_nc=input_nc, output_nc=output_nc, ngf=c.ngf,
                               norm=c.norm, dropout=c.dropout, init_type=c.init_type,
                               init_gain=c.init_gain)

    def _discriminator_config(self, input_nc: int) -> DiscriminatorConfig:
        c = self.config
        return DiscriminatorConfig(name=c.netD, input_nc=input_nc, ndf=c.ndf, n_layers=c.n_layers_D,
                                   norm=c.norm, init_type=c.init_type, init_gain=c.init_gain)

    def _build(self, builder: Callable[[Any], nn.Module], architecture: Any) -> nn.Module:
        return self.wrap(builder(architecture).to(self.device))

    def _adam(self, modules: list[nn.Module]) -> torch.optim.Adam:
        params = chain.from_iterable(m.parameters() for m in modules)
        return torch.optim.Adam(params, lr=self.config.lr, betas=(self.config.beta1, self.config.beta2))

    def autocast(self) -> contextlib.AbstractContextManager:
        if not self.use_amp:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _backward_and_step(self, loss: Tensor, optimizer: torch.optim.Optimizer) -> None:
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()

    def _discriminate_pair(self, d: nn.Module, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
        """D on real and on (detached) fake: one call when D's norm is per sample."""
        if self.config.norm != "batch":
            prediction = d(torch.cat([real, fake.detach()]))
            return prediction[: real.shape[0]], prediction[real.shape[0]:]
        return d(real), d(fake.detach())

    def _discriminator_loss(self, d: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        with self.autocast():
            pred_real, pred_fake = self._discriminate_pair(d, real, fake)
        loss = 0.5 * (self.criterion_gan(pred_real, True) + self.criterion_gan(pred_fake, False))
        if self.config.gan_mode == "wgangp":
            loss = loss + self.config.lambda_gp * gradient_penalty(
                unwrap(d), real, fake, generator=self.gp_generator)
        return loss

    # -- interface used by the loop --------------------------------------------------------------
    def train_step(self, real_a: Tensor, real_b: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError

    def generator_specs(self) -> dict[str, dict[str, Any]]:
        """Data direction ("AtoB"/"BtoA") -> {"model": key in `models`, "architecture": dict}."""
        raise NotImplementedError

    def visuals(self) -> list[Tensor]:
        """Rows for the sample grid, each `(B, C, H, W)` in [-1, 1], of the last step."""
        raise NotImplementedError

    def plain_models(self) -> dict[str, nn.Module]:
        return {name: unwrap(model) for name, model in self.models.items()}

    def state_dict(self) -> dict[str, Any]:
        return {
            "models": {name: model.state_dict() for name, model in self.plain_models().items()},
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "scaler": self.scaler.state_dict(),
            "pools": {name: pool.state_dict() for name, pool in getattr(self, "pools", {}).items()},
            "gp_rng": self.gp_generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, model in self.plain_models().items():
            model.load_state_dict(state["models"][name])
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        for name, pool in getattr(self, "pools", {}).items():
            pool.load_state_dict(state["pools"][name], device=self.device)
        self.gp_generator.set_state(state["gp_rng"])


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

    def train_step(self, real_a: Tensor, real_b: Tensor) -> dict[str, Tensor]:
        c = self.config
        use_identity = c.lambda_identity > 0
        # G step: D frozen; its forward runs on the plain module so DDP expects no D gradients.
        set_requires_grad([self.d_a, self.d_b], False)
        self.optimizers["g"].zero_grad(set_to_none=True)
        with self.autocast():
            fake_b, fake_a, idt_a, idt_b = self._translate(real_a, real_b, use_identity)
            rec_a = self.g_ba(fake_b)
            rec_b = self.g_ab(fake_a)
            pred_fake_b = unwrap(self.d_b)(fake_b)
            pred_fake_a = unwrap(self.d_a)(fake_a)
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

    def train_step(self, real_a: Tensor, real_b: Tensor) -> dict[str, Tensor]:
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
        return {"G_GAN": loss_gan.detach(), "G_L1": loss_l1.detach(), "G": loss_g.detach(),
                "D": loss_d.detach()}

    def generator_specs(self) -> dict[str, dict[str, Any]]:
        return {self.config.direction: {"model": "g", "architecture": dataclasses.asdict(self.architectures["g"])}}

    def visuals(self) -> list[Tensor]:
        return self._visuals


def build_task(config: TrainConfig, device: torch.device, wrap: Wrap | None = None) -> TaskStep:
    if config.task == "cyclegan":
        return CycleGANStep(config, device, wrap)
    if config.task == "text2image":
        from translate.training.text_steps import Text2ImageStep

        return Text2ImageStep(config, device, wrap)
    if config.task == "textcycle":
        from translate.training.textcycle import TextCycleStep

        return TextCycleStep(config, device, wrap)
    return Pix2PixStep(config, device, wrap)

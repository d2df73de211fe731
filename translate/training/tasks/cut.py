"""CUT and FastCUT (Park et al. 2020, "Contrastive Learning for Unpaired Image-to-Image
Translation"): one generator A -> B, one discriminator, and PatchNCE instead of a cycle.

PatchNCE makes each patch of G(a) closer, in the generator's own encoder features, to the same
patch of `a` than to the other patches of `a`: features of `nce_layers` pass through one MLP head
per layer (`PatchHeads`, netF_nc units, L2-normalised), at `num_patches` locations shared by the
query (G(a)) and key (a) features, with temperature nce_T. CUT adds the same term between real B
and G(B) (nce_idt) and averages the two; FastCUT drops it, weighs PatchNCE 10x and flips G's input
at random, flipping the query features back (flip equivariance). The two are two rows of the
task table over one step, so a run of one cannot be resumed as the other.

The update order is the reference's: G forward, a D step on real B vs. the detached fake, then the
G and head step on the GAN + PatchNCE loss against the updated D (frozen). The heads exist from the
constructor (their widths come from the architecture), have their own Adam optimiser with G's lr
and betas, and resume exactly: the patch locations and flips come from a generator whose state is
in the checkpoint.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor

from translate.core.errors import InvalidCombinationError
from translate.data import PreprocessConfig, augment_batch
from translate.models import (
    GeneratorConfig,
    build_discriminator,
    build_generator,
    discriminator_names,
    generator_names,
    init_weights,
    size_multiple,
)
from translate.models.patch_heads import PatchHeads, layer_features, layer_sequence, layer_widths, sample_patch_ids
from translate.training.config import Task, TrainConfig, nce_layer_indices
from translate.training.losses import patch_nce_loss
from translate.training.periodic_eval import EvalSet
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

__all__ = ["CUTStep", "CUT_TASK", "FASTCUT_TASK", "generator_layer_count"]


class CUTStep(TaskStep):
    """G (real_a -> fake_b), D_B, and the PatchNCE heads F; `models` = {"g", "d_b", "f"}. The step of
    both rows: `task` is the config's ("cut" or "fastcut"), the options decide what it does."""

    task = "cut"

    def __init__(self, config: TrainConfig, device: torch.device, wrap: Wrap | None = None) -> None:
        super().__init__(config, device, wrap)
        self.task = config.task
        self.architectures = {"g": self._generator_config(config.input_nc, config.output_nc),
                              "d_b": self._discriminator_config(config.output_nc)}
        self.nce_layers = nce_layer_indices(config.nce_layers)
        g = build_generator(self.architectures["g"]).to(device)
        widths = layer_widths(layer_sequence(g), config.input_nc)
        heads = PatchHeads([widths[i] for i in self.nce_layers], config.netF_nc)
        heads = init_weights(heads, config.init_type, config.init_gain).to(device)  # as the reference's init_net
        self.models = {"g": self.wrap(g), "d_b": self._build(build_discriminator, self.architectures["d_b"]),
                       "f": self.wrap(heads)}
        self.g, self.d_b, self.f = self.models["g"], self.models["d_b"], self.models["f"]
        self.optimizers = {"g": self._adam([self.g]), "d": self._adam([self.d_b]), "f": self._adam([self.f])}
        # Patch locations and flips: their own stream, saved in the checkpoint, so resume is exact.
        self.nce_generator = torch.Generator().manual_seed(config.seed + 11)
        self._visuals: list[Tensor] = []

    def batch_inputs(self, batch: dict[str, Any], preprocess: PreprocessConfig | None,
                     generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """(real_a, real_b) in [-1, 1], each cropped and flipped on its own (unpaired)."""
        a = augment_batch(batch["a"].to(self.device, non_blocking=True), preprocess, generator)
        b = augment_batch(batch["b"].to(self.device, non_blocking=True), preprocess, generator)
        return (a, b) if self.config.direction == "AtoB" else (b, a)

    def patch_nce(self, source: Tensor, target: Tensor, flipped: bool = False) -> Tensor:
        """lambda_NCE times the mean over `nce_layers` of PatchNCE(queries from `target` = G(source),
        keys from `source`); `source`, `target`: `(B, C, H, W)`. `flipped`: `target` came from the
        flipped source, so its features are flipped back before they are compared."""
        c, layers = self.config, layer_sequence(unwrap(self.g))
        with self.autocast():
            queries = layer_features(layers, target, self.nce_layers)
            if flipped:
                queries = [feature.flip(3) for feature in queries]
            with torch.no_grad():  # the keys are detached in the loss: no graph needed
                keys = layer_features(layers, source, self.nce_layers)
            ids = sample_patch_ids(keys, c.num_patches, self.nce_generator)
            with torch.no_grad():
                key_rows = self.f(keys, ids)
            query_rows = self.f(queries, ids)
        total = sum(patch_nce_loss(q, k, source.shape[0], c.nce_T).mean()
                    for q, k in zip(query_rows, key_rows, strict=True))
        return total * c.lambda_NCE / len(self.nce_layers)

    def train_step(self, real_a: Tensor, real_b: Tensor) -> dict[str, Tensor]:  # type: ignore[override]
        """`real_a`, `real_b`: `(B, C, H, W)` in [-1, 1], unpaired images of the two domains."""
        c, n = self.config, real_a.shape[0]
        flipped = c.flip_equivariance and bool(torch.rand((), generator=self.nce_generator) < 0.5)
        real = torch.cat([real_a, real_b]) if c.nce_idt else real_a
        if flipped:
            real = real.flip(3)
        with self.autocast():
            fake = self.g(real)
        fake_b, idt_b = fake[:n], (fake[n:] if c.nce_idt else None)

        # D step on real B vs. the detached fake.
        set_requires_grad([self.d_b], True)
        self.optimizers["d"].zero_grad(set_to_none=True)
        loss_d = self._discriminator_loss(self.d_b, real_b, fake_b)
        self._backward_and_step(loss_d, self.optimizers["d"])

        # G and heads step: D frozen, its forward on the plain module so DDP expects no D gradients.
        set_requires_grad([self.d_b], False)
        self.optimizers["g"].zero_grad(set_to_none=True)
        self.optimizers["f"].zero_grad(set_to_none=True)
        with self.autocast():
            pred_fake = self.judge(unwrap(self.d_b), fake_b)
        losses = {"G_GAN": self.criterion_gan(pred_fake, True, for_discriminator=False) * c.lambda_GAN}
        nce = torch.zeros((), device=self.device)
        if c.lambda_NCE > 0:
            losses["NCE"] = nce = self.patch_nce(real_a, fake_b, flipped)
            if idt_b is not None:
                losses["NCE_Y"] = self.patch_nce(real_b, idt_b, flipped)
                nce = 0.5 * (losses["NCE"] + losses["NCE_Y"])
        loss_g = losses["G_GAN"] + nce
        self.scaler.scale(loss_g).backward()
        self.scaler.step(self.optimizers["g"])
        if c.lambda_NCE > 0:  # without PatchNCE the heads have no gradients (and the scaler no inf check)
            self.scaler.step(self.optimizers["f"])
        self.scaler.update()

        self.sample_sources = {"g": real_a}
        shown = fake.detach().flip(3) if flipped else fake.detach()  # back in the orientation of real_a
        self._visuals = [real_a, shown[:n], real_b, *([shown[n:]] if c.nce_idt else [])]
        out = {name: value.detach() for name, value in losses.items()}
        out.update(G=loss_g.detach(), D=loss_d.detach())
        return out

    def generator_specs(self) -> dict[str, dict[str, Any]]:
        return {self.config.direction: {"model": "g", "architecture": dataclasses.asdict(self.architectures["g"])}}

    def visuals(self) -> list[Tensor]:
        return self._visuals

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["nce"] = {"nce_layers": list(self.nce_layers), "netF_nc": self.config.netF_nc,
                        "rng": self.nce_generator.get_state()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = state["nce"]
        trained = {"nce_layers": ",".join(map(str, saved["nce_layers"])), "netF_nc": saved["netF_nc"]}
        given = {"nce_layers": ",".join(map(str, self.nce_layers)), "netF_nc": self.config.netF_nc}
        changed = [name for name in trained if trained[name] != given[name]]
        if changed:
            raise InvalidCombinationError(
                "the PatchNCE heads of this checkpoint were built for " + ", ".join(
                    f"{name}={trained[name]!r}" for name in changed) + ", not " + ", ".join(
                    f"{name}={given[name]!r}" for name in changed) + "; resume with the run's values", *changed)
        super().load_state_dict(state)
        self.nce_generator.set_state(saved["rng"])


# --- the rows -------------------------------------------------------------------------------------

def generator_layer_count(net_g: str) -> int:
    """How many layers `net_g`'s layer sequence has (built on the meta device: no memory, no time)."""
    with torch.device("meta"):
        return len(layer_sequence(build_generator(GeneratorConfig(name=net_g, ngf=1), init=False)))


def check(config: TrainConfig) -> None:
    """Refusals before any data is read: layers the generator lacks, identity with other channels."""
    layers, count = nce_layer_indices(config.nce_layers), generator_layer_count(config.netG)
    if layers[-1] >= count:
        raise InvalidCombinationError(
            f"nce_layers={config.nce_layers!r}: {config.netG} has layers 0..{count - 1}; pick indices in that "
            "range (the default 0,4,7,10,14: the input, both downsampling convolutions, residual blocks 1 and 5)",
            "nce_layers", "netG")
    if config.nce_idt and config.lambda_NCE > 0 and config.input_nc != config.output_nc:
        raise InvalidCombinationError(
            f"nce_idt=True translates B images, so it needs input_nc equal to output_nc (got input_nc="
            f"{config.input_nc} and output_nc={config.output_nc}); set nce_idt=False", "nce_idt", "input_nc",
            "output_nc")
    check_unpaired_eval(config)


def eval_sets(config: TrainConfig, phase: str, limit: int | None) -> list[EvalSet]:
    """The trained direction only: testA translated and compared with testB (BtoA: the reverse)."""
    return unpaired_eval_sets(config, phase, limit, (config.direction,))


# The reference's defaults: its base and train options, and cut_model.modify_commandline_options
# for --CUT_mode CUT / FastCUT. nce_layers: the reference's 0,4,8,12,16 count the layers of its
# antialiased resnet_9blocks (the input, both downsampling convolutions, residual blocks 1 and 5);
# in this (CycleGAN-layout) generator the same layers are 0,4,7,10,14.
CUT_DEFAULTS: dict[str, Any] = {
    "netG": "resnet_9blocks", "netD": "basic", "norm": "instance", "dropout": False, "init_type": "xavier",
    "init_gain": 0.02, "gan_mode": "lsgan", "batch_size": 1, "lr": 2e-4, "beta1": 0.5, "beta2": 0.999,
    "n_epochs": 200, "n_epochs_decay": 200, "lambda_GAN": 1.0, "lambda_NCE": 1.0, "nce_idt": True,
    "nce_layers": "0,4,7,10,14", "nce_T": 0.07, "num_patches": 256, "netF_nc": 256, "flip_equivariance": False,
}
FASTCUT_DEFAULTS: dict[str, Any] = {**CUT_DEFAULTS, "nce_idt": False, "lambda_NCE": 10.0, "flip_equivariance": True,
                                    "n_epochs": 150, "n_epochs_decay": 50}

_ROW: dict[str, Any] = dict(
    step=CUTStep, generators=tuple(generator_names(with_layer_sequence=True)),
    discriminators=tuple(discriminator_names()), size_multiple=size_multiple,
    option_groups=frozenset({"image_input", "two_domains", "wgangp", "eval", "image_d", "nce"}),
    build_dataset=build_unpaired_dataset, save_weights=save_generator_folders, check=check, eval_sets=eval_sets,
    eval_phase="test",
)
CUT_TASK = Task(name="cut", summary="CUT: unpaired translation with PatchNCE, one generator (trainA/, trainB/)",
                defaults=CUT_DEFAULTS, **_ROW)
FASTCUT_TASK = Task(name="fastcut", summary="FastCUT: CUT without the identity term, PatchNCE x10, flip "
                    "equivariance; faster (trainA/, trainB/)", defaults=FASTCUT_DEFAULTS, **_ROW)

"""The textcycle task step: text-guided translation between many domains with one generator.

StarGAN's idea (Choi et al. 2018) with the domain label replaced by a prompt, trained with
CycleGAN's objective. For a real image of domain s, a prompt p_s naming s and a prompt p_t naming
another domain t:

    fake = G(real, e(p_t))                                   the translation to t
    rec  = G(fake, e(p_s'))   -> lambda_cycle * L1(rec, real)      (p_s': s in another phrasing)
    idt  = G(real, e(p_s))    -> lambda_identity * lambda_cycle * L1(idt, real)
    D(fake, e(p_t))           -> the generator's adversarial loss

The discriminator is a ProjectionDiscriminator trained matching-aware: (real, e(p_s)) is real,
(fake, e(p_t)) and (real, e(p_t)) are fake, so it must check that an image is what its prompt
says, not only that it looks real. lambda_cycle is lambda_A (as in CycleGAN, default 10).

Text: the byte encoder (text_encoder byte) trains with the discriminator and the generator sees
its embeddings detached, as in the text2image task; minilm / clip are frozen.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from translate.core.errors import InvalidCombinationError, check_choice
from translate.data import PreprocessConfig, augment_batch
from translate.data.domains import DomainDataset, read_domains
from translate.models import (
    TEXT_DISCRIMINATORS,
    build_text_generator,
    size_multiple,
    text_architecture,
    text_generator_names,
)
from translate.models.conditioned import ProjectionDiscriminator
from translate.models.networks import init_weights
from translate.text import build_text_encoder
from translate.text.model import TEXTCYCLE_KIND, save_text_model
from translate.training.config import Task, TrainConfig
from translate.training.tasks.base import (
    TaskStep,
    Wrap,
    preprocess_config,
    save_text_folder,
    set_requires_grad,
    unwrap,
)

__all__ = ["TASK", "PromptedImagePool", "TextCycleStep", "generator_architecture"]

def generator_architecture(config: TrainConfig, cond_dim: int) -> dict[str, Any]:
    """The generator's `architecture` entry of a textcycle weights folder: {"name": "text_resnet" |
    "text_unet", **its constructor's arguments} for `config.netG` (see translate.models.text_registry)."""
    check_choice("netG", config.netG, text_generator_names("textcycle"))
    return text_architecture(config.netG, input_nc=config.input_nc, output_nc=config.output_nc, ngf=config.ngf,
                             cond_dim=cond_dim, norm=config.norm, dropout=config.dropout)


class PromptedImagePool:
    """ImagePool (Shrivastava et al. 2017) whose images keep the prompt they were generated for,
    so the projection discriminator judges an old fake with its own prompt.

    Same draws as translate.training.pool.ImagePool: until `pool_size` images are stored each one
    passes through and is stored; then each is, with probability 1/2, swapped for a stored one.
    """

    def __init__(self, pool_size: int, seed: int = 0) -> None:
        if pool_size < 0:
            raise ValueError(f"pool_size must be >= 0, got {pool_size}")
        self.pool_size = pool_size
        self.images: list[Tensor] = []
        self.texts: list[str] = []
        self.generator = torch.Generator().manual_seed(seed)

    def query(self, images: Tensor, texts: list[str]) -> tuple[Tensor, list[str]]:
        """`images` `(B, C, H, W)` with their B prompts -> `(B, C, H, W)` (detached) and their prompts."""
        images = images.detach()
        if self.pool_size == 0:
            return images, list(texts)
        out_images, out_texts = [], []
        for image, text in zip(images, texts, strict=False):
            image = image.unsqueeze(0)
            if len(self.images) < self.pool_size:
                self.images.append(image.clone())
                self.texts.append(text)
                out_images.append(image)
                out_texts.append(text)
            elif torch.rand((), generator=self.generator).item() > 0.5:
                index = int(torch.randint(0, self.pool_size, (), generator=self.generator))
                out_images.append(self.images[index].clone())
                out_texts.append(self.texts[index])
                self.images[index], self.texts[index] = image.clone(), text
            else:
                out_images.append(image)
                out_texts.append(text)
        return torch.cat(out_images), out_texts

    def state_dict(self) -> dict[str, Any]:
        stored = torch.cat(self.images).cpu() if self.images else torch.empty(0)
        return {"pool_size": self.pool_size, "images": stored, "texts": list(self.texts),
                "rng": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str = "cpu") -> None:
        self.pool_size = int(state["pool_size"])
        stored = state["images"]
        self.images = [image.unsqueeze(0).to(device) for image in stored] if stored.numel() else []
        self.texts = list(state["texts"])
        self.generator.set_state(state["rng"])


class TextCycleStep(TaskStep):
    """One generator G(image, prompt embedding), one projection discriminator, one text encoder.

    `domains` ({name: prompts}, written into the weights folder) defaults to the domain folders
    under `config.data`.
    """

    task = "textcycle"

    def __init__(self, config: TrainConfig, device: torch.device, wrap: Wrap | None = None,
                 domains: dict[str, list[str]] | None = None) -> None:
        super().__init__(config, device, wrap)
        c = config
        if domains is None:
            domains = read_domains(c.data)
        self.domains = {name: list(prompts) for name, prompts in domains.items()}
        encoder_settings = {"dim": c.text_dim} if c.text_encoder == "byte" else {}
        encoder = build_text_encoder(c.text_encoder, **encoder_settings).to(device)
        self.trainable_text = bool(getattr(encoder, "trainable", True))
        cond_dim = int(encoder.dim)
        self.text_encoder_config = {"name": c.text_encoder,
                                    **(encoder.config() if hasattr(encoder, "config") else {})}
        self.architecture = generator_architecture(c, cond_dim)
        self.g = self.wrap(init_weights(build_text_generator(self.architecture), c.init_type, c.init_gain).to(device))
        self.d = self.wrap(init_weights(ProjectionDiscriminator(c.output_nc, c.ndf, c.n_layers_D, cond_dim, c.norm),
                                        c.init_type, c.init_gain).to(device))
        self.text = self.wrap(encoder) if self.trainable_text else encoder
        self.models = {"g": self.g, "d": self.d, **({"text": self.text} if self.trainable_text else {})}
        d_modules: list[nn.Module] = [self.d, self.text] if self.trainable_text else [self.d]
        self.optimizers = {"g": self._adam([self.g]), "d": self._adam(d_modules)}
        self.pools = {"fake": PromptedImagePool(c.pool_size, seed=c.seed + 1)}
        # Per sample norms (instance, none) let calls on different inputs share one batch.
        self.batched = c.norm != "batch"
        self._frozen_cache: dict[str, Tensor] = {}
        self._visuals: list[Tensor] = []

    # -- text -------------------------------------------------------------------------------------
    def _embed(self, texts: list[str]) -> tuple[Tensor, dict[str, int]]:
        """Each distinct text once: `(P, D)` embeddings and text -> row. The byte encoder's keep
        their graph (the D loss trains it); a frozen encoder's are computed once and cached."""
        vocabulary = sorted(set(texts))
        row = {text: i for i, text in enumerate(vocabulary)}
        if self.trainable_text:
            ids, mask = unwrap(self.text).tokenizer.encode(vocabulary)
            return self.text(ids.to(self.device), mask.to(self.device)), row
        missing = [text for text in vocabulary if text not in self._frozen_cache]
        if missing:
            with torch.no_grad():
                self._frozen_cache.update(zip(missing, self.text.encode(missing).to(self.device).float(), strict=False))
        return torch.stack([self._frozen_cache[text] for text in vocabulary]), row

    # -- networks ---------------------------------------------------------------------------------
    def _translate(self, real: Tensor, cond_target: Tensor, cond_source: Tensor | None
                   ) -> tuple[Tensor, Tensor | None]:
        """fake = G(real, target) and, when `cond_source` is given, idt = G(real, source)."""
        if cond_source is None:
            return self.g(real, cond_target), None
        if self.batched:
            out = self.g(torch.cat([real, real]), torch.cat([cond_target, cond_source]))
            return out[: real.shape[0]], out[real.shape[0]:]
        return self.g(real, cond_target), self.g(real, cond_source)

    def _matching_d_loss(self, real: Tensor, cond_real: Tensor, fake: Tensor, cond_fake: Tensor,
                         cond_mismatched: Tensor) -> Tensor:
        """matching_aware_d_loss's weighting, with the fakes under their own (target) prompts:
        `0.5 * (L(real, p_s; real) + 0.5 * (L(fake, p_fake; fake) + L(real, p_t; fake)))`."""
        with self.autocast():
            if self.batched:
                predictions = self.d(torch.cat([real, fake, real]), torch.cat([cond_real, cond_fake, cond_mismatched]))
                pred_real, pred_fake, pred_mismatched = predictions.chunk(3)
            else:
                pred_real, pred_fake = self.d(real, cond_real), self.d(fake, cond_fake)
                pred_mismatched = self.d(real, cond_mismatched)
        return 0.5 * (self.criterion_gan(pred_real, True)
                      + 0.5 * (self.criterion_gan(pred_fake, False) + self.criterion_gan(pred_mismatched, False)))

    # -- the step ---------------------------------------------------------------------------------
    def batch_inputs(self, batch: dict[str, Any], preprocess: PreprocessConfig | None,
                     generator: torch.Generator) -> tuple[Tensor, list[str], list[str], list[str]]:
        """(real, prompts, target prompts, cycle prompts); each image cropped and flipped on its own."""
        real = augment_batch(batch["image"].to(self.device, non_blocking=True), preprocess, generator)
        return real, batch["prompt"], batch["target_prompt"], batch["cycle_prompt"]

    def train_step(self, real: Tensor, prompts: list[str], target_prompts: list[str],  # type: ignore[override]
                   cycle_prompts: list[str] | None = None) -> dict[str, Tensor]:
        """One G step then one D step.

        Args:
            real: `(B, C, H, W)` in [-1, 1], images of their source domains.
            prompts: B prompts naming each image's own domain (identity, and real for D).
            target_prompts: B prompts naming the domain to translate each image to (another one).
            cycle_prompts: B prompts naming the source domain for the way back (default: `prompts`).

        Returns:
            Detached scalar losses: G_GAN, cycle, idt (when lambda_identity > 0), G, D.
        """
        c = self.config
        cycle_prompts = list(prompts) if cycle_prompts is None else list(cycle_prompts)
        batch = real.shape[0]
        if not len(prompts) == len(target_prompts) == len(cycle_prompts) == batch:
            raise ValueError(f"expected {batch} prompts, target prompts and cycle prompts (one per image), got "
                             f"{len(prompts)}, {len(target_prompts)} and {len(cycle_prompts)}")
        pool = self.pools["fake"]
        # One encoder call covers the batch and every prompt the pool may hand back.
        table, row = self._embed([*prompts, *target_prompts, *cycle_prompts, *pool.texts])

        def embed(texts: list[str]) -> Tensor:
            return table[torch.tensor([row[text] for text in texts], device=table.device)]

        cond_source, cond_target, cond_cycle = embed(prompts), embed(target_prompts), embed(cycle_prompts)
        use_identity = c.lambda_identity > 0

        # G step: D frozen, its forward on the plain module so DDP expects no D gradients.
        set_requires_grad([self.d], False)
        self.optimizers["g"].zero_grad(set_to_none=True)
        with self.autocast():
            fake, idt = self._translate(real, cond_target.detach(), cond_source.detach() if use_identity else None)
            rec = self.g(fake, cond_cycle.detach())
            pred_fake = unwrap(self.d)(fake, cond_target.detach())
        losses: dict[str, Tensor] = {
            "G_GAN": self.criterion_gan(pred_fake, True, for_discriminator=False),
            "cycle": F.l1_loss(rec.float(), real) * c.lambda_A,
        }
        if idt is not None:
            losses["idt"] = F.l1_loss(idt.float(), real) * c.lambda_A * c.lambda_identity
        loss_g = sum(losses.values())
        self._backward_and_step(loss_g, self.optimizers["g"])

        # D step (and the byte encoder's), on pooled fakes with the prompts they were made for.
        set_requires_grad([self.d], True)
        self.optimizers["d"].zero_grad(set_to_none=True)
        pooled, pooled_prompts = pool.query(fake, list(target_prompts))
        loss_d = self._matching_d_loss(real, cond_source, pooled, embed(pooled_prompts), cond_target)
        self._backward_and_step(loss_d, self.optimizers["d"])

        self._visuals = [real, fake.detach(), rec.detach()]
        out = {name: value.detach() for name, value in losses.items()}
        out.update(G=loss_g.detach(), D=loss_d.detach())
        return out

    # -- interface used by the loop --------------------------------------------------------------
    def generator_specs(self) -> dict[str, dict[str, Any]]:
        return {}  # saved as a textcycle folder by the loop (generator + text encoder + domains)

    def averaged_models(self) -> tuple[str, ...]:
        return ("g",)

    def visuals(self) -> list[Tensor]:
        return self._visuals

    def save_weights(self, out_dir: Any) -> Any:
        """Write the textcycle weights folder (translate.text.model.load_text_model reads it)."""
        plain = self.plain_models()
        return save_text_model(self.saved_generator("g"), plain.get("text", self.text), out_dir, kind=TEXTCYCLE_KIND,
                               architecture=self.architecture, text_encoder_config=self.text_encoder_config,
                               domains=self.domains, source={"task": self.task, "data": str(self.config.data)})


def build_dataset(config: TrainConfig) -> DomainDataset:
    return DomainDataset(config.data, phase="train", channels=config.input_nc,
                         preprocess=preprocess_config(config), seed=config.seed)


def check(config: TrainConfig) -> None:
    if config.input_nc != config.output_nc:
        raise InvalidCombinationError(
            f"textcycle translates every domain into every other with one generator, so input_nc and output_nc "
            f"must be equal (got input_nc={config.input_nc} and output_nc={config.output_nc})",
            "input_nc", "output_nc")
    if config.gan_mode == "wgangp":
        raise InvalidCombinationError("gan_mode='wgangp' is not available for textcycle (its gradient penalty "
                                      "takes a discriminator without text); use lsgan, vanilla or hinge", "gan_mode")


# CycleGAN's recipe (lsgan, Adam 0.5, cycle 10, identity 0.5, pool 50, flips, 286 -> 256) with
# one text-guided generator for all domains and a projection discriminator (StarGAN-like).
TASK = Task(
    name="textcycle", summary="text-guided translation between many domains (domain folders with prompts.txt)",
    step=TextCycleStep,
    defaults={"netG": "text_resnet_6blocks", "netD": "projection", "norm": "instance", "dropout": False,
              "gan_mode": "lsgan", "pool_size": 50, "lambda_A": 10.0, "lambda_identity": 0.5, "batch_size": 1,
              "load_size": 286, "crop_size": 256, "flip": True, "beta1": 0.5, "beta2": 0.999},
    generators=tuple(text_generator_names("textcycle")), discriminators=TEXT_DISCRIMINATORS["textcycle"],
    size_multiple=size_multiple,
    option_groups=frozenset({"image_input", "cycle", "text"}),
    build_dataset=build_dataset, images_key="image", save_weights=save_text_folder, check=check,
)

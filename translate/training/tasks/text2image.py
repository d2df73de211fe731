"""The text2image task step: noise + caption -> image, with a matching-aware projection discriminator.

DF-GAN's recipe, with AttnGAN's DAMSM in a sentence-level form (translate.text.matching):

1. the first `pretrain_text_steps` steps train only an image-text matcher on the real captioned
   images (the byte text encoder with it; a frozen pretrained encoder gets a trained projection);
2. then the matcher is frozen: its text encoder gives the generator and the discriminator their
   caption embeddings, and the generator's loss adds `lambda_match` times the matcher's loss on
   its images, a direct push to draw what each caption says.

With `pretrain_text_steps` 0 the byte encoder is trained with the discriminator instead (the
matching-aware loss makes it tell captions apart) and the generator sees its embeddings detached.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from translate.core.errors import InvalidChoiceError, InvalidCombinationError
from translate.data import PreprocessConfig
from translate.data.captions import CaptionedDataset
from translate.models.conditioned import (
    TEXT2IMAGE_SIZES,
    ProjectionDiscriminator,
    TextToImageGenerator,
    matching_aware_d_loss,
)
from translate.models.networks import init_weights
from translate.text import build_text_encoder
from translate.text.matching import CaptionBank, ImageTextMatcher
from translate.text.model import save_text2image
from translate.training.config import Task, TrainConfig
from translate.training.losses import matching_aware_gradient_penalty
from translate.training.tasks.base import TaskStep, Wrap, save_text_folder, set_requires_grad, unwrap

__all__ = ["TASK", "Text2ImageStep", "mismatch_order"]


def mismatch_order(texts: list[str]) -> list[int]:
    """A permutation pairing each caption with a different one where the batch allows (for the
    matching-aware loss: a real image with a caption that does not describe it)."""
    n = len(texts)
    for shift in range(1, n):
        order = [(i + shift) % n for i in range(n)]
        if all(texts[i] != texts[j] for i, j in enumerate(order)):
            return order
    return [(i + 1) % n for i in range(n)]


class Text2ImageStep(TaskStep):
    task = "text2image"

    def __init__(self, config: TrainConfig, device: torch.device, wrap: Wrap | None = None) -> None:
        super().__init__(config, device, wrap)
        c = config
        encoder_settings = {"dim": c.text_dim} if c.text_encoder == "byte" else {}
        encoder = build_text_encoder(c.text_encoder, **encoder_settings).to(device)
        self.trainable_text = bool(getattr(encoder, "trainable", True))
        cond_dim = int(encoder.dim)
        self.text_encoder_config = {"name": c.text_encoder,
                                    **(encoder.config() if hasattr(encoder, "config") else {})}
        self.architectures = {
            "g": {"name": "text2image", "noise_dim": c.noise_dim, "cond_dim": cond_dim, "ngf": c.ngf,
                  "image_size": c.crop_size, "output_nc": c.output_nc},
        }
        self.g = self.wrap(init_weights(TextToImageGenerator(c.noise_dim, cond_dim, c.ngf, c.crop_size,
                                                             c.output_nc), c.init_type, c.init_gain).to(device))
        self.d = self.wrap(init_weights(ProjectionDiscriminator(c.output_nc, c.ndf, c.n_layers_D, cond_dim, c.norm),
                                        c.init_type, c.init_gain).to(device))
        self.matcher: nn.Module | None = None
        if c.pretrain_text_steps > 0:
            # The matcher owns the encoder; D no longer trains it.
            matcher = ImageTextMatcher(encoder, c.crop_size, c.output_nc, dim=max(64, cond_dim),
                                     ndf=c.matcher_ndf or c.ndf)
            self.matcher = self.wrap(matcher.to(device))
            self.text = encoder
            self.models = {"g": self.g, "d": self.d, "matcher": self.matcher}
            d_modules: list[nn.Module] = [self.d]
        else:
            self.text = self.wrap(encoder) if self.trainable_text else encoder
            self.models = {"g": self.g, "d": self.d, **({"text": self.text} if self.trainable_text else {})}
            d_modules = [self.d, self.text] if self.trainable_text else [self.d]
        self.optimizers = {"g": self._adam([self.g]), "d": self._adam(d_modules)}
        if self.matcher is not None:
            # Contrastive pretraining of small encoders: a higher rate and the usual betas.
            self.optimizers["match"] = torch.optim.Adam(
                [p for p in self.matcher.parameters() if p.requires_grad], lr=5 * c.lr, betas=(0.9, 0.999))
        self._matcher_frozen = False
        self._generator_stepped = False
        self.caption_bank = CaptionBank(c.match_bank) if c.match_bank > 0 else None
        self._visuals: list[Tensor] = []

    def _pretraining(self) -> bool:
        """True while the matcher is still being trained; freezes it once it is done."""
        if self.matcher is None:
            return False
        matcher = unwrap(self.matcher)
        if int(matcher.steps) < self.config.pretrain_text_steps:
            return True
        if not self._matcher_frozen:
            matcher.requires_grad_(False)
            matcher.eval()
            self.trainable_text = False
            self._matcher_frozen = True
        return False

    def _matcher_step(self, real: Tensor, texts: list[str]) -> dict[str, Tensor]:
        matcher = unwrap(self.matcher)
        self.optimizers["match"].zero_grad(set_to_none=True)
        with self.autocast():
            loss = self.matcher(real, texts)
        self._backward_and_step(loss, self.optimizers["match"])
        matcher.steps += 1
        self._visuals = [real]
        return {"match": loss.detach()}

    def _embed(self, texts: list[str]) -> Tensor:
        if not self.trainable_text:
            with torch.no_grad():
                return self.text.encode(texts).to(self.device)
        ids, mask = unwrap(self.text).tokenizer.encode(texts)
        return self.text(ids.to(self.device), mask.to(self.device))

    def batch_inputs(self, batch: dict[str, Any], preprocess: PreprocessConfig | None,
                     generator: torch.Generator) -> tuple[Tensor, list[str]]:
        """(images, captions): the data set already sized them; captions name left and right, so no flips."""
        return batch["image"].to(self.device, non_blocking=True), batch["text"]

    def train_step(self, real: Tensor, texts: list[str]) -> dict[str, Tensor]:  # type: ignore[override]
        """`real`: `(B, C, S, S)` in [-1, 1]; `texts`: their B captions."""
        self._generator_stepped = not self._pretraining()
        if not self._generator_stepped:
            return self._matcher_step(real, texts)
        cond = self._embed(texts)
        noise = torch.randn(real.shape[0], self.config.noise_dim, device=self.device)
        with self.autocast():
            fake = self.g(noise, cond.detach())

        set_requires_grad([self.d], True)
        self.optimizers["d"].zero_grad(set_to_none=True)
        with self.autocast():
            loss_d = matching_aware_d_loss(self.d, real, fake, cond, cond[mismatch_order(texts)],
                                           self.criterion_gan)
        losses_d = {}
        if self.config.lambda_ma_gp > 0:
            # In float32 outside autocast: the penalty is a high power of a double-backward gradient.
            penalty = matching_aware_gradient_penalty(unwrap(self.d), real, cond, weight=self.config.lambda_ma_gp)
            loss_d = loss_d + penalty
            losses_d["D_ma_gp"] = penalty.detach()
        self._backward_and_step(loss_d, self.optimizers["d"])

        set_requires_grad([self.d], False)
        self.optimizers["g"].zero_grad(set_to_none=True)
        with self.autocast():
            pred_fake = unwrap(self.d)(fake, cond.detach())
        loss_g_gan = self.criterion_gan(pred_fake, True, for_discriminator=False)
        losses = {"G": loss_g_gan.detach(), "D": loss_d.detach(), **losses_d}
        loss_g = loss_g_gan
        if self.matcher is not None and self.config.lambda_match > 0:
            with self.autocast():
                if self.caption_bank is not None:
                    loss_match = unwrap(self.matcher).bank_loss(fake, texts, cond, self.caption_bank)
                else:
                    loss_match = unwrap(self.matcher).loss(fake, texts, text_embedding=cond)
            loss_g = loss_g + self.config.lambda_match * loss_match
            losses["G_match"] = loss_match.detach()
        self._backward_and_step(loss_g, self.optimizers["g"])

        self._visuals = [real, fake.detach()]
        return losses

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self.caption_bank is not None:
            state["caption_bank"] = self.caption_bank.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if self.caption_bank is not None and state.get("caption_bank") is not None:
            self.caption_bank.load_state_dict(state["caption_bank"], self.device)

    def generator_specs(self) -> dict[str, dict[str, Any]]:
        return {}  # saved as a text2image folder by the loop (generator + text encoder)

    def averaged_models(self) -> tuple[str, ...]:
        return ("g",)

    def update_ema(self) -> None:
        if self._generator_stepped:  # the matcher's pretraining steps leave G as it was
            super().update_ema()

    def visuals(self) -> list[Tensor]:
        return self._visuals

    def save_weights(self, out_dir: Any) -> Any:
        plain = self.plain_models()
        encoder = plain.get("text", self.text)
        generator = self.saved_generator("g")
        return save_text2image(generator, encoder, out_dir, architecture=self.architectures["g"],
                               text_encoder_config=self.text_encoder_config)


def build_dataset(config: TrainConfig) -> CaptionedDataset:
    root = Path(config.data)
    return CaptionedDataset(root / "train" if (root / "train").is_dir() else root, size=config.crop_size,
                            seed=config.seed)


def check(config: TrainConfig) -> None:
    if config.crop_size not in TEXT2IMAGE_SIZES:
        raise InvalidChoiceError("crop_size", config.crop_size, TEXT2IMAGE_SIZES,
                                 "crop_size is the text2image image size")
    if config.lambda_match > 0 and config.pretrain_text_steps == 0:
        raise InvalidCombinationError(
            f"lambda_match={config.lambda_match} needs a pretrained matcher: set pretrain_text_steps (e.g. "
            "1000), or lambda_match=0", "lambda_match", "pretrain_text_steps")


# DF-GAN-like: hinge loss, matching-aware discriminator, Adam (0, 0.9); no flips, since captions
# name left and right.
TASK = Task(
    name="text2image", summary="noise + caption -> image (captioned images)",
    step=Text2ImageStep,
    defaults={"netG": "text2image", "netD": "projection", "norm": "instance", "dropout": False,
              "gan_mode": "hinge", "pool_size": 0, "lambda_identity": 0.0, "batch_size": 16,
              "load_size": 64, "crop_size": 64, "flip": False, "beta1": 0.0, "beta2": 0.9,
              "n_epochs": 50, "n_epochs_decay": 50, "pretrain_text_steps": 1000, "lambda_match": 1.0,
              "match_bank": 1024, "lambda_ma_gp": 2.0, "ema_decay": 0.999},
    generators=("text2image",), discriminators=("projection",), size_multiple=lambda net_g: 1,
    option_groups=frozenset({"text", "text2image"}),
    build_dataset=build_dataset, images_key="image", save_weights=save_text_folder, check=check,
)

"""The text2image task step: noise + caption -> image, with a matching-aware projection discriminator.

DF-GAN's recipe without its pretrained DAMSM encoder: the byte-level text encoder is trained with
the discriminator (the matching-aware loss makes it tell captions apart), and the generator sees
its embeddings detached. A frozen pretrained encoder (--text-encoder minilm | clip) is used as is.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from translate.models.conditioned import ProjectionDiscriminator, TextToImageGenerator, matching_aware_d_loss
from translate.models.networks import init_weights
from translate.text import build_text_encoder
from translate.training.config import TrainConfig
from translate.training.steps import TaskStep, Wrap, set_requires_grad, unwrap


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
        self.text = self.wrap(encoder) if self.trainable_text else encoder
        self.models = {"g": self.g, "d": self.d, **({"text": self.text} if self.trainable_text else {})}
        d_modules: list[nn.Module] = [self.d, self.text] if self.trainable_text else [self.d]
        self.optimizers = {"g": self._adam([self.g]), "d": self._adam(d_modules)}
        self._visuals: list[Tensor] = []

    def _embed(self, texts: list[str]) -> Tensor:
        if not self.trainable_text:
            with torch.no_grad():
                return self.text.encode(texts).to(self.device)
        ids, mask = unwrap(self.text).tokenizer.encode(texts)
        return self.text(ids.to(self.device), mask.to(self.device))

    def train_step(self, real: Tensor, texts: list[str]) -> dict[str, Tensor]:  # type: ignore[override]
        """`real`: `(B, C, S, S)` in [-1, 1]; `texts`: their B captions."""
        cond = self._embed(texts)
        noise = torch.randn(real.shape[0], self.config.noise_dim, device=self.device)
        with self.autocast():
            fake = self.g(noise, cond.detach())

        set_requires_grad([self.d], True)
        self.optimizers["d"].zero_grad(set_to_none=True)
        with self.autocast():
            loss_d = matching_aware_d_loss(self.d, real, fake, cond, cond[mismatch_order(texts)],
                                           self.criterion_gan)
        self._backward_and_step(loss_d, self.optimizers["d"])

        set_requires_grad([self.d], False)
        self.optimizers["g"].zero_grad(set_to_none=True)
        with self.autocast():
            pred_fake = unwrap(self.d)(fake, cond.detach())
        loss_g = self.criterion_gan(pred_fake, True, for_discriminator=False)
        self._backward_and_step(loss_g, self.optimizers["g"])

        self._visuals = [real, fake.detach()]
        return {"G": loss_g.detach(), "D": loss_d.detach()}

    def generator_specs(self) -> dict[str, dict[str, Any]]:
        return {}  # saved as a text2image folder by the loop (generator + text encoder)

    def visuals(self) -> list[Tensor]:
        return self._visuals

    def save_weights(self, out_dir: Any) -> Any:
        from translate.text.model import save_text2image

        plain = self.plain_models()
        encoder = plain.get("text", self.text)
        return save_text2image(plain["g"], encoder, out_dir, architecture=self.architectures["g"],
                               text_encoder_config=self.text_encoder_config)

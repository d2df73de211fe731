"""Adversarial objectives, the WGAN-GP gradient penalty and CUT's PatchNCE loss."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from translate.training.config import GAN_MODES


class GANLoss(nn.Module):
    """The adversarial loss of the reference implementation, by mode.

    - lsgan: mean squared error to 1 (real) / 0 (fake) (LSGAN).
    - vanilla: binary cross-entropy on logits (the original GAN).
    - wgangp: -mean(prediction) for real, +mean for fake (use with `gradient_penalty`).
    - hinge: for the discriminator relu(1 - D(real)) and relu(1 + D(fake)); for the generator -D(fake).

    `forward(prediction, target_is_real, for_discriminator=True)` takes the discriminator's raw
    output of any shape, e.g. `(B, 1, h, w)` patch logits, and returns a scalar. A discriminator of
    several judges (`{name: logits}`, e.g. the projected one beside a PatchGAN) gets the sum of
    their losses, each in its own mode: `judge_modes[name]`, else `gan_mode`.
    """

    def __init__(self, gan_mode: str, judge_modes: Mapping[str, str] | None = None) -> None:
        super().__init__()
        for mode in (gan_mode, *(judge_modes or {}).values()):
            if mode not in GAN_MODES:
                raise ValueError(f"gan_mode {mode!r} is not one of {', '.join(GAN_MODES)}")
        self.gan_mode = gan_mode
        self.judge_modes = dict(judge_modes or {})

    def forward(self, prediction: Tensor | Mapping[str, Tensor], target_is_real: bool,
                for_discriminator: bool = True) -> Tensor:
        if isinstance(prediction, Mapping):
            return torch.stack([self.loss(self.judge_modes.get(name, self.gan_mode), logits, target_is_real,
                                          for_discriminator) for name, logits in prediction.items()]).sum()
        return self.loss(self.gan_mode, prediction, target_is_real, for_discriminator)

    @staticmethod
    def loss(gan_mode: str, prediction: Tensor, target_is_real: bool, for_discriminator: bool = True) -> Tensor:
        """The loss of one judge's logits in `gan_mode`, a scalar."""
        # Losses are computed in float32 even under autocast: their reductions lose accuracy in 16 bit.
        prediction = prediction.float()
        if gan_mode == "lsgan":
            target = torch.ones_like(prediction) if target_is_real else torch.zeros_like(prediction)
            return F.mse_loss(prediction, target)
        if gan_mode == "vanilla":
            target = torch.ones_like(prediction) if target_is_real else torch.zeros_like(prediction)
            return F.binary_cross_entropy_with_logits(prediction, target)
        if gan_mode == "wgangp":
            return -prediction.mean() if target_is_real else prediction.mean()
        # hinge
        if not for_discriminator:
            return -prediction.mean()
        return F.relu(1.0 - prediction).mean() if target_is_real else F.relu(1.0 + prediction).mean()


def gradient_penalty(discriminator: nn.Module, real: Tensor, fake: Tensor,
                     generator: torch.Generator | None = None) -> Tensor:
    """WGAN-GP penalty E[(||grad D(x_hat)||_2 - 1)^2] on random interpolates of real and fake.

    Args:
        real, fake: `(B, C, H, W)` in [-1, 1]; `fake` is detached here.
    """
    alpha = torch.rand(real.shape[0], 1, 1, 1, generator=generator).to(real.device, real.dtype)
    interpolates = (alpha * real + (1 - alpha) * fake.detach()).requires_grad_(True)
    prediction = discriminator(interpolates)
    gradients = torch.autograd.grad(
        outputs=prediction, inputs=interpolates, grad_outputs=torch.ones_like(prediction),
        create_graph=True, retain_graph=True)[0]
    gradients = gradients.reshape(real.shape[0], -1).float()
    return ((gradients.norm(2, dim=1) - 1.0) ** 2).mean()


def matching_aware_gradient_penalty(discriminator: nn.Module, real: Tensor, cond: Tensor,
                                    weight: float = 2.0, power: float = 6.0) -> Tensor:
    """DF-GAN's matching-aware gradient penalty, `weight * E[||grad D(real, cond)||_2 ** power]`.

    The gradient is taken with respect to both the real image and its (matching) caption
    embedding, so D's surface is flat around real, matching pairs and the generator's gradient
    leads its images towards them (Tao et al. 2022 use weight 2, power 6).

    Args:
        discriminator: `d(x, cond) -> logits`, `(B, 1)` or patch logits `(B, 1, h, w)` (averaged).
        real: `(B, C, H, W)` in [-1, 1]. cond: `(B, D)`, the captions of `real`.
    """
    real = real.detach().requires_grad_(True)
    cond = cond.detach().requires_grad_(True)
    # One score per image: a patch discriminator's logits are averaged, as DF-GAN's D gives one.
    score = discriminator(real, cond).reshape(real.shape[0], -1).mean(dim=1)
    grad_image, grad_cond = torch.autograd.grad(outputs=score.sum(), inputs=(real, cond), create_graph=True)
    gradients = torch.cat([grad_image.reshape(real.shape[0], -1), grad_cond.reshape(real.shape[0], -1)], dim=1)
    return weight * gradients.float().norm(2, dim=1).pow(power).mean()


def patch_nce_loss(query: Tensor, key: Tensor, batch_size: int, temperature: float = 0.07) -> Tensor:
    """CUT's PatchNCE loss (Park et al. 2020) of one layer, per query patch.

    Each query patch (a location of the translated image's features) must pick its key (the same
    location of the source image's features) among the keys of the other sampled locations of the
    same image: cross-entropy over `[q.k+, q.k-_1, ...] / temperature`. The key's own entry in the
    negatives is masked with -10 as in the reference; keys are detached (no gradient).

    Args:
        query, key: `(B * P, D)` L2-normalised rows, image-major (the P rows of image 0 first).
        batch_size: B; negatives come from the same image only.
        temperature: the reference's nce_T.

    Returns:
        `(B * P,)` float32 losses.
    """
    query, key = query.float(), key.detach().float()
    rows, dim = query.shape
    positive = (query * key).sum(dim=1, keepdim=True)  # (B * P, 1)
    per_image_q, per_image_k = query.view(batch_size, -1, dim), key.view(batch_size, -1, dim)
    patches = per_image_q.shape[1]
    negatives = torch.bmm(per_image_q, per_image_k.transpose(1, 2))  # (B, P, P)
    diagonal = torch.eye(patches, dtype=torch.bool, device=query.device)[None]
    negatives = negatives.masked_fill(diagonal, -10.0).view(rows, patches)
    logits = torch.cat([positive, negatives], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(rows, dtype=torch.long, device=query.device), reduction="none")

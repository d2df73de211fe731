"""Image-text matching (DAMSM-like, sentence level): an image encoder and a text encoder trained
to agree, contrastively (CLIP's symmetric InfoNCE over the batch).

The text2image task uses it twice, as AttnGAN uses DAMSM: first the byte text encoder is
pretrained with it on the real captioned images, so captions that differ in one word (a colour,
a side) get embeddings the images can tell apart; then, frozen, it scores the generator's
images against their captions (`matching_loss` on fakes), a direct gradient towards drawing
what the caption says, where the discriminator's signal alone left some colours undrawn.

    matcher = ImageTextMatcher(build_text_encoder("byte", dim=64), image_size=32)
    loss = matcher.loss(images, texts)    # images (B, 3, S, S) in [-1, 1], B captions
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from translate.text.encoders import TextEncoder

logger = logging.getLogger(__name__)

__all__ = ["CaptionBank", "ImageEncoder", "ImageTextMatcher", "fit_image_side", "image_to_text_loss", "matching_loss"]


class ImageEncoder(nn.Module):
    """Strided convolutions down to a 4x4 map, flattened (so where things are stays in the
    embedding, unlike a global pool), then a linear layer.

    `forward(x (B, input_nc, S, S) in [-1, 1]) -> (B, dim)`, S >= 16.
    """

    def __init__(self, input_nc: int = 3, dim: int = 128, ndf: int = 32, image_size: int = 64) -> None:
        super().__init__()
        for name, value in (("input_nc", input_nc), ("dim", dim), ("ndf", ndf), ("image_size", image_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if image_size < 16 or image_size & (image_size - 1):
            raise ValueError(f"image_size must be a power of two >= 16, got {image_size}")
        layers: list[nn.Module] = []
        channels, size = input_nc, image_size
        while size > 4:
            out = min(ndf * 8, ndf * 2 ** (len(layers) // 2))
            layers += [nn.Conv2d(channels, out, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            channels, size = out, size // 2
        self.image_size = image_size
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels * 16, dim)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(f"expected images (B, C, {self.image_size}, {self.image_size}), got {tuple(x.shape)}")
        return self.head(self.features(x).flatten(1))


def _same_text(rows: Sequence[str], columns: Sequence[str], like: Tensor) -> Tensor:
    """`(len(rows), len(columns))` table of 1 where the strings are equal, as `like`'s dtype and device.
    Strings become ids first: one tensor comparison instead of B x N string comparisons per step."""
    ids: dict[str, int] = {}
    row_ids = torch.tensor([ids.setdefault(text, len(ids)) for text in rows])
    column_ids = torch.tensor([ids.setdefault(text, len(ids)) for text in columns])
    return (row_ids[:, None] == column_ids[None, :]).to(like.device, like.dtype)


def matching_loss(image_embedding: Tensor, text_embedding: Tensor, logit_scale: Tensor,
                  texts: Sequence[str] | None = None) -> Tensor:
    """Symmetric InfoNCE: each image must pick its caption among the batch's, and each caption its image.

    Args:
        image_embedding, text_embedding: `(B, D)` (normalised here).
        logit_scale: scalar, log of the inverse temperature.
        texts: the B captions; identical captions count as matches of each other (soft targets),
            so a batch with repeated captions does not teach the encoders to tell them apart.
    Returns: scalar, `log B` at chance.
    """
    if image_embedding.shape != text_embedding.shape or image_embedding.ndim != 2:
        raise ValueError(f"expected two (B, D) embeddings of one shape, got {tuple(image_embedding.shape)} "
                         f"and {tuple(text_embedding.shape)}")
    logits = logit_scale.exp().clamp(max=100.0) * (
        F.normalize(image_embedding, dim=1) @ F.normalize(text_embedding, dim=1).t())
    batch = logits.shape[0]
    if texts is not None:
        if len(texts) != batch:
            raise ValueError(f"got {len(texts)} texts for {batch} embeddings")
        same = _same_text(texts, texts, logits)
        targets = same / same.sum(dim=1, keepdim=True)
    else:
        targets = torch.eye(batch, dtype=logits.dtype, device=logits.device)
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets.t()))


def image_to_text_loss(image_embedding: Tensor, texts: Sequence[str], text_embedding: Tensor,
                       candidates: Sequence[str], logit_scale: Tensor) -> Tensor:
    """Cross-entropy of each image picking its caption among `candidates` (captions equal to its
    own all count as right).

    Args:
        image_embedding: `(B, D)`; texts: its B captions.
        text_embedding: `(N, D)`, the embeddings of `candidates` (N strings, including the B captions).
    Returns: scalar, `log N` at chance.
    """
    if text_embedding.shape[0] != len(candidates) or image_embedding.shape[0] != len(texts):
        raise ValueError(f"got {len(texts)} texts for {image_embedding.shape[0]} images and {len(candidates)} "
                         f"candidates for {text_embedding.shape[0]} embeddings")
    logits = logit_scale.exp().clamp(max=100.0) * (
        F.normalize(image_embedding, dim=1) @ F.normalize(text_embedding, dim=1).t())
    same = _same_text(texts, candidates, logits)
    if not bool((same.sum(dim=1) > 0).all()):
        raise ValueError("every image's caption must be among the candidates")
    return F.cross_entropy(logits, same / same.sum(dim=1, keepdim=True))


class CaptionBank:
    """The last `size` distinct captions seen, with their (frozen) text embeddings: negatives for
    `image_to_text_loss` beyond the batch (MoCo's queue). Random in-batch captions rarely differ
    from a caption in one word only, so a generator can match them with the wrong colour; among
    a thousand captions the ones that differ only by the colour are there too."""

    def __init__(self, size: int = 1024) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size = size
        self.texts: list[str] = []
        self.embeddings: Tensor | None = None

    def add(self, texts: Sequence[str], embeddings: Tensor) -> None:
        """Append the new ones of `texts` (B strings) with `embeddings` `(B, D)`, dropping the oldest."""
        known = set(self.texts)
        keep = [i for i, text in enumerate(texts) if text not in known and text not in texts[:i]]
        if not keep:
            return
        new = embeddings.detach()[keep]
        self.texts = (self.texts + [texts[i] for i in keep])[-self.size:]
        stacked = new if self.embeddings is None else torch.cat([self.embeddings.to(new.device), new])
        self.embeddings = stacked[-self.size:]

    def state_dict(self) -> dict[str, object]:
        return {"size": self.size, "texts": list(self.texts),
                "embeddings": None if self.embeddings is None else self.embeddings.cpu()}

    def load_state_dict(self, state: dict[str, object], device: torch.device | None = None) -> None:
        self.size, self.texts = int(state["size"]), list(state["texts"])  # type: ignore[arg-type]
        embeddings = state["embeddings"]
        self.embeddings = None if embeddings is None else embeddings.to(device)  # type: ignore[union-attr]


class ImageTextMatcher(nn.Module):
    """An image encoder and a text encoder (with a linear projection) into one embedding space.

    `text_encoder` is trained with the matcher when it is trainable (the byte encoder), else
    only the projection learns. `dim` is the shared embedding size.
    """

    def __init__(self, text_encoder: TextEncoder, image_size: int, input_nc: int = 3, dim: int = 128,
                 ndf: int = 32) -> None:
        super().__init__()
        self.text_encoder = text_encoder
        self.image_encoder = ImageEncoder(input_nc, dim, ndf, image_size)
        self.text_projection = nn.Linear(int(text_encoder.dim), dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        # Matcher steps taken: kept in the checkpoint, so a resumed run knows its pretraining is done.
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def forward(self, images: Tensor, texts: Sequence[str]) -> Tensor:
        """The matching loss of `images` `(B, C, S, S)` in [-1, 1] and their B captions (a scalar)."""
        return self.loss(images, texts)

    def embed_text(self, texts: Sequence[str]) -> Tensor:
        return self.text_projection(self.text_encoder.encode(list(texts)))

    def loss(self, images: Tensor, texts: Sequence[str], text_embedding: Tensor | None = None) -> Tensor:
        """`images` `(B, C, S, S)` in [-1, 1] and their B captions -> scalar matching loss.
        `text_embedding`: the texts' encoder output `(B, text dim)` when already computed."""
        projected = (self.text_projection(text_embedding) if text_embedding is not None
                     else self.embed_text(texts))
        return matching_loss(self.image_encoder(images), projected, self.logit_scale, texts)

    def bank_loss(self, images: Tensor, texts: Sequence[str], text_embedding: Tensor, bank: CaptionBank) -> Tensor:
        """`image_to_text_loss` of `images` against their captions plus the bank's (then adds
        the captions to the bank). `text_embedding`: the captions' encoder output `(B, text dim)`."""
        candidates, embeddings = list(texts), text_embedding
        if bank.embeddings is not None:
            candidates += bank.texts
            embeddings = torch.cat([text_embedding, bank.embeddings.to(text_embedding.device)])
        loss = image_to_text_loss(self.image_encoder(images), texts, self.text_projection(embeddings), candidates,
                                  self.logit_scale)
        bank.add(texts, text_embedding)
        return loss

    @torch.no_grad()
    def accuracy(self, images: Tensor, texts: Sequence[str]) -> float:
        """Share of images whose best-scoring caption in the batch is theirs (or an identical one)."""
        logits = F.normalize(self.image_encoder(images), dim=1) @ F.normalize(self.embed_text(texts), dim=1).t()
        best = logits.argmax(dim=1).tolist()
        return sum(texts[j] == texts[i] for i, j in enumerate(best)) / len(texts)


def fit_image_side(matcher: ImageTextMatcher, images: Tensor, captions: Sequence[Sequence[str]], *, steps: int,
                   batch_size: int = 256, lr: float = 1e-3, seed: int = 0, log_every: int = 250) -> float:
    """Train the matcher's image encoder, text projection and temperature against its frozen text
    encoder on real captioned images (CLIP's loss, one-cycle LR, +-1 pixel shifts).

    Why: pretrained inside a GAN run, the matcher sees the run's small batches, whose random
    captions rarely differ from each other in one word; a wide batch holds captions that differ
    only by the colour or the side, so the image side learns to tell those apart. The text
    encoder stays as it is, so a generator conditioned on its embeddings needs no retraining.

    Args:
        matcher: trained in place (its text encoder is frozen and left in eval mode).
        images: `(N, C, S, S)` in [-1, 1], on the matcher's device; captions: N lists of captions
            (one drawn per image and step).
        steps, batch_size (<= N), lr, seed: the schedule; log_every: steps between log lines.
    Returns: the last step's loss.
    """
    if images.ndim != 4 or images.shape[0] != len(captions):
        raise ValueError(f"expected images (N, C, S, S) and N caption lists, got {tuple(images.shape)} "
                         f"and {len(captions)} lists")
    if any(len(texts) == 0 for texts in captions):
        raise ValueError("every image needs at least one caption")
    if steps < 1 or not 2 <= batch_size <= images.shape[0]:
        raise ValueError(f"need steps >= 1 and 2 <= batch_size <= {images.shape[0]} (the images), "
                         f"got steps={steps!r}, batch_size={batch_size!r}")
    matcher.text_encoder.requires_grad_(False)
    matcher.text_encoder.eval()
    params = [p for name, p in matcher.named_parameters() if not name.startswith("text_encoder.")]
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(params, lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=steps, pct_start=0.05)
    generator = torch.Generator().manual_seed(seed)
    matcher.image_encoder.train()
    loss = torch.zeros(())
    for step in range(steps):
        index = torch.randperm(images.shape[0], generator=generator)[:batch_size]
        picks = torch.randint(0, 1 << 30, (batch_size,), generator=generator).tolist()
        texts = [captions[i][pick % len(captions[i])] for i, pick in zip(index.tolist(), picks, strict=False)]
        shift = torch.randint(-1, 2, (2,), generator=generator).tolist()
        batch = torch.roll(images[index], (shift[0], shift[1]), dims=(2, 3))
        with torch.no_grad():
            text_embedding = matcher.text_encoder.encode(texts).to(batch.device)
        loss = matcher.loss(batch, texts, text_embedding=text_embedding)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        matcher.steps += 1
        if log_every and (step % log_every == 0 or step == steps - 1):
            logger.info("matcher step %d/%d: loss %.3f", step + 1, steps, loss.item())
    matcher.eval()
    return float(loss.detach())

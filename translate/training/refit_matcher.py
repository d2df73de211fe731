"""Refit a text2image run's image-text matcher with wide batches, keeping its text encoder.

Inside a run the matcher is pretrained on the run's batches (e.g. 32 images), whose random
captions rarely differ in one word only, so it tells neighbouring colours apart poorly, and the
generator, guided by it, draws red for orange. `refit_matcher` trains a new image side (an image
encoder of width `ndf`, the text projection and the temperature;
`translate.text.matching.fit_image_side`) against the run's frozen text encoder with wide
batches, and writes a copy of the run's checkpoint with that matcher into `out`. The generator
and discriminator see the same caption embeddings as before, so `translate train --resume OUT`
continues where the run was, with sharper guidance.

The report gives the matcher's retrieval accuracy on DATA/val (each image picking its caption
among a batch's), before and after; `colour_variants=True` adds, for the shapes data set, how
often an image picks its caption among the caption's 8 colour variants.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from translate.core.errors import InvalidValueError
from translate.core.images import array_to_tensor
from translate.data.captions import read_captions
from translate.evaluation.shapes import COLOR_WORDS, COLORS, parse_prompt
from translate.text import build_text_encoder
from translate.text.matching import ImageTextMatcher, fit_image_side
from translate.training.checkpoint import atomic_save, read_checkpoint

logger = logging.getLogger(__name__)

__all__ = ["RefitReport", "colour_variant_accuracy", "load_captioned_split", "refit_matcher", "retrieval_accuracy"]


@dataclass(frozen=True)
class RefitReport:
    """The checkpoint written, and the matcher's val accuracies {"before": {...}, "after": {...}}
    (`val_retrieval`, and `val_colour_variants` when asked; empty without DATA/val)."""

    checkpoint: Path
    accuracy: dict[str, dict[str, float]]


def load_captioned_split(folder: Path, size: int) -> tuple[Tensor, list[list[str]]]:
    """Every captioned image under `folder` as `(N, 3, size, size)` in [-1, 1], with its captions."""
    captions = read_captions(folder)
    images = [np.asarray(Image.open(path).convert("RGB").resize((size, size), Image.Resampling.BICUBIC))
              for path in captions]
    return array_to_tensor(np.stack(images)), list(captions.values())


@torch.no_grad()
def retrieval_accuracy(matcher: ImageTextMatcher, images: Tensor, captions: Sequence[Sequence[str]],
                       batch_size: int = 256) -> float:
    """Share of images whose best caption, among a batch's first captions, is theirs."""
    matcher.eval()
    hits = total = 0
    for start in range(0, len(images), batch_size):
        texts = [c[0] for c in captions[start:start + batch_size]]
        hits += round(matcher.accuracy(images[start:start + batch_size], texts) * len(texts))
        total += len(texts)
    return hits / total


_COLOR_WORD = re.compile(r"\b(" + "|".join(sorted((w for ws in COLOR_WORDS.values() for w in ws), key=len,
                                                  reverse=True)) + r")\b")


@torch.no_grad()
def colour_variant_accuracy(matcher: ImageTextMatcher, images: Tensor, captions: Sequence[Sequence[str]]) -> float:
    """Shapes data: share of images that pick their caption among its 8 colour variants."""
    matcher.eval()
    hits = 0
    for image, texts in zip(images, captions, strict=True):
        variants = [_COLOR_WORD.sub(name, texts[0]) for name in COLORS]
        scores = F.normalize(matcher.image_encoder(image[None]), dim=1) @ F.normalize(
            matcher.embed_text(variants), dim=1).t()
        hits += list(COLORS)[int(scores.argmax())] == parse_prompt(texts[0])["color"]
    return hits / len(images)


def _run_matcher(run: str | os.PathLike[str], state: dict[str, Any]) -> ImageTextMatcher:
    """The run's matcher, rebuilt from its checkpoint's config and tensors."""
    config = state["config"]
    if "matcher" not in state.get("models", {}):  # only text2image runs have one
        raise InvalidValueError("run", str(run), "a text2image run with a matcher",
                                "train with pretrain_text_steps > 0 (the matcher's pretraining)")
    settings = {"dim": config["text_dim"]} if config["text_encoder"] == "byte" else {}
    encoder = build_text_encoder(config["text_encoder"], **settings)
    matcher = ImageTextMatcher(encoder, config["crop_size"], config["output_nc"], dim=max(64, int(encoder.dim)),
                               ndf=config.get("matcher_ndf") or config["ndf"])
    matcher.load_state_dict(state["models"]["matcher"])
    return matcher


def _scores(matcher: ImageTextMatcher, val: tuple[Tensor, list[list[str]]] | None,
            colour_variants: bool) -> dict[str, float]:
    if val is None:
        return {}
    scores = {"val_retrieval": retrieval_accuracy(matcher, *val)}
    if colour_variants:
        scores["val_colour_variants"] = colour_variant_accuracy(matcher, *val)
    return scores


def refit_matcher(run: str | os.PathLike[str], data: str | os.PathLike[str], out: str | os.PathLike[str], *,
                  steps: int = 1000, batch_size: int = 256, ndf: int = 64, lr: float = 1e-3, seed: int = 0,
                  colour_variants: bool = False) -> RefitReport:
    """Train a new image side for `run`'s matcher on `data` and write the run's checkpoint with it
    as `out/checkpoints/latest.pt` (see the module doc).

    Args:
        run: a text2image run directory (its latest checkpoint) or one of its checkpoint files.
        data: the run's data: DATA/train (or DATA itself) to fit on, DATA/val (optional) to score.
        out: the new run directory; must not exist.
        steps, batch_size, lr, seed: the fit's schedule (batch_size is capped at the images).
        ndf: width of the new image encoder.
        colour_variants: also score the shapes data set's colour-variant accuracy.

    Raises:
        FileExistsError: `out` exists. FileNotFoundError: no checkpoint or data.
        InvalidValueError: `run` is no text2image run with a matcher.
    """
    out, data = Path(out), Path(data)
    if out.exists():
        raise FileExistsError(f"{out} exists; pick a new directory for the refitted run (out=...)")
    state = read_checkpoint(run)
    old = _run_matcher(run, state)
    config = dict(state["config"])
    new = ImageTextMatcher(old.text_encoder, config["crop_size"], config["output_nc"], dim=old.text_projection.out_features,
                           ndf=ndf)
    new.steps.copy_(old.steps)
    train_folder = data / "train" if (data / "train").is_dir() else data
    train_images, train_captions = load_captioned_split(train_folder, config["crop_size"])
    val = load_captioned_split(data / "val", config["crop_size"]) if (data / "val").is_dir() else None
    accuracy = {"before": _scores(old, val, colour_variants)}
    torch.manual_seed(seed)
    fit_image_side(new, train_images, train_captions, steps=steps, batch_size=min(batch_size, len(train_images)),
                   lr=lr, seed=seed)
    accuracy["after"] = _scores(new, val, colour_variants)
    logger.info("matcher accuracy on %s/val: %s", data, accuracy)

    # The new matcher is frozen in the continued run: its optimiser starts afresh, with the
    # parameter list the run builds (a trainable text encoder included), or the resume fails.
    trainable_text = bool(getattr(old.text_encoder, "trainable", True))
    optimizer = torch.optim.Adam([p for name, p in new.named_parameters()
                                  if trainable_text or not name.startswith("text_encoder.")],
                                 lr=5 * config["lr"], betas=(0.9, 0.999))
    state["models"]["matcher"] = new.state_dict()
    state["optimizers"]["match"] = optimizer.state_dict()
    state["config"] = {**config, "matcher_ndf": ndf, "out": str(out)}
    checkpoint = out / "checkpoints" / "latest.pt"
    atomic_save(state, checkpoint)
    logger.info("wrote %s", checkpoint)
    return RefitReport(checkpoint, accuracy)

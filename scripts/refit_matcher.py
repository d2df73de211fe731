"""Refit a text2image run's image-text matcher with wide batches, keeping its text encoder.

Usage:
    python scripts/refit_matcher.py --run runs/shapes --data data/shapes --out runs/shapes_refit \
        [--steps 1000] [--batch-size 256] [--ndf 64] [--lr 1e-3] [--shapes]
    translate train --resume runs/shapes_refit --n-epochs E --n-epochs-decay D   # continue the GAN

Inside a run the matcher is pretrained on the run's batches (e.g. 32 images), whose random captions
rarely differ in one word only, so it tells neighbouring colours apart poorly, and the generator,
guided by it, draws red for orange. This trains a new image side (encoder of width `--ndf`, text
projection, temperature; `translate.text.matching.fit_image_side`) against the run's frozen text
encoder with wide batches, and writes a copy of the run's checkpoint with that matcher into `--out`.
The generator and discriminator see the same caption embeddings as before, so the run continues
where it was, with sharper guidance.

It prints the matcher's retrieval accuracy on DATA/val (each image picking its caption among a
batch's), before and after; `--shapes` adds, for the shapes data set, how often an image picks
its caption among the caption's 8 colour variants.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from translate.core.images import array_to_tensor
from translate.data.captions import read_captions
from translate.evaluation.shapes import COLOR_WORDS, COLORS, parse_prompt
from translate.text import build_text_encoder
from translate.text.matching import ImageTextMatcher, fit_image_side
from translate.training import read_checkpoint
from translate.training.checkpoint import atomic_save


def load_split(folder: Path, size: int) -> tuple[torch.Tensor, list[list[str]]]:
    """Every captioned image under `folder` as `(N, 3, size, size)` in [-1, 1], with its captions."""
    captions = read_captions(folder)
    images = [np.asarray(Image.open(path).convert("RGB").resize((size, size), Image.Resampling.BICUBIC))
              for path in captions]
    tensor = array_to_tensor(np.stack(images))
    return tensor, list(captions.values())


@torch.no_grad()
def retrieval_accuracy(matcher: ImageTextMatcher, images: torch.Tensor, captions: Sequence[Sequence[str]],
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
def colour_variant_accuracy(matcher: ImageTextMatcher, images: torch.Tensor,
                            captions: Sequence[Sequence[str]]) -> float:
    """Shapes data: share of images that pick their caption among its 8 colour variants."""
    matcher.eval()
    hits = 0
    for image, texts in zip(images, captions, strict=False):
        variants = [_COLOR_WORD.sub(name, texts[0]) for name in COLORS]
        scores = F.normalize(matcher.image_encoder(image[None]), dim=1) @ F.normalize(
            matcher.embed_text(variants), dim=1).t()
        hits += list(COLORS)[int(scores.argmax())] == parse_prompt(texts[0])["color"]
    return hits / len(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a text2image run directory or one of its checkpoints")
    parser.add_argument("--data", required=True, type=Path, help="the run's data (DIR/train, optional DIR/val)")
    parser.add_argument("--out", required=True, type=Path, help="new run directory (must not exist)")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--ndf", type=int, default=64, help="width of the new image encoder")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shapes", action="store_true", help="also report the colour-variant accuracy")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    if args.out.exists():
        parser.error(f"--out {args.out} exists; pick a new directory")
    state = read_checkpoint(args.run)
    config = dict(state["config"])
    if config["task"] != "text2image" or "matcher" not in state["models"]:
        parser.error(f"{args.run} is not a text2image run with a matcher (--pretrain-text-steps > 0)")
    settings = {"dim": config["text_dim"]} if config["text_encoder"] == "byte" else {}
    encoder = build_text_encoder(config["text_encoder"], **settings)
    dim = max(64, int(encoder.dim))
    old = ImageTextMatcher(encoder, config["crop_size"], config["output_nc"], dim=dim,
                           ndf=config.get("matcher_ndf") or config["ndf"])
    old.load_state_dict(state["models"]["matcher"])
    new = ImageTextMatcher(old.text_encoder, config["crop_size"], config["output_nc"], dim=dim, ndf=args.ndf)
    new.steps.copy_(old.steps)

    data = args.data / "train" if (args.data / "train").is_dir() else args.data
    train_images, train_captions = load_split(data, config["crop_size"])
    val = load_split(args.data / "val", config["crop_size"]) if (args.data / "val").is_dir() else None
    report: dict[str, dict[str, float]] = {}
    for name, matcher in (("before", old), ("after", None)):
        if matcher is None:
            torch.manual_seed(args.seed)
            fit_image_side(new, train_images, train_captions, steps=args.steps,
                           batch_size=min(args.batch_size, len(train_images)), lr=args.lr, seed=args.seed)
            matcher = new
        if val is not None:
            report[name] = {"val_retrieval": retrieval_accuracy(matcher, *val)}
            if args.shapes:
                report[name]["val_colour_variants"] = colour_variant_accuracy(matcher, *val)
    print(json.dumps(report, indent=2))

    # The new matcher is frozen in the continued run: its optimiser starts afresh.
    # Same parameter list as the run builds it (a trainable text encoder included), or resume fails.
    trainable_text = bool(getattr(encoder, "trainable", True))
    optimizer = torch.optim.Adam([p for name, p in new.named_parameters()
                                  if trainable_text or not name.startswith("text_encoder.")],
                                 lr=5 * config["lr"], betas=(0.9, 0.999))
    state["models"]["matcher"] = new.state_dict()
    state["optimizers"]["match"] = optimizer.state_dict()
    state["config"] = {**config, "matcher_ndf": args.ndf, "out": str(args.out)}
    atomic_save(state, args.out / "checkpoints" / "latest.pt")
    print(f"wrote {args.out / 'checkpoints' / 'latest.pt'}; continue with: translate train --resume {args.out}")


if __name__ == "__main__":
    main()

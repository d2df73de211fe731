"""Conditioning accuracy of a text2image model on the shapes data set, on prompts unseen in training.

Prompts are drawn like the data set's captions (balanced attributes, every phrasing), and any
prompt whose normalised text appears among the training captions is drawn again, so the N
prompts are held out. One image per prompt (seeded noise); each image's colour (dominant hue),
position (centroid) and size (area) are measured from its pixels
(`translate.evaluation.shapes.measure_shape`) and compared with the prompt. Random guessing
scores 1/8 on colour, 1/5 on position, 1/2 on size.

    model = load_text2image_model("runs/shapes")            # or a checkpoint: runs/shapes/checkpoints/epoch_0100.pt
    report, images = score_text2image(model, "data/shapes", n=200, seed=1)
    report["color"], report["position"], report["size"]      # shares in [0, 1]
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from translate.core.errors import InvalidValueError
from translate.evaluation.shapes import COLORS, POSITIONS, SHAPES, SIZES, conditioning_accuracy, make_caption
from translate.formats.weights import read_training_checkpoint
from translate.models.conditioned import TextToImageGenerator
from translate.text import normalize_text
from translate.text.encoders import ByteTextEncoder
from translate.text.model import Text2ImageModel, find_text_model, load_text2image

__all__ = ["held_out_prompts", "load_text2image_model", "score_text2image", "training_captions"]

# Prompts generated per call: bounds the memory of one batch of images.
_CHUNK = 50


def training_captions(data: str | os.PathLike[str]) -> set[str]:
    """The normalised captions of DATA/train/captions.jsonl (empty when there is none)."""
    seen: set[str] = set()
    path = Path(data) / "train" / "captions.jsonl"
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                seen.add(normalize_text(json.loads(line)["text"]))
    return seen


def held_out_prompts(n: int, seen: set[str], seed: int) -> list[str]:
    """`n` different shapes prompts whose normalised text is not in `seen`.

    Raises:
        ValueError: fewer than `n` such prompts turned up in 200 x n draws.
    """
    rng = np.random.default_rng(seed)
    prompts: list[str] = []
    chosen: set[str] = set()
    attempts = 0
    while len(prompts) < n:
        attempts += 1
        if attempts > 200 * n:
            raise ValueError(f"could not draw {n} prompts unseen in training ({len(prompts)} found); ask for "
                             "fewer prompts or make a data set with fewer captions")
        attrs = {"shape": str(rng.choice(SHAPES)), "color": str(rng.choice(list(COLORS))),
                 "size": str(rng.choice(SIZES)), "position": str(rng.choice(POSITIONS))}
        text = make_caption(attrs, rng)
        key = normalize_text(text)
        if key not in seen and key not in chosen:
            chosen.add(key)
            prompts.append(text)
    return prompts


def _from_checkpoint(path: Path) -> Text2ImageModel:
    """The generator and byte encoder of a text2image training checkpoint (the moving average of
    the generator when the run keeps one, as the run's weights folder does)."""
    state = read_training_checkpoint(path)
    config = state["config"]
    if config.get("task") != "text2image" or config.get("text_encoder") != "byte":
        raise ValueError(f"{path} is a {config.get('task')} / {config.get('text_encoder')} checkpoint; scoring a "
                         "checkpoint reads text2image runs with the byte encoder (score other runs' weights folders)")
    encoder = ByteTextEncoder(dim=config["text_dim"])
    models = state["models"]
    encoder_state = models.get("text") or {k[len("text_encoder."):]: v for k, v in models["matcher"].items()
                                           if k.startswith("text_encoder.")}
    encoder.load_state_dict(encoder_state)
    generator = TextToImageGenerator(config["noise_dim"], encoder.dim, config["ngf"], config["crop_size"],
                                     config["output_nc"])
    if "g_ema" in models:
        generator.load_state_dict({k[len("model."):]: v for k, v in models["g_ema"].items() if k.startswith("model.")})
    else:
        generator.load_state_dict(models["g"])
    return Text2ImageModel(generator.eval(), encoder.eval(), {"kind": "text2image"})


def load_text2image_model(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> Text2ImageModel:
    """A text2image model from a weights folder, a run directory or a name, or from one of a
    run's training checkpoint files (`.pt`; a run without a weights folder yet: its latest)."""
    path = Path(path)
    latest = path / "checkpoints" / "latest.pt"
    if path.suffix == ".pt" and path.is_file():
        return _from_checkpoint(path).to(device)
    if path.is_dir() and find_text_model(path) is None and latest.is_file():
        return _from_checkpoint(latest).to(device)
    return load_text2image(path, device=device)


def score_text2image(model: Text2ImageModel, data: str | os.PathLike[str], n: int = 200,
                     seed: int = 1) -> tuple[dict[str, Any], Tensor]:
    """Score `model` on `n` prompts unseen in DATA/train's captions (see the module doc).

    Returns: the report ({"prompts", "training_captions", "color", "position", "size", ...
    from `conditioning_accuracy`, "examples": the first 5 prompts}) and the images
    `(n, C, S, S)` in [-1, 1], prompt order.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidValueError("n", n, "a positive number of prompts")
    seen = training_captions(data)
    prompts = held_out_prompts(n, seen, seed)
    images = torch.cat([model.generate(prompts[i:i + _CHUNK], seed=seed + i).cpu()
                        for i in range(0, len(prompts), _CHUNK)])
    report = {"prompts": len(prompts), "training_captions": len(seen), "seed": seed,
              **conditioning_accuracy(images, prompts), "examples": prompts[:5]}
    return report, images

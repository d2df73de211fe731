"""Conditioning accuracy of a text2image model on the shapes data set, on held-out prompts.

Usage:
    python scripts/eval_shapes.py --model runs/shapes_t2i --data /tmp/shapes [--n 200] [--seed 1] \
        [--json out.json] [--grid grid.png]
    python scripts/eval_shapes.py --model runs/shapes_t2i/checkpoints/latest.pt --data /tmp/shapes  # mid-run

`--model` is a text2image weights folder, a run directory, or one of the run's checkpoints (a
byte-encoder run; the generator and encoder are rebuilt from the checkpoint's config).

Prompts are drawn like the data set's captions (balanced attributes, every phrasing), and any
prompt whose normalised text appears among the training captions is drawn again: the N prompts
are unseen in training. One image per prompt (seeded noise); each image's colour (dominant hue),
position (centroid) and size (area) are measured from its pixels
(`translate.evaluation.shapes.measure_shape`) and compared with the prompt. A prompt with random
guessing scores 1/8 on colour, 1/5 on position, 1/2 on size.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from torchvision.utils import save_image

from translate.evaluation.shapes import COLORS, POSITIONS, SHAPES, SIZES, conditioning_accuracy, make_caption
from translate.models.conditioned import TextToImageGenerator
from translate.text import normalize_text
from translate.text.encoders import ByteTextEncoder
from translate.text.model import Text2ImageModel, load_text2image
from translate.training import read_checkpoint


def training_captions(data: Path) -> set[str]:
    seen: set[str] = set()
    path = data / "train" / "captions.jsonl"
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.strip():
                seen.add(normalize_text(json.loads(line)["text"]))
    return seen


def held_out_prompts(n: int, seen: set[str], seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    prompts: list[str] = []
    chosen: set[str] = set()
    attempts = 0
    while len(prompts) < n:
        attempts += 1
        if attempts > 200 * n:
            raise ValueError(f"could not draw {n} prompts unseen in training ({len(prompts)} found); "
                             "lower --n or make a data set with fewer captions")
        attrs = {"shape": str(rng.choice(SHAPES)), "color": str(rng.choice(list(COLORS))),
                 "size": str(rng.choice(SIZES)), "position": str(rng.choice(POSITIONS))}
        text = make_caption(attrs, rng)
        key = normalize_text(text)
        if key not in seen and key not in chosen:
            chosen.add(key)
            prompts.append(text)
    return prompts


def load_model(path: str) -> Text2ImageModel:
    """A text2image model from a weights folder / run directory, or from a training checkpoint."""
    if not path.endswith(".pt"):
        return load_text2image(path)
    state = read_checkpoint(path)
    config = state["config"]
    if config["task"] != "text2image" or config["text_encoder"] != "byte":
        raise ValueError(f"{path} is a {config['task']} / {config['text_encoder']} checkpoint; this reads "
                         "text2image runs with the byte encoder")
    encoder = ByteTextEncoder(dim=config["text_dim"])
    models = state["models"]
    encoder_state = models.get("text") or {k[len("text_encoder."):]: v for k, v in models["matcher"].items()
                                           if k.startswith("text_encoder.")}
    encoder.load_state_dict(encoder_state)
    generator = TextToImageGenerator(config["noise_dim"], encoder.dim, config["ngf"], config["crop_size"],
                                     config["output_nc"])
    if "g_ema" in models:  # --ema-decay runs save (and are scored on) the averaged generator
        generator.load_state_dict({k[len("model."):]: v for k, v in models["g_ema"].items() if k.startswith("model.")})
    else:
        generator.load_state_dict(models["g"])
    return Text2ImageModel(generator.eval(), encoder.eval(), {"kind": "text2image"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True, type=Path, help="the shapes data set (its train captions are excluded)")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json")
    parser.add_argument("--grid", help="save the first 32 images as a grid")
    args = parser.parse_args()

    seen = training_captions(args.data)
    prompts = held_out_prompts(args.n, seen, args.seed)
    model = load_model(args.model)
    images = torch.cat([model.generate(prompts[i:i + 50], seed=args.seed + i) for i in range(0, len(prompts), 50)])
    scores = conditioning_accuracy(images, prompts)
    result = {"model": args.model, "prompts": len(prompts), "training_captions": len(seen), **scores,
              "examples": prompts[:5]}
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if args.grid:
        save_image((images[:32] + 1) / 2, args.grid, nrow=8)


if __name__ == "__main__":
    main()

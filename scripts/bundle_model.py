"""Turn a training checkpoint into a bundled weights folder (float16 by default) and measure what
the conversion costs: PSNR of the float16 model's outputs against the float32 model's.

Usage:
    python scripts/bundle_model.py --checkpoint runs/maps_resnet9_ngf32/checkpoints/epoch_0005.pt \
        --out weights/maps_aerial2map --data ../shared/datasets/maps --phase val --n 20
    python scripts/bundle_model.py --checkpoint runs/shapes_t2i --out weights/shapes_text2image  # text model
    python scripts/bundle_model.py --checkpoint runs/h2z/weights/AtoB --out weights/horse2zebra_projected \
        --images ../shared/datasets/horse2zebra/testA --n 20   # a weights folder (e.g. a run's moving average)

A text model (a text2image / textcycle weights folder or the run holding one) is stored in
float16 the same way; its check compares generated images (text2image, fixed noise and prompts).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from translate.core.files import sha256_file
from translate.core.images import pil_to_tensor
from translate.core.torch_files import torch_load_safely
from translate.data import PairedDataset, PreprocessConfig, eval_transform
from translate.data.images import list_images, load_image
from translate.formats.weights import load_with_config, save_weights
from translate.models import config_from_dict
from translate.text.model import find_text_model, load_text_model, save_text_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--direction", default=None)
    parser.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    parser.add_argument("--data", help="paired data for the float16-vs-float32 PSNR check")
    parser.add_argument("--phase", default="val")
    parser.add_argument("--images", help="a folder of inputs for the check (unpaired data), at their own size")
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--input-resize", type=int, default=None,
                        help="the shorter side convert scales inputs to by default (a model trained on small crops)")
    args = parser.parse_args()

    if find_text_model(args.checkpoint) is not None:
        bundle_text_model(args)
        return
    network, config = load_with_config(args.checkpoint, direction=args.direction)
    checkpoint = Path(args.checkpoint)
    if checkpoint.is_dir():  # a weights folder: keep what it records of its origin
        source = {**(config.get("source") or {}), "weights_folder": checkpoint.name,
                  "sha256": sha256_file(checkpoint / "model.safetensors")}
    else:
        state = torch_load_safely(checkpoint, "a training checkpoint file")
        source = {"checkpoint": checkpoint.name, "sha256": sha256_file(checkpoint),
                  "step": int(state["step"]), "epoch": int(state["epoch"])}
    out = save_weights(network, args.out, config_from_dict("generator", config["architecture"]),
                       task=config.get("task"), direction=config.get("direction"), domains=config.get("domains"),
                       source=source, dtype=getattr(torch, args.dtype), input_resize=args.input_resize)
    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    print(f"wrote {out} ({size / 1e6:.2f} MB, {args.dtype}), from {source}")
    if args.images:
        check_on_images(network, out, Path(args.images), args.n, args.dtype)
    if args.data:
        bundled, _ = load_with_config(out)
        preprocess = PreprocessConfig(preprocess="resize_and_crop", load_size=286, crop_size=284, flip=False)
        dataset = PairedDataset(args.data, phase=args.phase, preprocess=preprocess)
        worst = math.inf
        for index in range(min(args.n, len(dataset))):
            x = eval_transform(dataset[index]["a"][None], preprocess)
            with torch.inference_mode():
                reference, converted = network(x), bundled(x.to(next(bundled.parameters()).dtype)).float()
            mse = ((reference - converted) ** 2).mean().item() / 4  # on [0, 1]
            worst = min(worst, 10 * math.log10(1 / max(mse, 1e-20)))
        print(f"{args.dtype} vs float32 outputs on {min(args.n, len(dataset))} {args.phase} images: "
              f"worst PSNR {worst:.1f} dB")


def check_on_images(network: torch.nn.Module, out: Path, folder: Path, n: int, dtype: str) -> None:
    """Worst PSNR of the bundled model's outputs against the float32 network's, on the first `n`
    images of `folder` at their own size."""
    bundled, _ = load_with_config(out)
    worst = math.inf
    paths = list_images(folder)[:n]
    for path in paths:
        x = pil_to_tensor(load_image(path))
        with torch.inference_mode():
            reference, converted = network(x), bundled(x.to(next(bundled.parameters()).dtype)).float()
        mse = ((reference - converted) ** 2).mean().item() / 4  # on [0, 1]
        worst = min(worst, 10 * math.log10(1 / max(mse, 1e-20)))
    print(f"{dtype} vs float32 outputs on {len(paths)} images of {folder}: worst PSNR {worst:.1f} dB")


def bundle_text_model(args: argparse.Namespace) -> None:
    model = load_text_model(args.checkpoint)
    config = model.config
    source = {**config.get("source", {}), "run": str(args.checkpoint)}
    out = save_text_model(model.generator, model.text_encoder, args.out, kind=config["kind"],
                          architecture=config["architecture"], text_encoder_config=config["text_encoder"],
                          domains=config.get("domains"), source=source, dtype=getattr(torch, args.dtype))
    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    print(f"wrote {out} ({size / 1e6:.2f} MB, {args.dtype})")
    if config["kind"] == "text2image":
        bundled = load_text_model(out)
        prompts = ["a large red circle on the left", "a small green square at the top", "blue triangle, center"]
        reference = model.generate(prompts, n=4, seed=0)
        converted = bundled.generate(prompts, n=4, seed=0)
        mse = ((reference - converted) ** 2).mean(dim=(1, 2, 3)) / 4
        worst = float((10 * torch.log10(1 / mse.clamp_min(1e-20))).min())
        print(f"{args.dtype} vs float32 on {len(reference)} generated images: worst PSNR {worst:.1f} dB")


if __name__ == "__main__":
    main()

"""L1 of a paired model's outputs to the ground truth, beside the L1 of the untranslated input.

Usage:
    python scripts/eval_paired_l1.py --model runs/maps_pix2pix_128 --data ../shared/datasets/maps \
        --phase val --n 50 --load-size 143 --crop-size 128 [--direction AtoB] [--json out.json]

Each pair is resized to --load-size and center-cropped to --crop-size (the evaluation twin of the
training preprocessing). L1 is the mean absolute difference on [-1, 1] (x 127.5 gives 0..255 levels).
"untranslated input" compares the input itself to the target; "best input-independent image" is
the per-pixel median of the targets (a cheat that sees them): a model scoring near it has learned
the average map but little of each image's structure.
"""

from __future__ import annotations

import argparse
import json

import torch
from torchvision.utils import save_image

from translate import load
from translate.data import PairedDataset, PreprocessConfig, eval_transform


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--phase", default="val")
    parser.add_argument("--n", type=int, default=50, help="first N pairs (sorted by name)")
    parser.add_argument("--load-size", type=int, default=143)
    parser.add_argument("--crop-size", type=int, default=128)
    parser.add_argument("--direction", default="AtoB", choices=["AtoB", "BtoA"])
    parser.add_argument("--json")
    parser.add_argument("--grid", help="also save input | output | ground truth rows of the first --grid-rows pairs")
    parser.add_argument("--grid-rows", type=int, default=4)
    args = parser.parse_args()

    preprocess = PreprocessConfig(preprocess="resize_and_crop", load_size=args.load_size,
                                  crop_size=args.crop_size, flip=False)
    dataset = PairedDataset(args.data, phase=args.phase, preprocess=preprocess)
    model = load(args.model)
    n = min(args.n, len(dataset))
    l1_model, l1_input = [], []
    rows: list[torch.Tensor] = []
    targets: list[torch.Tensor] = []
    for index in range(n):
        item = dataset[index]
        a = eval_transform(item["a"][None], preprocess)
        b = eval_transform(item["b"][None], preprocess)
        source, target = (a, b) if args.direction == "AtoB" else (b, a)
        with torch.inference_mode():
            fake = model(source)
        l1_model.append((fake - target).abs().mean().item())
        l1_input.append((source - target).abs().mean().item())
        targets.append(target)
        if len(rows) < 3 * args.grid_rows:
            rows += [source[0], fake[0], target[0]]
    # A model that ignores its input can at best output one fixed image: the per-pixel median of the
    # targets minimises L1 among those. Scoring near it means the model learned no structure.
    targets_all = torch.cat(targets)
    l1_fixed = (targets_all - targets_all.median(dim=0, keepdim=True).values).abs().mean().item()
    result = {
        "model": args.model, "data": args.data, "phase": args.phase, "images": n,
        "size": args.crop_size, "direction": args.direction,
        "l1_model": sum(l1_model) / n, "l1_untranslated_input": sum(l1_input) / n,
        "l1_best_fixed_image": l1_fixed,
    }
    print(f"{n} {args.phase} pairs at {args.crop_size}px, {args.direction}: "
          f"L1 model {result['l1_model']:.4f} ({result['l1_model'] * 127.5:.1f} levels), "
          f"untranslated input {result['l1_untranslated_input']:.4f} "
          f"({result['l1_untranslated_input'] * 127.5:.1f} levels), best input-independent image "
          f"{l1_fixed:.4f} ({l1_fixed * 127.5:.1f} levels)")
    if args.grid:
        save_image(torch.stack(rows), args.grid, nrow=3, normalize=True, value_range=(-1, 1), padding=2)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()

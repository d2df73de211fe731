"""Write the procedural captioned shapes data set (one colored shape on black per image).

Usage:
    python scripts/make_shapes.py --out data/shapes --n 5000 --size 64 --seed 0 [--val-fraction 0.1]

Writes out/train/*.png + out/train/captions.jsonl, the same under out/val/, and out/attributes.jsonl
with the ground-truth shape, color, size and position of every file. Colors (RGB), positions and
sizes are documented in translate/evaluation/shapes.py, which also measures them back from pixels.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from translate.evaluation.shapes import make_shapes_dataset


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output folder (must not already hold a data set)")
    parser.add_argument("--n", type=int, required=True, help="number of images, train + val")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels (>= 32)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--captions-per-image", type=int, default=3)
    args = parser.parse_args(argv)
    try:
        counts = make_shapes_dataset(
            args.out, args.n, args.size, args.seed, args.val_fraction, captions_per_image=args.captions_per_image
        )
    except (ValueError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {counts['train']} train and {counts['val']} val images to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What each `convert` mode costs on real images: end-to-end images/s and PSNR against float32.

Usage:
    python scripts/eval_convert_precision.py --model maps_aerial2map --images DIR [--n 40] \
        [--modes torch-fp32 onnxruntime-fp32 onnxruntime-int8] [--maps-pairs] [--json out.json]

Each mode converts the same N images with `translate.deploy.convert.convert_folder` (a fresh output
folder, outputs as PNG, which is lossless); the first mode is the reference. PSNR compares each
mode's output files with the reference's, on the [0, 1] scale: mean over the images, and the
worst image. With --maps-pairs, DIR holds A|B side-by-side pairs (the pix2pix layout) and the
left halves are converted. Modes run in the order given, one after another: run the script on
an otherwise idle machine, as the ratios are not interleaved.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from translate.data.images import list_images
from translate.deploy.convert import convert_folder


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)) / 255.0 ** 2
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def prepare(images: Path, n: int, pairs: bool, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for path in list_images(images)[:n]:
        image = Image.open(path).convert("RGB")
        if pairs:
            image = image.crop((0, 0, image.width // 2, image.height))
        image.save(out / f"{path.stem}.png")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--images", required=True, type=Path)
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--modes", nargs="+", default=["torch-fp32", "onnxruntime-fp32", "onnxruntime-int8"])
    parser.add_argument("--maps-pairs", action="store_true", help="DIR holds A|B pairs: convert the left halves")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        inputs = prepare(args.images, args.n, args.maps_pairs, work / "in")
        rows = []
        for mode in args.modes:
            backend, precision = mode.rsplit("-", 1)
            started = time.perf_counter()
            summary = convert_folder(inputs, work / mode, args.model, backend=backend, precision=precision,
                                     device="cpu", batch_size=args.batch_size, overwrite=True)
            rows.append({"mode": mode, "backend": summary.backend, "images": len(summary.converted),
                         "images_per_s": summary.images_per_s, "setup_seconds": summary.setup_seconds,
                         "total_seconds": time.perf_counter() - started})
        reference = args.modes[0]
        for row in rows:
            scores = [psnr(np.asarray(Image.open(work / reference / p.name)), np.asarray(Image.open(p)))
                      for p in sorted((work / row["mode"]).glob("*.png"))]
            row["psnr_mean_db"] = float(np.mean(scores))
            row["psnr_worst_db"] = float(np.min(scores))
            row["speed_vs_reference"] = row["images_per_s"] / rows[0]["images_per_s"]

    print(f"{args.n} images from {args.images}, model {args.model}; PSNR against {reference} outputs\n")
    print("| mode | backend | images/s | vs " + reference + " | PSNR mean dB | PSNR worst dB | setup s |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['mode']} | {row['backend']} | {row['images_per_s']:.2f} | {row['speed_vs_reference']:.2f}x "
              f"| {row['psnr_mean_db']:.1f} | {row['psnr_worst_db']:.1f} | {row['setup_seconds']:.1f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()

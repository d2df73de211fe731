"""Cost of text2image's matching-aware gradient penalty: one GAN step with and without it, interleaved.

Usage:
    python scripts/bench_ma_gp.py --data /tmp/shapes [--repeats 8] [--threads 2]

The shapes recipe of docs/text.md (32 px, batch 32, ngf/ndf 32, byte encoder dim 64); the matcher
pretraining is cut to one step so that the timed steps are G/D steps. Prints the median seconds per
step of each and their ratio.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from translate.data.captions import CaptionedDataset
from translate.training import make_config
from translate.training.tasks.text2image import Text2ImageStep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path, help="a shapes data set (scripts/make_shapes.py)")
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dataset = CaptionedDataset(args.data / "train", size=32, seed=0)
    items = [dataset[i] for i in range(32)]
    real, texts = torch.stack([item["image"] for item in items]), [item["text"] for item in items]
    settings = {"data": str(args.data), "out": "unused", "crop_size": 32, "load_size": 32, "ngf": 32, "ndf": 32,
                "n_layers_D": 2, "text_dim": 64, "batch_size": 32, "device": "cpu", "pretrain_text_steps": 1}
    steps = {name: Text2ImageStep(make_config("text2image", overrides={**settings, "lambda_ma_gp": weight}),
                                  torch.device("cpu"))
             for name, weight in (("without", 0.0), ("with", 2.0))}
    for step in steps.values():
        step.train_step(real, texts)  # the matcher step
        step.train_step(real, texts)  # warm-up
    seconds: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step.train_step(real, texts)
            seconds[name].append(time.perf_counter() - start)
    median = {name: sorted(values)[len(values) // 2] for name, values in seconds.items()}
    print(f"median s/step without MA-GP {median['without']:.3f}, with {median['with']:.3f}, "
          f"ratio {median['with'] / median['without']:.2f}")


if __name__ == "__main__":
    main()

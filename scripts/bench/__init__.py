"""Benchmarks of the product, run from the repository root (docs/benchmarks.md shows their figures
and the commands that gave them):

    python -m scripts.bench.train --size 128 --steps 5 --amp     # training steps side by side
    python -m scripts.bench.loop --data DIR                      # the training loop's speed levers
    python -m scripts.bench.infer --quick                        # inference backends and `convert`
    python -m scripts.bench.pipeline                             # `convert`'s decode / encode ceiling
    python -m scripts.bench.serve --json serve.json              # load test of `translate serve`
    python -m scripts.bench.gpu_check                            # a GPU: training levers, DDP, inference

common.py holds what they share: timing, generated inputs, random-init models, the machine's
description and JSON result files.
"""

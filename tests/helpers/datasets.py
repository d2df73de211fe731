"""Small generated image data sets for the tests, in the layouts `translate train` reads.

The images are a few soft colour blobs on a coloured background; the translation to learn is a
fixed colour mapping (`recolour`), so a short CPU run can show that a model learnt it. The tests
make their own data here rather than from the demo, so that the demo may change without them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def blob_image(rng: np.random.Generator, size: int) -> np.ndarray:
    """A `(size, size, 3)` uint8 image of 2-5 soft coloured blobs on a coloured background."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    image = np.ones((size, size, 3), np.float32) * rng.uniform(0, 1, 3)
    for _ in range(int(rng.integers(2, 6))):
        cy, cx = rng.uniform(0, 1, 2)
        radius = rng.uniform(0.08, 0.3)
        weight = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2))[..., None]
        image = image * (1 - weight) + weight * rng.uniform(0, 1, 3)
    return (image.clip(0, 1) * 255).round().astype(np.uint8)


def recolour(image: np.ndarray) -> np.ndarray:
    """The ground-truth translation A -> B: RGB channels rotated by one, then the new red inverted."""
    out = np.roll(image, 1, axis=2).copy()
    out[..., 0] = 255 - out[..., 0]
    return out


def write_paired(root: Path, n_train: int = 4, n_test: int = 5, size: int = 40, seed: int = 0) -> Path:
    """`root/train/*.png` and `root/test/*.png`: each file an A|B pair side by side, `(size, 2 * size)`,
    B = recolour(A). Returns `root`."""
    rng = np.random.default_rng(seed)
    for phase, count in (("train", n_train), ("test", n_test)):
        (root / phase).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            a = blob_image(rng, size)
            Image.fromarray(np.concatenate([a, recolour(a)], axis=1)).save(root / phase / f"{i:04d}.png")
    return root


def write_unpaired(root: Path, n: int = 4, n_test: int = 2, size: int = 40, seed: int = 0) -> Path:
    """`root/trainA`, `root/trainB` (`n` images each) and `root/testA`, `root/testB` (`n_test` each),
    `size` px squares; B images are recoloured blobs drawn apart from A's (unaligned). Returns `root`."""
    rng = np.random.default_rng(seed)
    for phase, count in (("train", n), ("test", n_test)):
        (root / f"{phase}A").mkdir(parents=True, exist_ok=True)
        (root / f"{phase}B").mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.fromarray(blob_image(rng, size)).save(root / f"{phase}A" / f"a{i:04d}.png")
            Image.fromarray(recolour(blob_image(rng, size))).save(root / f"{phase}B" / f"b{i:04d}.png")
    return root


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file under `root`, by relative path: what a read-only fixture compares."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}

"""A disk cache of the Inception features of real images, keyed by the image file's content.

Scoring several models or checkpoints against one test set recomputes the real side's features
each time; on a CPU that is half the cost of `translate eval`. The cache keeps one `.npy` of
float32 features per image under `ROOT/<weights id>-<device type>-v1/<sha256 of the file>.npy`, so a renamed or
re-written file with the same bytes hits, and an edited one misses. `.npy` is read with
`allow_pickle=False`: a cache file cannot run code.

Features computed alone or in a different batch can differ from a fresh batch's in the last float32
digits (about 1e-6 relative); FID moves by far less than its own sampling noise.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from translate.core.files import atomic_write, sha256_file

logger = logging.getLogger(__name__)

__all__ = ["FeatureCache"]

FORMAT = "v1"


class FeatureCache:
    """`get(path)` -> `(D,)` features or None; `put(path, features)` stores them atomically.

    Args:
        root: the cache folder (e.g. `translate.deploy.backends.cache_dir() / "inception_features"`).
        weights_id: identifies the network that made the features (its weights' SHA-256).
        device: where the network runs (its type is part of the key).
    """

    def __init__(self, root: str | os.PathLike[str], weights_id: str, device: torch.device | str = "cpu") -> None:
        if not isinstance(weights_id, str) or not re.fullmatch(r"[0-9a-f]{16,64}", weights_id):
            raise ValueError(f"weights_id must be the weights' SHA-256 (16-64 lowercase hex digits), got {weights_id!r}")
        # The device is part of the key: GPU convolutions (TF32) round differently from the CPU's,
        # and real features from one beside generated features from the other would bias FID.
        # FORMAT changes when the decoding or the network's preprocessing does.
        self.folder = Path(root) / f"{weights_id[:32]}-{torch.device(device).type}-{FORMAT}"
        self.hits = 0
        self.misses = 0
        # A miss hashes the file in get() and needs the same name in put(): hash it once.
        self._names: dict[tuple[Path, int, int], str] = {}

    def _file(self, path: Path) -> Path:
        stat = path.stat()
        key = (path.resolve(), stat.st_size, stat.st_mtime_ns)
        if key not in self._names:
            self._names[key] = sha256_file(path)
        return self.folder / f"{self._names[key]}.npy"

    def get(self, path: str | os.PathLike[str]) -> Tensor | None:
        file = self._file(Path(path))
        try:
            features = torch.from_numpy(np.load(file, allow_pickle=False))
        except (OSError, ValueError, EOFError):  # absent, or a damaged entry, which is then recomputed
            features = None
        if features is None or features.ndim != 1:
            self.misses += 1
            return None
        self.hits += 1
        return features

    def put(self, path: str | os.PathLike[str], features: Tensor) -> None:
        file = self._file(Path(path))
        array = features.detach().float().cpu().numpy()

        def write(temporary: Path) -> None:
            with temporary.open("wb") as out:  # a file object: np.save would add ".npy" to a path
                np.save(out, array, allow_pickle=False)

        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            # Write then rename: two evaluations sharing the cache never see half a file.
            atomic_write(file, write)
        except OSError as error:  # a read-only or full cache must not stop an evaluation
            logger.warning("cannot write the feature cache in %s (%s); going on without it", self.folder, error)

"""Run records: losses as JSON lines and TensorBoard scalars, and sample grids as PNG files."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

logger = logging.getLogger(__name__)


class RunLogger:
    """Writes `log.jsonl`, `tensorboard/` and `samples/` under a run directory (rank 0 only)."""

    def __init__(self, run_dir: Path, enabled: bool = True, tensorboard: bool = True) -> None:
        self.run_dir = run_dir
        self.enabled = enabled
        self.writer = None
        if not enabled:
            return
        (run_dir / "samples").mkdir(parents=True, exist_ok=True)
        self.jsonl = (run_dir / "log.jsonl").open("a", buffering=1)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is a dependency, but a broken install must not stop training
                logger.warning("tensorboard is not importable; losses go to log.jsonl only")
            else:
                self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))

    def event(self, kind: str, **fields: Any) -> None:
        if self.enabled:
            self.jsonl.write(json.dumps({"event": kind, "time": time.time(), **fields}) + "\n")

    def losses(self, step: int, epoch: int, losses: dict[str, float], **extra: Any) -> None:
        if not self.enabled:
            return
        self.event("losses", step=step, epoch=epoch, **losses, **extra)
        if self.writer is not None:
            for name, value in {**losses, **extra}.items():
                if isinstance(value, (int, float)):
                    self.writer.add_scalar(f"train/{name}", value, step)

    def evaluation(self, step: int, epoch: int, scores: dict[str, float]) -> None:
        """An `eval` event (scores keyed e.g. `AtoB/fid`) and TensorBoard scalars under `eval/`."""
        if not self.enabled:
            return
        self.event("eval", step=step, epoch=epoch, **scores)
        if self.writer is not None:
            for name, value in scores.items():
                self.writer.add_scalar(f"eval/{name}", value, step)

    def samples(self, step: int, rows: list[Tensor], max_images: int = 4) -> Path | None:
        """Save a grid with one row per visual (e.g. real_a, fake_b, rec_a), images in [-1, 1]."""
        if not self.enabled or not rows:
            return None
        # Imported here: torchvision takes ~1 s to import, which every torchrun process would pay
        # at start-up while only rank 0 writes samples.
        from torchvision.utils import make_grid, save_image

        n = min(max_images, rows[0].shape[0])
        # Rows may differ in channel count (e.g. 1-channel input, 3-channel output): show all as RGB.
        tiles = [row[:n].detach().float().cpu().expand(-1, 3, -1, -1) if row.shape[1] == 1
                 else row[:n, :3].detach().float().cpu() for row in rows]
        grid = make_grid(torch.cat(_interleave(tiles, n)),
                         nrow=len(rows), normalize=True, value_range=(-1, 1), padding=2)
        path = self.run_dir / "samples" / f"step_{step:07d}.png"
        save_image(grid, path)
        if self.writer is not None:
            self.writer.add_image("samples", grid, step)
        return path

    def close(self) -> None:
        if self.enabled:
            self.jsonl.close()
            if self.writer is not None:
                self.writer.close()


def _interleave(rows: list[Tensor], n: int) -> list[Tensor]:
    """Order tiles sample by sample, so each grid row shows one sample's real/fake/rec."""
    return [rows[r][i:i + 1] for i in range(n) for r in range(len(rows))]

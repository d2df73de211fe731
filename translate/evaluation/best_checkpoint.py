"""A run's kept checkpoints, and the best of their evaluation reports by one metric.

`translate eval --all-checkpoints` scores each `RUN/checkpoints/epoch_*.pt` (`run_checkpoints`)
and reports the best (`best_report`), lowest or highest first as the metric wants
(`LOWER_IS_BETTER`).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["LOWER_IS_BETTER", "best_report", "run_checkpoints"]

LOWER_IS_BETTER = {"fid": True, "kid_mean": True, "l1": True, "rmse": True, "psnr": False, "ssim": False,
                   "accuracy": False, "lpips": True}


def run_checkpoints(run: str | os.PathLike[str]) -> list[Path]:
    """A run's kept checkpoints (`RUN/checkpoints/epoch_*.pt`), in epoch order."""
    folder = Path(run) / "checkpoints"
    checkpoints = sorted(folder.glob("epoch_*.pt"))
    if not checkpoints:
        raise FileNotFoundError(f"no epoch checkpoints under {str(folder)!r}: expected a run directory written by "
                                "`translate train` (it keeps one every --save-epoch-freq epochs)")
    return checkpoints


def best_report(reports: list[dict[str, object]], metric: str) -> dict[str, object]:
    """The report with the best `metric` (lowest FID / KID / L1 / RMSE / LPIPS, highest PSNR / SSIM / accuracy)."""
    if metric not in LOWER_IS_BETTER:
        raise ValueError(f"metric must be one of {', '.join(LOWER_IS_BETTER)}, got {metric!r}")
    scored = [r for r in reports if isinstance(r.get(metric), float)]
    if not scored:
        raise ValueError(f"no report has {metric!r}; pick a metric that was computed (e.g. l1 when FID was not scored)")
    sign = 1.0 if LOWER_IS_BETTER[metric] else -1.0
    return min(scored, key=lambda r: sign * float(r[metric]))  # type: ignore[arg-type]

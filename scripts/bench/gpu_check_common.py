"""What every gpu_check step shares: the run's sizes (Scale, SMOKE), the step Context, the alarm's
exception, and small helpers (child processes, number formatting)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import REPO, write_json

logger = logging.getLogger("gpu_check")

STEPS = ("env", "peak", "gradients", "inference", "convert", "ddp", "train-cyclegan", "train-pix2pix", "train-cut", "report")


@dataclass(frozen=True)
class Scale:
    """Sizes of one run: the GPU defaults, or SMOKE's tiny CPU ones."""

    size: int = 256
    pix2pix_size: int = 256
    ngf: int = 64
    batches: tuple[int, ...] = (1, 4)
    warmup: int = 2
    compile_warmup_max: int = 8
    rounds: int = 2
    steps_per_round: int = 8
    min_compile_s: float = 40.0  # seconds left in the step to start compiling one more variant
    peak_n: int = 8192
    peak_reps: int = 20
    ddp_steps: int = 60
    ddp_batch: int = 1
    ddp_workers: int = 4
    ddp_parallel: bool = False  # the torchrun run beside the single one, not after it (smoke: start-up bound)
    threads: int | None = None  # torch intra-op threads (None: PyTorch's default)
    infer_size: int = 256
    infer_ngf: int = 64
    infer_batches: tuple[int, ...] = (1, 8)
    infer_rounds: int = 5
    infer_round_s: float = 0.25
    convert_images: int = 512
    convert_size: int = 256
    convert_batch: int = 8
    max_seconds: float = 900.0  # start no step after this (every step has its own cap, BUDGETS_S)


SMOKE = Scale(size=32, pix2pix_size=128, ngf=8, batches=(1,), warmup=1, compile_warmup_max=3, rounds=1,
              steps_per_round=2, min_compile_s=2.0, peak_n=256, peak_reps=3, ddp_steps=4, ddp_workers=0,
              ddp_parallel=True, threads=1, infer_size=32, infer_ngf=8, infer_batches=(1, 2), infer_rounds=1, infer_round_s=0.0,
              convert_images=8, convert_size=32, convert_batch=2, max_seconds=150.0)


class StepTimeout(BaseException):
    """Raised by the alarm when a step reaches its budget (not an Exception: no `except Exception` takes it)."""


@dataclass
class Context:
    """What a step gets: the options, its folders and deadline, and the result it fills in."""

    name: str
    args: argparse.Namespace
    scale: Scale
    out: Path
    work: Path
    device: Any
    deadline: float
    result: dict[str, Any] = field(default_factory=dict)
    incomplete: list[str] = field(default_factory=list)
    timed_out: bool = False

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def note_incomplete(self, why: str) -> None:
        logger.warning("%s: %s", self.name, why)
        self.incomplete.append(why)

    def save_partial(self) -> None:
        write_json(self.out / "steps" / f"{self.name}.partial.json", {"status": "running", "result": self.result})


# --- small helpers ------------------------------------------------------------------------------------------


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


@contextlib.contextmanager
def started(command: list[str], log_path: Path, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """`command` running in its own process group, stdout and stderr to `log_path`; on leaving, the
    group is killed if still running (torchrun's workers too; also when the step's alarm fires)."""
    with log_path.open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env,
                                   start_new_session=True)
        try:
            yield process
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def wait_for(process: subprocess.Popen, timeout: float) -> int | None:
    """The exit code, or None when `timeout` seconds pass first."""
    try:
        return process.wait(timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        return None


def child_env(threads: int | None = None) -> dict[str, str]:
    """The environment of child processes: the repository importable without an install."""
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def fmt(value: Any, spec: str = ".2f") -> str:
    if value == math.inf:
        return "inf"
    return format(value, spec) if finite(value) else "-"


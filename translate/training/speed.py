"""The training speed levers: what `TrainConfig`'s speed options resolve to on a device.

    plan = resolve_speed(config, device)          # a SpeedPlan with every lever decided
    plan.apply_backend_flags()                    # TF32 and cudnn.benchmark (CUDA only)
    lr = effective_lr(config)                     # lr scaled for the batch size (lr_scale)

An explicit option always wins; an option left at None / "auto" is decided by `speed`:

- `speed="off"`: everything off (as before these options existed), except TF32 and
  cudnn.benchmark, which default on for CUDA (set `tf32="off"` for the reference's plain fp32).
- `speed="auto"`: the combination measured fastest for the device type, the `AUTO` table below
  (docs/training.md#speed gives the measurements behind each row).

None of the levers changes what is computed, only how: results stay equal (cache_data,
loss_sync) or within float rounding (channels_last, compile, adam, tf32), as the tests check.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from translate.core.errors import InvalidCombinationError
from translate.training.config import TrainConfig, get_task

__all__ = ["AUTO", "SpeedPlan", "check_channels_last", "effective_lr", "reference_batch", "resolve_speed"]

# Per device type, what speed="auto" turns on (docs/training.md#speed has the measurements).
# CPU: on 2 cores no lever measured faster than the noise of the machine (docs/benchmarks.md,
# "Training loop levers on the CPU"), so auto changes nothing there (MPS, unmeasured, likewise).
# CUDA: the levers that cannot change results beyond rounding and remove known costs (Adam's
# per-parameter kernels, DataLoader workers and host copies); channels_last and compile stay off until
# the GPU check (scripts/bench/gpu_check.py) has measured their speed and checked their gradients on a
# GPU (channels_last gives wrong gradients on the CPU: check_channels_last).
AUTO: dict[str, dict[str, Any]] = {
    "cpu": {"channels_last": False, "compile": False, "adam": "default", "cache_data": False},
    "cuda": {"channels_last": False, "compile": False, "adam": "fused", "cache_data": True},
    "mps": {"channels_last": False, "compile": False, "adam": "default", "cache_data": False},
}


@dataclass(frozen=True)
class SpeedPlan:
    """Every lever decided for one run on one device (recorded in the run's log)."""

    channels_last: bool
    compile: bool
    compile_mode: str
    adam: str  # "fused" | "foreach" | "for-loop" | "default" (PyTorch's own choice)
    tf32: bool
    cudnn_benchmark: bool
    cache_data: bool
    loss_sync: str  # "log" | "step"
    lr: float  # the learning rate after lr_scale

    def adam_kwargs(self) -> dict[str, bool]:
        """The keyword of torch.optim.Adam for `adam`."""
        return {"fused": {"fused": True}, "foreach": {"foreach": True},
                "for-loop": {"foreach": False}}.get(self.adam, {})

    def apply_backend_flags(self) -> None:
        """Set TF32 and cudnn.benchmark (process-wide flags; they only matter on CUDA)."""
        torch.backends.cuda.matmul.allow_tf32 = self.tf32
        torch.backends.cudnn.allow_tf32 = self.tf32
        torch.backends.cudnn.benchmark = self.cudnn_benchmark

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def reference_batch(config: TrainConfig) -> int:
    """The batch size the task's reference learning rate was tuned for (its default batch size)."""
    return int(get_task(config.task).defaults.get("batch_size", 1))


def effective_lr(config: TrainConfig) -> float:
    """`config.lr` scaled by `lr_scale` for `batch_size` against the reference batch: linear
    (Goyal et al. 2017) multiplies by batch / reference, sqrt by its square root (Adam's usual rule,
    Krizhevsky 2014; Malladi et al. 2022), none keeps it."""
    ratio = config.batch_size / reference_batch(config)
    if config.lr_scale == "linear":
        return config.lr * ratio
    if config.lr_scale == "sqrt":
        return config.lr * math.sqrt(ratio)
    return config.lr


def _fused_supported(device: torch.device) -> bool:
    # Fused Adam runs on CUDA (and on the CPU since PyTorch 2.4); elsewhere foreach is the fast path.
    return device.type in ("cuda", "cpu")


def check_channels_last(config: TrainConfig, device: torch.device) -> None:
    """Refuse channels_last where it computes wrong gradients: on the CPU, PyTorch (2.14 measured)
    returns wrong input gradients from an instance norm whose output feeds a convolution in
    channels-last layout: relative error ~1 against float64 with one image per batch, up to 2e-2
    with two for some inputs, while the default layout stays within 1e-5 (tests/training/test_speed.py)."""
    if device.type == "cpu" and config.norm == "instance":
        raise InvalidCombinationError(
            'channels_last=True with norm="instance" on the CPU: PyTorch computes wrong gradients for an instance '
            "norm followed by a convolution in channels-last layout there; leave channels_last off on the CPU "
            "(it is a GPU lever; `python -m scripts.bench.gpu_check` checks its gradients on a GPU)", "channels_last", "norm",
            "device")


def resolve_speed(config: TrainConfig, device: torch.device) -> SpeedPlan:
    """The levers of `config` on `device`: explicit values, else speed's table, else off.

    Raises:
        InvalidCombinationError: channels_last where it gives wrong gradients (`check_channels_last`).
    """
    auto = AUTO.get(device.type, AUTO["cpu"]) if config.speed == "auto" else {}

    def pick(name: str, explicit: Any, off: Any) -> Any:
        return explicit if explicit is not None else auto.get(name, off)

    adam = config.adam if config.adam != "auto" else auto.get("adam", "default")
    if adam == "fused" and not _fused_supported(device):
        adam = "foreach"
    cuda = device.type == "cuda"
    channels_last = bool(pick("channels_last", config.channels_last, False))
    if channels_last:
        check_channels_last(config, device)
    return SpeedPlan(
        channels_last=channels_last,
        compile=bool(pick("compile", config.compile, False)),
        compile_mode=config.compile_mode,
        adam=adam,
        tf32=cuda and config.tf32 != "off",
        cudnn_benchmark=cuda and config.cudnn_benchmark != "off",
        cache_data=bool(pick("cache_data", config.cache_data, False)),
        loss_sync=config.loss_sync,
        lr=effective_lr(config),
    )

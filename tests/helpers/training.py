"""The smallest settings that still train each task (8 filters, 32 px crops, the CPU, no DataLoader
workers), as a TrainConfig (`tiny_config`) or as `translate train` flags (`tiny_flags`).

Only the options a task uses are set (`Task.uses`), so the same settings serve every task and the
flags pass the CLI, which offers each task its own options only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from translate.training import TrainConfig, get_task, make_config

TINY: dict[str, Any] = {
    "ngf": 8, "ndf": 8, "workers": 0, "device": "cpu", "log_every": 1, "sample_every": 100,
    "netG": "resnet_6blocks", "load_size": 36, "crop_size": 32, "n_epochs": 1, "n_epochs_decay": 1,
    "num_patches": 32, "netF_nc": 16,  # CUT's PatchNCE heads
    "text_dim": 16, "noise_dim": 8,  # the text tasks' encoder and noise
    "pretrain_text_steps": 0, "lambda_match": 0.0,  # text2image: no matcher unless a test asks for one
}
# The text tasks' projection discriminators are 2 layers deep (the image tasks' basic one is always 3),
# and they train on batches of several prompts.
TASK_TINY: dict[str, dict[str, Any]] = {
    "text2image": {"n_layers_D": 2, "batch_size": 4, "sample_every": 2},
    "textcycle": {"n_layers_D": 2, "batch_size": 2, "sample_every": 2},
}


def tiny_settings(task: str, **overrides: Any) -> dict[str, Any]:
    """TINY and the task's TASK_TINY, cut to the options `task` uses (netG only where the task has that
    generator), then `overrides` (paths become strings)."""
    row = get_task(task)
    values = {name: value for name, value in TINY.items()
              if row.uses(name) and (name != "netG" or value in row.generators)}
    values.update(TASK_TINY.get(task, {}))
    values.update({name: str(value) if isinstance(value, Path) else value for name, value in overrides.items()})
    return values


def tiny_config(task: str, **overrides: Any) -> TrainConfig:
    """`make_config(task)` with the tiny settings and `overrides` (e.g. data=path, out=path, max_steps=2)."""
    return make_config(task, overrides=tiny_settings(task, **overrides))


def tiny_flags(task: str, **overrides: Any) -> list[str]:
    """The tiny settings and `overrides` as `translate train TASK` flags (`--ngf 8 ... --netG resnet_6blocks`)."""
    flags: list[str] = []
    for name, value in tiny_settings(task, **overrides).items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + flag[2:])
        else:
            flags += [flag, str(value)]
    return flags

"""The training tasks: one module per task (its step, data set, checks and weights folders) and the
table of them.

Each task module defines a `TASK` row (translate.training.config.Task; cut defines two rows, CUT
and FastCUT, over one step) and imports only translate.training.tasks.base and lower layers, never
another task. The config, the loop, the periodic evaluation and `translate train` read the rows;
adding a task is one module here plus one entry in `TABLE`.
"""

from __future__ import annotations

import torch

from translate.training.config import Task, TrainConfig, get_task, register_task, task_names
from translate.training.tasks import cut, cyclegan, pix2pix, text2image, textcycle
from translate.training.tasks.base import TaskStep, Wrap

__all__ = ["TABLE", "Task", "TaskStep", "Wrap", "build_step", "get_task", "register_task", "task_names"]

# The built-in tasks, in the order `translate train --help` lists them.
TABLE: tuple[Task, ...] = (cyclegan.TASK, pix2pix.TASK, text2image.TASK, textcycle.TASK, cut.CUT_TASK,
                          cut.FASTCUT_TASK)
for _task in TABLE:
    register_task(_task)


def build_step(config: TrainConfig, device: torch.device, wrap: Wrap | None = None) -> TaskStep:
    """The step of `config.task`: its networks and optimisers on `device`, each network passed
    through `wrap` (DistributedDataParallel under torchrun)."""
    step = get_task(config.task).step(config, device, wrap)
    step.enable_ema()
    return step

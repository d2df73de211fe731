"""Training: the config and the table of tasks (CycleGAN, pix2pix, text2image, textcycle), each
task's step, the loop, checkpoints, logs and evaluation during training.

Importing this package registers the built-in tasks (translate.training.tasks) with the config.
"""

from translate.training.checkpoint import read_checkpoint
from translate.training.config import (
           Task,
           TrainConfig,
           get_task,
           load_yaml_config,
           make_config,
           register_task,
           task_names,
)
from translate.training.loop import NonFiniteLossError, Progress, TrainResult, train
from translate.training.tasks import TABLE

__all__ = ["TABLE", "NonFiniteLossError", "Progress", "Task", "TrainConfig", "TrainResult", "get_task",
           "load_yaml_config", "make_config", "read_checkpoint", "register_task", "task_names", "train"]

"""Training: config, task steps (CycleGAN, pix2pix), the loop, checkpoints."""

from translate.training.checkpoint import read_checkpoint
from translate.training.config import TrainConfig, load_yaml_config, make_config
from translate.training.loop import NonFiniteLossError, Progress, TrainResult, train

__all__ = ["NonFiniteLossError", "Progress", "TrainConfig", "TrainResult", "load_yaml_config",
           "make_config", "read_checkpoint", "train"]

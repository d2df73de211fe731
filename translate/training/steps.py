"""Old home of the task steps, kept for scripts/bench_train.py: the steps now live in
translate.training.tasks (one module per task). Import from there in new code."""

from translate.training.tasks import build_step as build_task
from translate.training.tasks.base import TaskStep, Wrap, amp_dtype, set_requires_grad, unwrap
from translate.training.tasks.cyclegan import CycleGANStep
from translate.training.tasks.pix2pix import Pix2PixStep

__all__ = ["CycleGANStep", "Pix2PixStep", "TaskStep", "Wrap", "amp_dtype", "build_task", "set_requires_grad",
           "unwrap"]

"""The steps of scripts/gpu_check.py, by job: common (sizes, context, helpers), environment (env, peak,
gradients), inference (inference, convert), ddp, training (train-TASK) and report.

environment, inference, ddp and training import torch and translate at their top: scripts/gpu_check.py imports
them inside its import guard only; common and report import neither."""

"""The training loop, top to bottom: data, networks, resume, steps, logs, checkpoints, weights.

Reproducibility: the epoch order comes from (seed, epoch), the unpaired B draw from
(seed, epoch, index), the augmentation of step s from (seed, s, rank), and the remaining
randomness (dropout, pools) from RNG states saved in each checkpoint. So a run stopped and resumed
on the CPU ends with the same weights as one that never stopped.
"""

from __future__ import annotations

import logging
import math
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader

from translate.data import (
    PairedDataset,
    PreprocessConfig,
    ResumableSampler,
    UnpairedDataset,
    augment_batch,
    augment_pair,
    collate_images,
)
from translate.training.checkpoint import atomic_save, make_checkpoint, set_rng_state
from translate.training.config import TrainConfig, save_config
from translate.training.distributed import DistInfo, barrier, cleanup, ddp_wrapper, init_distributed
from translate.training.logs import RunLogger
from translate.training.periodic_eval import PeriodicEvaluator
from translate.training.steps import TaskStep, build_task

logger = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or inf; the run stopped and its last good checkpoint was kept."""


@dataclass
class Progress:
    """What the loop reports after each step (the CLI draws its progress bar from it)."""

    step: int
    total_steps: int
    epoch: int
    total_epochs: int
    losses: dict[str, float] = field(default_factory=dict)


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    epoch: int
    losses: dict[str, float]
    skipped_files: list[str]
    weights: dict[str, Path]
    seconds: float
    evaluations: list[dict[str, Any]] = field(default_factory=list)


def linear_decay(config: TrainConfig) -> Callable[[int], float]:
    """The reference 'linear' policy: constant for n_epochs, then linearly to ~0 over n_epochs_decay."""
    def factor(epoch: int) -> float:
        return 1.0 - max(0, epoch + 1 - config.n_epochs) / float(config.n_epochs_decay + 1)
    return factor


def lr_factor(config: TrainConfig) -> Callable[[int], float]:
    if config.lr_policy == "linear":
        return linear_decay(config)
    if config.lr_policy == "cosine":
        return lambda epoch: 0.5 * (1 + math.cos(math.pi * min(epoch, config.total_epochs) / config.total_epochs))
    return lambda epoch: 1.0


def preprocess_config(config: TrainConfig) -> PreprocessConfig:
    return PreprocessConfig(preprocess=config.preprocess, load_size=config.load_size,
                            crop_size=config.crop_size, flip=config.flip)


def build_dataset(config: TrainConfig) -> Any:
    if config.task == "text2image":
        from translate.data.captions import CaptionedDataset

        root = Path(config.data)
        return CaptionedDataset(root / "train" if (root / "train").is_dir() else root, size=config.crop_size,
                                seed=config.seed)
    if config.task == "textcycle":
        from translate.data.domains import DomainDataset

        return DomainDataset(config.data, phase="train", channels=config.input_nc,
                             preprocess=preprocess_config(config), seed=config.seed)
    # input_nc / output_nc describe source and target, so they follow --direction like the reference.
    nc_a, nc_b = ((config.input_nc, config.output_nc) if config.direction == "AtoB"
                  else (config.output_nc, config.input_nc))
    if config.task == "cyclegan":
        return UnpairedDataset(config.data, phase="train", channels_a=nc_a, channels_b=nc_b,
                               preprocess=preprocess_config(config), seed=config.seed)
    return PairedDataset(config.data, phase="train", channels_a=nc_a, channels_b=nc_b,
                         preprocess=preprocess_config(config))


def augment_generator(config: TrainConfig, step: int, rank: int) -> torch.Generator:
    """The CPU generator of step `step`'s crops and flips on `rank`."""
    return torch.Generator().manual_seed((config.seed * 1_000_003 + step * 7919 + rank) % 2**63)


def device_batch(batch: dict[str, Any], config: TrainConfig, preprocess: PreprocessConfig, step: int,
                 rank: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Move a uint8 batch to the device and augment it there; returns (source, target) in [-1, 1]."""
    generator = augment_generator(config, step, rank)
    a = batch["a"].to(device, non_blocking=True)
    b = batch["b"].to(device, non_blocking=True)
    if config.task == "pix2pix":
        a, b = augment_pair(a, b, preprocess, generator)  # aligned: the same crop and flip
    else:
        a = augment_batch(a, preprocess, generator)
        b = augment_batch(b, preprocess, generator)
    return (a, b) if config.direction == "AtoB" else (b, a)


def save_weights_folders(task: TaskStep, config: TrainConfig, run_dir: Path) -> dict[str, Path]:
    """Export each generator as a weights folder (config.json + model.safetensors) under weights/."""
    from translate.formats.weights import save_weights
    from translate.models import GeneratorConfig

    if config.task in ("text2image", "textcycle"):  # text models: generator + text encoder in one folder
        return {config.task: task.save_weights(run_dir / "weights" / config.task)}
    plain = task.plain_models()
    names = {"AtoB": (config.name_a, config.name_b), "BtoA": (config.name_b, config.name_a)}
    out: dict[str, Path] = {}
    for direction, spec in task.generator_specs().items():
        source, target = names[direction]
        out[direction] = save_weights(
            plain[spec["model"]], run_dir / "weights" / direction,
            GeneratorConfig(**spec["architecture"]), task=config.task, direction=direction,
            domains={"source": source, "target": target})
    return out


def build_evaluator(config: TrainConfig, device: torch.device) -> PeriodicEvaluator | None:
    """The `--eval-every` evaluator, built before training so a missing held-out set or missing
    Inception weights fail at once rather than after the first epoch."""
    if not config.eval_every:
        return None
    inception = None
    if config.eval_fid:
        from translate.evaluation.inception import load_inception

        try:
            inception = load_inception(device=device)
        except FileNotFoundError as error:
            raise FileNotFoundError(f"{error}\nor train with --no-eval-fid (paired metrics only)") from None
    return PeriodicEvaluator(config, device, inception)


def train(config: TrainConfig, resume_state: dict[str, Any] | None = None,
          on_progress: Callable[[Progress], None] | None = None) -> TrainResult:
    """Train `config.task` on `config.data`, writing the run to `config.out`.

    Args:
        config: the resolved configuration.
        resume_state: a checkpoint from `read_checkpoint` to continue from (same run directory).
        on_progress: called on rank 0 after every step.
    """
    started = time.time()
    info: DistInfo = init_distributed(config.device)
    run_dir = Path(config.out)
    torch.manual_seed(config.seed + info.rank)

    dataset = build_dataset(config)  # fails here, before any work, on a missing or empty folder
    sampler = ResumableSampler(len(dataset), shuffle=True, seed=config.seed, rank=info.rank,
                               world_size=info.world_size)
    loader = DataLoader(dataset, batch_size=config.batch_size, sampler=sampler,
                        num_workers=config.workers, collate_fn=collate_images,
                        pin_memory=info.device.type == "cuda",
                        persistent_workers=False,
                        # Its own generator: iterator start-up must not draw from the global RNG,
                        # whose state the checkpoint restores for dropout.
                        generator=torch.Generator().manual_seed(config.seed))
    task = build_task(config, info.device, ddp_wrapper(info))
    evaluator = build_evaluator(config, info.device) if info.is_main else None
    evaluations: list[dict[str, Any]] = []
    schedulers = {name: torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(config))
                  for name, opt in task.optimizers.items()}

    step, epoch, samples_in_epoch = 0, 0, 0
    skipped: list[str] = []
    if resume_state is not None:
        task.load_state_dict(resume_state)
        for name, scheduler in schedulers.items():
            scheduler.load_state_dict(resume_state["schedulers"][name])
            # The lambda is rebuilt from the (possibly extended) config; re-derive the current LR.
            for group, base_lr in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, strict=False):
                group["lr"] = base_lr * lr_factor(config)(scheduler.last_epoch)
        step, epoch = int(resume_state["step"]), int(resume_state["epoch"])
        samples_in_epoch = int(resume_state["samples_in_epoch"])
        skipped = list(resume_state.get("skipped_files", []))
        set_rng_state(resume_state["rng"])
        if info.rank:  # each rank continues its own dropout stream
            torch.manual_seed(config.seed + info.rank + step)

    sampler.set_start(0)
    epoch_length = len(sampler)  # this rank's samples per epoch
    steps_per_epoch = math.ceil(epoch_length / config.batch_size)
    total_steps = steps_per_epoch * config.total_epochs
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)

    log = RunLogger(run_dir, enabled=info.is_main)
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, run_dir / "config.yaml")
        log.event("start", step=step, epoch=epoch, resumed=resume_state is not None,
                  device=str(info.device), world_size=info.world_size,
                  dataset_size=len(dataset), steps_per_epoch=steps_per_epoch, total_steps=total_steps)
        logger.info("%s: %d training items, %d steps per epoch, %d steps in all, on %s",
                    config.task, len(dataset), steps_per_epoch, total_steps, info.device)

    def checkpoint(name: str) -> None:
        if not info.is_main:
            return
        state = make_checkpoint(
            config=config.to_dict(), task_state=task.state_dict(), generators=task.generator_specs(),
            schedulers={n: s.state_dict() for n, s in schedulers.items()}, step=step, epoch=epoch,
            samples_in_epoch=samples_in_epoch, skipped_files=skipped)
        atomic_save(state, run_dir / "checkpoints" / f"{name}.pt")

    def evaluate() -> None:
        plain = task.plain_models()
        scores = evaluator({d: plain[spec["model"]] for d, spec in task.generator_specs().items()})
        evaluations.append({"step": step, "epoch": epoch, **scores})
        log.evaluation(step, epoch, scores)
        logger.info("eval epoch %d (step %d): %s", epoch, step, " ".join(f"{k} {v:.4g}" for k, v in scores.items()))

    losses: dict[str, float] = {}
    window_start, window_steps = time.time(), 0
    done = step >= total_steps
    try:
        while not done and epoch < config.total_epochs:
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(epoch)
            sampler.set_epoch(epoch)
            sampler.set_start(samples_in_epoch)
            for batch in loader:
                images = batch.get("a", batch.get("image"))  # image tasks / text2image
                samples_in_epoch += len(batch.get("skipped", [])) + (images.shape[0] if images is not None else 0)
                for path, reason in batch.get("skipped", []):
                    if path not in skipped:
                        skipped.append(path)
                        logger.warning("skipping unreadable image %s: %s", path, reason)
                        log.event("skipped_file", path=path, reason=reason)
                if images is None:
                    continue
                if config.task == "text2image":
                    step_losses = task.train_step(images.to(info.device, non_blocking=True), batch["text"])
                elif config.task == "textcycle":
                    real = augment_batch(images.to(info.device, non_blocking=True), dataset.preprocess,
                                         augment_generator(config, step, info.rank))
                    step_losses = task.train_step(real, batch["prompt"], batch["target_prompt"],
                                                  batch["cycle_prompt"])
                else:
                    real_a, real_b = device_batch(batch, config, dataset.preprocess, step, info.rank, info.device)
                    step_losses = task.train_step(real_a, real_b)
                values = torch.stack([v.float() for v in step_losses.values()])
                if not bool(torch.isfinite(values).all()):
                    bad = {k: float(v) for k, v in step_losses.items()}
                    log.event("non_finite_loss", step=step, losses=bad)
                    raise NonFiniteLossError(
                        f"a loss became NaN or inf at step {step} (epoch {epoch}): {bad}. The run "
                        f"stopped; the last good checkpoint in {run_dir / 'checkpoints'} is kept. Try "
                        "a lower --lr, or train without --amp.")
                step += 1
                window_steps += 1
                if info.is_main:
                    losses = {k: round(float(v), 6) for k, v in zip(step_losses, values.tolist(), strict=False)}
                    if step % config.log_every == 0 or step == total_steps:
                        elapsed = time.time() - window_start
                        log.losses(step, epoch, losses, lr=task.optimizers["g"].param_groups[0]["lr"],
                                   it_per_s=round(window_steps / max(elapsed, 1e-9), 4))
                        window_start, window_steps = time.time(), 0
                    if step % config.sample_every == 0 or step == total_steps:
                        log.samples(step, task.visuals())
                    if on_progress is not None:
                        on_progress(Progress(step, total_steps, epoch, config.total_epochs, losses))
                if step >= total_steps:
                    done = True
                    break
            if samples_in_epoch < epoch_length:
                # Stopped by --max-steps inside the epoch: the checkpoint records the position, and a
                # resume with more steps finishes this epoch before the schedule moves on.
                break
            with warnings.catch_warnings():
                # Optimisers that wait for a later phase (text2image's G and D while its matcher
                # pretrains) have not stepped yet; their schedule still follows the epochs.
                warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()`"))
                for scheduler in schedulers.values():
                    scheduler.step()
            epoch += 1
            samples_in_epoch = 0
            checkpoint("latest")
            if epoch % config.save_epoch_freq == 0:
                checkpoint(f"epoch_{epoch:04d}")
            if evaluator is not None and epoch % config.eval_every == 0:
                evaluate()
        if evaluator is not None and (not evaluations or evaluations[-1]["step"] != step):
            evaluate()  # the final model always gets a score, also when --max-steps stopped mid-epoch
        checkpoint("latest")
        weights = save_weights_folders(task, config, run_dir) if info.is_main else {}
        log.event("end", step=step, epoch=epoch, skipped_files=len(skipped),
                  seconds=round(time.time() - started, 2))
        barrier(info)
    finally:
        log.close()
        cleanup(info)
    return TrainResult(run_dir=run_dir, step=step, epoch=epoch, losses=losses, skipped_files=skipped,
                       weights=weights, seconds=time.time() - started, evaluations=evaluations)

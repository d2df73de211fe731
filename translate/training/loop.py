"""The training loop, top to bottom: data, networks, resume, steps, logs, checkpoints, weights.

The loop knows no task by name: the task's row (translate.training.tasks) builds its data set, its
step (networks, optimisers, `batch_inputs` and `train_step`) and writes its weights folders.

Reproducibility: the epoch order comes from (seed, epoch), the unpaired B draw from
(seed, epoch, index), the augmentation of step s from (seed, s, rank), and the remaining
randomness (dropout, pools) from RNG states saved in each checkpoint. So a run stopped and resumed
on the CPU ends with the same weights as one that never stopped.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader

from translate.data import CachedLoader, ResumableSampler, cache_dataset, collate_images
from translate.data.cache import available_memory
from translate.evaluation import inception as inception_weights
from translate.training.checkpoint import atomic_save, make_checkpoint, set_rng_state
from translate.training.config import TrainConfig, get_task, save_config
from translate.training.distributed import DistInfo, barrier, cleanup, ddp_wrapper, init_distributed
from translate.training.logs import RunLogger
from translate.training.periodic_eval import PeriodicEvaluator
from translate.training.tasks import build_step

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


def augment_generator(config: TrainConfig, step: int, rank: int) -> torch.Generator:
    """The CPU generator of step `step`'s crops and flips on `rank`."""
    return torch.Generator().manual_seed((config.seed * 1_000_003 + step * 7919 + rank) % 2**63)


def build_evaluator(config: TrainConfig, device: torch.device) -> PeriodicEvaluator | None:
    """The `eval_every` evaluator, built before training so a missing held-out set or missing
    Inception weights fail at once rather than after the first epoch."""
    if not config.eval_every:
        return None
    inception = None
    if config.eval_fid:
        try:
            # Through the module, so that tests can stand in a small network for the 87 MB one.
            inception = inception_weights.load_inception(device=device)
        except FileNotFoundError as error:
            raise FileNotFoundError(f"{error}\nor train with eval_fid=False (translate train --no-eval-fid; "
                                    "paired metrics only)") from None
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
    torch.manual_seed(config.seed + info.rank)
    run = _Run(config, info, on_progress)
    if resume_state is not None:
        run.restore(resume_state)
    run.plan()
    run.open_log(resumed=resume_state is not None)
    try:
        run.train_epochs()
        weights = run.finish(started)
    finally:
        run.log.close()
        cleanup(info)
    return TrainResult(run_dir=run.run_dir, step=run.step, epoch=run.epoch, losses=run.losses,
                       skipped_files=run.skipped, weights=weights, seconds=time.time() - started,
                       evaluations=run.evaluations)


class _Run:
    """One run on one rank: its data, its task's step, its position (step, epoch, samples of the
    epoch seen) and the loop's stages, called in order by `train`."""

    def __init__(self, config: TrainConfig, info: DistInfo, on_progress: Callable[[Progress], None] | None) -> None:
        self.config, self.info, self.on_progress = config, info, on_progress
        self.task = get_task(config.task)
        self.run_dir = Path(config.out)
        self.dataset = self.task.build_dataset(config)  # fails here, before any work, on a missing or empty folder
        self.sampler = ResumableSampler(len(self.dataset), shuffle=True, seed=config.seed, rank=info.rank,
                                        world_size=info.world_size)
        self.task_step = build_step(config, info.device, ddp_wrapper(info))
        self.speed = self.task_step.speed
        if info.device.type == "cuda":
            self.speed.apply_backend_flags()
        self.loader = self._loader()
        self.evaluator = build_evaluator(config, info.device) if info.is_main else None
        self.schedulers = {name: torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(config))
                           for name, opt in self.task_step.optimizers.items()}
        self.step, self.epoch, self.samples_in_epoch = 0, 0, 0
        self.skipped: list[str] = []
        self.losses: dict[str, float] = {}
        # Losses stay on the device until read (loss_sync "log": every log_every steps and before
        # every checkpoint); the NaN check reads them there.
        self.pending_losses: list[tuple[int, dict[str, torch.Tensor]]] = []
        self.evaluations: list[dict[str, Any]] = []
        self.window_start, self.window_steps = time.time(), 0
        # max_minutes counts from here: data set and network set-up are not training time.
        self.deadline = time.monotonic() + 60 * config.max_minutes if config.max_minutes else None

    def _loader(self) -> Any:
        """The batches: from the decoded cache (speed plan cache_data) or a DataLoader."""
        config, info = self.config, self.info
        if self.speed.cache_data:
            try:
                # Every process of a machine holds its own copy: they share its memory.
                local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
                available = available_memory()
                cached = cache_dataset(self.dataset, workers=max(1, config.workers),
                                       pin_memory=info.device.type == "cuda",
                                       max_bytes=available // (2 * local_processes) if available else None)
                return CachedLoader(cached, self.sampler, config.batch_size)
            except (ValueError, TypeError, MemoryError) as error:
                if config.cache_data:  # asked for explicitly: say why it cannot be done
                    raise
                logger.warning("speed=auto: not caching the data set (%s); reading it with a DataLoader", error)
        return DataLoader(self.dataset, batch_size=config.batch_size, sampler=self.sampler,
                          num_workers=config.workers, collate_fn=collate_images,
                          pin_memory=info.device.type == "cuda", persistent_workers=False,
                          # Its own generator: iterator start-up must not draw from the global RNG,
                          # whose state the checkpoint restores for dropout.
                          generator=torch.Generator().manual_seed(config.seed))

    # -- before the first step ---------------------------------------------------------------------
    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint: networks, optimisers, schedules, position and RNG states."""
        self.task_step.load_state_dict(state)
        for name, scheduler in self.schedulers.items():
            scheduler.load_state_dict(state["schedulers"][name])
            # The lambda is rebuilt from the (possibly extended) config; re-derive the current LR.
            for group, base_lr in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, strict=False):
                group["lr"] = base_lr * lr_factor(self.config)(scheduler.last_epoch)
        self.step, self.epoch = int(state["step"]), int(state["epoch"])
        self.samples_in_epoch = int(state["samples_in_epoch"])
        self.skipped = list(state.get("skipped_files", []))
        set_rng_state(state["rng"])
        if self.info.rank:  # each rank continues its own dropout stream
            torch.manual_seed(self.config.seed + self.info.rank + self.step)

    def plan(self) -> None:
        """This rank's samples per epoch, steps per epoch and steps in all (max_steps caps them)."""
        self.sampler.set_start(0)
        self.epoch_length = len(self.sampler)
        self.steps_per_epoch = math.ceil(self.epoch_length / self.config.batch_size)
        self.total_steps = self.steps_per_epoch * self.config.total_epochs
        if self.config.max_steps is not None:
            self.total_steps = min(self.total_steps, self.config.max_steps)

    def open_log(self, resumed: bool) -> None:
        """log.jsonl and TensorBoard (rank 0 only), and the run's config.yaml."""
        config, info = self.config, self.info
        self.log = RunLogger(self.run_dir, enabled=info.is_main)
        if not info.is_main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, self.run_dir / "config.yaml")
        self.log.event("start", step=self.step, epoch=self.epoch, resumed=resumed, device=str(info.device),
                       world_size=info.world_size, dataset_size=len(self.dataset),
                       steps_per_epoch=self.steps_per_epoch, total_steps=self.total_steps,
                       speed=self.speed.to_dict(), data_cached=not isinstance(self.loader, DataLoader))
        logger.info("%s: %d training items, %d steps per epoch, %d steps in all, on %s", config.task,
                    len(self.dataset), self.steps_per_epoch, self.total_steps, info.device)

    # -- the loop ------------------------------------------------------------------------------------
    def train_epochs(self) -> None:
        """Epochs until the schedule ends or max_steps is reached; a run stopped inside an epoch
        records its position there, and a resume with more steps finishes that epoch first."""
        done = self.step >= self.total_steps
        while not done and self.epoch < self.config.total_epochs:
            done = self._train_epoch()
            if self.samples_in_epoch < self.epoch_length:
                break  # stopped by max_steps or max_minutes inside the epoch: the checkpoint records the position
            self._end_epoch()

    def _train_epoch(self) -> bool:
        """The rest of the current epoch's batches; True once the last step of the run is taken."""
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(self.epoch)
        self.sampler.set_epoch(self.epoch)
        self.sampler.set_start(self.samples_in_epoch)
        for batch in self.loader:
            images = batch.get(self.task.images_key)
            self.samples_in_epoch += len(batch.get("skipped", [])) + (images.shape[0] if images is not None else 0)
            self._note_skipped(batch.get("skipped", []))
            if images is None:
                continue
            self._train_batch(batch)
            if self.step >= self.total_steps or self._out_of_time():
                return True
        return False

    def _out_of_time(self) -> bool:
        """max_minutes has passed; under torchrun the ranks agree (rank 0's clock decides), so they
        all stop after the same step."""
        if self.deadline is None:
            return False
        late = time.monotonic() >= self.deadline
        if self.info.enabled:
            # A broadcast is a host sync: the ranks compare clocks every log_every steps only.
            if self.step % self.config.log_every:
                return False
            flag = torch.tensor([float(late)], device=self.info.device)
            torch.distributed.broadcast(flag, src=0)
            late = bool(flag.item())
        if late:
            logger.info("max_minutes=%g reached at step %d; saving", self.config.max_minutes, self.step)
            self.log.event("time_budget_reached", step=self.step, minutes=self.config.max_minutes)
        return late

    def _note_skipped(self, skipped: list[tuple[str, str]]) -> None:
        for path, reason in skipped:
            if path not in self.skipped:
                self.skipped.append(path)
                logger.warning("skipping unreadable image %s: %s", path, reason)
                self.log.event("skipped_file", path=path, reason=reason)

    def _train_batch(self, batch: dict[str, Any]) -> None:
        generator = augment_generator(self.config, self.step, self.info.rank)
        inputs = self.task_step.batch_inputs(batch, getattr(self.dataset, "preprocess", None), generator)
        if self.speed.channels_last:
            inputs = tuple(x.contiguous(memory_format=torch.channels_last)
                           if isinstance(x, torch.Tensor) and x.ndim == 4 else x for x in inputs)
        step_losses = self.task_step.train_step(*inputs)
        self.task_step.update_ema()
        self.pending_losses.append((self.step, step_losses))
        self.step += 1
        self.window_steps += 1
        if self.speed.loss_sync == "step" or self._logs_now():
            self.read_losses()
        if self.info.is_main:
            self._report()

    def _logs_now(self) -> bool:
        return self.step % self.config.log_every == 0 or self.step == self.total_steps

    def read_losses(self) -> None:
        """Copy the losses of the steps since the last read to the host (one sync) and check them:
        a NaN or inf stops the run before any later checkpoint, so the last one written is good.

        Raises:
            NonFiniteLossError: naming the first step whose losses were not finite.
        """
        if not self.pending_losses:
            return
        names = list(self.pending_losses[-1][1])
        rows = torch.stack([torch.stack([losses[name].float() for name in names])
                            for _, losses in self.pending_losses]).cpu()  # (steps, losses)
        finite = torch.isfinite(rows).all(dim=1)
        if not bool(finite.all()):
            index = int((~finite).nonzero()[0])
            step = self.pending_losses[index][0]
            bad = dict(zip(names, rows[index].tolist(), strict=True))
            self.pending_losses.clear()
            self.log.event("non_finite_loss", step=step, losses=bad)
            raise NonFiniteLossError(
                f"a loss became NaN or inf at step {step} (epoch {self.epoch}): {bad}. The run stopped; the "
                f"last good checkpoint in {self.run_dir / 'checkpoints'} is kept. Try a lower lr, or train "
                "without amp.")
        self.losses = {name: round(float(value), 6) for name, value in zip(names, rows[-1].tolist(), strict=True)}
        self.pending_losses.clear()

    def _report(self) -> None:
        """Losses to the log every log_every steps, a sample grid every sample_every, progress always
        (with the losses last read)."""
        config, step = self.config, self.step
        if self._logs_now():
            elapsed = time.time() - self.window_start
            self.log.losses(step, self.epoch, self.losses, lr=self.task_step.optimizers["g"].param_groups[0]["lr"],
                            it_per_s=round(self.window_steps / max(elapsed, 1e-9), 4))
            self.window_start, self.window_steps = time.time(), 0
        if step % config.sample_every == 0 or step == self.total_steps:
            self.log.samples(step, self.task_step.sample_rows())
        if self.on_progress is not None:
            self.on_progress(Progress(step, self.total_steps, self.epoch, config.total_epochs, self.losses))

    def _end_epoch(self) -> None:
        """The schedule's step, the epoch's checkpoints and (every eval_every epochs) an evaluation."""
        with warnings.catch_warnings():
            # Optimisers that wait for a later phase (text2image's G and D while its matcher
            # pretrains) have not stepped yet; their schedule still follows the epochs.
            warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()`"))
            for scheduler in self.schedulers.values():
                scheduler.step()
        self.epoch += 1
        self.samples_in_epoch = 0
        self.checkpoint("latest")
        if self.epoch % self.config.save_epoch_freq == 0:
            self.checkpoint(f"epoch_{self.epoch:04d}")
        if self.evaluator is not None and self.epoch % self.config.eval_every == 0:
            self.evaluate()

    # -- checkpoints, evaluation, the end ----------------------------------------------------------------
    def checkpoint(self, name: str) -> None:
        self.read_losses()  # every rank: a NaN since the last read must not reach a checkpoint
        if not self.info.is_main:
            return
        task_step = self.task_step
        state = make_checkpoint(
            config=self.config.to_dict(), task_state=task_step.state_dict(), generators=task_step.generator_specs(),
            schedulers={n: s.state_dict() for n, s in self.schedulers.items()}, step=self.step, epoch=self.epoch,
            samples_in_epoch=self.samples_in_epoch, skipped_files=self.skipped)
        atomic_save(state, self.run_dir / "checkpoints" / f"{name}.pt")

    def evaluate(self) -> None:
        generators = {d: self.task_step.saved_generator(spec["model"])
                      for d, spec in self.task_step.generator_specs().items()}
        scores = self.evaluator(generators)
        self.evaluations.append({"step": self.step, "epoch": self.epoch, **scores})
        self.log.evaluation(self.step, self.epoch, scores)
        logger.info("eval epoch %d (step %d): %s", self.epoch, self.step,
                    " ".join(f"{k} {v:.4g}" for k, v in scores.items()))

    def finish(self, started: float) -> dict[str, Path]:
        """The final score, checkpoint and weights folders; returns the folders (rank 0)."""
        if self.evaluator is not None and (not self.evaluations or self.evaluations[-1]["step"] != self.step):
            self.evaluate()  # the final model always gets a score, also when max_steps stopped mid-epoch
        self.checkpoint("latest")
        weights = self.task.save_weights(self.task_step, self.config, self.run_dir) if self.info.is_main else {}
        self.log.event("end", step=self.step, epoch=self.epoch, skipped_files=len(self.skipped),
                       saved_generators="ema" if self.task_step.emas else "trained",
                       seconds=round(time.time() - started, 2))
        barrier(self.info)
        return weights

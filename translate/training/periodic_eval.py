"""Evaluation every K epochs during training (`translate train --eval-every K`).

At the end of every K-th epoch the generators translate a fixed held-out set (the task row's
`eval_sets`: pix2pix the `val` pairs, CycleGAN `testA` / `testB`) and the scores go to `log.jsonl` as an `eval` event, to
TensorBoard under `eval/`, and to the log, beside the losses. Scores:
- FID and KID (the same Inception network and statistics as `translate eval`), when `eval_fid`;
- for paired data also PSNR, SSIM, L1, RMSE and pixel accuracy (delta 5) on 0..255.

Every image is resized to `crop_size` x `crop_size`, the size the generator trains at, and the
set is cut to its first `eval_limit` images (sorted by path) so an evaluation costs seconds on a
GPU. FID on a few hundred images reads higher than on a full test set: these figures compare
epochs within a run; score the final model with `translate eval` for tables.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from translate.core.errors import InvalidCombinationError
from translate.core.images import from_uint8, to_uint8
from translate.data import ImageReadError, PreprocessConfig, load_image, prepare_image
from translate.training.config import TrainConfig, get_task

logger = logging.getLogger(__name__)

__all__ = ["EvalSet", "PeriodicEvaluator", "default_eval_phase", "eval_preprocess", "load_eval_sets", "load_images"]

_BATCH = 16


def default_eval_phase(task: str) -> str:
    """The held-out folder of `task` (its row's eval_phase): pix2pix keeps its pairs in `val/` (the
    reference's maps, facades), CycleGAN in `test*/`."""
    return get_task(task).eval_phase


@dataclass
class EvalSet:
    """One data direction's held-out images, `(N, C, S, S)` uint8.

    `targets` are the ground truth of `sources` (same order) when `paired`, else the target
    domain's own images.
    """

    direction: str
    sources: Tensor
    targets: Tensor
    paired: bool


def load_images(paths: list[Path], channels: int, preprocess: PreprocessConfig) -> Tensor:
    """The readable images of `paths` as `(N, C, S, S)` uint8 (unreadable ones are logged and skipped)."""
    images = []
    for path in paths:
        try:
            images.append(prepare_image(load_image(path, channels), preprocess))
        except ImageReadError as error:
            logger.warning("eval set: skipping unreadable image %s: %s", error.path, error.reason)
    if not images:
        raise FileNotFoundError(f"no readable evaluation images among {len(paths)} files, e.g. {paths[:1]}")
    return torch.stack(images)


def eval_preprocess(config: TrainConfig) -> PreprocessConfig:
    """Every held-out image resized to `crop_size` square, the size the generator trains at."""
    size = config.crop_size
    return PreprocessConfig(preprocess="resize_and_crop", load_size=size, crop_size=size, flip=False)


def load_eval_sets(config: TrainConfig, phase: str, limit: int | None) -> list[EvalSet]:
    """The held-out images of each direction the task trains (its row's eval_sets)."""
    task = get_task(config.task)
    if task.eval_sets is None:
        raise InvalidCombinationError(
            f"eval_every is not available for {config.task}; score the run's checkpoints after training with "
            "`translate eval --model RUN --data DATA` (--all-checkpoints for text2image)", "eval_every")
    return task.eval_sets(config, phase, limit)


def _rgb(images: Tensor) -> Tensor:
    """The Inception network takes 3 channels: grey repeats, extra channels are dropped."""
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images[:, :3]


class PeriodicEvaluator:
    """Scores the task's generators on fixed held-out images; the real side's features are
    computed once.

    Args:
        config: the run's config (task, data, direction, crop_size, eval_* options).
        device: where the generators run.
        inception: the FID network, or None to skip FID / KID (paired metrics only).
    """

    def __init__(self, config: TrainConfig, device: torch.device, inception: nn.Module | None) -> None:
        phase = config.eval_phase or default_eval_phase(config.task)
        self.sets = load_eval_sets(config, phase, config.eval_limit)
        self.device = device
        self.inception = inception
        self.real_features: dict[str, list[Tensor]] = {}
        if inception is not None:
            from translate.evaluation.metrics import DistributionScores  # here, not at the top: see `_score`

            for eval_set in self.sets:
                scores = DistributionScores(inception, device)
                self.real_features[eval_set.direction] = [
                    scores.embed(_rgb(eval_set.targets[start:start + _BATCH]))
                    for start in range(0, len(eval_set.targets), _BATCH)]
        logger.info("evaluation every %d epoch(s) on %s", config.eval_every, ", ".join(
            f"{s.direction}: {len(s.sources)} {phase} images" for s in self.sets))

    @torch.no_grad()
    def __call__(self, generators: dict[str, nn.Module]) -> dict[str, float]:
        """Scores keyed `"{direction}/{metric}"`, e.g. `"AtoB/fid"`, `"AtoB/l1"`.

        `generators` maps each data direction to its plain (unwrapped) network; each is put in
        eval mode for the pass and back in its previous mode afterwards.
        """
        results: dict[str, float] = {}
        for eval_set in self.sets:
            generator = generators[eval_set.direction]
            was_training = generator.training
            generator.eval()
            try:
                results.update({f"{eval_set.direction}/{k}": v for k, v in self._score(generator, eval_set).items()})
            finally:
                generator.train(was_training)
        return results

    def _score(self, generator: nn.Module, eval_set: EvalSet) -> dict[str, float]:
        # Imported here: the metrics load torchmetrics (~2 s), which runs without evaluation, and
        # each torchrun process's start-up, need not pay for.
        from translate.evaluation.metrics import DistributionScores, PairedScores

        paired = PairedScores() if eval_set.paired else None
        distribution = DistributionScores(self.inception, self.device) if self.inception is not None else None
        if distribution is not None:
            for features in self.real_features[eval_set.direction]:
                distribution.add_features(features, real=True)
        for start in range(0, len(eval_set.sources), _BATCH):
            source = from_uint8(eval_set.sources[start:start + _BATCH].to(self.device))
            fake = to_uint8(generator(source)).cpu()
            if paired is not None:
                paired.update(fake, eval_set.targets[start:start + _BATCH])
            if distribution is not None:
                distribution.update(_rgb(fake), real=False)
        scores: dict[str, Any] = {}
        if paired is not None:
            scores.update(paired.compute())
        if distribution is not None:
            scores.update({k: v for k, v in distribution.compute().items() if k != "kid_subset_size"})
        return {k: float(v) for k, v in scores.items()}

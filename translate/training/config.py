"""Training configuration: one dataclass, reference defaults per task, YAML files and overrides.

Resolution order (later wins): the task's reference defaults, a YAML file (``--config``), the
flags given on the command line. A resumed run starts from the run's saved config instead of the
defaults, so flags given with ``--resume`` extend or override what the run was started with.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from translate.data.transforms import PREPROCESS_MODES
from translate.models import INIT_TYPES, NORMS, discriminator_names, generator_names, size_multiple

TASKS = ("cyclegan", "pix2pix", "text2image", "textcycle")
TEXT2IMAGE_GENERATORS = ("text2image",)
TEXT2IMAGE_DISCRIMINATORS = ("projection",)
# textcycle generator -> the multiple its image sides must be (translate.training.textcycle builds them).
TEXTCYCLE_GENERATORS: dict[str, int] = {"text_resnet_6blocks": 4, "text_resnet_9blocks": 4, "text_unet_128": 128,
                                        "text_unet_256": 256}
TEXTCYCLE_DISCRIMINATORS = ("projection",)
GAN_MODES = ("lsgan", "vanilla", "wgangp", "hinge")
DIRECTIONS = ("AtoB", "BtoA")
DEVICES = ("auto", "cpu", "cuda", "mps")
LR_POLICIES = ("linear", "cosine", "constant")


@dataclass
class TrainConfig:
    """Every option of a training run. Field names follow the reference implementation's options."""

    task: str = "cyclegan"
    data: str = ""
    out: str = ""
    # networks
    netG: str = "resnet_9blocks"  # noqa: N815 - the reference's option names, which users know
    netD: str = "basic"  # noqa: N815
    ngf: int = 64
    ndf: int = 64
    n_layers_D: int = 3  # noqa: N815
    norm: str = "instance"
    dropout: bool = False
    init_type: str = "normal"
    init_gain: float = 0.02
    input_nc: int = 3
    output_nc: int = 3
    # data
    direction: str = "AtoB"
    preprocess: str = "resize_and_crop"
    load_size: int = 286
    crop_size: int = 256
    flip: bool = True
    batch_size: int = 1
    workers: int = 2
    name_a: str = "A"
    name_b: str = "B"
    # objective
    gan_mode: str = "lsgan"
    lambda_A: float = 10.0  # noqa: N815
    lambda_B: float = 10.0  # noqa: N815
    lambda_identity: float = 0.5
    lambda_L1: float = 100.0  # noqa: N815
    lambda_gp: float = 10.0
    pool_size: int = 50
    # text conditioning (text2image)
    text_encoder: str = "byte"
    text_dim: int = 128
    noise_dim: int = 100
    # image-text matching (text2image): the text encoder's pretraining steps on the real
    # captioned images, then the weight of the frozen matcher's loss on the generator's images
    pretrain_text_steps: int = 0
    lambda_match: float = 0.0
    # generator's matching loss: each image against its caption and the last N distinct captions
    # (0: the batch's captions only)
    match_bank: int = 0
    # width of the matcher's image encoder (text2image; None: --ndf)
    matcher_ndf: int | None = None
    # DF-GAN's matching-aware gradient penalty on D at real, matching pairs (text2image; 0: off)
    lambda_ma_gp: float = 0.0
    # generator weights saved as their exponential moving average with this decay (text2image; 0: off)
    ema_decay: float = 0.0
    # optimisation and schedule
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lr_policy: str = "linear"
    n_epochs: int = 100
    n_epochs_decay: int = 100
    max_steps: int | None = None
    # runtime
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    # bookkeeping
    log_every: int = 50
    sample_every: int = 500
    save_epoch_freq: int = 5
    # evaluation during training (pix2pix, cyclegan): every K epochs (0: off) on the first N
    # held-out images of `eval_phase` (None: val for pix2pix, test for cyclegan), FID/KID optional
    eval_every: int = 0
    eval_phase: str | None = None
    eval_limit: int | None = 200
    eval_fid: bool = True

    def __post_init__(self) -> None:
        _check_choice("task", self.task, TASKS)
        _check_choice("gan_mode", self.gan_mode, GAN_MODES)
        _check_choice("direction", self.direction, DIRECTIONS)
        _check_choice("device", self.device, DEVICES)
        _check_choice("lr_policy", self.lr_policy, LR_POLICIES)
        # Checked here too (the builders check again) so a typo fails before any data is read.
        text = self.task == "text2image"
        textcycle = self.task == "textcycle"
        generators, discriminators = ((TEXT2IMAGE_GENERATORS, TEXT2IMAGE_DISCRIMINATORS) if text else
                                      (tuple(TEXTCYCLE_GENERATORS), TEXTCYCLE_DISCRIMINATORS) if textcycle else
                                      (tuple(generator_names()), tuple(discriminator_names())))
        _check_choice("netG", self.netG, generators)
        _check_choice("netD", self.netD, discriminators)
        _check_choice("norm", self.norm, NORMS)
        _check_choice("init_type", self.init_type, INIT_TYPES)
        _check_choice("preprocess", self.preprocess, PREPROCESS_MODES)
        if text or textcycle:
            from translate.text import text_encoder_names

            _check_choice("text_encoder", self.text_encoder, tuple(text_encoder_names()))
        if text:
            from translate.models.conditioned import TEXT2IMAGE_SIZES

            if self.crop_size not in TEXT2IMAGE_SIZES:
                raise ValueError(f"--crop-size {self.crop_size} is the text2image image size and must be one of "
                                 f"{', '.join(map(str, TEXT2IMAGE_SIZES))}")
        multiple = 1 if text else TEXTCYCLE_GENERATORS[self.netG] if textcycle else size_multiple(self.netG)
        if "crop" in self.preprocess and self.crop_size % multiple:
            raise ValueError(
                f"--netG {self.netG} needs image sides that are multiples of {multiple}, but --crop-size "
                f"is {self.crop_size}; use --crop-size {max(multiple, self.crop_size // multiple * multiple)}"
                + (" or --netG unet_128" if self.netG == "unet_256" and self.crop_size % 128 == 0 else ""))
        for name in ("ngf", "ndf", "n_layers_D", "input_nc", "output_nc", "load_size", "crop_size",
                     "batch_size", "log_every", "sample_every", "save_epoch_freq", "text_dim", "noise_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{_flag(name)} must be a positive integer, got {value!r}")
        for name in ("n_epochs", "n_epochs_decay", "workers", "pool_size", "pretrain_text_steps", "match_bank",
                     "eval_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{_flag(name)} must be an integer >= 0, got {value!r}")
        if self.matcher_ndf is not None and (isinstance(self.matcher_ndf, bool) or not isinstance(self.matcher_ndf, int)
                                             or self.matcher_ndf < 1):
            raise ValueError(f"--matcher-ndf must be a positive integer (or unset: --ndf), got {self.matcher_ndf!r}")
        if self.eval_limit is not None and (isinstance(self.eval_limit, bool) or not isinstance(self.eval_limit, int)
                                            or self.eval_limit < 2):
            raise ValueError(f"--eval-limit must be an integer >= 2 (FID needs two images), got {self.eval_limit!r}")
        if self.eval_every and self.task not in ("pix2pix", "cyclegan"):
            raise ValueError(f"--eval-every is available for pix2pix and cyclegan, not {self.task}; leave it at 0")
        if self.eval_every and self.task == "cyclegan" and not self.eval_fid:
            raise ValueError("--eval-every on cyclegan scores FID and KID only (unpaired data has no ground "
                             "truth), so it cannot run with --no-eval-fid; drop one of them")
        if self.n_epochs + self.n_epochs_decay < 1:
            raise ValueError("--n-epochs plus --n-epochs-decay must be at least 1, got 0")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"--max-steps must be a positive integer, got {self.max_steps!r}")
        for name in ("lr", "init_gain"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{_flag(name)} must be > 0, got {getattr(self, name)!r}")
        for name in ("lambda_A", "lambda_B", "lambda_identity", "lambda_L1", "lambda_gp", "lambda_match",
                     "lambda_ma_gp"):
            if getattr(self, name) < 0:
                raise ValueError(f"{_flag(name)} must be >= 0, got {getattr(self, name)!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"--ema-decay must be in [0, 1) (0 turns it off; e.g. 0.999), got {self.ema_decay!r}")
        if not 0.0 <= self.beta1 < 1.0:
            raise ValueError(f"--beta1 must be in [0, 1), got {self.beta1!r}")
        if (self.task == "cyclegan" and self.lambda_identity > 0
                and self.input_nc != self.output_nc):
            raise ValueError(
                f"the identity loss needs --input-nc equal to --output-nc (got {self.input_nc} and "
                f"{self.output_nc}); pass --lambda-identity 0")
        if textcycle and self.input_nc != self.output_nc:
            raise ValueError(f"textcycle translates every domain into every other with one generator, so "
                             f"--input-nc and --output-nc must be equal (got {self.input_nc} and {self.output_nc})")
        if textcycle and self.gan_mode == "wgangp":
            raise ValueError("--gan-mode wgangp is not available for textcycle (its gradient penalty takes a "
                             "discriminator without text); use lsgan, vanilla or hinge")

    @property
    def total_epochs(self) -> int:
        return self.n_epochs + self.n_epochs_decay

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# The reference implementation's per-model defaults (its models' modify_commandline_options).
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "cyclegan": {
        "netG": "resnet_9blocks", "netD": "basic", "norm": "instance", "dropout": False,
        "gan_mode": "lsgan", "pool_size": 50, "lambda_identity": 0.5, "batch_size": 1,
    },
    "pix2pix": {
        "netG": "unet_256", "netD": "basic", "norm": "batch", "dropout": True,
        "gan_mode": "vanilla", "pool_size": 0, "lambda_identity": 0.0, "lambda_L1": 100.0,
        "batch_size": 1,
    },
    # DF-GAN-like: hinge loss, matching-aware discriminator, Adam (0, 0.9); no flips, since
    # captions name left and right.
    "text2image": {
        "netG": "text2image", "netD": "projection", "norm": "instance", "dropout": False,
        "gan_mode": "hinge", "pool_size": 0, "lambda_identity": 0.0, "batch_size": 16,
        "load_size": 64, "crop_size": 64, "flip": False, "beta1": 0.0, "beta2": 0.9,
        "n_epochs": 50, "n_epochs_decay": 50, "pretrain_text_steps": 1000, "lambda_match": 1.0,
        "match_bank": 1024, "lambda_ma_gp": 2.0, "ema_decay": 0.999,
    },
    # CycleGAN's recipe (lsgan, Adam 0.5, cycle 10, identity 0.5, pool 50, flips, 286 -> 256) with
    # one text-guided generator for all domains and a projection discriminator (StarGAN-like).
    "textcycle": {
        "netG": "text_resnet_6blocks", "netD": "projection", "norm": "instance", "dropout": False,
        "gan_mode": "lsgan", "pool_size": 50, "lambda_A": 10.0, "lambda_identity": 0.5, "batch_size": 1,
        "load_size": 286, "crop_size": 256, "flip": True, "beta1": 0.5, "beta2": 0.999,
    },
}

FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(TrainConfig))


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{_flag(name)}: {value!r} is not one of {', '.join(allowed)}")


def _normalise_keys(values: dict[str, Any], source: str) -> dict[str, Any]:
    """Accept kebab-case keys (as on the command line) and reject unknown ones."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        if name not in FIELD_NAMES:
            close = [f for f in FIELD_NAMES if f.lower() == name.lower()]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"{source}: unknown option {key!r}{hint}")
        out[name] = value
    return out


def load_yaml_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML option file: a mapping of option names (snake or kebab case) to values."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist")
    with path.open() as handle:
        values = yaml.safe_load(handle) or {}
    if not isinstance(values, dict):
        raise ValueError(f"config file {str(path)!r} must hold a mapping of options, got {type(values).__name__}")
    return _normalise_keys(values, f"config file {str(path)!r}")


def make_config(task: str | None, *, base: dict[str, Any] | None = None,
                overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Resolve a config: `base` (a saved run's config) or the task defaults, then `overrides`.

    Args:
        task: one of TASKS ("cyclegan", "pix2pix", "text2image", "textcycle"); may be None when
            `base` names it.
        base: a complete saved config (resume) or a partial YAML mapping.
        overrides: options given explicitly (None values are ignored).
    """
    values: dict[str, Any] = {}
    base = _normalise_keys(base or {}, "config")
    overrides = _normalise_keys({k: v for k, v in (overrides or {}).items() if v is not None}, "option")
    task = task or overrides.get("task") or base.get("task")
    if task not in TASK_DEFAULTS:
        raise ValueError(f"task {task!r} is not one of {', '.join(TASKS)}")
    values.update(TASK_DEFAULTS[task])
    values.update(base)
    values.update(overrides)
    values["task"] = task
    return TrainConfig(**values)


def save_config(config: TrainConfig, path: Path) -> None:
    with path.open("w") as handle:
        yaml.safe_dump(config.to_dict(), handle, sort_keys=False)

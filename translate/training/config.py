"""Training configuration: one dataclass, the table of tasks it is checked against, YAML files and
overrides.

Resolution order (later wins): the task's reference defaults, a YAML file, the options given
explicitly. A resumed run starts from the run's saved config instead of the defaults, so options
given on resume extend or override what the run was started with.

Each field carries its help text and option group (translate.core.options); a task (a `Task`
row, registered by translate.training.tasks) names the groups it uses, its reference defaults,
its networks and its checks, so nothing here knows a task by name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from translate.core.device import DEVICES
from translate.core.errors import InvalidChoiceError, InvalidCombinationError, InvalidValueError
from translate.core.options import check_field_choice, check_field_value, integer, number, option
from translate.data.transforms import PREPROCESS_MODES
from translate.formats.locator import DIRECTIONS
from translate.models import INIT_TYPES, NORMS
from translate.models.efficientnet_lite import BACKBONE_INSTALL, MissingBackboneError, backbone_weights_path
from translate.models.projected import MIN_SIZE as PROJECTED_MIN_SIZE
from translate.text import text_encoder_names
from translate.training.diffaug import parse_policy

__all__ = ["ADAM_IMPLEMENTATIONS", "AUTO_ON_OFF", "COMPILE_MODES", "LOSS_SYNC", "LR_SCALES", "SPEED_MODES",
           "DEVICES", "DIRECTIONS", "GAN_MODES", "LR_POLICIES", "FIELD_NAMES", "Task", "TrainConfig",
           "get_task", "register_task", "task_names", "load_yaml_config", "make_config", "nce_layer_indices",
           "save_config"]

GAN_MODES = ("lsgan", "vanilla", "wgangp", "hinge")
LR_POLICIES = ("linear", "cosine", "constant")


def _text_encoders() -> tuple[str, ...]:
    return tuple(text_encoder_names())


def nce_layer_indices(value: Any, name: str = "nce_layers") -> tuple[int, ...]:
    """The layer indices of `nce_layers`: "0,4,7,10,14" (as on the command line), an int or a list of
    ints (as a YAML file may hold them), strictly increasing and >= 0; InvalidValueError otherwise.
    Whether the generator has these layers is the task's check (it depends on netG)."""
    expected = "comma-separated layer indices >= 0 in increasing order, e.g. '0,4,7,10,14'"
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, (list, tuple)) else [value]
    try:
        indices = tuple(int(str(item).strip()) for item in items if not isinstance(item, (bool, float)))
    except ValueError:
        raise InvalidValueError(name, value, expected) from None
    if (not indices or len(indices) != len(items) or indices[0] < 0
            or any(b <= a for a, b in zip(indices, indices[1:], strict=False))):
        raise InvalidValueError(name, value, expected)
    return indices


_POSITIVE, _COUNT = integer(1), integer(0)
_WEIGHT = number(0.0)

NETWORKS, DATA, OBJECTIVE, TEXT, OPTIMISATION, RUNTIME, SPEED, LOGGING, EVALUATION = (
    "Networks", "Data", "Objective", "Text conditioning", "Optimisation", "Runtime", "Speed", "Logging", "Evaluation")
SPEED_MODES = ("off", "auto")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
ADAM_IMPLEMENTATIONS = ("auto", "fused", "foreach", "for-loop")
AUTO_ON_OFF = ("auto", "on", "off")
LOSS_SYNC = ("log", "step")
LR_SCALES = ("none", "linear", "sqrt")


@dataclass
class TrainConfig:
    """Every option of a training run. Field names follow the reference implementation's options
    (`netG`, `lambda_A`, `n_layers_D`), which users know; `translate train` spells them as flags
    (`--netG`, `--lambda-A`, `--n-layers-D`)."""

    task: str = option("cyclegan", "The task to train.", panel=NETWORKS, cli=False)
    data: str = option("", "Data root (see docs/data.md).", panel=DATA, path=True, default_help="required")
    out: str = option("", "Run directory to create.", panel=DATA, path=True, default_help="required")
    # networks
    netG: str = option("resnet_9blocks", "Generator architecture.", panel=NETWORKS,  # noqa: N815
                       task_choices=lambda task: task.generators)
    netD: str = option("basic", "Discriminator architecture.", panel=NETWORKS,  # noqa: N815
                       task_choices=lambda task: task.discriminators)
    ngf: int = option(64, "Generator filters in the first layer.", panel=NETWORKS, check=_POSITIVE)
    ndf: int = option(64, "Discriminator filters in the first layer.", panel=NETWORKS, check=_POSITIVE)
    n_layers_D: int = option(3, "Layers of the discriminator (--netD n_layers or projection).",  # noqa: N815
                             panel=NETWORKS, check=_POSITIVE)
    norm: str = option("instance", "Normalisation layers.", panel=NETWORKS, choices=NORMS)
    dropout: bool = option(False, "Dropout in the generator.", panel=NETWORKS, group="image_input")
    init_type: str = option("normal", "Weight initialisation.", panel=NETWORKS, choices=INIT_TYPES)
    init_gain: float = option(0.02, "Scale of the initial weights.", panel=NETWORKS, check=number(0.0, strict=True))
    input_nc: int = option(3, "Channels of the source domain.", panel=NETWORKS, group="image_input",
                           check=_POSITIVE)
    output_nc: int = option(3, "Channels of the target domain.", panel=NETWORKS, check=_POSITIVE)
    # data
    direction: str = option("AtoB", "Which way to translate.", panel=DATA, group="two_domains", choices=DIRECTIONS)
    preprocess: str = option("resize_and_crop", "How training images are resized and cropped.", panel=DATA,
                             group="image_input", choices=PREPROCESS_MODES)
    load_size: int = option(286, "Resize to this first.", panel=DATA, group="image_input", check=_POSITIVE)
    crop_size: int = option(256, "Then crop to this (text2image: the image size).", panel=DATA, check=_POSITIVE)
    flip: bool = option(True, "Random horizontal flips.", panel=DATA, group="image_input")
    batch_size: int = option(1, "Images per step.", panel=DATA, check=_POSITIVE)
    workers: int = option(2, "Data loading processes.", panel=DATA, check=_COUNT)
    name_a: str = option("A", "Display name of domain A.", panel=DATA, group="two_domains")
    name_b: str = option("B", "Display name of domain B.", panel=DATA, group="two_domains")
    # objective
    gan_mode: str = option("lsgan", "GAN objective.", panel=OBJECTIVE, choices=GAN_MODES)
    lambda_A: float = option(10.0, "Cycle loss weight A->B->A (textcycle: the cycle weight).",  # noqa: N815
                             panel=OBJECTIVE, group="cycle", check=_WEIGHT)
    lambda_B: float = option(10.0, "Cycle loss weight B->A->B.", panel=OBJECTIVE, group="cycle_ab",  # noqa: N815
                             check=_WEIGHT)
    lambda_identity: float = option(0.5, "Identity loss weight, relative to the cycle weight.", panel=OBJECTIVE,
                                    group="cycle", check=_WEIGHT)
    lambda_L1: float = option(100.0, "L1 loss weight.", panel=OBJECTIVE, group="paired", check=_WEIGHT)  # noqa: N815
    lambda_gp: float = option(10.0, "Gradient penalty weight of --gan-mode wgangp.", panel=OBJECTIVE,
                              group="wgangp", check=_WEIGHT)
    projected_gan_mode: str = option("hinge", "GAN objective of the projected discriminator (--netD projected, "
                                     "projected+basic); --gan-mode stays the PatchGAN's.", panel=OBJECTIVE,
                                     group="image_d", choices=("hinge", "lsgan", "vanilla"))
    diffaug: str = option("", "DiffAugment on every image the discriminator sees, real and fake: comma-separated "
                          "color, translation, cutout ('' off).", panel=OBJECTIVE, group="image_d",
                          check=lambda name, value: parse_policy(value, name), default_help="off")
    pool_size: int = option(50, "Fake image history the discriminator sees (0: none).", panel=OBJECTIVE,
                            group="cycle", check=_COUNT)
    # contrastive unpaired translation (CUT / FastCUT): PatchNCE on the generator's encoder features
    lambda_GAN: float = option(1.0, "GAN loss weight.", panel=OBJECTIVE, group="nce", check=_WEIGHT)  # noqa: N815
    lambda_NCE: float = option(1.0, "PatchNCE loss weight (CUT 1, FastCUT 10).", panel=OBJECTIVE,  # noqa: N815
                               group="nce", check=_WEIGHT)
    nce_idt: bool = option(True, "Also PatchNCE between real B and G(B), the identity term (CUT on, FastCUT off).",
                           panel=OBJECTIVE, group="nce")
    nce_layers: str = option("0,4,7,10,14", "Generator layers PatchNCE compares, comma-separated indices into its "
                             "layer sequence (the default: the input, both downsampling convolutions, residual "
                             "blocks 1 and 5).", panel=OBJECTIVE, group="nce",
                             check=lambda name, value: nce_layer_indices(value, name))
    nce_T: float = option(0.07, "Temperature of the PatchNCE loss.", panel=OBJECTIVE, group="nce",  # noqa: N815
                          check=number(0.0, strict=True))
    num_patches: int = option(256, "Locations PatchNCE samples per layer and image.", panel=OBJECTIVE, group="nce",
                              check=_POSITIVE)
    netF_nc: int = option(256, "Units of the two-layer MLP head over each PatchNCE layer.",  # noqa: N815
                          panel=NETWORKS, group="nce", check=_POSITIVE)
    flip_equivariance: bool = option(False, "Flip G's input at random and its PatchNCE features back (FastCUT on).",
                                     panel=OBJECTIVE, group="nce")
    # text conditioning
    text_encoder: str = option("byte", "Text encoder (byte trains with the GAN; minilm, clip are frozen).", panel=TEXT,
                               group="text", choices=_text_encoders)
    text_dim: int = option(128, "Embedding size of the byte encoder.", panel=TEXT, group="text", check=_POSITIVE)
    noise_dim: int = option(100, "Noise vector size.", panel=TEXT, group="text2image", check=_POSITIVE)
    # image-text matching: the text encoder's pretraining steps on the real captioned images, then
    # the weight of the frozen matcher's loss on the generator's images
    pretrain_text_steps: int = option(
        0, "First steps train only an image-text matcher (and the byte encoder) on the real images "
        "(0: the encoder trains with D).", panel=TEXT, group="text2image", check=_COUNT)
    lambda_match: float = option(0.0, "Weight of the frozen matcher's loss on the generator's images.",
                                 panel=TEXT, group="text2image", check=_WEIGHT)
    match_bank: int = option(0, "The matching loss compares each image with its caption and the last N distinct "
                             "captions (0: the batch only).", panel=TEXT, group="text2image", check=_COUNT)
    matcher_ndf: int | None = option(None, "Width of the matcher's image encoder.", panel=TEXT, group="text2image",
                                     check=integer(1, optional=True, none="the width of ndf"), default_help="ndf")
    lambda_ma_gp: float = option(0.0, "Weight of DF-GAN's matching-aware gradient penalty on D (0: off).",
                                 panel=TEXT, group="text2image", check=_WEIGHT)
    ema_decay: float = option(0.0, "Keep a moving average of the generator's weights with this decay (e.g. 0.999); "
                              "samples, evaluation and the saved weights use it (0: off).", panel=OPTIMISATION,
                              check=number(0.0, below=1.0, fix="0 turns it off; e.g. 0.999"))
    # optimisation and schedule
    lr: float = option(2e-4, "Adam learning rate.", panel=OPTIMISATION, check=number(0.0, strict=True))
    beta1: float = option(0.5, "Adam beta1.", panel=OPTIMISATION, check=number(0.0, below=1.0))
    beta2: float = option(0.999, "Adam beta2.", panel=OPTIMISATION, check=number(0.0, below=1.0))
    lr_policy: str = option("linear", "Learning rate schedule.", panel=OPTIMISATION, choices=LR_POLICIES)
    n_epochs: int = option(100, "Epochs at the initial learning rate.", panel=OPTIMISATION, check=_COUNT)
    n_epochs_decay: int = option(100, "Epochs of decay to zero.", panel=OPTIMISATION, check=_COUNT)
    lr_scale: str = option("none", "Scale lr with the batch size against the task's reference batch: linear "
                           "(lr x batch / reference), sqrt (lr x sqrt(batch / reference)) or none.",
                           panel=OPTIMISATION, choices=LR_SCALES)
    max_steps: int | None = option(None, "Stop after this many steps in all.", panel=OPTIMISATION,
                                   check=integer(1, optional=True), default_help="no limit")
    # A wall-clock budget, for comparing tasks at equal compute: the run stops and saves as at max_steps.
    max_minutes: float | None = option(None, "Stop after this many minutes of training (this process; a resume "
                                       "starts a new budget).", panel=OPTIMISATION,
                                       check=number(0.0, strict=True, optional=True), default_help="no limit")
    # runtime
    seed: int = option(0, "Random seed.", panel=RUNTIME)
    device: str = option("auto", "Where to train.", panel=RUNTIME, choices=DEVICES)
    amp: bool = option(False, "Mixed precision (bf16, or fp16 with loss scaling).", panel=RUNTIME)
    # speed levers (translate.training.speed; docs/training.md#speed): None = off, unless speed=auto
    # picks it for the device; an explicit value always wins
    speed: str = option("off", "auto: the levers measured fastest on this device type (docs/training.md#speed); "
                        "explicit lever options win.", panel=SPEED, choices=SPEED_MODES)
    channels_last: bool | None = option(None, "Networks and images in channels-last memory layout.", panel=SPEED,
                                        default_help="off (speed auto: per device)")
    compile: bool | None = option(None, "torch.compile the generators and discriminators (the losses stay eager).",
                                  panel=SPEED, default_help="off (speed auto: per device)")
    compile_mode: str = option("default", "torch.compile mode.", panel=SPEED, choices=COMPILE_MODES)
    adam: str = option("auto", "Adam implementation: fused and foreach run the update in fewer kernels; auto: "
                       "PyTorch's choice, or fused on CUDA with speed auto.", panel=SPEED, choices=ADAM_IMPLEMENTATIONS)
    tf32: str = option("auto", "TF32 matmuls and convolutions on CUDA (auto: on for CUDA; the reference runs plain "
                       "fp32).", panel=SPEED, choices=AUTO_ON_OFF)
    cudnn_benchmark: str = option("auto", "cudnn.benchmark: time the convolution algorithms once per shape (auto: "
                                  "on for CUDA).", panel=SPEED, choices=AUTO_ON_OFF)
    cache_data: bool | None = option(None, "Decode the training set once into uint8 memory (pinned on CUDA) and "
                                     "batch from there; crops and flips stay on the device.", panel=SPEED,
                                     default_help="off (speed auto: when it fits)")
    loss_sync: str = option("log", "When the losses are copied to the host (and the NaN check reads them): every "
                            "log_every steps (log) or every step (step, the old behaviour).", panel=SPEED,
                            choices=LOSS_SYNC)
    # bookkeeping
    log_every: int = option(50, "Log losses every K steps.", panel=LOGGING, check=_POSITIVE)
    sample_every: int = option(500, "Sample grid every K steps.", panel=LOGGING, check=_POSITIVE)
    save_epoch_freq: int = option(5, "Keep a checkpoint every K epochs.", panel=LOGGING, check=_POSITIVE)
    # evaluation during training: every K epochs (0: off) on the first N held-out images of
    # `eval_phase` (None: the task's own held-out folder), FID/KID optional
    eval_every: int = option(0, "Score the generators on held-out images every K epochs and at the end, logged "
                             "with the losses (0: off).", panel=EVALUATION, group="eval", check=_COUNT)
    eval_phase: str | None = option(None, "Held-out folder for --eval-every.", panel=EVALUATION, group="eval",
                                    default_help="the task's")
    eval_limit: int | None = option(200, "First N held-out images per direction for --eval-every.",
                                    panel=EVALUATION, group="eval",
                                    check=integer(2, optional=True, why="FID needs two images"))
    eval_fid: bool = option(True, "FID and KID in --eval-every (needs the Inception weights, see translate eval).",
                            panel=EVALUATION, group="eval")

    def __post_init__(self) -> None:
        task = get_task(self.task)
        for field in dataclasses.fields(self):
            if task.uses(field):
                check_field_choice(field, getattr(self, field.name), task)
            check_field_value(field, getattr(self, field.name))
        _check_crop_size(self, task)
        _check_schedule(self)
        _check_evaluation(self, task)
        _check_projected(self)
        task.check(self)

    @property
    def total_epochs(self) -> int:
        return self.n_epochs + self.n_epochs_decay

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(TrainConfig))


def _no_check(config: TrainConfig) -> None:
    return None


@dataclass(frozen=True)
class Task:
    """One row of the task table: everything the config, the loop and the CLI need to know of a task.

    Attributes:
        name: the task's name (`translate train NAME`).
        summary: one line for `--help`.
        step: `(config, device, wrap) -> TaskStep`, its networks, optimisers and step.
        defaults: the reference implementation's defaults for this task (override the field defaults).
        generators, discriminators: the netG and netD choices.
        size_multiple: netG -> the multiple the image sides must be (crop_size is checked).
        option_groups: the field groups it uses (the fields' `group`); "eval" enables eval_every.
        build_dataset: config -> the training Dataset.
        images_key: the key of a collated batch that holds its images (to count the samples).
        save_weights: (step, config, run_dir) -> {name: weights folder} written at the end of a run.
        check: config -> None, raises the task's own refusals (InvalidCombinationError, ...).
        eval_sets: (config, phase, limit) -> the held-out sets eval_every scores (with "eval").
        eval_phase: the held-out folder eval_every reads when eval_phase is None.
    """

    name: str
    summary: str
    step: Callable[..., Any]
    defaults: Mapping[str, Any]
    generators: tuple[str, ...]
    discriminators: tuple[str, ...]
    size_multiple: Callable[[str], int]
    option_groups: frozenset[str]
    build_dataset: Callable[[TrainConfig], Any]
    save_weights: Callable[[Any, TrainConfig, Path], dict[str, Path]]
    images_key: str = "a"
    check: Callable[[TrainConfig], None] = _no_check
    eval_sets: Callable[[TrainConfig, str, int | None], list[Any]] | None = None
    eval_phase: str = "test"

    def uses(self, field: dataclasses.Field | str) -> bool:
        """Whether the task reads this TrainConfig field (a field, or its name)."""
        if isinstance(field, str):
            field = _FIELDS[field]
        group = field.metadata.get("group")
        return group is None or group in self.option_groups


_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Add (or replace) a row of the task table; translate.training.tasks registers the built-in ones."""
    unknown = set(task.defaults) - FIELD_NAMES
    if unknown:
        raise ValueError(f"task {task.name!r}: defaults for unknown fields {sorted(unknown)}")
    _TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    """The task row named `name`; InvalidChoiceError lists the others."""
    if name not in _TASKS:
        raise InvalidChoiceError("task", name, task_names())
    return _TASKS[name]


def task_names() -> tuple[str, ...]:
    """The registered tasks, in the order they were registered."""
    return tuple(_TASKS)


def _check_crop_size(config: TrainConfig, task: Task) -> None:
    """Checked here, before any data is read: the generator needs sides that are a multiple of its
    size multiple (a U-Net halves the image once per level)."""
    multiple = task.size_multiple(config.netG)
    if "crop" not in config.preprocess or config.crop_size % multiple == 0:
        return
    family = config.netG.rsplit("_", 1)[0]
    others = [g for g in task.generators if g != config.netG and g.rsplit("_", 1)[0] == family
              and config.crop_size % task.size_multiple(g) == 0]
    fix = f"crop_size={max(multiple, config.crop_size // multiple * multiple)}"
    fix += "".join(f" or netG={g!r}" for g in others)
    raise InvalidCombinationError(
        f"netG={config.netG!r} needs image sides that are multiples of {multiple}, but crop_size="
        f"{config.crop_size}; use {fix}", "netG", "crop_size")


def _check_projected(config: TrainConfig) -> None:
    """The projected discriminator's needs, before any data is read: RGB images of at least 32 px,
    no gradient penalty, and its ImageNet weights installed."""
    if not config.netD.startswith("projected"):
        return
    if config.gan_mode == "wgangp":
        raise InvalidCombinationError(
            f"gan_mode='wgangp' cannot train netD={config.netD!r}: the gradient penalty would pass through the frozen "
            "ImageNet network; use gan_mode lsgan, vanilla or hinge (projected_gan_mode sets its own loss)",
            "gan_mode", "netD")
    if min(config.input_nc, config.output_nc) != 3:
        raise InvalidCombinationError(
            f"netD={config.netD!r} judges RGB images with an ImageNet network, but input_nc={config.input_nc} and "
            f"output_nc={config.output_nc}; use netD='basic' for other channel counts", "netD", "input_nc", "output_nc")
    if config.crop_size < PROJECTED_MIN_SIZE:
        raise InvalidCombinationError(
            f"netD={config.netD!r} needs images of at least {PROJECTED_MIN_SIZE} px (its feature network downsamples "
            f"32x), but crop_size={config.crop_size}; use crop_size >= {PROJECTED_MIN_SIZE} or netD='basic'",
            "netD", "crop_size")
    path = backbone_weights_path()
    if not path.is_file():
        raise MissingBackboneError(f"netD={config.netD!r} needs the EfficientNet-Lite0 weights file {str(path)!r}, "
                                   f"which does not exist; install it with: {BACKBONE_INSTALL}")


def _check_schedule(config: TrainConfig) -> None:
    if config.total_epochs < 1:
        raise InvalidCombinationError("n_epochs plus n_epochs_decay must be at least 1, got 0",
                                      "n_epochs", "n_epochs_decay")


def _check_evaluation(config: TrainConfig, task: Task) -> None:
    if config.eval_every and not task.uses("eval_every"):
        scored = ", ".join(t.name for t in _TASKS.values() if t.uses("eval_every"))
        raise InvalidCombinationError(f"eval_every={config.eval_every} is available for {scored}, not "
                                      f"{config.task}; leave it at 0", "eval_every")


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
        task: a registered task ("cyclegan", "pix2pix", "text2image", "textcycle", "cut", "fastcut",
            see `task_names()`); may be None when `base` or `overrides` names it.
        base: a complete saved config (resume) or a partial YAML mapping.
        overrides: options given explicitly (None values are ignored).

    Raises:
        InvalidChoiceError, InvalidValueError, InvalidCombinationError: a bad option, named as
            the field is (`crop_size=100: expected ...`).
    """
    base = _normalise_keys(base or {}, "config")
    overrides = _normalise_keys({k: v for k, v in (overrides or {}).items() if v is not None}, "option")
    name = task or overrides.get("task") or base.get("task")
    values: dict[str, Any] = dict(get_task(name).defaults)
    values.update(base)
    values.update(overrides)
    values["task"] = name
    return TrainConfig(**values)


def save_config(config: TrainConfig, path: Path) -> None:
    with path.open("w") as handle:
        yaml.safe_dump(config.to_dict(), handle, sort_keys=False)

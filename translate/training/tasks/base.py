"""What every task shares: the base step (networks, optimisers, AMP, checkpoint state), the
helpers the steps use, and the data and saving helpers of the two-domain image tasks.

Naming: g_ab maps domain A to B, g_ba maps B to A; d_b judges domain B (real_b vs. fake_b) and d_a
judges domain A. The reference calls these G_A, G_B, D_A (judging B!) and D_B.

Where the reference calls a network once per input, a step may concatenate the inputs into one
call: instance norm is per sample, so the result is the same and larger batches use the hardware
better. With batch norm the batch statistics would change, so those calls stay separate.
"""

from __future__ import annotations

import contextlib
import logging
from itertools import chain
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from translate.core.device import cpu_has_native_bf16
from translate.core.errors import InvalidCombinationError
from translate.data import PreprocessConfig, UnpairedDataset
from translate.formats.weights import save_weights
from translate.models import DiscriminatorConfig, GeneratorConfig
from translate.training.config import TrainConfig
from translate.training.diffaug import DiffAugment
from translate.training.ema import EMA
from translate.training.losses import GANLoss, gradient_penalty
from translate.training.periodic_eval import EvalSet, eval_preprocess, load_images
from translate.training.speed import SpeedPlan, resolve_speed

__all__ = ["TaskStep", "Wrap", "amp_dtype", "domain_channels", "preprocess_config", "save_generator_folders",
           "save_text_folder", "set_requires_grad", "unwrap"]

Wrap = Callable[[nn.Module], nn.Module]
logger = logging.getLogger(__name__)

def unwrap(module: nn.Module) -> nn.Module:
    """The plain network inside torch.compile's and DistributedDataParallel's wrappers (or the
    module itself)."""
    module = getattr(module, "_orig_mod", module)  # torch.compile's OptimizedModule
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def set_requires_grad(modules: list[nn.Module], flag: bool) -> None:
    for module in modules:
        for parameter in module.parameters():
            parameter.requires_grad_(flag)


def amp_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 where the device runs it natively (CPU with AVX-512 BF16 / AMX, CUDA sm80+), else float16."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16


class TaskStep:
    """Networks, optimisers and the step of one task; the loop only calls `train_step`."""

    task: str
    models: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]

    def __init__(self, config: TrainConfig, device: torch.device, wrap: Wrap | None = None) -> None:
        self.config = config
        self.device = device
        self.speed: SpeedPlan = resolve_speed(config, device)
        self._ddp_wrap: Wrap = wrap or (lambda module: module)
        self.criterion_gan = GANLoss(config.gan_mode, judge_modes={"projected": config.projected_gan_mode})
        # DiffAugment: its own random stream, saved in the checkpoint, so resume is exact.
        self.diffaug = DiffAugment(config.diffaug, seed=config.seed + 13) if config.diffaug else None
        self.emas: dict[str, EMA] = {}
        # Each generator's input of the last step ({model key: images}), for the averages' samples.
        self.sample_sources: dict[str, Tensor] = {}
        self.use_amp = config.amp
        self.amp_dtype = amp_dtype(device)
        if config.amp and device.type == "cpu" and not cpu_has_native_bf16():
            logger.warning("amp=True on a CPU without AVX-512 BF16 or AMX: bfloat16 is emulated there and "
                           "measured 2.5x slower than float32 (docs/benchmarks.md); consider amp=False")
        # float16 gradients underflow without loss scaling; bfloat16 has float32's range.
        self.scaler = torch.amp.GradScaler(
            device.type, enabled=config.amp and self.amp_dtype == torch.float16)
        self.gp_generator = torch.Generator().manual_seed(config.seed + 7)

    # -- construction helpers ------------------------------------------------------------------
    def _generator_config(self, input_nc: int, output_nc: int) -> GeneratorConfig:
        c = self.config
        return GeneratorConfig(name=c.netG, input_nc=input_nc, output_nc=output_nc, ngf=c.ngf,
                               norm=c.norm, dropout=c.dropout, init_type=c.init_type,
                               init_gain=c.init_gain)

    def _discriminator_config(self, input_nc: int) -> DiscriminatorConfig:
        c = self.config
        return DiscriminatorConfig(name=c.netD, input_nc=input_nc, ndf=c.ndf, n_layers=c.n_layers_D,
                                   norm=c.norm, init_type=c.init_type, init_gain=c.init_gain)

    def wrap(self, module: nn.Module) -> nn.Module:
        """A network on the device, ready to train: channels-last (speed plan), DDP under torchrun,
        then torch.compile (speed plan), in the order PyTorch recommends (compile outside DDP)."""
        if self.speed.channels_last:
            module = module.to(memory_format=torch.channels_last)
        module = self._ddp_wrap(module)
        if self.speed.compile:
            module = torch.compile(module, mode=self.speed.compile_mode)
        return module

    def _build(self, builder: Callable[[Any], nn.Module], architecture: Any) -> nn.Module:
        return self.wrap(builder(architecture).to(self.device))

    def _adam(self, modules: list[nn.Module]) -> torch.optim.Adam:
        """Adam at the speed plan's learning rate (lr_scale applied) and implementation."""
        params = chain.from_iterable(m.parameters() for m in modules)
        return torch.optim.Adam(params, lr=self.speed.lr, betas=(self.config.beta1, self.config.beta2),
                                **self.speed.adam_kwargs())

    def autocast(self) -> contextlib.AbstractContextManager:
        if not self.use_amp:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _backward_and_step(self, loss: Tensor, optimizer: torch.optim.Optimizer) -> None:
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()

    def judge(self, d: nn.Module, images: Tensor) -> Any:
        """`d` on `images` `(B, C, H, W)`, through DiffAugment when the run uses it: every image a
        discriminator sees, real or fake, in its step or in G's, goes through here."""
        return d(self.diffaug(images) if self.diffaug is not None else images)

    def _discriminate_pair(self, d: nn.Module, real: Tensor, fake: Tensor) -> tuple[Any, Any]:
        """D on real and on (detached) fake: one call when D's norm is per sample."""
        if self.config.norm != "batch":
            prediction = self.judge(d, torch.cat([real, fake.detach()]))
            return _split_batch(prediction, real.shape[0])
        return self.judge(d, real), self.judge(d, fake.detach())

    def _discriminator_loss(self, d: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        with self.autocast():
            pred_real, pred_fake = self._discriminate_pair(d, real, fake)
        loss = 0.5 * (self.criterion_gan(pred_real, True) + self.criterion_gan(pred_fake, False))
        if self.config.gan_mode == "wgangp":
            loss = loss + self.config.lambda_gp * gradient_penalty(
                unwrap(d), real, fake, generator=self.gp_generator)
        return loss

    # -- interface used by the loop --------------------------------------------------------------
    def batch_inputs(self, batch: dict[str, Any], preprocess: PreprocessConfig | None,
                     generator: torch.Generator) -> tuple[Any, ...]:
        """The arguments of `train_step` for one collated batch of the task's data set: moved to the
        device and augmented there (random crops and flips drawn from `generator`)."""
        raise NotImplementedError

    def train_step(self, *inputs: Any) -> dict[str, Tensor]:
        """One optimisation step on `batch_inputs(...)`; returns the detached scalar losses."""
        raise NotImplementedError

    def generator_specs(self) -> dict[str, dict[str, Any]]:
        """Data direction ("AtoB"/"BtoA") -> {"model": key in `models`, "architecture": dict}."""
        raise NotImplementedError

    def visuals(self) -> list[Tensor]:
        """Rows for the sample grid, each `(B, C, H, W)` in [-1, 1], of the last step."""
        raise NotImplementedError

    # -- the generators' moving averages (ema_decay > 0) ------------------------------------------
    def averaged_models(self) -> tuple[str, ...]:
        """Keys of `models` that the moving average follows: the generators the run saves."""
        return tuple(spec["model"] for spec in self.generator_specs().values())

    def enable_ema(self) -> None:
        """With ema_decay > 0, an average of each saved generator, `models[key + "_ema"]`: not in an
        optimiser and not wrapped; samples, evaluation and the weights folders use it."""
        if self.config.ema_decay <= 0:
            return
        for key in self.averaged_models():
            self.emas[key] = EMA(unwrap(self.models[key]), self.config.ema_decay).to(self.device)
            self.models[f"{key}_ema"] = self.emas[key]

    def update_ema(self) -> None:
        """Move each average towards its generator (after every optimisation step)."""
        for key, ema in self.emas.items():
            ema.update(unwrap(self.models[key]))

    def sample_rows(self) -> list[Tensor]:
        """The sample grid's rows: `visuals()`, then with ema_decay each average's translation of
        its generator's last input (the rows saved models would give)."""
        rows = list(self.visuals())
        with torch.no_grad():
            rows += [self.emas[key](source) for key, source in self.sample_sources.items() if key in self.emas]
        return rows

    def saved_generator(self, key: str) -> nn.Module:
        """The network saved, scored and sampled for `models[key]`: its average when there is one."""
        return self.emas[key].model if key in self.emas else unwrap(self.models[key])

    def plain_models(self) -> dict[str, nn.Module]:
        return {name: unwrap(model) for name, model in self.models.items()}

    def state_dict(self) -> dict[str, Any]:
        return {
            "models": {name: model.state_dict() for name, model in self.plain_models().items()},
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "scaler": self.scaler.state_dict(),
            "pools": {name: pool.state_dict() for name, pool in getattr(self, "pools", {}).items()},
            "gp_rng": self.gp_generator.get_state(),
            "discriminator": {"netD": self.config.netD, "diffaug": self.diffaug.state_dict() if self.diffaug else None},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = self._check_resumable(state)
        for name, model in self.plain_models().items():
            model.load_state_dict(state["models"][name])
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        for name, pool in getattr(self, "pools", {}).items():
            pool.load_state_dict(state["pools"][name], device=self.device)
        self.gp_generator.set_state(state["gp_rng"])
        if self.diffaug is not None:
            self.diffaug.load_state_dict(state["discriminator"]["diffaug"])

    def _check_resumable(self, state: dict[str, Any]) -> dict[str, Any]:
        """Refuse a checkpoint trained as another task, or with another discriminator or DiffAugment
        policy; start the moving averages of a run resumed with ema_decay from its generators."""
        trained_as = state.get("task", self.config.task)
        if trained_as != self.config.task:  # rows may share a step and its networks (CUT and FastCUT)
            raise InvalidCombinationError(
                f"this checkpoint was trained as {trained_as!r} and cannot continue as {self.config.task!r}: each "
                "task has its own objective and schedule, even where the networks are the same; resume it as "
                f"{trained_as!r} or start a new run")
        saved = state.get("discriminator") or {"netD": self.config.netD, "diffaug": None}
        policy = saved["diffaug"]["policy"] if saved["diffaug"] else ""
        given = ",".join(self.diffaug.policies) if self.diffaug else ""
        if saved["netD"] != self.config.netD or policy != given:
            raise InvalidCombinationError(
                f"this run was trained with netD={saved['netD']!r} and diffaug={policy!r}, not netD="
                f"{self.config.netD!r} and diffaug={given!r}: a discriminator trained on other networks or other "
                "augmentations would have to start again; resume with the run's values or start a new run",
                "netD", "diffaug")
        missing = [key for key in self.emas if f"{key}_ema" not in state["models"]]
        if missing:  # a run started without ema_decay and resumed with it: each average starts at its G
            models = dict(state["models"])
            for key in missing:
                fresh = EMA(self.plain_models()[key], self.config.ema_decay)
                fresh.model.load_state_dict(state["models"][key])
                models[f"{key}_ema"] = fresh.state_dict()
            state = {**state, "models": models}
        return state




def _split_batch(prediction: Any, n: int) -> tuple[Any, Any]:
    """The first `n` samples' logits and the rest, of a tensor or of a `{judge: logits}` dict."""
    if isinstance(prediction, dict):
        halves = {name: _split_batch(logits, n) for name, logits in prediction.items()}
        return {k: v[0] for k, v in halves.items()}, {k: v[1] for k, v in halves.items()}
    return prediction[:n], prediction[n:]


# --- helpers of the tasks' rows -------------------------------------------------------------------

def preprocess_config(config: TrainConfig) -> PreprocessConfig:
    return PreprocessConfig(preprocess=config.preprocess, load_size=config.load_size,
                            crop_size=config.crop_size, flip=config.flip)


def domain_channels(config: TrainConfig) -> tuple[int, int]:
    """(channels of domain A, of domain B): input_nc / output_nc describe source and target, so
    they follow `direction` like the reference."""
    if config.direction == "AtoB":
        return config.input_nc, config.output_nc
    return config.output_nc, config.input_nc


def save_generator_folders(step: TaskStep, config: TrainConfig, run_dir: Path) -> dict[str, Path]:
    """Export each generator of `step.generator_specs()` as a weights folder (config.json +
    model.safetensors) under run_dir/weights/<direction>/."""
    names = {"AtoB": (config.name_a, config.name_b), "BtoA": (config.name_b, config.name_a)}
    out: dict[str, Path] = {}
    for direction, spec in step.generator_specs().items():
        source, target = names[direction]
        out[direction] = save_weights(
            step.saved_generator(spec["model"]), run_dir / "weights" / direction,
            GeneratorConfig(**spec["architecture"]), task=config.task, direction=direction,
            domains={"source": source, "target": target}, source=_weights_source(step, spec["model"]))
    return out


def _weights_source(step: TaskStep, key: str) -> dict[str, Any] | None:
    """config.json's record of which weights a folder holds: the moving average, with its decay
    and update count, when the run kept one."""
    if key not in step.emas:
        return None
    return {"weights": "ema", "ema_decay": step.config.ema_decay, "ema_updates": int(step.emas[key].updates)}


def save_text_folder(step: Any, config: TrainConfig, run_dir: Path) -> dict[str, Path]:
    """Text models keep the generator and the text encoder in one folder, run_dir/weights/<task>/."""
    return {config.task: step.save_weights(run_dir / "weights" / config.task)}


# --- unpaired data (CycleGAN, CUT) ------------------------------------------------------------------


def build_unpaired_dataset(config: TrainConfig) -> UnpairedDataset:
    """The trainA / trainB folders of `config.data`, unpaired, with the run's preprocessing."""
    nc_a, nc_b = domain_channels(config)
    return UnpairedDataset(config.data, phase="train", channels_a=nc_a, channels_b=nc_b,
                           preprocess=preprocess_config(config), seed=config.seed)


def unpaired_eval_sets(config: TrainConfig, phase: str, limit: int | None,
                       directions: tuple[str, ...] = ("AtoB", "BtoA")) -> list[EvalSet]:
    """`phase`A / `phase`B (testA / testB), the first `limit` of each, translated in `directions`
    and compared with the other domain's images (FID / KID: no ground truth)."""
    nc_a, nc_b = domain_channels(config)
    preprocess = eval_preprocess(config)
    data = UnpairedDataset(config.data, phase=phase, channels_a=nc_a, channels_b=nc_b, preprocess=preprocess)
    a = load_images(data.paths_a[:limit], nc_a, preprocess)
    b = load_images(data.paths_b[:limit], nc_b, preprocess)
    sets = {"AtoB": EvalSet("AtoB", a, b, paired=False), "BtoA": EvalSet("BtoA", b, a, paired=False)}
    return [sets[direction] for direction in directions]


def check_unpaired_eval(config: TrainConfig) -> None:
    """Unpaired evaluation scores FID and KID only, so eval_every needs eval_fid."""
    if config.eval_every and not config.eval_fid:
        raise InvalidCombinationError(
            f"eval_every={config.eval_every} on {config.task} scores FID and KID only (unpaired data has no ground "
            "truth), so it cannot run with eval_fid=False; drop one of them", "eval_every", "eval_fid")

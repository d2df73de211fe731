"""gpu_check steps train-TASK (cyclegan, pix2pix, cut): the reference-equivalent training step against ours
with each speed lever alone and all together, eager variants round-robin, compiled ones after."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from translate.training.config import make_config
from translate.training.speed import resolve_speed
from translate.training.tasks import build_step
from translate.training.tasks.cyclegan import CycleGANStep

from .common import natural_images, sync
from .gpu_check_common import Context, Scale, logger

H2Z_IMAGES = 1334 * 200  # horse2zebra: 1,334 trainA images x 200 epochs
LEVERS = (("channels_last", {"channels_last": True}), ("compile", {"compile": True}), ("adam_fused", {"adam": "fused"}),
          ("tf32", {"tf32": "on"}), ("cudnn_benchmark", {"cudnn_benchmark": "on"}), ("amp", {"amp": True}))
REFERENCE_FLAGS = {"speed": "off", "tf32": "off", "cudnn_benchmark": "off"}


# --- steps: train-TASK ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    name: str
    overrides: dict[str, Any]
    batched: bool = True  # cyclegan: False = the reference's six generator calls one by one


@dataclass
class Live:
    """One variant's step, inputs and timings at one batch size."""

    variant: Variant
    config: Any
    plan: Any
    step: Any
    inputs: tuple[Any, ...]
    seconds: float = 0.0
    steps: int = 0
    flops: int | None = None
    warmup_s: float = 0.0
    compile_s: float | None = None
    dynamo: dict[str, int] = field(default_factory=dict)
    error: str | None = None


def train_variants(task: str) -> list[Variant]:
    variants = [Variant("reference", REFERENCE_FLAGS, batched=task != "cyclegan")]
    if task == "cyclegan":
        variants.append(Variant("ours", REFERENCE_FLAGS))
    variants += [Variant(name, {**REFERENCE_FLAGS, **extra}) for name, extra in LEVERS]
    variants.append(Variant("all", {"speed": "auto", "amp": True}))
    return variants


def task_overrides(task: str, scale: Scale, batch: int) -> dict[str, Any]:
    size = scale.pix2pix_size if task == "pix2pix" else scale.size
    overrides: dict[str, Any] = {"crop_size": size, "load_size": size, "batch_size": batch, "ngf": scale.ngf,
                                 "ndf": scale.ngf}
    if task == "pix2pix":
        overrides["netG"] = "unet_256" if size >= 256 else "unet_128"
    return overrides


def build_live(ctx: Context, task: str, variant: Variant, batch: int) -> Live:
    config = make_config(task, overrides={**task_overrides(task, ctx.scale, batch), "device": ctx.device.type,
                                          **variant.overrides})
    plan = resolve_speed(config, ctx.device)
    plan.apply_backend_flags()
    torch.manual_seed(0)
    step = build_step(config, ctx.device) if variant.batched else CycleGANStep(config, ctx.device, batched=False)
    images = natural_images(2 * batch, 3, config.crop_size, seed=batch).to(ctx.device)
    if plan.channels_last:  # as the training loop hands them over
        images = images.contiguous(memory_format=torch.channels_last)
    return Live(variant, config, plan, step, (images[:batch], images[batch:]))


def timed_step(live: Live) -> float:
    sync(live.step.device)
    started = time.perf_counter()
    live.step.train_step(*live.inputs)
    sync(live.step.device)
    return time.perf_counter() - started


def dynamo_counts() -> dict[str, int]:
    try:
        from torch._dynamo.utils import counters
    except ImportError:
        return {}
    return {"graphs": int(counters["stats"].get("unique_graphs", 0)),
            "graph_breaks": int(sum(counters["graph_break"].values()))}


def prepare_live(ctx: Context, live: Live) -> None:
    """FLOPs of one eager step, then warm-up; a compiled variant runs until its step time settles
    (compiles and recompiles happen there) and records the seconds beyond its steady steps."""
    live.plan.apply_backend_flags()
    if not live.plan.compile:
        with FlopCounterMode(display=False) as counter:
            live.step.train_step(*live.inputs)
        live.flops = int(counter.get_total_flops())
    before = dynamo_counts()
    times: list[float] = []
    limit = ctx.scale.compile_warmup_max if live.plan.compile else ctx.scale.warmup
    for _ in range(limit):
        times.append(timed_step(live))
        settled = len(times) >= 3 and times[-1] <= 1.3 * times[-2]
        if live.plan.compile and settled:
            break
    live.warmup_s = sum(times)
    if live.plan.compile:
        live.compile_s = max(0.0, live.warmup_s - len(times) * times[-1])
        after = dynamo_counts()
        live.dynamo = {k: after.get(k, 0) - before.get(k, 0) for k in after}


def round_robin(ctx: Context, lives: list[Live], label: str) -> int:
    """Time `steps_per_round` steps of each live variant per round, rotating the order; returns rounds done."""
    scale, done, round_s = ctx.scale, 0, 0.0
    for round_index in range(scale.rounds):
        if round_index and ctx.left() < round_s + 5:
            ctx.note_incomplete(f"{label}: {round_index} of {scale.rounds} rounds (budget)")
            break
        started = time.perf_counter()
        shift = round_index % len(lives)
        for live in lives[shift:] + lives[:shift]:
            live.plan.apply_backend_flags()
            sync(live.step.device)
            t0 = time.perf_counter()
            for _ in range(scale.steps_per_round):
                live.step.train_step(*live.inputs)
            sync(live.step.device)
            live.seconds += time.perf_counter() - t0
            live.steps += scale.steps_per_round
        round_s, done = time.perf_counter() - started, done + 1
    return done


def peak_kind(live: Live) -> str:
    if live.config.amp:
        return "bf16" if live.step.amp_dtype == torch.bfloat16 else "fp16"
    return "tf32" if live.plan.tf32 else "fp32"


def live_row(task: str, batch: int, live: Live, reference: Live | None, phase: str) -> dict[str, Any]:
    row: dict[str, Any] = {"task": task, "batch": batch, "size": live.config.crop_size, "variant": live.variant.name,
                           "phase": phase, "overrides": live.variant.overrides, "plan": live.plan.to_dict(),
                           "amp": live.config.amp, "peak_kind": peak_kind(live), "status": "ok"}
    if live.error or not live.steps:
        row["status"] = live.error or "not timed (budget)"
        return row
    it_per_s = live.steps / live.seconds
    flops = live.flops if live.flops is not None else (reference.flops if reference else None)
    row.update(it_per_s=it_per_s, images_per_s=it_per_s * batch, steps_timed=live.steps, seconds=live.seconds,
               warmup_s=live.warmup_s, compile_s=live.compile_s, dynamo=live.dynamo or None,
               gflop_per_step=flops / 1e9 if flops else None, tflop_per_s=flops * it_per_s / 1e12 if flops else None,
               flops_counted_on="this variant" if live.flops is not None else "the eager reference (same arithmetic)",
               h2z_200_epochs_hours=H2Z_IMAGES / (it_per_s * batch) / 3600)
    if reference is not None and reference.steps:
        row["reference_it_per_s"] = reference.steps / reference.seconds
        row["vs_reference"] = it_per_s / row["reference_it_per_s"]
    return row


def start_live(ctx: Context, task: str, variant: Variant, batch: int) -> Live | dict[str, Any]:
    """Build and warm one variant; a failure gives its row (the step goes on)."""
    live = None
    try:
        live = build_live(ctx, task, variant, batch)
        prepare_live(ctx, live)
    except Exception as error:  # noqa: BLE001 - e.g. a lever this PyTorch lacks: a finding, not a crash
        if ctx.timed_out:
            raise
        # A ValueError while building: translate refuses the combination here (its message says why).
        status = f"{'refused' if live is None and isinstance(error, ValueError) else 'error'}: {error}"
        logger.warning("%s batch %d %s: %s", task, batch, variant.name, status, exc_info=not status.startswith("ref"))
        if live is None:
            return {"task": task, "batch": batch, "variant": variant.name, "status": status}
        live.error = status
    return live


def train_phase(ctx: Context, task: str, batch: int, variants: list[Variant], phase: str) -> None:
    """Warm every variant (compile ones only while min_compile_s is left), time them round-robin, and add
    their rows in the variants' order."""
    entries: list[Live | dict[str, Any]] = []
    # A compile phase (the reference and one compiled variant) starts whole or not at all.
    shown = variants[1:] if phase == "compile" else variants
    need = max(ctx.scale.min_compile_s, 5.0) if phase == "compile" else 5.0
    for variant in variants:
        if ctx.left() < need:
            why = f"not run: {ctx.left():.0f} s left in the step"
            ctx.note_incomplete(f"{task} batch {batch} {variant.name} ({phase}): {why}")
            if variant in shown:
                entries.append({"task": task, "batch": batch, "variant": variant.name, "status": why})
            continue
        logger.info("%s batch %d: preparing %s", task, batch, variant.name)
        entries.append(start_live(ctx, task, variant, batch))
    lives = [entry for entry in entries if isinstance(entry, Live)]
    timed = [live for live in lives if live.error is None]
    if timed:
        round_robin(ctx, timed, f"{task} batch {batch} {phase}")
    reference = next((live for live in lives if live.variant.name == "reference"), None)
    for entry in entries:
        if isinstance(entry, dict):
            ctx.result["rows"].append(entry)
        elif phase == "eager" or entry is not reference:
            ctx.result["rows"].append(live_row(task, batch, entry, reference, phase))
    ctx.save_partial()
    del entries, lives, timed, reference
    if ctx.device.type == "cuda":
        torch.cuda.empty_cache()


@contextlib.contextmanager
def compile_backend(backend: str) -> Iterator[None]:
    """torch.compile with another dynamo backend (the --smoke default "eager": tracing without inductor)."""
    if backend == "inductor":
        yield
        return
    original = torch.compile

    def patched(model: Any = None, **kwargs: Any) -> Any:
        kwargs.pop("mode", None)
        return original(model, **{**kwargs, "backend": backend})

    torch.compile = patched
    try:
        yield
    finally:
        torch.compile = original


def fresh_dynamo() -> None:
    """A clean compile cache per task, with room for the variants' recompiles (no silent fall-back to eager)."""
    import torch._dynamo

    torch._dynamo.reset()
    for name in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit", "accumulated_cache_size_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, max(256, getattr(torch._dynamo.config, name)))


def compiles(task: str, scale: Scale, variant: Variant, device: Any) -> bool:
    """Whether the variant's speed plan compiles (False where its options are refused: its row says why)."""
    try:
        return resolve_speed(make_config(task, overrides={**task_overrides(task, scale, 1), **variant.overrides}),
                             device).compile
    except ValueError:
        return False


def step_train(ctx: Context, task: str) -> None:
    scale = ctx.scale
    fresh_dynamo()
    variants = train_variants(task)
    compiled = [v for v in variants if compiles(task, scale, v, ctx.device)]
    eager = [v for v in variants if v not in compiled]
    compiled.sort(key=lambda v: v.name != "all")  # speed auto's combination first: the budget may not fit both
    ctx.result.update(task=task, size=scale.pix2pix_size if task == "pix2pix" else scale.size, ngf=scale.ngf,
                      batches=list(scale.batches), rounds=scale.rounds, steps_per_round=scale.steps_per_round,
                      compile_backend=ctx.args.compile_backend, variants={v.name: v.overrides for v in variants},
                      rows=[])
    with compile_backend(ctx.args.compile_backend):
        for batch in scale.batches:
            train_phase(ctx, task, batch, eager, "eager")
        for variant in compiled:  # one variant at all batches first: its compiled code is reused there
            for batch in scale.batches:
                train_phase(ctx, task, batch, [variants[0], variant], "compile")

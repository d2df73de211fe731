"""The training speed levers (translate.training.speed): what each resolves to, and that each leaves
the results equal (cache_data, loss_sync) or within float rounding (channels_last, adam, compile) on
the CPU, with resume."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from tests.helpers.training import tiny_config
from translate.core.errors import InvalidCombinationError
from translate.models import GeneratorConfig, build_generator
from translate.training import NonFiniteLossError, make_config, read_checkpoint, train
from translate.training.speed import AUTO, effective_lr, resolve_speed
from translate.training.tasks.cyclegan import CycleGANStep

pytestmark = pytest.mark.usefixtures("single_thread")

CPU, CUDA, MPS = torch.device("cpu"), torch.device("cuda"), torch.device("mps")


def config(data: Path, out: Path, **overrides):
    return tiny_config("cyclegan", data=data, out=out, **overrides)


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    state = read_checkpoint(run_dir)
    return {f"{net}.{key}": value for net, sd in state["models"].items() for key, value in sd.items()}


def events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


# --- what the options resolve to ------------------------------------------------------------------

def test_speed_off_turns_everything_off_but_tf32_and_cudnn_benchmark_on_cuda():
    cpu = resolve_speed(make_config("cyclegan"), CPU)
    assert (cpu.channels_last, cpu.compile, cpu.cache_data, cpu.tf32, cpu.cudnn_benchmark) == (False,) * 5
    assert cpu.adam == "default" and cpu.adam_kwargs() == {} and cpu.loss_sync == "log"
    cuda = resolve_speed(make_config("cyclegan"), CUDA)
    assert (cuda.tf32, cuda.cudnn_benchmark, cuda.channels_last, cuda.compile) == (True, True, False, False)
    plain = resolve_speed(make_config("cyclegan", overrides={"tf32": "off", "cudnn_benchmark": "off"}), CUDA)
    assert (plain.tf32, plain.cudnn_benchmark) == (False, False)


# What docs/training.md#speed promises `--speed auto` turns on: nothing on the CPU (no lever measured
# faster there) nor on MPS (unmeasured); on CUDA the data cache and fused Adam, with TF32 and
# cudnn.benchmark (on for CUDA whatever `speed` says), channels-last and compile still off.
# (channels_last, compile, cache_data, adam, tf32, cudnn_benchmark)
AUTO_PROMISED = {
    "cpu": (False, False, False, "default", False, False),
    "cuda": (False, False, True, "fused", True, True),
    "mps": (False, False, False, "default", False, False),
}


def levers(plan) -> tuple:
    return plan.channels_last, plan.compile, plan.cache_data, plan.adam, plan.tf32, plan.cudnn_benchmark


@pytest.mark.parametrize("device", [CPU, CUDA, MPS], ids=str)
def test_speed_auto_turns_on_what_the_docs_promise_for_each_device(device):
    plan = resolve_speed(make_config("cyclegan", overrides={"speed": "auto"}), device)
    assert levers(plan) == AUTO_PROMISED[device.type]
    assert plan.adam_kwargs() == ({"fused": True} if device.type == "cuda" else {})


@pytest.mark.parametrize("device", [CPU, CUDA, MPS], ids=str)
def test_explicit_lever_options_win_over_speed_auto(device):
    # Every lever set against what auto would pick (batch norm: channels-last is allowed on the CPU).
    explicit = {"channels_last": True, "compile": True, "cache_data": device.type != "cuda", "adam": "for-loop",
                "tf32": "off", "cudnn_benchmark": "off", "norm": "batch"}
    forced = resolve_speed(make_config("cyclegan", overrides={"speed": "auto", **explicit}), device)
    assert levers(forced) == (True, True, device.type != "cuda", "for-loop", False, False)
    assert forced.adam_kwargs() == {"foreach": False}
    off = resolve_speed(make_config("cyclegan", overrides={"speed": "off", **explicit}), device)
    assert levers(off) == levers(forced)  # speed only fills in the levers left unset


def test_fused_adam_falls_back_to_foreach_where_unsupported():
    assert resolve_speed(make_config("cyclegan", overrides={"adam": "fused"}), torch.device("mps")).adam == "foreach"
    assert resolve_speed(make_config("cyclegan", overrides={"adam": "fused"}), CPU).adam_kwargs() == {"fused": True}


@pytest.mark.parametrize(("scale", "factor"), [("none", 1.0), ("linear", 8.0), ("sqrt", math.sqrt(8))])
def test_lr_scale_rules(scale: str, factor: float):
    cyclegan = make_config("cyclegan", overrides={"batch_size": 8, "lr_scale": scale})
    assert effective_lr(cyclegan) == pytest.approx(2e-4 * factor)
    assert resolve_speed(cyclegan, CPU).lr == pytest.approx(2e-4 * factor)


def test_lr_scale_counts_from_the_tasks_reference_batch():
    text = make_config("text2image")
    reference = text.batch_size
    scaled = make_config("text2image", overrides={"batch_size": reference * 4, "lr_scale": "linear"})
    assert effective_lr(scaled) == pytest.approx(scaled.lr * 4)


def test_bad_lever_values_are_refused():
    for field, value in (("speed", "fast"), ("compile_mode", "turbo"), ("adam", "sgd"), ("tf32", "yes"),
                         ("loss_sync", "never"), ("lr_scale", "cube")):
        with pytest.raises(ValueError, match=f"'{value}' is not one of"):
            make_config("cyclegan", overrides={field: value})


# --- the levers leave the results as they were ------------------------------------------------------

def test_loss_sync_every_log_or_every_step_gives_the_same_run(unpaired_data, tmp_path):
    every_step = train(config(unpaired_data, tmp_path / "step", loss_sync="step", max_steps=5))
    every_log = train(config(unpaired_data, tmp_path / "log", loss_sync="log", log_every=4, max_steps=5))
    assert every_step.losses == every_log.losses
    a, b = weights(tmp_path / "step"), weights(tmp_path / "log")
    assert all(torch.equal(a[key], b[key]) for key in a)
    logged = [e["step"] for e in events(tmp_path / "log") if e["event"] == "losses"]
    assert logged == [4, 5]  # every log_every steps and at the last


def test_cache_data_gives_the_same_run_and_is_recorded(unpaired_data, tmp_path):
    # 4 items, batch 1: step 5 is in the second epoch, whose draws of B images are new
    loader = train(config(unpaired_data, tmp_path / "loader", max_steps=5))
    cached = train(config(unpaired_data, tmp_path / "cached", cache_data=True, max_steps=5))
    assert loader.losses == cached.losses
    a, b = weights(tmp_path / "loader"), weights(tmp_path / "cached")
    assert all(torch.equal(a[key], b[key]) for key in a)
    start = next(e for e in events(tmp_path / "cached") if e["event"] == "start")
    assert start["data_cached"] is True and start["speed"]["cache_data"] is True


def test_cache_data_that_cannot_be_done(unpaired_data, tmp_path, monkeypatch):
    # Sizes kept per image: an explicit cache_data says why; speed auto (here made to cache on the
    # CPU, as it does on CUDA) reads with a DataLoader.
    monkeypatch.setitem(AUTO["cpu"], "cache_data", True)
    with pytest.raises(ValueError, match="cache_data"):
        train(config(unpaired_data, tmp_path / "explicit", cache_data=True, preprocess="none", max_steps=1))
    result = train(config(unpaired_data, tmp_path / "auto", speed="auto", preprocess="none", max_steps=1))
    assert result.step == 1
    start = next(e for e in events(tmp_path / "auto") if e["event"] == "start")
    assert start["data_cached"] is False


def two_steps(data: Path, tmp_path: Path, **lever) -> tuple[CycleGANStep, CycleGANStep, tuple]:
    """The plain step and the step with `lever`, built from the same seed, and one batch."""
    torch.manual_seed(0)
    plain = CycleGANStep(config(data, tmp_path / "plain"), CPU)
    torch.manual_seed(0)
    fast = CycleGANStep(config(data, tmp_path / "fast", **lever), CPU)
    generator = torch.Generator().manual_seed(1)
    real = (torch.rand(1, 3, 32, 32, generator=generator) * 2 - 1, torch.rand(1, 3, 32, 32, generator=generator) * 2 - 1)
    return plain, fast, real


@pytest.mark.parametrize("adam", ["foreach", "fused"])
def test_adam_implementations_give_the_same_update(unpaired_data, tmp_path, adam):
    plain, fast, (real_a, real_b) = two_steps(unpaired_data, tmp_path, adam=adam)
    assert plain.optimizers["g"].defaults.get("fused") in (None, False)
    assert fast.optimizers["g"].defaults["fused" if adam == "fused" else "foreach"] is True
    plain_losses, fast_losses = plain.train_step(real_a, real_b), fast.train_step(real_a, real_b)
    assert all(torch.equal(plain_losses[name], fast_losses[name]) for name in plain_losses)  # same forward
    for name, model in plain.plain_models().items():  # the same gradients, updated alike up to rounding
        for (key, a), b in zip(model.state_dict().items(), fast.plain_models()[name].state_dict().values(), strict=True):
            assert torch.allclose(a, b, atol=1e-7, rtol=1e-6), f"{name}.{key}"


def test_channels_last_with_instance_norm_is_refused_on_the_cpu():
    for batch_size in (1, 2):
        with pytest.raises(InvalidCombinationError, match="wrong gradients") as refused:
            resolve_speed(make_config("cyclegan", overrides={"channels_last": True, "batch_size": batch_size}), CPU)
        assert refused.value.parameters == ("channels_last", "norm", "device")
    assert resolve_speed(make_config("cyclegan", overrides={"channels_last": True}), CUDA).channels_last
    assert resolve_speed(make_config("pix2pix", overrides={"channels_last": True}), CPU).channels_last


def gradient_error(model: torch.nn.Module, x: torch.Tensor, channels_last: bool) -> float:
    """Largest error of the input gradient of `model` in float32 (in that layout) against float64,
    relative to the largest gradient."""
    grads = []
    for dtype, layout in ((torch.float64, torch.contiguous_format),
                          (torch.float32, torch.channels_last if channels_last else torch.contiguous_format)):
        copy = copy_module(model).to(dtype=dtype, memory_format=layout)
        inputs = x.detach().to(dtype).contiguous(memory_format=layout).clone().requires_grad_(True)
        copy(inputs).square().mean().backward()
        grads.append(inputs.grad.double())
    return float((grads[1] - grads[0]).abs().max() / grads[0].abs().max())


def copy_module(model: torch.nn.Module) -> torch.nn.Module:
    import copy

    return copy.deepcopy(model)


def test_channels_last_gradients_are_right_where_it_is_allowed():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 128, 128) * 2 - 1
    unet = build_generator(GeneratorConfig(name="unet_128", ngf=8, norm="batch")).train()  # pix2pix's norm
    assert gradient_error(unet, x, channels_last=True) < 1e-4
    resnet = build_generator(GeneratorConfig(name="resnet_6blocks", ngf=8))  # instance norm: default layout only
    assert gradient_error(resnet, x[:1, :, :64, :64], channels_last=False) < 1e-4
    assert gradient_error(resnet, x[:, :, :64, :64], channels_last=False) < 1e-4


def test_channels_last_gives_the_same_pix2pix_losses(paired_data, tmp_path):
    settings = {"data": paired_data, "netG": "unet_128", "load_size": 136, "crop_size": 128, "max_steps": 1}
    plain = train(tiny_config("pix2pix", out=tmp_path / "plain", **settings))
    fast = train(tiny_config("pix2pix", out=tmp_path / "fast", channels_last=True, **settings))
    # pix2pix's G loss of step 1 reads D after its first update, which Adam makes about lr x
    # sign(gradient): equal to 1e-2, not to rounding (the gradients themselves are checked above).
    for name in plain.losses:
        assert fast.losses[name] == pytest.approx(plain.losses[name], rel=1e-2, abs=1e-4)


def test_compile_wraps_every_network_and_saves_plain_weights(unpaired_data, tmp_path, monkeypatch):
    compiled: list[tuple[type, str]] = []

    def fake_compile(module, mode="default"):
        compiled.append((type(module), mode))
        wrapper = torch.nn.Module()
        wrapper._orig_mod = module  # what torch.compile's OptimizedModule holds
        wrapper.forward = module.forward
        return wrapper

    monkeypatch.setattr(torch, "compile", fake_compile)
    step = CycleGANStep(config(unpaired_data, tmp_path / "x", compile=True, compile_mode="max-autotune"), CPU)
    assert len(compiled) == 4 and {mode for _, mode in compiled} == {"max-autotune"}
    assert set(step.plain_models()) == {"g_ab", "g_ba", "d_a", "d_b"}
    assert all(not any(k.startswith("_orig_mod") for k in m.state_dict()) for m in step.plain_models().values())
    result = train(config(unpaired_data, tmp_path / "run", compile=True, max_steps=2))
    assert result.step == 2 and not any("_orig_mod" in key for key in weights(tmp_path / "run"))


@pytest.mark.slow
def test_real_torch_compile_matches_eager(unpaired_data, tmp_path):
    plain = train(config(unpaired_data, tmp_path / "plain", max_steps=2))
    compiled = train(config(unpaired_data, tmp_path / "compiled", compile=True, max_steps=2))
    for name in plain.losses:
        assert compiled.losses[name] == pytest.approx(plain.losses[name], rel=1e-3, abs=1e-4)


def test_resume_with_every_cpu_lever_on_gives_the_uninterrupted_run(unpaired_data, tmp_path):
    levers = {"cache_data": True, "adam": "foreach", "loss_sync": "log", "log_every": 3,
              "batch_size": 2, "lr_scale": "sqrt", "n_epochs": 2}
    straight = train(config(unpaired_data, tmp_path / "straight", max_steps=5, **levers))
    train(config(unpaired_data, tmp_path / "resumed", max_steps=3, **levers))
    state = read_checkpoint(tmp_path / "resumed")
    resumed = train(make_config(None, base=state["config"], overrides={"max_steps": 5}), resume_state=state)
    assert straight.step == resumed.step == 5
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "resumed")
    assert all(torch.equal(a[key], b[key]) for key in a)
    lr = read_checkpoint(tmp_path / "straight")["optimizers"]["g"]["param_groups"][0]["initial_lr"]
    assert lr == pytest.approx(2e-4 * math.sqrt(2))


def test_a_nan_between_reads_stops_the_run_before_the_next_checkpoint(unpaired_data, tmp_path, monkeypatch):
    # 4 items, batch 1: a checkpoint at the end of epoch 1 (step 4). Losses are read every 10 steps,
    # so the NaN of step 2 is found when the checkpoint of step 4 is about to be written.
    original = CycleGANStep.train_step
    calls = {"n": 0}

    def poisoned(self, real_a, real_b):
        losses = original(self, real_a, real_b)
        calls["n"] += 1
        if calls["n"] == 3:
            losses["cycle_A"] = torch.tensor(float("nan"))
        return losses

    monkeypatch.setattr(CycleGANStep, "train_step", poisoned)
    with pytest.raises(NonFiniteLossError, match="NaN or inf at step 2"):
        train(config(unpaired_data, tmp_path / "run", log_every=10, loss_sync="log"))
    assert not (tmp_path / "run" / "checkpoints" / "latest.pt").exists()
    bad = [e for e in events(tmp_path / "run") if e["event"] == "non_finite_loss"]
    assert bad and bad[0]["step"] == 2

"""One-command GPU check (issue 16, item 2): environment, matmul peak, training-step speed levers, DDP,
inference backends and `convert`, as resumable steps that write JSON results and a markdown report.

On a lent H100 / H200 (the device tool; ~15 minutes of device time, 600 s per command):

    run(command="PYTHONUNBUFFERED=1 python3 scripts/gpu_check.py --out /tmp/gpu_check --export $OUT "
                "--resume-from .gpu_check/report.json", timeout_s=590, carry=[".whl", ".gpu_check"])

  - `python3` there is /opt/torch/.venv's Python 3.12 with torch 2.11 (cu130), torchvision, onnx, onnxruntime
    (the CPU build: no CUDA or TensorRT provider), typer, pyyaml, safetensors, tensorboard, torchmetrics: all
    that translate needs except kornia (and kornia_rs). Nothing can be downloaded there, so carry them as wheels
    in `.whl/` (ignored by git; see "Bare machine" below). At start the script tries `import translate.training,
    translate.deploy`; when that fails it installs the wheels of --wheels (default `<repo>/.whl`, offline, no
    deps), then `pip install --no-deps --no-build-isolation -e <repo>` (a failure there is only logged: the
    repository is put on PYTHONPATH anyway), or, without a wheel folder, `pip install -e <repo>` (a machine
    that reaches PyPI), and re-executes itself once.
  - Everything except the final files stays in --out (step results in `steps/`, scratch in `work/`), and at
    most three files are copied to --export after every step: report.json (every step's result), report.md
    and gpu_check.log. The device tool returns at most 8 files, and empties $OUT before each command, so
    --out must not be $OUT.
  - Resuming: a rerun skips the steps whose result file exists in --out/steps (`--redo STEP` forces one;
    steps that ended in "error" are retried). A fresh machine has no --out, so copy the returned report.json
    into `.gpu_check/` here (in .git/info/exclude), carry it, and pass `--resume-from .gpu_check/report.json`:
    its finished steps are taken as done (a missing file is only noted, so the same command serves the first
    run). The whole run stops starting steps after --max-seconds (default 460); steps not started are
    listed as "not run" and a rerun does them.
  - Bare machine: once, here (where pip reaches PyPI), in the repository root (7 MB of wheels):
        echo /.whl/ >> .git/info/exclude; echo /.gpu_check/ >> .git/info/exclude
        .venv/bin/python -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \\
            --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl kornia==0.9.0 kornia_rs==0.2.0
  - Time: the machine's start (a minute or two) plus at most --max-seconds and the imports (~8 minutes):
    within 15 minutes of device time a full first call leaves too little for a second machine, so the
    resume is for a call cut short (a machine lost, a step over its budget), and `--max-seconds 300` with
    `--steps` splits the work over two calls when the budget allows.

On any machine with a CUDA GPU: `python scripts/gpu_check.py` (results in gpu_check_out/). On the CPU:
`python scripts/gpu_check.py --smoke --out /tmp/gpu_smoke` runs the same steps at tiny sizes (ngf 8, 32 px,
pix2pix unet_128 at 128 px, batch 1, two timed steps a variant, one torch thread, torch.compile on dynamo's
"eager" backend, DDP through torchrun with one process beside the single-process run, ONNX Runtime's CPU
provider, convert on 8 images) in ~35-50 s on two cores; tests/test_gpu_check.py runs it.

Steps (run in this order: the bounded ones first, the compile-heavy training steps last):
  env            GPU(s), driver, CUDA, cuDNN, NCCL, torch, onnxruntime and its providers, TensorRT, CPU.
  peak           bf16, TF32 and fp32 matmul TFLOP/s (8192^2 products timed with CUDA events).
  gradients      the input gradient of a random resnet_6blocks (instance norm) and unet_128 (batch norm) at
                 batch 1 and 2, float32 in the default layout and in channels_last against float64: on the
                 CPU channels_last with instance norm is wrong (translate refuses it there); this says
                 whether it is right on the GPU before --speed auto may use it.
  inference      resnet_9blocks ngf 64 (random weights) at 256 px, batch 1 and 8: PyTorch fp32 (its default,
                 TF32 convolutions), fp16, bf16, and ONNX Runtime on the CUDA and TensorRT providers when
                 present (else its CPU provider) in fp32 and fp16: images/s (median of interleaved rounds) and
                 parity (max abs error, PSNR) against strict fp32 PyTorch (TF32 off).
  convert        512 generated 256 px JPEGs through convert_folder, to png and to jpg, with the backend and
                 precision `make_backend` picks by default (auto), against that backend's model images/s at
                 the same batch (8), timed just before and after each convert.
  ddp            cyclegan on a generated data set for K steps (60 at 256 px, batch 1, speed off), once as one
                 process (translate.training.train in this process) and once as `python -m torch.distributed.run
                 --standalone --nproc_per_node=N -m translate train cyclegan ...` (N = visible GPUs, NCCL; with
                 one GPU, world size 1, translate trains without a process group): final losses from each
                 run's log.jsonl (close: relative difference <= 0.05 at world size 1) and steady images/s
                 (the log windows after the first).
  train-TASK     cyclegan, pix2pix, cut at 256 px, batch 1 and 4: the reference-equivalent fp32 eager step
                 (cyclegan: the six generator calls one by one; all: speed off, tf32 off, cudnn_benchmark off)
                 against ours (cyclegan: batched calls) with each lever alone (channels_last, compile,
                 adam fused, tf32, cudnn_benchmark, amp) and all together (speed auto + amp): it/s, images/s,
                 TFLOP/s (FlopCounterMode, one eager step), percent of the matching peak (bf16 for amp, TF32
                 or fp32 otherwise), and the projected time of horse2zebra's 200 epochs (266,800 images).
                 Eager variants of every batch are timed first, round-robin; then each compile variant
                 (`all` first, then `compile`), batch by batch, is compiled (seconds recorded apart) and timed
                 interleaved with a fresh reference; one that cannot start with 40 s left is listed as not run.
  report         report.json and report.md (written after every step too).

Each step has its own time budget (BUDGETS_S, at most 10 minutes): it stops starting work when the budget
is near and is stopped by an alarm at the budget; either way it is recorded "incomplete" with what it
measured and why. The alarm interrupts Python, not native code: a TensorRT engine build (ONNX Runtime's
TensorRT provider, when present) runs to its end. --smoke uses dynamo's "eager" backend for the compile
variants (--compile-backend) since inductor's C++ compile on two CPU cores takes minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import math
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from copy import deepcopy
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO, REPO / "scripts"):  # translate, and bench_infer's helpers, from anywhere
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

try:  # a bare machine may lack translate's dependencies: main() installs them and re-executes
    import torch
    from bench_infer import accuracy, natural_images, save_random_model, write_jpegs
    from torch.utils.flop_counter import FlopCounterMode

    from translate.deploy.backends import make_backend
    from translate.deploy.convert import convert_folder
    from translate.deploy.sessions import CPU_PROVIDER, CUDA_PROVIDER, TENSORRT_PROVIDER, available_providers
    from translate.models import GeneratorConfig, build_generator
    from translate.training.config import make_config
    from translate.training.speed import resolve_speed
    from translate.training.tasks import build_step
    from translate.training.tasks.cyclegan import CycleGANStep

    IMPORT_ERROR: ImportError | None = None
except ImportError as _error:  # pragma: no cover - exercised on bare machines only
    IMPORT_ERROR = _error

logger = logging.getLogger("gpu_check")

STEPS = ("env", "peak", "gradients", "inference", "convert", "ddp", "train-cyclegan", "train-pix2pix", "train-cut", "report")
# Seconds each step may take (a cap, not an estimate); the sum stays near --max-seconds.
BUDGETS_S = {"env": 20, "peak": 25, "gradients": 15, "inference": 70, "convert": 40, "ddp": 75, "train-cyclegan": 170,
             "train-pix2pix": 90, "train-cut": 130, "report": 10}
H2Z_IMAGES = 1334 * 200  # horse2zebra: 1,334 trainA images x 200 epochs
LEVERS = (("channels_last", {"channels_last": True}), ("compile", {"compile": True}), ("adam_fused", {"adam": "fused"}),
          ("tf32", {"tf32": "on"}), ("cudnn_benchmark", {"cudnn_benchmark": "on"}), ("amp", {"amp": True}))
REFERENCE_FLAGS = {"speed": "off", "tf32": "off", "cudnn_benchmark": "off"}
BOOTSTRAP_ENV = "GPU_CHECK_BOOTSTRAPPED"


@dataclass(frozen=True)
class Scale:
    """Sizes of one run: the GPU defaults, or SMOKE's tiny CPU ones."""

    size: int = 256
    pix2pix_size: int = 256
    ngf: int = 64
    batches: tuple[int, ...] = (1, 4)
    warmup: int = 2
    compile_warmup_max: int = 8
    rounds: int = 2
    steps_per_round: int = 8
    min_compile_s: float = 40.0  # seconds left in the step to start compiling one more variant
    peak_n: int = 8192
    peak_reps: int = 20
    ddp_steps: int = 60
    ddp_batch: int = 1
    ddp_workers: int = 4
    ddp_parallel: bool = False  # the torchrun run beside the single one, not after it (smoke: start-up bound)
    threads: int | None = None  # torch intra-op threads (None: PyTorch's default)
    infer_size: int = 256
    infer_ngf: int = 64
    infer_batches: tuple[int, ...] = (1, 8)
    infer_rounds: int = 5
    infer_round_s: float = 0.25
    convert_images: int = 512
    convert_size: int = 256
    convert_batch: int = 8
    max_seconds: float = 460.0


SMOKE = Scale(size=32, pix2pix_size=128, ngf=8, batches=(1,), warmup=1, compile_warmup_max=3, rounds=1,
              steps_per_round=2, min_compile_s=2.0, peak_n=256, peak_reps=3, ddp_steps=4, ddp_workers=0,
              ddp_parallel=True, threads=1, infer_size=32, infer_ngf=8, infer_batches=(1, 2), infer_rounds=1, infer_round_s=0.0,
              convert_images=8, convert_size=32, convert_batch=2, max_seconds=150.0)


class StepTimeout(BaseException):
    """Raised by the alarm when a step reaches its budget (not an Exception: no `except Exception` takes it)."""


@dataclass
class Context:
    """What a step gets: the options, its folders and deadline, and the result it fills in."""

    name: str
    args: argparse.Namespace
    scale: Scale
    out: Path
    work: Path
    device: Any
    deadline: float
    result: dict[str, Any] = field(default_factory=dict)
    incomplete: list[str] = field(default_factory=list)
    timed_out: bool = False

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def note_incomplete(self, why: str) -> None:
        logger.warning("%s: %s", self.name, why)
        self.incomplete.append(why)

    def save_partial(self) -> None:
        write_json(self.out / "steps" / f"{self.name}.partial.json", {"status": "running", "result": self.result})


# --- small helpers ------------------------------------------------------------------------------------------


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps(data, indent=2, default=str, allow_nan=True) + "\n")
    temporary.replace(path)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def sync(device: Any) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


@contextlib.contextmanager
def started(command: list[str], log_path: Path, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """`command` running in its own process group, stdout and stderr to `log_path`; on leaving, the
    group is killed if still running (torchrun's workers too; also when the step's alarm fires)."""
    with log_path.open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env,
                                   start_new_session=True)
        try:
            yield process
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def wait_for(process: subprocess.Popen, timeout: float) -> int | None:
    """The exit code, or None when `timeout` seconds pass first."""
    try:
        return process.wait(timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        return None


def child_env(threads: int | None = None) -> dict[str, str]:
    """The environment of child processes: the repository importable without an install."""
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


# --- bootstrap: a bare machine ---------------------------------------------------------------------------------


def bootstrap(wheels: Path | None) -> None:
    """Install what translate needs (see the module docstring) and re-execute this script once."""
    if os.environ.get(BOOTSTRAP_ENV):
        raise SystemExit(f"gpu_check: translate still does not import after installing ({IMPORT_ERROR}); carry "
                         "the missing package as a wheel in --wheels (see the module docstring)")
    print(f"gpu_check: translate does not import here ({IMPORT_ERROR}); installing", file=sys.stderr, flush=True)
    pip = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check"]
    found = sorted(wheels.glob("*.whl")) if wheels is not None and wheels.is_dir() else []
    env = child_env()
    if found:
        if subprocess.run([*pip, "--no-index", "--no-deps", *map(str, found)]).returncode:
            site = Path(tempfile.gettempdir()) / "gpu_check_site"  # a read-only environment: install beside it
            subprocess.run([*pip, "--no-index", "--no-deps", "--upgrade", "--target", str(site), *map(str, found)],
                           check=True)
            env["PYTHONPATH"] = os.pathsep.join((str(site), env["PYTHONPATH"]))
        done = subprocess.run([*pip, "--no-index", "--no-deps", "--no-build-isolation", "-e", str(REPO)],
                              capture_output=True, text=True)
        if done.returncode:  # e.g. a setuptools older than pyproject.toml's license field needs
            print(f"gpu_check: the editable install failed ({done.stderr.strip().splitlines()[-1:]}); running from "
                  "the repository (PYTHONPATH)", file=sys.stderr)
    else:
        subprocess.run([*pip, "--retries", "1", "--timeout", "20", "-e", str(REPO)], check=True)
    env[BOOTSTRAP_ENV] = "1"
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


# --- step: env --------------------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def command_output(command: list[str], cwd: Path | None = None) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=15, cwd=cwd)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def gpu_facts() -> list[dict[str, Any]]:
    """Per visible GPU: name, memory, compute capability, multiprocessors (PyTorch) and driver (nvidia-smi)."""
    smi = command_output(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                          "--format=csv,noheader"]) or ""
    rows = [[part.strip() for part in line.split(",")] for line in smi.splitlines() if line.strip()]
    gpus = []
    for index in range(torch.cuda.device_count() if torch.cuda.is_available() else 0):
        props = torch.cuda.get_device_properties(index)
        smi_row = rows[index] if index < len(rows) and len(rows[index]) >= 4 else [None] * 4
        gpus.append({"index": index, "name": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
                     "capability": f"{props.major}.{props.minor}", "multiprocessors": props.multi_processor_count,
                     "driver": smi_row[1], "max_sm_clock": smi_row[3]})
    return gpus


def library_versions() -> dict[str, Any]:
    import onnxruntime

    versions: dict[str, Any] = {
        "python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "onnxruntime": onnxruntime.__version__, "onnxruntime_providers": onnxruntime.get_available_providers(),
        "onnxruntime_providers_usable": available_providers(), "tensorrt": None, "triton": None, "nccl": None}
    with contextlib.suppress(Exception):
        nccl = torch.cuda.nccl.version() if torch.cuda.is_available() else None
        versions["nccl"] = ".".join(map(str, nccl)) if isinstance(nccl, tuple) else nccl
    for name in ("tensorrt", "triton"):
        with contextlib.suppress(Exception):
            versions[name] = __import__(name).__version__
    return versions


def step_env(ctx: Context) -> None:
    import translate

    ctx.result.update(
        device=str(ctx.device), gpus=gpu_facts(), versions=library_versions(), translate=translate.__version__,
        cpu={"model": cpu_model(), "cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)),
             "torch_threads": torch.get_num_threads()},
        platform=platform.platform(), git_commit=command_output(["git", "rev-parse", "HEAD"], cwd=REPO),
        git_dirty_files=len((command_output(["git", "status", "--porcelain"], cwd=REPO) or "").splitlines()),
        smoke=ctx.args.smoke, date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))


# --- step: peak -------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def matmul_tf32(enabled: bool) -> Iterator[None]:
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


def matmul_tflops(n: int, dtype: Any, device: Any, reps: int) -> float:
    """TFLOP/s of `reps` n x n x n products on random data, after three warm-ups."""
    generator = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=generator)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=generator)
    c = torch.empty(n, n, device=device, dtype=dtype)
    for _ in range(3):
        torch.mm(a, b, out=c)
    sync(device)
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps):
            torch.mm(a, b, out=c)
        end.record()
        end.synchronize()
        seconds = start.elapsed_time(end) / 1000
    else:
        started = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b, out=c)
        seconds = time.perf_counter() - started
    return 2 * n**3 * reps / seconds / 1e12


def step_peak(ctx: Context) -> None:
    n, reps, device = ctx.scale.peak_n, ctx.scale.peak_reps, ctx.device
    peaks: dict[str, float] = {}
    with matmul_tf32(False):
        peaks["bf16"] = matmul_tflops(n, torch.bfloat16, device, reps)
        peaks["fp32"] = matmul_tflops(n, torch.float32, device, max(3, reps // 4))
    with matmul_tf32(True):
        peaks["tf32"] = matmul_tflops(n, torch.float32, device, reps)
    ctx.result.update(n=n, reps=reps, tflops=peaks,
                      note="square matmuls on random data, CUDA events" if device.type == "cuda"
                      else "CPU: the TF32 flag does nothing there, tf32 = fp32")


# --- step: gradients (is channels_last right on this device?) ----------------------------------------------------


def gradient_error(model: Any, x: Any, layout: Any) -> float:
    """Largest error of `model`'s float32 input gradient in `layout` against float64 (default layout),
    relative to the largest gradient."""
    grads = []
    for dtype, memory_format in ((torch.float64, torch.contiguous_format), (torch.float32, layout)):
        copy = deepcopy(model).to(dtype=dtype, memory_format=memory_format)
        inputs = x.detach().to(dtype).contiguous(memory_format=memory_format).clone().requires_grad_(True)
        copy(inputs).square().mean().backward()
        grads.append(inputs.grad.double())
    return float((grads[1] - grads[0]).abs().max() / grads[0].abs().max())


def step_gradients(ctx: Context) -> None:
    """channels_last gives wrong gradients on the CPU for instance norm + convolution (PyTorch 2.14);
    translate refuses it there. This measures the same on this device, for both norms, so that
    --speed auto may turn channels_last on where it is right."""
    size = min(ctx.scale.size, 64)
    torch.manual_seed(0)
    x = (torch.rand(2, 3, size, size) * 2 - 1).to(ctx.device)
    rows = {}
    with matmul_tf32(False):
        torch.backends.cudnn.allow_tf32 = False
        for norm, name in (("instance", "resnet_6blocks"), ("batch", "unet_128")):
            side = 128 if name == "unet_128" else size
            inputs = x if side == size else (torch.rand(2, 3, side, side) * 2 - 1).to(ctx.device)
            model = build_generator(GeneratorConfig(name=name, ngf=8, norm=norm)).to(ctx.device).train()
            for batch in (1, 2):  # on the CPU, instance norm in channels_last is wrong (worst at batch 1)
                rows[f"{name} ({norm} norm), batch {batch}"] = {
                    "default": gradient_error(model, inputs[:batch], torch.contiguous_format),
                    "channels_last": gradient_error(model, inputs[:batch], torch.channels_last)}
        torch.backends.cudnn.allow_tf32 = True
    ctx.result.update(relative_input_gradient_error=rows, device=str(ctx.device),
                      note="float32 vs float64, TF32 off; above ~1e-3 the layout computes wrong gradients")


# --- step: inference ----------------------------------------------------------------------------------------------


@dataclass
class InferVariant:
    name: str
    backend: str
    precision: str
    provider: str | None = None


def inference_variants(device: Any) -> list[InferVariant]:
    """PyTorch fp32 / fp16 / bf16 (fp16 on CUDA only) and ONNX Runtime on its GPU providers, or its CPU one."""
    variants = [InferVariant("torch-fp32", "torch", "fp32")]
    if device.type == "cuda":
        variants.append(InferVariant("torch-fp16", "torch", "fp16"))
    variants.append(InferVariant("torch-bf16", "torch", "bf16"))
    usable = available_providers()
    gpu = [(short, name) for short, name in (("cuda", CUDA_PROVIDER), ("tensorrt", TENSORRT_PROVIDER))
           if device.type == "cuda" and name in usable]
    for short, _ in gpu:
        variants += [InferVariant(f"ort-{short}-{p}", "onnxruntime", p, short) for p in ("fp32", "fp16")]
    if not gpu and CPU_PROVIDER in usable:
        variants.append(InferVariant("ort-cpu-fp32", "onnxruntime", "fp32", "cpu"))
    return variants


def pytorch_default_flags() -> None:
    """PyTorch's own defaults (the training steps change them): TF32 convolutions, fp32 matmuls."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = False


def strict_fp32_reference(backend: Any, x: Any) -> Any:
    """The fp32 output with TF32 off everywhere: what every variant is compared with."""
    previous = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        return backend(x).float().cpu()
    finally:
        torch.backends.cudnn.allow_tf32 = previous


def load_inference_backends(ctx: Context, model: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Every variant's backend; failures (a provider that does not start) are recorded, not raised."""
    backends: dict[str, Any] = {}
    errors: dict[str, str] = {}
    device = "cuda" if ctx.device.type == "cuda" else "cpu"
    for variant in inference_variants(ctx.device):
        if variant.provider == "tensorrt" and ctx.left() < 60:
            errors[variant.name] = "not started: under 60 s left in the step (TensorRT builds engines)"
            continue
        try:
            backend = make_backend(model, backend=variant.backend, precision=variant.precision, device=device,
                                   provider=variant.provider)
        except Exception as error:  # noqa: BLE001 - a provider or precision that cannot run here is a finding
            if ctx.timed_out:
                raise
            errors[variant.name] = f"{type(error).__name__}: {error}"
            continue
        wanted = {"cuda": CUDA_PROVIDER, "tensorrt": TENSORRT_PROVIDER, "cpu": CPU_PROVIDER}.get(variant.provider or "")
        if wanted and backend.provider != wanted:
            errors[variant.name] = f"asked for {wanted}, got {backend.provider}"
            continue
        backends[variant.name] = backend
    return backends, errors


def time_calls(backend: Any, x: Any, calls: int) -> float:
    sync(backend.device)
    started = time.perf_counter()
    for _ in range(calls):
        backend(x)
    sync(backend.device)
    return time.perf_counter() - started


def inference_cell(ctx: Context, backends: dict[str, Any], batch: int) -> list[dict[str, Any]]:
    """Parity and images/s of every backend at one batch size, interleaved rounds, median rate."""
    scale = ctx.scale
    images = natural_images(batch, 3, scale.infer_size, seed=batch)
    inputs = {name: images.to(backend.device) for name, backend in backends.items()}
    reference = strict_fp32_reference(backends["torch-fp32"], inputs["torch-fp32"])
    rows: dict[str, dict[str, Any]] = {}
    for name, backend in backends.items():
        try:
            out = backend(inputs[name])  # also the warm-up (a TensorRT engine is built here)
            warm = 1 if "cpu" in backend.provider.lower() and ctx.device.type == "cuda" else 3
            call_s = time_calls(backend, inputs[name], warm) / warm
        except Exception as error:  # noqa: BLE001 - a provider failing at this shape is a finding
            if ctx.timed_out or name == "torch-fp32":
                raise
            ctx.result["errors"][f"{name} batch {batch}"] = f"{type(error).__name__}: {error}"
            continue
        rows[name] = {"variant": name, "backend": backend.describe(), "batch": batch, "size": scale.infer_size,
                      "call_s": call_s, "rates": [], **accuracy(out, reference)}
    base_s = max(rows["torch-fp32"]["call_s"], 1e-6)
    calls = max(1, math.ceil(scale.infer_round_s / base_s))
    order = list(rows)
    for round_index in range(scale.infer_rounds):
        if round_index and ctx.left() < 10:
            ctx.note_incomplete(f"inference batch {batch}: stopped after {round_index} rounds (budget)")
            break
        shift = round_index % len(order)
        for name in order[shift:] + order[:shift]:
            # An ONNX Runtime CPU call at 256 px takes ~1 s: one call a round is enough there.
            n = 1 if "cpu" in backends[name].provider.lower() and ctx.device.type == "cuda" else calls
            rows[name]["rates"].append(n * batch / time_calls(backends[name], inputs[name], n))
    for row in rows.values():
        row["images_per_s"] = statistics.median(row["rates"]) if row["rates"] else math.nan
        row["vs_torch_fp32"] = row["images_per_s"] / rows["torch-fp32"]["images_per_s"]
    return list(rows.values())


def step_inference(ctx: Context) -> None:
    scale = ctx.scale
    pytorch_default_flags()
    model = save_random_model("resnet_9blocks", scale.infer_ngf, ctx.work / "models", seed=0)
    backends, errors = load_inference_backends(ctx, model)
    ctx.result.update(model=f"resnet_9blocks ngf {scale.infer_ngf}, random init", size=scale.infer_size,
                      variants=list(backends), errors=errors, rows=[],
                      reference="PyTorch fp32 with TF32 off (parity); images/s ratios against torch-fp32 (PyTorch "
                                "defaults: TF32 convolutions)")
    for batch in scale.infer_batches:
        ctx.result["rows"] += inference_cell(ctx, backends, batch)
        ctx.save_partial()


# --- step: convert ------------------------------------------------------------------------------------------------


def step_convert(ctx: Context) -> None:
    scale = ctx.scale
    pytorch_default_flags()
    model = save_random_model("resnet_9blocks", scale.infer_ngf, ctx.work / "models", seed=0)
    folder = ctx.work / "convert_in"
    if len(list(folder.glob("*.jpg"))) != scale.convert_images:
        shutil.rmtree(folder, ignore_errors=True)
        write_jpegs(folder, scale.convert_images, scale.convert_size, seed=0)
    device = "cuda" if ctx.device.type == "cuda" else "cpu"
    backend = make_backend(model, device=device)  # what convert picks with its defaults (no int8: no calibration)
    x = natural_images(scale.convert_batch, 3, scale.convert_size, seed=1).to(backend.device)
    time_calls(backend, x, 2)
    calls = max(3, math.ceil(0.5 / max(time_calls(backend, x, 1), 1e-6)))
    ctx.result.update(model=f"resnet_9blocks ngf {scale.infer_ngf}, random init", images=scale.convert_images,
                      size=scale.convert_size, batch=scale.convert_batch, backend=backend.describe(), rows=[])
    for fmt in ("png", "jpg"):
        before = calls * scale.convert_batch / time_calls(backend, x, calls)
        out = ctx.work / f"convert_out_{fmt}"
        shutil.rmtree(out, ignore_errors=True)
        summary = convert_folder(folder, out, model, backend=backend.name, precision=backend.precision, device=device,
                                 batch_size=scale.convert_batch, fmt=fmt)
        after = calls * scale.convert_batch / time_calls(backend, x, calls)
        model_rate = 2 / (1 / before + 1 / after)
        ctx.result["rows"].append({
            "fmt": fmt, "converted": len(summary.converted), "failed": len(summary.failed),
            "backend": summary.backend, "seconds": summary.seconds, "setup_seconds": summary.setup_seconds,
            "images_per_s": summary.images_per_s, "model_images_per_s": model_rate,
            "fraction_of_model": summary.images_per_s / model_rate, "workers": os.cpu_count()})
        ctx.save_partial()
        if ctx.left() < 5:
            ctx.note_incomplete("convert: stopped after png (budget)")
            break


# --- step: ddp ----------------------------------------------------------------------------------------------------


def read_run_log(run_dir: Path) -> dict[str, Any]:
    """The final losses, world size and steady images/s (windows after the first) of a run's log.jsonl."""
    events = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines() if line.strip()]
    start = next(e for e in events if e["event"] == "start")
    losses = [e for e in events if e["event"] == "losses"]
    if not losses:
        raise ValueError(f"{run_dir / 'log.jsonl'} holds no losses")
    skip = {"event", "time", "step", "epoch", "lr", "it_per_s"}
    steady = [e["it_per_s"] for e in losses[1:]] or [losses[-1]["it_per_s"]]
    it_per_s = len(steady) / sum(1 / rate for rate in steady)  # equal windows: the harmonic mean
    return {"world_size": int(start.get("world_size", 1)), "steps": losses[-1]["step"], "it_per_s": it_per_s,
            "final_losses": {k: v for k, v in losses[-1].items() if k not in skip},
            "windows_it_per_s": [e["it_per_s"] for e in losses]}


def compare_losses(single: dict[str, float], ddp: dict[str, float]) -> dict[str, float]:
    return {name: abs(single[name] - ddp[name]) / max(abs(single[name]), abs(ddp[name]), 1e-3)
            for name in single if name in ddp}


def ddp_options(ctx: Context, data: Path) -> dict[str, Any]:
    """The options of both runs (TrainConfig fields; the torchrun run passes them as flags)."""
    scale = ctx.scale
    return {"data": str(data), "max_steps": scale.ddp_steps, "log_every": max(1, scale.ddp_steps // 3),
            "sample_every": 1_000_000, "save_epoch_freq": 1_000_000, "crop_size": scale.size,
            "load_size": scale.size, "ngf": scale.ngf, "ndf": scale.ngf, "batch_size": scale.ddp_batch,
            "workers": scale.ddp_workers, "device": ctx.device.type, "seed": 0}


def torchrun_command(procs: int, options: dict[str, Any], out: Path) -> list[str]:
    flags = [item for name, value in {**options, "out": str(out)}.items()
             for item in (f"--{name.replace('_', '-')}", str(value))]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}",
            "-m", "translate", "train", "cyclegan", *flags]


def train_in_process(options: dict[str, Any], out: Path) -> tuple[int, float]:
    """The single-process run: translate.training.train in this process (no start-up to pay again)."""
    from translate.training import train

    start = time.perf_counter()
    try:
        train(make_config("cyclegan", overrides={**options, "out": str(out)}))
        code = 0
    except Exception:  # noqa: BLE001 - recorded; the torchrun run still tells something
        logger.exception("the single-process run failed")
        code = 1
    return code, time.perf_counter() - start


def ddp_data(ctx: Context, count: int) -> Path:
    """`count` generated images in trainA/ and in trainB/ (kept for a rerun)."""
    data = ctx.work / "ddp_data"
    if len(list((data / "trainA").glob("*.jpg"))) != count:
        shutil.rmtree(data, ignore_errors=True)
        write_jpegs(data / "trainA", count, ctx.scale.size, seed=0)
        write_jpegs(data / "trainB", count, ctx.scale.size, seed=100_000)
    return data


def run_both(ctx: Context, command: list[str], options: dict[str, Any], single_out: Path
             ) -> dict[str, tuple[int | None, float]]:
    """The single run in this process and the torchrun run beside it (smoke: start-up bound) or after it."""
    log, env = ctx.work / "ddp_torchrun.log", child_env(ctx.scale.threads)
    single = None if ctx.scale.ddp_parallel else train_in_process(options, single_out)
    start = time.perf_counter()
    with started(command, log, env) as process:
        if single is None:
            single = train_in_process(options, single_out)
        code = wait_for(process, ctx.left() - 5)
    return {"single": single, "torchrun": (code, time.perf_counter() - start)}


def step_ddp(ctx: Context) -> None:
    scale = ctx.scale
    procs = ctx.args.ddp_procs or (max(1, torch.cuda.device_count()) if ctx.device.type == "cuda" else 1)
    options = ddp_options(ctx, ddp_data(ctx, max(16, scale.ddp_steps * scale.ddp_batch * procs)))
    ctx.result.update(processes=procs, steps=scale.ddp_steps, batch_per_process=scale.ddp_batch,
                      backend=("nccl" if ctx.device.type == "cuda" else "gloo") if procs > 1
                      else "none: world size 1 trains without a process group", runs={},
                      concurrent_runs=scale.ddp_parallel, options=options)
    runs = {label: ctx.work / f"ddp_run_{label}" for label in ("single", "torchrun")}
    for run_dir in runs.values():
        shutil.rmtree(run_dir, ignore_errors=True)
    commands = {"single": "translate.training.train(make_config('cyclegan', overrides=options)) in this process",
                "torchrun": shlex.join(torchrun_command(procs, options, runs["torchrun"]))}
    outcomes = run_both(ctx, torchrun_command(procs, options, runs["torchrun"]), options, runs["single"])
    for label, (code, seconds) in outcomes.items():
        run: dict[str, Any] = {"exit_code": code, "seconds": seconds, "command": commands[label]}
        if code == 0:
            run.update(read_run_log(runs[label]))
            run["images_per_s"] = run["it_per_s"] * scale.ddp_batch * run["world_size"]
        else:
            if label == "torchrun":
                run["log_tail"] = (ctx.work / "ddp_torchrun.log").read_text()[-3000:]
            ctx.note_incomplete(f"ddp {label}: " + ("timed out" if code is None else f"exit code {code}"))
        ctx.result["runs"][label] = run
    ddp_summary(ctx)


def ddp_summary(ctx: Context) -> None:
    runs = ctx.result["runs"]
    single, ddp = runs.get("single", {}), runs.get("torchrun", {})
    if "final_losses" not in single or "final_losses" not in ddp:
        return
    rel = compare_losses(single["final_losses"], ddp["final_losses"])
    world = ddp["world_size"]
    # World size 1 computes what the single process does (up to cuDNN's algorithm choice); with more
    # processes rank 0 logs the losses of its own shard, so only a loose agreement is expected.
    tolerance = 0.05 if world == 1 else 0.5
    ctx.result.update(loss_rel_diff=rel, loss_max_rel_diff=max(rel.values()), loss_tolerance=tolerance,
                      losses_close=max(rel.values()) <= tolerance,
                      images_per_s_ratio=ddp["images_per_s"] / single["images_per_s"],
                      scaling_efficiency=ddp["images_per_s"] / (single["images_per_s"] * world))


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


# --- the report -----------------------------------------------------------------------------------------------------


def fmt(value: Any, spec: str = ".2f") -> str:
    if value == math.inf:
        return "inf"
    return format(value, spec) if finite(value) else "-"


def markdown_env(results: dict[str, Any]) -> list[str]:
    env = results.get("env", {})
    versions = env.get("versions", {})
    gpus = "; ".join(f"{g['name']} ({g['memory_gib']} GiB, sm {g['capability']}, {g['multiprocessors']} SMs, driver "
                     f"{g['driver']})" for g in env.get("gpus", [])) or "none (CPU run)"
    cpu = env.get("cpu", {})
    lines = [f"- GPU: {gpus}",
             f"- CPU: {cpu.get('model')} ({cpu.get('cores')} cores, {cpu.get('usable_cores')} usable)",
             f"- torch {versions.get('torch')} (CUDA {versions.get('cuda')}, cuDNN {versions.get('cudnn')}, NCCL "
             f"{versions.get('nccl')}, Triton {versions.get('triton')}), Python {versions.get('python')}",
             f"- onnxruntime {versions.get('onnxruntime')}: providers {', '.join(versions.get('onnxruntime_providers', []))}"
             f" (usable: {', '.join(versions.get('onnxruntime_providers_usable', []))}); TensorRT "
             f"{versions.get('tensorrt') or 'not importable'}",
             f"- translate {env.get('translate')}, commit {env.get('git_commit') or 'unknown'}"
             f"{' (+%d changed files)' % env['git_dirty_files'] if env.get('git_dirty_files') else ''}, {env.get('date')}"]
    peak = results.get("peak", {}).get("tflops")
    if peak:
        lines.append(f"- Measured matmul peak ({results['peak']['n']}^2, random data): bf16 {fmt(peak['bf16'], '.1f')}, "
                     f"TF32 {fmt(peak['tf32'], '.1f')}, fp32 {fmt(peak['fp32'], '.1f')} TFLOP/s")
    return lines


def markdown_train(results: dict[str, Any]) -> list[str]:
    lines = ["| task | batch | variant | it/s | images/s | vs reference | GFLOP/step | TFLOP/s | % of peak | "
             "compile s | h2z 200 epochs |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for task in ("cyclegan", "pix2pix", "cut"):
        for row in results.get(f"train-{task}", {}).get("rows", []):
            if "it_per_s" not in row:
                status = row["status"] if len(row["status"]) < 120 else row["status"][:117] + "..."
                lines.append(f"| {task} | {row['batch']} | {row['variant']} | {status} |||||||| ")
                continue
            lines.append(f"| {task} | {row['batch']} | {row['variant']}{' *' if row['phase'] == 'compile' else ''} | "
                         f"{fmt(row['it_per_s'])} | {fmt(row['images_per_s'], '.1f')} | {fmt(row.get('vs_reference'))}x | "
                         f"{fmt(row.get('gflop_per_step'), '.1f')} | {fmt(row.get('tflop_per_s'))} | "
                         f"{fmt(row.get('percent_of_peak'), '.1f')} ({row['peak_kind']}) | {fmt(row.get('compile_s'), '.1f')} | "
                         f"{fmt(row['h2z_200_epochs_hours'], '.1f')} h |")
    return lines


def markdown_ddp(ddp: dict[str, Any]) -> list[str]:
    if not ddp.get("runs"):
        return ["(not run)"]
    lines = [f"cyclegan, {ddp['steps']} steps of batch {ddp['batch_per_process']} per process, {ddp['processes']} "
             f"process(es) under torchrun, process group: {ddp['backend']}.", "",
             "| run | world size | it/s | images/s | final losses | exit |", "|---|---|---|---|---|---|"]
    for label, run in ddp["runs"].items():
        losses = ", ".join(f"{k} {v:.4g}" for k, v in run.get("final_losses", {}).items())
        lines.append(f"| {label} | {run.get('world_size', '-')} | {fmt(run.get('it_per_s'))} | "
                     f"{fmt(run.get('images_per_s'), '.1f')} | {losses or '-'} | {run['exit_code']} |")
    if "loss_max_rel_diff" in ddp:
        lines += ["", f"Largest relative loss difference {ddp['loss_max_rel_diff']:.2g} (tolerance "
                      f"{ddp['loss_tolerance']}: {'close' if ddp['losses_close'] else 'NOT close'}); torchrun / single "
                      f"images/s {ddp['images_per_s_ratio']:.2f}, scaling efficiency {ddp['scaling_efficiency']:.2f}."]
    return lines


def markdown_inference(inference: dict[str, Any], convert: dict[str, Any]) -> list[str]:
    lines = [f"Model: {inference.get('model')}, {inference.get('size')} px. Parity against {inference.get('reference')}.",
             "", "| variant | backend | batch | images/s | vs torch fp32 | max abs err | PSNR dB |",
             "|---|---|---|---|---|---|---|"]
    for row in inference.get("rows", []):
        lines.append(f"| {row['variant']} | {row['backend']} | {row['batch']} | {fmt(row['images_per_s'], '.1f')} | "
                     f"{fmt(row['vs_torch_fp32'])}x | {fmt(row['max_abs_error'], '.2g')} | {fmt(row['psnr_db'], '.1f')} |")
    for name, error in inference.get("errors", {}).items():
        lines.append(f"| {name} | {error} ||||||")
    if convert.get("rows"):
        lines += ["", f"`convert` end to end: {convert['images']} generated {convert['size']} px JPEGs, batch "
                      f"{convert['batch']}, {convert['backend']}.", "",
                  "| output | images/s | model images/s | fraction of model | setup s |", "|---|---|---|---|---|"]
        lines += [f"| {r['fmt']} | {fmt(r['images_per_s'], '.1f')} | {fmt(r['model_images_per_s'], '.1f')} | "
                  f"{fmt(r['fraction_of_model'])} | {fmt(r['setup_seconds'], '.1f')} |" for r in convert["rows"]]
    return lines


def markdown_gradients(gradients: dict[str, Any]) -> list[str]:
    rows = gradients.get("relative_input_gradient_error", {})
    if not rows:
        return ["(not run)"]
    lines = [f"Input gradient of a random generator in float32 against float64, relative ({gradients.get('note', '')}).",
             "", "| network | default layout | channels_last |", "|---|---|---|"]
    lines += [f"| {name} | {fmt(row['default'], '.1e')} | {fmt(row['channels_last'], '.1e')} |" for name, row in rows.items()]
    return lines


def markdown(report: dict[str, Any]) -> str:
    results = report["results"]
    gpus = results.get("env", {}).get("gpus") or [{"name": "CPU"}]
    smoke = " (--smoke: tiny sizes on the CPU, the numbers only show that every step runs)" if report["smoke"] else ""
    lines = [f"# GPU check: {gpus[0]['name']}{smoke}", "", "```bash", report["command"], "```", "", *markdown_env(results),
             "", "## Training steps", "", "Reference: fp32 eager, speed off, tf32 off, cudnn_benchmark off (cyclegan: "
             "six generator calls one by one). Each lever alone is added to ours; `all` is speed auto + amp. "
             "h2z: 266,800 images (1,334 x 200 epochs) at this rate. * compiled variants are timed after the eager "
             "ones, against the reference re-timed beside them; compile s: warm-up time beyond its steady steps.", "", *markdown_train(results),
             "", "## channels_last gradients", "", *markdown_gradients(results.get("gradients", {})),
             "", "## DDP (`translate train` under torchrun)", "", *markdown_ddp(results.get("ddp", {})),
             "", "## Inference", "", *markdown_inference(results.get("inference", {}), results.get("convert", {})),
             "", "## Steps", "", "| step | status | seconds | budget s | notes |", "|---|---|---|---|---|"]
    for name in STEPS:
        step = report["steps"].get(name, {"status": "not run"})
        notes = "; ".join(step.get("incomplete", []) + ([step["error"].splitlines()[-1]] if step.get("error") else []))
        lines.append(f"| {name} | {step['status']} | {fmt(step.get('seconds'), '.1f')} | {step.get('budget_s', '-')} | "
                     f"{notes} |")
    return "\n".join(lines) + "\n"


def add_percent_of_peak(results: dict[str, Any]) -> None:
    """Each timed training row's TFLOP/s as a percent of the matching measured matmul peak."""
    peak = results.get("peak", {}).get("tflops", {})
    for task in ("cyclegan", "pix2pix", "cut"):
        for row in results.get(f"train-{task}", {}).get("rows", []):
            if finite(row.get("tflop_per_s")) and finite(peak.get(row.get("peak_kind"))):
                row["percent_of_peak"] = 100 * row["tflop_per_s"] / peak[row["peak_kind"]]


def write_report(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """report.json (every step's record) and report.md from the step files; copied to --export."""
    steps: dict[str, Any] = {}
    for name in STEPS:
        final, partial = out / "steps" / f"{name}.json", out / "steps" / f"{name}.partial.json"
        if final.is_file():
            steps[name] = read_json(final)
        elif partial.is_file():
            steps[name] = {**read_json(partial), "status": "killed (partial results)"}
    results = {name: step.get("result", {}) for name, step in steps.items()}
    add_percent_of_peak(results)
    report = {"command": "python " + shlex.join(["scripts/gpu_check.py", *sys.argv[1:]]), "smoke": args.smoke,
              "steps": {name: {k: v for k, v in step.items() if k != "result"} for name, step in steps.items()},
              "results": results}
    write_json(out / "report.json", report)
    (out / "report.md").write_text(markdown(report))
    if args.export:
        export = Path(args.export)
        export.mkdir(parents=True, exist_ok=True)
        for name in ("report.json", "report.md", "gpu_check.log"):
            if (out / name).is_file():
                shutil.copyfile(out / name, export / name)
    return report


def step_report(ctx: Context) -> None:
    ctx.result.update(written=[str(ctx.out / "report.json"), str(ctx.out / "report.md")])


# --- the runner -------------------------------------------------------------------------------------------------


STEP_FUNCTIONS: dict[str, Callable[[Context], None]] = {
    "env": step_env, "peak": step_peak, "gradients": step_gradients, "inference": step_inference, "convert": step_convert, "ddp": step_ddp,
    "train-cyclegan": lambda ctx: step_train(ctx, "cyclegan"), "train-pix2pix": lambda ctx: step_train(ctx, "pix2pix"),
    "train-cut": lambda ctx: step_train(ctx, "cut"), "report": step_report}


@contextlib.contextmanager
def alarm(seconds: float, ctx: Context) -> Iterator[None]:
    """Raise StepTimeout in the main thread after `seconds` (marks the context timed out)."""
    def handler(signum: int, frame: Any) -> None:
        ctx.timed_out = True
        raise StepTimeout(f"{ctx.name} reached its budget")

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, max(1.0, seconds))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_step(name: str, args: argparse.Namespace, scale: Scale, out: Path, device: Any, budget: float) -> None:
    ctx = Context(name, args, scale, out, out / "work", device, time.monotonic() + budget)
    ctx.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    record: dict[str, Any] = {"status": "ok", "budget_s": round(budget)}
    logger.info("step %s (budget %.0f s)", name, budget)
    try:
        with alarm(budget, ctx):
            STEP_FUNCTIONS[name](ctx)
    except BaseException as error:  # noqa: BLE001 - the alarm may surface wrapped (dynamo re-raises)
        if isinstance(error, KeyboardInterrupt) and not ctx.timed_out:
            raise
        record["status"] = "incomplete" if ctx.timed_out else "error"
        record["error"] = "".join(traceback.format_exception(error))[-4000:]
        logger.error("step %s: %s", name, record["status"], exc_info=not ctx.timed_out)
        if ctx.timed_out:
            ctx.incomplete.append(f"stopped by the alarm at its budget ({budget:.0f} s)")
    if ctx.incomplete and record["status"] == "ok":
        record["status"] = "incomplete"
    record.update(seconds=round(time.perf_counter() - started, 2), incomplete=ctx.incomplete, result=ctx.result)
    gc.collect()  # the step's networks and sessions go before the next step
    if device.type == "cuda":
        torch.cuda.empty_cache()
    write_json(out / "steps" / f"{name}.json", record)
    (out / "steps" / f"{name}.partial.json").unlink(missing_ok=True)
    logger.info("step %s: %s in %.1f s", name, record["status"], record["seconds"])


def seed_from_report(path: Path, out: Path) -> None:
    """Take the finished steps of an earlier run's report.json as done (resume on a fresh machine)."""
    if not path.is_file():
        logger.info("--resume-from %s: no such file; starting afresh", path)
        return
    report = read_json(path)
    for name, step in report.get("steps", {}).items():
        target = out / "steps" / f"{name}.json"
        if name != "report" and step.get("status") in ("ok", "incomplete") and not target.is_file():
            write_json(target, {**step, "result": report["results"].get(name, {}), "resumed_from": str(path)})
            logger.info("step %s: taken from %s", name, path)


def wanted_steps(args: argparse.Namespace, out: Path) -> list[str]:
    """The steps to run now: those asked for, less those already done (unless --redo names them)."""
    chosen = [s for s in STEPS if s in (args.steps or STEPS)]
    redo = set(STEPS) if "all" in args.redo else set(args.redo)
    todo = []
    for name in chosen:
        path = out / "steps" / f"{name}.json"
        if name != "report" and name not in redo and path.is_file() and read_json(path)["status"] != "error":
            logger.info("step %s: done earlier (%s), skipped; --redo %s runs it again", name, path, name)
            continue
        todo.append(name)
    return todo


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    scale = SMOKE if args.smoke else Scale()
    if args.max_seconds:
        scale = replace(scale, max_seconds=args.max_seconds)
    out = Path(args.out).resolve()
    (out / "work").mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TRANSLATE_CACHE", str(out / "work" / "cache"))
    if args.resume_from:
        seed_from_report(Path(args.resume_from), out)
    device = torch.device("cpu" if args.smoke or not torch.cuda.is_available() else "cuda")
    if scale.threads:
        torch.set_num_threads(scale.threads)
    if device.type == "cpu" and not args.smoke:
        logger.warning("no CUDA device: running the full-size check on the CPU (use --smoke for a quick one)")
    deadline = time.monotonic() + scale.max_seconds
    for name in wanted_steps(args, out):
        left = deadline - time.monotonic()
        if name != "report" and left < min(30.0, BUDGETS_S[name]):
            logger.warning("step %s: not started, %.0f s left of --max-seconds; a rerun continues here", name, left)
            continue
        run_step(name, args, scale, out, device, min(BUDGETS_S[name], max(left, 5.0)))
        write_report(args, out)
    return write_report(args, out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="gpu_check_out", help="results folder (steps/, work/, report.*)")
    parser.add_argument("--export", help="copy report.json, report.md and gpu_check.log here after every step")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU (the test's mode)")
    parser.add_argument("--steps", nargs="+", choices=STEPS, help="run only these steps (default: all)")
    parser.add_argument("--redo", nargs="+", default=[], choices=(*STEPS, "all"), help="run these again")
    parser.add_argument("--resume-from", help="an earlier run's report.json: its finished steps count as done")
    parser.add_argument("--max-seconds", type=float, help="start no step after this (default 460; smoke 150)")
    parser.add_argument("--ddp-procs", type=int, help="torchrun processes (default: visible GPUs, at least 1)")
    parser.add_argument("--compile-backend", help="dynamo backend of the compile variants (default inductor; "
                                                  "smoke: eager)")
    parser.add_argument("--wheels", default=str(REPO / ".whl"), help="wheels to install on a bare machine")
    args = parser.parse_args(argv)
    args.compile_backend = args.compile_backend or ("eager" if args.smoke else "inductor")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the check; the exit status is 1 when a step ended in an error (incomplete steps are not errors)."""
    args = parse_args(argv)
    if IMPORT_ERROR is not None:
        bootstrap(Path(args.wheels) if args.wheels else None)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s",
                        handlers=[logging.StreamHandler(sys.stderr), logging.FileHandler(out / "gpu_check.log")])
    os.environ["PYTHONPATH"] = child_env()["PYTHONPATH"]
    report = run_all(args)
    print((out / "report.md").read_text())
    failed = [n for n, s in report["steps"].items() if s["status"] not in ("ok", "incomplete")]
    if failed:
        logger.error("steps not ok: %s", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

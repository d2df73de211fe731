"""Inference backends: one generator behind a call, on PyTorch or ONNX Runtime, at a chosen precision.

    backend = make_backend("weights/maps_aerial2map", backend="onnxruntime", precision="auto")
    backend.describe()                  # 'onnxruntime fp32 on CPUExecutionProvider'
    y = backend(x)                      # (B, C_in, H, W) float32 in [-1, 1] on backend.device,
                                        # H and W multiples of backend.size_multiple

How "auto" resolves (the fastest path the hardware runs well, measured in docs/benchmarks.md):

- device: CUDA if PyTorch sees a GPU, else Apple's MPS (PyTorch only), else the CPU.
- precision: fp16 on a GPU; bf16 on a CPU with AVX-512 BF16 or AMX (native bfloat16: autocast
  is ~1.9x there); int8 on other CPUs with VNNI when calibration images are at hand (`convert`
  uses the folder's first images; the int8 copy is checked against float32 and float32 is used
  instead below 35 dB PSNR, see `translate.deploy.quantize`); else fp32 (emulated bfloat16 is 2.5x
  *slower* than fp32).
- backend: ONNX Runtime, except where the precision is bf16 (ONNX Runtime's CPU kernels have no
  bfloat16 convolutions) or the device is MPS: PyTorch.
- ONNX Runtime provider: TensorRT if its libraries are installed and a GPU exists, else CUDA,
  else CPU. The provider that a session really got is reported, not the one asked for.

A PyTorch model run on ONNX Runtime is exported once (with the parity check of
`translate.deploy.export`) into a cache folder keyed by the weights' checksum and the precision:
$TRANSLATE_CACHE, else $XDG_CACHE_HOME/translate, else ~/.cache/translate.
"""

from __future__ import annotations

import ctypes.util
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from translate.core.device import cpu_has_native_bf16, cpu_has_vnni, pick_device
from translate.core.paths import cache_dir
from translate.deploy.onnx_cache import onnx_copy, text_onnx_copy
from translate.deploy.quantize import Int8AccuracyError, int8_copy
from translate.deploy.text_export import OnnxTextModel, text_size_multiple
from translate.formats.locator import locate, resolve_path
from translate.formats.onnx_metadata import FILE_PRECISION, read_onnx_metadata
from translate.formats.weights import load_with_config, read_model_config
from translate.text.model import TEXTCYCLE_KIND, load_text_model

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "onnxruntime", "torch")
PRECISIONS = ("auto", "fp32", "fp16", "bf16", "int8")
PROVIDERS = {"tensorrt": "TensorrtExecutionProvider", "cuda": "CUDAExecutionProvider",
             "cpu": "CPUExecutionProvider"}
_FILE_PRECISION = FILE_PRECISION


def _check_choice(name: str, value: str | None, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"--{name} {value!r} is not one of {', '.join(allowed)}")


def resolve_precision(precision: str, device: torch.device, *, int8_possible: bool = False) -> str:
    """`auto` -> the fastest precision that `device` runs well; other values are returned as given.
    `int8_possible`: calibration images exist and ONNX Runtime may be used."""
    _check_choice("precision", precision, PRECISIONS)
    if precision != "auto":
        return precision
    if device.type in ("cuda", "mps"):
        return "fp16"
    if cpu_has_native_bf16():
        return "bf16"
    return "int8" if int8_possible and cpu_has_vnni() else "fp32"


def _tensorrt_installed() -> bool:
    return ctypes.util.find_library("nvinfer") is not None


def resolve_providers(provider: str | None, device: torch.device) -> list[str]:
    """ONNX Runtime providers to try, best first; `provider` (tensorrt | cuda | cpu) forces one."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if provider not in (None, "auto"):
        _check_choice("provider", provider, tuple(PROVIDERS))
        name = PROVIDERS[provider]
        if name not in available:
            raise ValueError(f"--provider {provider}: this onnxruntime build has no {name} (it has "
                             f"{', '.join(available)}); install onnxruntime-gpu for cuda / tensorrt")
        if provider != "cpu" and device.type != "cuda":
            raise ValueError(f"--provider {provider} needs a CUDA GPU, and none is visible; use --provider cpu")
        return [name] if provider == "cpu" else [name, "CPUExecutionProvider"]
    # onnxruntime-gpu lists CUDA even on machines without a GPU and then warns at session start.
    wanted: list[str] = []
    if device.type == "cuda":
        if _tensorrt_installed():
            wanted.append(PROVIDERS["tensorrt"])
        wanted.append(PROVIDERS["cuda"])
    wanted.append(PROVIDERS["cpu"])
    return [p for p in wanted if p in available]


def choose_backend(backend: str | None, *, is_onnx: bool, precision: str, device: torch.device) -> str:
    """`auto` -> onnxruntime, except bf16 or MPS (torch); `None` -> the model's own form."""
    if backend is None:
        return "onnxruntime" if is_onnx else "torch"
    _check_choice("backend", backend, BACKENDS)
    if backend == "auto":
        if is_onnx:
            return "onnxruntime"
        return "torch" if precision == "bf16" or device.type == "mps" else "onnxruntime"
    if backend == "torch" and is_onnx:
        raise ValueError("--backend torch cannot run an .onnx file; pass the weights folder, run or "
                         "checkpoint it was exported from, or use --backend onnxruntime")
    if backend == "torch" and precision == "int8":
        raise ValueError("--precision int8 runs on ONNX Runtime only; use --backend onnxruntime (or auto)")
    if backend == "onnxruntime" and precision == "bf16":
        raise ValueError("--precision bf16 runs on PyTorch only (ONNX Runtime has no bfloat16 convolution "
                         "kernels); use --backend torch, or --precision fp32 / fp16 with onnxruntime")
    return backend


class Backend:
    """A generator ready to run. Subclasses set the attributes below and implement `__call__`.

    Attributes:
        name: "torch" | "onnxruntime".
        precision: the precision it computes in ("fp32" | "fp16" | "bf16" | "int8").
        note: what the precision costs in accuracy where it was measured (int8), else "".
        device: where inputs must live (a CUDA device when ONNX Runtime binds GPU memory).
        provider: the ONNX Runtime provider in use, or the PyTorch device type.
        config: the model's config (weights config.json, or the ONNX file's metadata).
    """

    name: str
    precision: str
    device: torch.device
    provider: str
    config: dict[str, Any]
    input_channels: int
    output_channels: int
    size_multiple: int
    note: str = ""

    def __call__(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.name} {self.precision} on {self.provider}" + (f" ({self.note})" if self.note else "")


class TorchBackend(Backend):
    """PyTorch eager. fp16 casts the weights (GPU); bf16 runs under autocast (normalisation and
    reductions stay float32). Output: float32."""

    def __init__(self, model: Path, *, precision: str, device: torch.device, direction: str | None) -> None:
        self.name, self.precision, self.device, self.provider = "torch", precision, device, device.type
        network, self.config = load_with_config(model, direction=direction, device=device)
        network.float()  # bundled weights may be stored as float16
        if precision == "fp16":
            if device.type == "cpu":
                logger.warning("float16 on the CPU is emulated by PyTorch and slow; use fp32 there")
            network.half()
        self.network = network.eval()
        architecture = self.config["architecture"]
        self.input_channels = int(architecture["input_nc"])
        self.output_channels = int(architecture["output_nc"])
        self.size_multiple = int(self.config["size_multiple"])

    def __call__(self, x: Tensor) -> Tensor:
        with torch.inference_mode():
            if self.precision == "fp16":
                return self.network(x.half()).float()
            if self.precision == "bf16":
                with torch.autocast(self.device.type, dtype=torch.bfloat16):
                    return self.network(x).float()
            return self.network(x.float())


class OrtBackend(Backend):
    """ONNX Runtime. On the CUDA / TensorRT providers with a CUDA build of PyTorch, inputs and
    outputs stay in GPU memory (IO binding); elsewhere they pass through host arrays."""

    def __init__(self, onnx_path: Path, *, providers: list[str], device: torch.device,
                 threads: int | None = None) -> None:
        """`providers`: names, best first (see `resolve_providers`); `device`: where inputs live."""
        import onnxruntime as ort

        self.name, self.path = "onnxruntime", onnx_path
        self.config = read_onnx_metadata(onnx_path)
        self.precision = _FILE_PRECISION.get(self.config.get("precision", "float32"), "fp32")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        # Spinning threads take cores that the decode / encode threads need (measured: as fast or
        # faster without on a busy 2-core CPU).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(onnx_path), sess_options=options,
                                            providers=[_provider_entry(p, device, self.precision) for p in providers])
        self.provider = self.session.get_providers()[0]
        if providers[0] != self.provider:
            logger.warning("ONNX Runtime could not start %s; running on %s", providers[0], self.provider)
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self.uint8_io = self.config.get("io") == "uint8"
        on_gpu = self.provider != "CPUExecutionProvider" and device.type == "cuda"
        self.io_binding = on_gpu and not self.uint8_io
        self.device = device if self.io_binding else torch.device("cpu")
        self.input_channels = int(self.config["input_channels"])
        self.output_channels = int(self.config["output_channels"])
        self.size_multiple = int(self.config["size_multiple"])

    def __call__(self, x: Tensor) -> Tensor:
        if self.io_binding:
            return self._run_bound(x)
        if self.uint8_io:
            feed = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            out = torch.from_numpy(self.session.run(None, {self.input_name: feed})[0])
            return out.permute(0, 3, 1, 2).float() / 127.5 - 1
        feed = x.detach().float().cpu().contiguous().numpy()
        return torch.from_numpy(self.session.run(None, {self.input_name: feed})[0])

    def _run_bound(self, x: Tensor) -> Tensor:
        x = x.to(self.device, torch.float32).contiguous()
        out = torch.empty((x.shape[0], self.output_channels, *x.shape[2:]), dtype=torch.float32,
                          device=self.device)
        binding = self.session.io_binding()
        index = self.device.index or 0
        binding.bind_input(self.input_name, "cuda", index, np.float32, tuple(x.shape), x.data_ptr())
        binding.bind_output(self.output_name, "cuda", index, np.float32, tuple(out.shape), out.data_ptr())
        # ONNX Runtime computes on its own stream: the input must be complete before it starts.
        torch.cuda.current_stream(self.device).synchronize()
        self.session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        return out


class TextPromptBackend(Backend):
    """A textcycle model with one prompt fixed, behind the image backends' call: `(B, C, H, W)` in
    [-1, 1] -> `(B, C_out, H, W)` in [-1, 1]. The prompt is embedded (or tokenised, or looked up in
    a baked table) once; every call feeds that row to each image of the batch.

    `model`: a textcycle weights folder / run (name "torch", or "onnxruntime" through a cached
    export whose input is the embedding) or an exported `.onnx` file (name "onnxruntime").
    """

    def __init__(self, model: Path, prompt: str, *, name: str, device: torch.device,
                 providers: list[str] | None = None, threads: int | None = None) -> None:
        self.name, self.prompt, self.device = name, prompt, device
        is_onnx = model.suffix.lower() == ".onnx"
        torch_model = None if is_onnx else load_text_model(model, device if name == "torch" else "cpu",
                                                           kind=TEXTCYCLE_KIND)
        if name == "torch":
            self.config, self.generator = torch_model.config, torch_model.generator.float()
            self.embedding = torch_model.embed([prompt])  # (1, D)
            self.precision, self.provider = "fp32", device.type
            architecture = self.config["architecture"]
            self.size_multiple = text_size_multiple(architecture)
            self.input_channels = int(architecture.get("input_nc", 3))
            self.output_channels = int(architecture.get("output_nc", 3))
            return
        self.runner = OnnxTextModel(model if is_onnx else text_onnx_copy(model), providers=providers, threads=threads)
        # A cached export takes the embedding, computed here by the PyTorch encoder (any encoder).
        self.text = self.runner.text_feed([prompt]) if torch_model is None else \
            {"embedding": torch_model.embed([prompt]).cpu().numpy()}
        self.config, self.provider = self.runner.metadata, self.runner.provider
        self.precision = _FILE_PRECISION.get(self.config.get("precision", "float32"), "fp32")
        self.size_multiple = self.runner.size_multiple
        self.input_channels = int(self.config["input_channels"])
        self.output_channels = int(self.config["output_channels"])

    def __call__(self, x: Tensor) -> Tensor:
        if self.name == "torch":
            with torch.inference_mode():
                return self.generator(x.float(), self.embedding.expand(len(x), -1))
        return self.runner.run(x, {key: np.repeat(value, len(x), axis=0) for key, value in self.text.items()})

    def describe(self) -> str:
        return f"{super().describe()}, prompt {self.prompt!r}"


def text_model_info(path: str | Path) -> tuple[str, dict[str, list[str]]] | None:
    """(kind, domains) of a text model folder, run or exported `.onnx` file; None for image models."""
    source = locate(path)
    if not source.is_text:
        return None
    return source.kind, source.config().get("domains") or {}


def _text_backend(path: Path, prompt: str | None, *, backend: str | None, precision: str, device: torch.device,
                  provider: str | None, threads: int | None) -> Backend:
    """The checked TextPromptBackend for `make_backend` (see there)."""
    info = text_model_info(path)
    if info is None:
        raise ValueError(f"--prompt {prompt!r} applies to text-guided (textcycle) models; {str(path)!r} holds an "
                         "image-only generator: drop --prompt")
    kind, domains = info
    if kind != TEXTCYCLE_KIND:
        raise ValueError(f"{str(path)!r} is a {kind} model (noise + caption -> image), it does not translate "
                         f"images: make images with `translate generate --model {path} --prompt ...`")
    if prompt is None or not prompt.strip():
        listing = "; ".join(f"{name}: {', '.join(map(repr, prompts))}" for name, prompts in domains.items())
        raise ValueError(f"{str(path)!r} is a text-guided textcycle model: pass --prompt naming what to translate "
                         f"to, e.g. a prompt of its domains ({listing or 'none recorded'})")
    is_onnx = path.suffix.lower() == ".onnx"
    file_precision = None
    if is_onnx:
        file_precision = _FILE_PRECISION.get(read_onnx_metadata(path).get("precision", "float32"), "fp32")
    if precision not in ("auto", "fp32", file_precision):
        raise ValueError(f"--precision {precision}: text models run in fp32 here (fp16, bf16 and int8 are not "
                         "wired for them); use --precision fp32 or auto (for fp16, `translate export MODEL "
                         "out.onnx --half` and convert with that file)")
    name = choose_backend(backend, is_onnx=is_onnx, precision="fp32", device=device)
    if name == "torch":
        if provider not in (None, "auto"):
            raise ValueError(f"--provider {provider} applies to ONNX Runtime; drop it or use --backend onnxruntime")
        return TextPromptBackend(path, prompt, name="torch", device=device)
    device = torch.device("cpu") if device.type == "mps" else device
    return TextPromptBackend(path, prompt, name="onnxruntime", device=torch.device("cpu"),
                             providers=resolve_providers(provider, device), threads=threads)


def _provider_entry(name: str, device: torch.device, precision: str) -> str | tuple[str, dict[str, Any]]:
    if name == PROVIDERS["tensorrt"]:
        # TensorRT builds an engine per input shape (minutes): keep them across runs.
        return name, {"device_id": device.index or 0, "trt_fp16_enable": precision == "fp16",
                      "trt_engine_cache_enable": True,
                      "trt_engine_cache_path": str(cache_dir() / "tensorrt")}
    if name == PROVIDERS["cuda"]:
        return name, {"device_id": device.index or 0}
    return name


def make_backend(model: str | Path, *, backend: str | None = "auto", precision: str = "auto",
                 device: str = "auto", provider: str | None = None, direction: str | None = None,
                 threads: int | None = None, calibration: Sequence[Path] | None = None,
                 prompt: str | None = None) -> Backend:
    """Load `model` for inference.

    Args:
        model: a weights folder, run directory, training checkpoint, `.onnx` file or the name of a
            bundled model in weights/.
        backend: auto | onnxruntime | torch; None keeps the model's own form (`.onnx` on ONNX
            Runtime, anything else on PyTorch).
        precision: auto | fp32 | fp16 | bf16 (see the module docstring for auto). An `.onnx` file
            runs at the precision it was exported with.
        device: auto | cpu | cuda | mps.
        provider: tensorrt | cuda | cpu to force an ONNX Runtime provider (default: best available).
        direction: AtoB | BtoA for models that hold both CycleGAN generators.
        threads: ONNX Runtime intra-op threads (default: its own choice, one per physical core).
        calibration: images for int8 quantisation (needed for precision int8; with auto on a CPU
            with VNNI they make int8 the choice).
        prompt: what a textcycle model (folder, run or its `.onnx`) translates to; required for
            those, refused for image models. Text models run in fp32 (or an .onnx file's precision).

    Raises:
        ValueError: a choice outside the lists above, or a combination that cannot run (bf16 on
            ONNX Runtime, an .onnx file on PyTorch, a precision an .onnx file was not exported with).
        FileNotFoundError: no model at `model`.
    """
    _check_choice("precision", precision, PRECISIONS)
    _check_choice("device", device, ("auto", "cpu", "cuda", "mps"))
    path = resolve_path(model)[0]
    is_onnx = path.suffix.lower() == ".onnx"
    torch_device = pick_device(device)
    if prompt is not None or text_model_info(path) is not None:
        return _text_backend(path, prompt, backend=backend, precision=precision, device=torch_device,
                             provider=provider, threads=threads)
    int8_possible = bool(calibration) and not is_onnx and backend in ("auto", "onnxruntime")
    wanted = resolve_precision(precision, torch_device, int8_possible=int8_possible)
    name = choose_backend(backend, is_onnx=is_onnx, precision=wanted, device=torch_device)
    if name == "torch":
        if provider not in (None, "auto"):
            raise ValueError(f"--provider {provider} applies to ONNX Runtime; drop it or use --backend onnxruntime")
        return TorchBackend(path, precision=wanted, device=torch_device, direction=direction)

    if torch_device.type == "mps":
        torch_device = torch.device("cpu")  # ONNX Runtime has no MPS provider; CoreML is not wired here
    providers = resolve_providers(provider, torch_device)
    if providers[0] == PROVIDERS["cpu"] and torch_device.type == "cuda":
        torch_device = torch.device("cpu")  # an onnxruntime without CUDA: the CPU's best precision
        wanted = resolve_precision(precision, torch_device, int8_possible=int8_possible)
    if is_onnx:
        file_precision = _FILE_PRECISION.get(read_onnx_metadata(path).get("precision", "float32"), "fp32")
        if precision not in ("auto", file_precision):
            raise ValueError(f"{path.name} was exported in {file_precision}; --precision {precision} needs a "
                             f"new export (`translate export MODEL out.onnx{' --half' if precision == 'fp16' else ''}`)"
                             f" or --precision {file_precision}")
        onnx_path = path
    else:
        if wanted == "fp16" and torch_device.type == "cpu":
            logger.warning("float16 on ONNX Runtime's CPU provider is converted back to float32 op by op and "
                           "slow; fp32 is the fast CPU precision here")
        note = ""
        if wanted == "int8":
            onnx_path, note = _int8_or_fallback(path, direction=direction, precision=precision,
                                                device=torch_device, calibration=calibration)
        else:
            onnx_path = onnx_copy(path, direction=direction, precision=wanted)
        runner = OrtBackend(onnx_path, providers=providers, device=torch_device, threads=threads)
        runner.note = note
        return runner
    return OrtBackend(onnx_path, providers=providers, device=torch_device, threads=threads)


def _int8_or_fallback(path: Path, *, direction: str | None, precision: str, device: torch.device,
                      calibration: Sequence[Path] | None) -> tuple[Path, str]:
    """The checked int8 copy, or (precision auto only) the float32 copy when int8 is refused."""
    if device.type != "cpu":
        raise ValueError("--precision int8 is a CPU path (ONNX Runtime's CPU kernels); use fp16 on a GPU")
    if not calibration:
        raise ValueError("--precision int8 needs calibration images (convert uses the input folder's; "
                         "Translator(..., calibration=[paths]))")
    channels = int(read_model_config(path, direction)["architecture"]["input_nc"])
    try:
        int8_path, worst = int8_copy(path, direction=direction, images=calibration, channels=channels)
    except Int8AccuracyError as error:
        if precision != "auto":
            raise
        logger.warning("%s; using fp32", error)
        return onnx_copy(path, direction=direction, precision="fp32"), f"int8 refused: {error}"
    return int8_path, f"worst PSNR {worst:.1f} dB vs fp32"

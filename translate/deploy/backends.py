"""Inference backends: one generator behind a call, on PyTorch or ONNX Runtime, at a chosen precision.

    backend = make_backend("weights/maps_aerial2map", backend="onnxruntime", precision="auto")
    backend.describe()                  # 'onnxruntime fp32 on CPUExecutionProvider'
    y = backend(x)                      # (B, C_in, H, W) float32 in [-1, 1] on backend.device,
                                        # H and W multiples of backend.size_multiple

What "auto" means for the device, precision, backend and provider is decided by the rules of
`translate.deploy.selection`, from the machine's `Capabilities` (injectable: `capabilities=`).
The ONNX Runtime provider that a session really got is reported, not the one asked for.

A PyTorch model run on ONNX Runtime is exported once (with the parity check of
`translate.deploy.export`) into a cache folder keyed by the weights' checksum and the precision:
$TRANSLATE_CACHE, else $XDG_CACHE_HOME/translate, else ~/.cache/translate. int8 copies are
quantised and checked there too (`translate.deploy.quantize`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from translate.core.device import Capabilities
from translate.core.device import capabilities as detect_capabilities
from translate.core.errors import InvalidCombinationError, check_choice
from translate.core.images import array_to_tensor, tensor_to_array
from translate.deploy.onnx_cache import onnx_copy, text_onnx_copy
from translate.deploy.quantize import Int8AccuracyError, int8_copy
from translate.deploy.selection import (
    BACKENDS,
    PRECISIONS,
    PROVIDERS,
    check_choices,
    choose_backend,
    choose_device,
    resolve_precision,
    resolve_providers,
)
from translate.deploy.sessions import CPU_PROVIDER, ort_session, provider_entries
from translate.deploy.text_export import text_size_multiple
from translate.deploy.text_runner import OnnxTextModel
from translate.formats.locator import DIRECTIONS, ModelSource, locate
from translate.formats.onnx_metadata import FILE_PRECISION
from translate.formats.weights import load_with_config, read_model_config
from translate.text.model import TEXTCYCLE_KIND, load_text_model

logger = logging.getLogger(__name__)

__all__ = ["BACKENDS", "PRECISIONS", "PROVIDERS", "Backend", "TorchBackend", "OrtBackend", "TextPromptBackend",
           "make_backend", "make_text_backend", "text_model_info", "choose_backend", "resolve_precision", "resolve_providers"]

_CPU = torch.device("cpu")


def _file_precision(metadata: dict[str, Any]) -> str:
    """An exported file's precision in the API's names (fp32 | fp16 | int8)."""
    return FILE_PRECISION.get(metadata.get("precision", "float32"), "fp32")


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
        self.name, self.path = "onnxruntime", onnx_path
        self.config = locate(onnx_path).config()
        self.precision = _file_precision(self.config)
        self.session = ort_session(onnx_path, providers=provider_entries(providers, device, self.precision),
                                   threads=threads)
        self.provider = self.session.get_providers()[0]
        if providers[0] != self.provider:
            logger.warning("ONNX Runtime could not start %s; running on %s", providers[0], self.provider)
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self.uint8_io = self.config.get("io") == "uint8"
        on_gpu = self.provider != CPU_PROVIDER and device.type == "cuda"
        self.io_binding = on_gpu and not self.uint8_io
        self.device = device if self.io_binding else _CPU
        self.input_channels = int(self.config["input_channels"])
        self.output_channels = int(self.config["output_channels"])
        self.size_multiple = int(self.config["size_multiple"])

    def __call__(self, x: Tensor) -> Tensor:
        if self.io_binding:
            return self._run_bound(x)
        if self.uint8_io:
            return array_to_tensor(self.session.run(None, {self.input_name: tensor_to_array(x)})[0])
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
    """A textcycle model behind the image backends' call: `(B, C, H, W)` in [-1, 1] -> `(B, C_out, H, W)`
    in [-1, 1], translated to `prompt`. The prompt is embedded (or tokenised, or looked up in a baked
    table) once; every call feeds that row to each image of the batch.

    `model`: a textcycle weights folder / run (name "torch", or "onnxruntime" through a cached
    export whose input is the embedding) or an exported `.onnx` file (name "onnxruntime").
    `prompt` None: no call, only `text_rows` + `run_rows`, for a prompt per image (a server).
    """

    def __init__(self, model: str | Path, prompt: str | None, *, name: str, device: torch.device,
                 providers: list[str] | None = None, threads: int | None = None) -> None:
        self.name, self.prompt, self.device = name, prompt, device
        source = locate(model)
        self._torch_model = None if source.is_onnx else load_text_model(
            source.path, device if name == "torch" else "cpu", kind=TEXTCYCLE_KIND)
        if name == "torch":
            self.config, self.generator = self._torch_model.config, self._torch_model.generator.float()
            self.precision, self.provider = "fp32", device.type
            architecture = self.config["architecture"]
            self.size_multiple = text_size_multiple(architecture)
            self.input_channels = int(architecture.get("input_nc", 3))
            self.output_channels = int(architecture.get("output_nc", 3))
        else:
            self.runner = OnnxTextModel(source.path if source.is_onnx else text_onnx_copy(source.path),
                                        providers=providers, threads=threads)
            self.config, self.provider = self.runner.metadata, self.runner.provider
            self.precision = _file_precision(self.config)
            self.size_multiple = self.runner.size_multiple
            self.input_channels = int(self.config["input_channels"])
            self.output_channels = int(self.config["output_channels"])
        self.text = self.text_rows([prompt]) if prompt is not None else None

    def text_rows(self, prompts: Sequence[str]) -> Tensor | dict[str, np.ndarray]:
        """What the generator takes beside the images, one row per prompt: `(B, D)` embeddings on
        PyTorch; ids and mask, embeddings or baked rows on ONNX Runtime."""
        if self.name == "torch":
            return self._torch_model.embed(list(prompts))  # (B, D)
        if self._torch_model is None:
            return self.runner.text_feed(prompts)
        # A cached export takes the embedding, computed here by the PyTorch encoder (any encoder).
        return {"embedding": self._torch_model.embed(list(prompts)).cpu().numpy()}

    def run_rows(self, x: Tensor, rows: Tensor | dict[str, np.ndarray]) -> Tensor:
        """`x` `(B, C, H, W)` in [-1, 1] (multiples of size_multiple) with B rows of `text_rows`."""
        if self.name == "torch":
            with torch.inference_mode():
                return self.generator(x.float(), rows)
        return self.runner.run(x, rows)

    def __call__(self, x: Tensor) -> Tensor:
        if self.text is None:
            raise ValueError("this backend was made without a prompt: call run_rows(x, text_rows(prompts))")
        if self.name == "torch":
            return self.run_rows(x, self.text.expand(len(x), -1))
        return self.run_rows(x, {key: np.repeat(value, len(x), axis=0) for key, value in self.text.items()})

    def describe(self) -> str:
        return super().describe() + (f", prompt {self.prompt!r}" if self.prompt is not None else "")


def text_model_info(path: str | Path) -> tuple[str, dict[str, list[str]]] | None:
    """(kind, domains) of a text model folder, run or exported `.onnx` file; None for image models."""
    source = locate(path)
    if not source.is_text:
        return None
    return source.kind, source.config().get("domains") or {}


def _refuse_provider(provider: str | None) -> None:
    """A forced ONNX Runtime provider where PyTorch runs the model."""
    if provider not in (None, "auto"):
        raise InvalidCombinationError(f'provider="{provider}" applies to ONNX Runtime; drop it or use '
                                      'backend="onnxruntime"', "provider", "backend")


def _ort_placement(provider: str | None, device: torch.device) -> tuple[torch.device, list[str]]:
    """(device the inputs live on, providers best first) for an ONNX Runtime session."""
    if device.type == "mps":
        device = _CPU  # ONNX Runtime has no MPS provider; CoreML is not wired here
    providers = resolve_providers(provider, device)
    if providers[0] == CPU_PROVIDER and device.type == "cuda":
        device = _CPU  # an onnxruntime without CUDA
    return device, providers


def _text_backend(source: ModelSource, prompt: str | None, *, backend: str | None, precision: str,
                  device: torch.device, provider: str | None, threads: int | None,
                  require_prompt: bool = True) -> TextPromptBackend:
    """The checked TextPromptBackend for `make_backend` (see there)."""
    where = str(source.path)
    if not source.is_text:
        raise InvalidCombinationError(f"prompt={prompt!r} applies to text-guided (textcycle) models; {where!r} holds "
                                      "an image-only generator: drop prompt", "prompt", "model")
    domains = source.config().get("domains") or {}
    if source.kind != TEXTCYCLE_KIND:
        raise InvalidCombinationError(f"{where!r} is a {source.kind} model (noise + caption -> image), it does not "
                                      "translate images: make images with its generate method "
                                      "(translate.text.model.load_text_model(model).generate(prompts))", "model")
    if require_prompt and (prompt is None or not prompt.strip()):
        listing = "; ".join(f"{name}: {', '.join(map(repr, prompts))}" for name, prompts in domains.items())
        raise InvalidCombinationError(f"{where!r} is a text-guided textcycle model: it needs a prompt naming what to "
                                      f"translate to, e.g. a prompt of its domains ({listing or 'none recorded'})",
                                      "prompt", "model")
    file_precision = _file_precision(source.config()) if source.is_onnx else None
    if precision not in ("auto", "fp32", file_precision):
        raise InvalidCombinationError(f'precision="{precision}": text models run in fp32 here (fp16, bf16 and int8 '
                                      'are not wired for them); use precision="fp32" or "auto" (for fp16, '
                                      'export_onnx(model, "out.onnx", half=True) and run that file)', "precision")
    name = choose_backend(backend, is_onnx=source.is_onnx, precision=file_precision or "fp32", device=device)
    if name == "torch":
        _refuse_provider(provider)
        return TextPromptBackend(source.path, prompt, name="torch", device=device)
    _, providers = _ort_placement(provider, device)
    return TextPromptBackend(source.path, prompt, name="onnxruntime", device=_CPU, providers=providers,
                             threads=threads)


def make_backend(model: str | Path, *, backend: str | None = "auto", precision: str = "auto",
                 device: str = "auto", provider: str | None = None, direction: str | None = None,
                 threads: int | None = None, calibration: Sequence[Path] | None = None,
                 prompt: str | None = None, capabilities: Capabilities | None = None) -> Backend:
    """Load `model` for inference.

    Args:
        model: a weights folder, run directory, training checkpoint, `.onnx` file or the name of a
            bundled or installed model.
        backend: auto | onnxruntime | torch; None keeps the model's own form (`.onnx` on ONNX
            Runtime, anything else on PyTorch).
        precision: auto | fp32 | fp16 | bf16 | int8 (see `translate.deploy.selection` for auto). An
            `.onnx` file runs at the precision it was exported with.
        device: auto | cpu | cuda | mps.
        provider: tensorrt | cuda | cpu to force an ONNX Runtime provider (default: best available).
        direction: AtoB | BtoA for models that hold both CycleGAN generators.
        threads: ONNX Runtime intra-op threads (default: its own choice, one per physical core).
        calibration: images for int8 quantisation (needed for precision int8; with auto on a CPU
            with VNNI they make int8 the choice).
        prompt: what a textcycle model (folder, run or its `.onnx`) translates to; required for
            those, refused for image models. Text models run in fp32 (or an .onnx file's precision).
        capabilities: the machine's, for the auto choices (default: this machine's).

    Raises:
        InvalidChoiceError: a choice outside the lists above (checked first, on every machine).
        InvalidCombinationError: a combination that cannot run (bf16 on ONNX Runtime, an .onnx
            file on PyTorch, a precision an .onnx file was not exported with, int8 without
            calibration images).
        FileNotFoundError: no model at `model`.
    """
    check_choices(backend=backend, precision=precision, provider=provider, device=device)
    check_choice("direction", direction, (None, *DIRECTIONS))
    facts = detect_capabilities() if capabilities is None else capabilities
    source = locate(model)
    torch_device = choose_device(device, facts)
    if prompt is not None or source.is_text:
        return _text_backend(source, prompt, backend=backend, precision=precision, device=torch_device,
                             provider=provider, threads=threads)
    if source.is_onnx:
        return _onnx_file_backend(source, backend=backend, precision=precision, device=torch_device,
                                  provider=provider, threads=threads)
    return _weights_backend(source, backend=backend, precision=precision, device=torch_device, provider=provider,
                            direction=direction, threads=threads, calibration=calibration, facts=facts)


def make_text_backend(model: str | Path, *, backend: str | None = "auto", precision: str = "auto",
                      device: str = "auto", provider: str | None = None, threads: int | None = None,
                      capabilities: Capabilities | None = None) -> TextPromptBackend:
    """A textcycle model without a fixed prompt, for a prompt per image (`text_rows` + `run_rows`);
    the arguments and errors are `make_backend`'s."""
    check_choices(backend=backend, precision=precision, provider=provider, device=device)
    facts = detect_capabilities() if capabilities is None else capabilities
    return _text_backend(locate(model), None, backend=backend, precision=precision,
                         device=choose_device(device, facts), provider=provider, threads=threads,
                         require_prompt=False)


def _onnx_file_backend(source: ModelSource, *, backend: str | None, precision: str, device: torch.device,
                       provider: str | None, threads: int | None) -> Backend:
    """An exported image `.onnx` file on ONNX Runtime, at its own precision."""
    file_precision = _file_precision(source.config())
    choose_backend(backend, is_onnx=True, precision=file_precision, device=device)  # refuses torch
    if precision not in ("auto", file_precision):
        half = ", half=True" if precision == "fp16" else ""
        raise InvalidCombinationError(f'{source.path.name} was exported in {file_precision}; precision="{precision}" '
                                      f'needs a new export (export_onnx(model, "out.onnx"{half})) or '
                                      f'precision="{file_precision}"', "precision", "model")
    ort_device, providers = _ort_placement(provider, device)
    return OrtBackend(source.path, providers=providers, device=ort_device, threads=threads)


def _weights_backend(source: ModelSource, *, backend: str | None, precision: str, device: torch.device,
                     provider: str | None, direction: str | None, threads: int | None,
                     calibration: Sequence[Path] | None, facts: Capabilities) -> Backend:
    """PyTorch weights on PyTorch, or on ONNX Runtime through a cached export (or int8 copy)."""
    int8_possible = bool(calibration) and backend in ("auto", "onnxruntime")
    bf16_possible = backend in (None, "auto", "torch") and provider in (None, "auto")
    wanted = resolve_precision(precision, device, int8_possible=int8_possible, bf16_possible=bf16_possible,
                               capabilities=facts)
    if choose_backend(backend, is_onnx=False, precision=wanted, device=device) == "torch":
        _refuse_provider(provider)
        return TorchBackend(source.path, precision=wanted, device=device, direction=direction)
    ort_device, providers = _ort_placement(provider, device)
    if ort_device != device:  # the CPU's best precision, not the GPU's
        wanted = resolve_precision(precision, ort_device, int8_possible=int8_possible, bf16_possible=False,
                                   capabilities=facts)
    if wanted == "fp16" and ort_device.type == "cpu":
        logger.warning("float16 on ONNX Runtime's CPU provider is converted back to float32 op by op and "
                       "slow; fp32 is the fast CPU precision here")
    note = ""
    if wanted == "int8":
        onnx_path, note = _int8_or_fallback(source.path, direction=direction, precision=precision,
                                            device=ort_device, calibration=calibration)
    else:
        onnx_path = onnx_copy(source.path, direction=direction, precision=wanted)
    runner = OrtBackend(onnx_path, providers=providers, device=ort_device, threads=threads)
    runner.note = note
    return runner


def _int8_or_fallback(path: Path, *, direction: str | None, precision: str, device: torch.device,
                      calibration: Sequence[Path] | None) -> tuple[Path, str]:
    """The checked int8 copy, or (precision auto only) the float32 copy when int8 is refused."""
    if device.type != "cpu":
        raise InvalidCombinationError('precision="int8" is a CPU path (ONNX Runtime\'s CPU kernels); use '
                                      'precision="fp16" on a GPU', "precision", "device")
    if not calibration:
        raise InvalidCombinationError('precision="int8" needs calibration images: pass calibration=[paths] '
                                      "(convert passes the input folder's)", "precision", "calibration")
    channels = int(read_model_config(path, direction)["architecture"]["input_nc"])
    try:
        int8_path, worst = int8_copy(path, direction=direction, images=calibration, channels=channels)
    except Int8AccuracyError as error:
        if precision != "auto":
            raise
        logger.warning("%s; using fp32", error)
        return onnx_copy(path, direction=direction, precision="fp32"), f"int8 refused: {error}"
    return int8_path, f"worst PSNR {worst:.1f} dB vs fp32"

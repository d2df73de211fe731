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

from translate.core.device import Capabilities, detect_capabilities
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
from translate.formats.locator import DIRECTIONS, ModelSource, as_source
from translate.formats.onnx_metadata import FILE_PRECISION, read_onnx_metadata
from translate.formats.weights import load_with_config, read_model_config
from translate.text.model import TEXTCYCLE_KIND, load_text_model

logger = logging.getLogger(__name__)

__all__ = ["BACKENDS", "PRECISIONS", "PROVIDERS", "Backend", "TorchBackend", "OrtBackend", "TextPromptBackend",
           "TorchTextBackend", "OrtTextBackend",
           "make_backend", "make_text_backend", "choose_backend", "resolve_precision", "resolve_providers"]

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

    def __init__(self, source: ModelSource, *, precision: str, device: torch.device, direction: str | None) -> None:
        self.name, self.precision, self.device, self.provider = "torch", precision, device, device.type
        network, self.config = load_with_config(source, direction=direction, device=device)
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
        self.config = read_onnx_metadata(onnx_path)
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
    in [-1, 1], translated to `prompt`. The prompt is turned into text rows (embedded, tokenised, or
    looked up in a baked table) once; every call feeds that row to each image of the batch.

    `prompt` None: no call, only `text_rows` + `run_rows`, for a prompt per image (a server).
    Subclasses: `TorchTextBackend`, `OrtTextBackend`; `make_text_backend` picks one.
    """

    prompt: str | None
    text: Tensor | dict[str, np.ndarray] | None

    def _set_prompt(self, prompt: str | None) -> None:
        """Called last by the subclasses' constructors, once `text_rows` works."""
        self.prompt = prompt
        self.text = self.text_rows([prompt]) if prompt is not None else None

    def text_rows(self, prompts: Sequence[str]) -> Tensor | dict[str, np.ndarray]:  # pragma: no cover - abstract
        """What the generator takes beside the images, one row per prompt."""
        raise NotImplementedError

    def run_rows(self, x: Tensor, rows: Tensor | dict[str, np.ndarray]) -> Tensor:  # pragma: no cover - abstract
        """`x` `(B, C, H, W)` in [-1, 1] (multiples of size_multiple) with B rows of `text_rows`."""
        raise NotImplementedError

    def _repeat_text(self, count: int) -> Tensor | dict[str, np.ndarray]:  # pragma: no cover - abstract
        """The prompt's row, `count` times."""
        raise NotImplementedError

    def __call__(self, x: Tensor) -> Tensor:
        if self.text is None:
            raise ValueError("this backend was made without a prompt: call run_rows(x, text_rows(prompts))")
        return self.run_rows(x, self._repeat_text(len(x)))

    def describe(self) -> str:
        return super().describe() + (f", prompt {self.prompt!r}" if self.prompt is not None else "")


class TorchTextBackend(TextPromptBackend):
    """A textcycle weights folder / run on PyTorch, fp32; text rows are `(B, D)` embeddings."""

    def __init__(self, source: ModelSource, prompt: str | None, *, device: torch.device) -> None:
        self.name, self.precision, self.device, self.provider = "torch", "fp32", device, device.type
        self.model = load_text_model(source, device, kind=TEXTCYCLE_KIND)
        self.config, self.generator = self.model.config, self.model.generator.float()
        architecture = self.config["architecture"]
        self.size_multiple = text_size_multiple(architecture)
        self.input_channels = int(architecture.get("input_nc", 3))
        self.output_channels = int(architecture.get("output_nc", 3))
        self._set_prompt(prompt)

    def text_rows(self, prompts: Sequence[str]) -> Tensor:
        return self.model.embed(list(prompts))  # (B, D)

    def run_rows(self, x: Tensor, rows: Tensor) -> Tensor:  # type: ignore[override]
        with torch.inference_mode():
            return self.generator(x.float(), rows)

    def _repeat_text(self, count: int) -> Tensor:
        return self.text.expand(count, -1)  # type: ignore[union-attr]


class OrtTextBackend(TextPromptBackend):
    """A textcycle model on ONNX Runtime (CPU inputs): an exported `.onnx` file, or a weights folder /
    run through a cached export whose text input is the embedding. Text rows are the file's feed (ids
    and mask, embeddings or baked rows)."""

    def __init__(self, source: ModelSource, prompt: str | None, *, providers: list[str],
                 threads: int | None = None) -> None:
        self.name, self.device = "onnxruntime", _CPU
        # A cached export takes the embedding, computed here by the PyTorch encoder (any encoder).
        self.encoder_model = None if source.is_onnx else load_text_model(source, "cpu", kind=TEXTCYCLE_KIND)
        self.onnx_model = OnnxTextModel(source.path if source.is_onnx else text_onnx_copy(source),
                                        providers=providers, threads=threads)
        self.config, self.provider = self.onnx_model.metadata, self.onnx_model.provider
        self.precision = _file_precision(self.config)
        self.size_multiple = self.onnx_model.size_multiple
        self.input_channels = int(self.config["input_channels"])
        self.output_channels = int(self.config["output_channels"])
        self._set_prompt(prompt)

    def text_rows(self, prompts: Sequence[str]) -> dict[str, np.ndarray]:
        if self.encoder_model is None:
            return self.onnx_model.text_feed(prompts)
        return {"embedding": self.encoder_model.embed(list(prompts)).cpu().numpy()}

    def run_rows(self, x: Tensor, rows: dict[str, np.ndarray]) -> Tensor:  # type: ignore[override]
        return self.onnx_model.run(x, rows)

    def _repeat_text(self, count: int) -> dict[str, np.ndarray]:
        return {key: np.repeat(value, count, axis=0) for key, value in self.text.items()}  # type: ignore[union-attr]


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


def _check_text_model(source: ModelSource, prompt: str | None, precision: str) -> None:
    """Refuse what a text model cannot do here, naming the fix (see `make_text_backend`)."""
    where = str(source.path)
    if not source.is_text:
        raise InvalidCombinationError(f"prompt={prompt!r} applies to text-guided (textcycle) models; {where!r} holds "
                                      "an image-only generator: drop prompt", "prompt", "model")
    if source.kind != TEXTCYCLE_KIND:
        raise InvalidCombinationError(f"{where!r} is a {source.kind} model (noise + caption -> image), it does not "
                                      "translate images: make images with its generate method "
                                      "(translate.text.model.load_text_model(model).generate(prompts))", "model")
    file_precision = _file_precision(source.config()) if source.is_onnx else None
    if precision not in ("auto", "fp32", file_precision):
        raise InvalidCombinationError(f'precision="{precision}": text models run in fp32 here (fp16, bf16 and int8 '
                                      'are not wired for them); use precision="fp32" or "auto" (for fp16, '
                                      'export_onnx(model, "out.onnx", half=True) and run that file)', "precision")


def _require_prompt(source: ModelSource, prompt: str | None) -> None:
    """A textcycle model translates to what a prompt names: refuse a missing or blank one."""
    if prompt is None or not prompt.strip():
        domains = source.config().get("domains") or {}
        listing = "; ".join(f"{name}: {', '.join(map(repr, prompts))}" for name, prompts in domains.items())
        raise InvalidCombinationError(f"{str(source.path)!r} is a text-guided textcycle model: it needs a prompt "
                                      f"naming what to translate to, e.g. a prompt of its domains "
                                      f"({listing or 'none recorded'})", "prompt", "model")


def make_backend(model: str | Path | ModelSource, *, backend: str | None = "auto", precision: str = "auto",
                 device: str = "auto", provider: str | None = None, direction: str | None = None,
                 threads: int | None = None, calibration: Sequence[Path] | None = None,
                 prompt: str | None = None, capabilities: Capabilities | None = None) -> Backend:
    """Load `model` for inference.

    Args:
        model: a weights folder, run directory, training checkpoint, `.onnx` file or the name of a
            bundled or installed model, or what `translate.formats.locator.locate` found (a caller
            that located it already passes that down, so it is resolved once).
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
    source = as_source(model)
    if prompt is not None or source.is_text:
        if source.kind == TEXTCYCLE_KIND:
            _require_prompt(source, prompt)
        return make_text_backend(source, prompt=prompt, backend=backend, precision=precision, device=device,
                                 provider=provider, threads=threads, capabilities=facts)
    torch_device = choose_device(device, facts)
    if source.is_onnx:
        return _onnx_file_backend(source, backend=backend, precision=precision, device=torch_device,
                                  provider=provider, threads=threads)
    return _weights_backend(source, backend=backend, precision=precision, device=torch_device, provider=provider,
                            direction=direction, threads=threads, calibration=calibration, facts=facts)


def make_text_backend(model: str | Path | ModelSource, *, prompt: str | None = None, backend: str | None = "auto",
                      precision: str = "auto", device: str = "auto", provider: str | None = None,
                      threads: int | None = None, capabilities: Capabilities | None = None) -> TextPromptBackend:
    """A textcycle model on PyTorch (`TorchTextBackend`) or ONNX Runtime (`OrtTextBackend`), chosen
    here. `prompt`: what every call translates to; None for a prompt per image (`text_rows` +
    `run_rows`). The other arguments and the errors are `make_backend`'s."""
    check_choices(backend=backend, precision=precision, provider=provider, device=device)
    facts = detect_capabilities() if capabilities is None else capabilities
    source = as_source(model)
    _check_text_model(source, prompt, precision)
    torch_device = choose_device(device, facts)
    file_precision = _file_precision(source.config()) if source.is_onnx else "fp32"
    if choose_backend(backend, is_onnx=source.is_onnx, precision=file_precision, device=torch_device) == "torch":
        _refuse_provider(provider)
        return TorchTextBackend(source, prompt, device=torch_device)
    _, providers = _ort_placement(provider, torch_device)
    return OrtTextBackend(source, prompt, providers=providers, threads=threads)


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
        return TorchBackend(source, precision=wanted, device=device, direction=direction)
    ort_device, providers = _ort_placement(provider, device)
    if ort_device != device:  # the CPU's best precision, not the GPU's
        wanted = resolve_precision(precision, ort_device, int8_possible=int8_possible, bf16_possible=False,
                                   capabilities=facts)
    if wanted == "fp16" and ort_device.type == "cpu":
        logger.warning("float16 on ONNX Runtime's CPU provider is converted back to float32 op by op and "
                       "slow; fp32 is the fast CPU precision here")
    note = ""
    if wanted == "int8":
        onnx_path, note = _int8_or_fallback(source, direction=direction, precision=precision,
                                            device=ort_device, calibration=calibration)
    else:
        onnx_path = onnx_copy(source, direction=direction, precision=wanted)
    ort_backend = OrtBackend(onnx_path, providers=providers, device=ort_device, threads=threads)
    ort_backend.note = note
    return ort_backend


def _int8_or_fallback(source: ModelSource, *, direction: str | None, precision: str, device: torch.device,
                      calibration: Sequence[Path] | None) -> tuple[Path, str]:
    """The checked int8 copy, or (precision auto only) the float32 copy when int8 is refused."""
    if device.type != "cpu":
        raise InvalidCombinationError('precision="int8" is a CPU path (ONNX Runtime\'s CPU kernels); use '
                                      'precision="fp16" on a GPU', "precision", "device")
    if not calibration:
        raise InvalidCombinationError('precision="int8" needs calibration images: pass calibration=[paths] '
                                      "(convert passes the input folder's)", "precision", "calibration")
    channels = int(read_model_config(source, direction)["architecture"]["input_nc"])
    try:
        int8_path, worst = int8_copy(source, direction=direction, images=calibration, channels=channels)
    except Int8AccuracyError as error:
        if precision != "auto":
            raise
        logger.warning("%s; using fp32", error)
        return onnx_copy(source, direction=direction, precision="fp32"), f"int8 refused: {error}"
    return int8_path, f"worst PSNR {worst:.1f} dB vs fp32"

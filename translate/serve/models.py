"""The models a server holds: one class per kind, each with the batch call the batcher makes.

- `ImageModel`: a generator (one backend per direction it holds), as `convert` runs it.
- `TextCycleModel`: a textcycle model with a prompt per request (its embedding cached).
- `Text2ImageModel`: captions (+ a seed each) -> images.

Every class loads through `translate.deploy`, so a served model runs on the same backend, precision
and provider as `convert` picks for the same options; `info()` says which.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from translate.core.device import Capabilities, detect_capabilities
from translate.core.errors import InvalidCombinationError
from translate.core.images import from_uint8, to_uint8
from translate.deploy.backends import Backend, make_backend, make_text_backend
from translate.deploy.inference import pad_to_multiple, translate_uint8
from translate.deploy.selection import choose_device
from translate.deploy.text_runner import OnnxTextModel
from translate.formats.locator import ModelSource, locate
from translate.serve.options import ModelSpec, ServeOptions
from translate.text.model import TEXT2IMAGE_KIND, TEXTCYCLE_KIND, load_text2image

logger = logging.getLogger(__name__)

__all__ = ["check_servable", "ImageJob", "GenerateJob", "PromptError", "ServedModel", "ImageModel", "TextCycleModel", "Text2ImageModel",
           "load_served_model"]

_PROMPT_CACHE = 256  # embeddings kept per textcycle model


class PromptError(ValueError):
    """A prompt this model cannot take (e.g. not baked into its .onnx file); only its request fails."""


@dataclass
class ImageJob:
    """One image to translate: `(C, H, W)` uint8 pixels (+ the prompt of a textcycle model)."""

    pixels: Tensor
    prompt: str | None = None


@dataclass
class GenerateJob:
    """One image to generate from `prompt` with the noise of `seed`."""

    prompt: str
    seed: int


class ServedModel:
    """A loaded model. Subclasses set `kind` and `endpoint` and implement `batch_key` and `run_batch`."""

    kind: str
    endpoint: str  # "translate" | "generate"
    directions: tuple[str, ...] = ()

    def __init__(self, name: str, source: ModelSource) -> None:
        self.name, self.source = name, source

    def batch_key(self, job: Any, direction: str | None) -> Hashable:
        """Jobs with equal keys may share a model call."""
        raise NotImplementedError

    def run_batch(self, key: Hashable, jobs: Sequence[Any]) -> list[np.ndarray]:
        """One model call for `jobs` (equal keys) -> one `(H, W, C)` uint8 output per job."""
        raise NotImplementedError

    def warm_up(self, size: int) -> None:
        """Run once at about `size` px so that the first request does not pay for set-up."""
        raise NotImplementedError

    def measure_batching(self, size: int, max_batch: int) -> float | None:
        """Images/s at batch `max_batch` over images/s at batch 1, at about `size` px (after
        `warm_up`), or None where not measured. Below 1, batching slows this model down on this
        backend (seen on CPUs: docs/serve.md)."""
        return None

    def info(self) -> dict[str, Any]:
        raise NotImplementedError


def _backend_info(backend: Backend) -> dict[str, Any]:
    return {"backend": backend.name, "precision": backend.precision, "provider": backend.provider,
            "device": str(backend.device), "size_multiple": backend.size_multiple,
            "input_channels": backend.input_channels, "output_channels": backend.output_channels}


def _timed(function: Any, *args: Any) -> float:
    started = time.perf_counter()
    function(*args)
    return time.perf_counter() - started


def _warm_size(size: int, multiple: int) -> int:
    return max(multiple, round(size / multiple) * multiple)


class ImageModel(ServedModel):
    """A generator per direction, each a `make_backend` backend (as `convert`)."""

    kind, endpoint = "generator", "translate"

    def __init__(self, name: str, source: ModelSource, options: ServeOptions, facts: Capabilities) -> None:
        super().__init__(name, source)
        self.directions = source.directions or ("AtoB",)
        self.backends = {direction: make_backend(
            source, backend=options.backend, precision=options.precision, device=options.device,
            provider=options.provider, direction=direction if source.directions else None, capabilities=facts)
            for direction in self.directions}
        self.input_channels = next(iter(self.backends.values())).input_channels

    def pick_direction(self, direction: str | None) -> str:
        if direction is None:
            return "AtoB" if "AtoB" in self.directions else self.directions[0]
        if direction not in self.directions:
            raise KeyError(direction)
        return direction

    def batch_key(self, job: ImageJob, direction: str | None) -> Hashable:
        return (self.pick_direction(direction), *job.pixels.shape)

    def run_batch(self, key: Hashable, jobs: Sequence[ImageJob]) -> list[np.ndarray]:
        backend = self.backends[key[0]]  # type: ignore[index]
        images = torch.stack([job.pixels for job in jobs])  # (B, C, H, W) uint8
        return list(translate_uint8(backend, images, backend.size_multiple, backend.device))

    def _warm_job(self, size: int, backend: Backend) -> ImageJob:
        side = _warm_size(size, backend.size_multiple)
        return ImageJob(torch.full((backend.input_channels, side, side), 128, dtype=torch.uint8))

    def warm_up(self, size: int) -> None:
        for direction, backend in self.backends.items():
            job = self._warm_job(size, backend)
            self.run_batch((direction, *job.pixels.shape), [job])

    def measure_batching(self, size: int, max_batch: int) -> float | None:
        direction, backend = next(iter(self.backends.items()))
        job = self._warm_job(size, backend)
        key = (direction, *job.pixels.shape)
        self.run_batch(key, [job] * max_batch)  # the first call at this batch size sets up
        single = min(_timed(self.run_batch, key, [job]) for _ in range(2))
        batched = _timed(self.run_batch, key, [job] * max_batch)
        return max_batch * single / batched

    def info(self) -> dict[str, Any]:
        first = next(iter(self.backends.values()))
        return {"directions": list(self.directions), **_backend_info(first),
                "description": first.describe(), "note": first.note}


class TextCycleModel(ServedModel):
    """A textcycle model: an image and a prompt per request; prompts' rows are cached."""

    kind, endpoint = TEXTCYCLE_KIND, "translate"

    def __init__(self, name: str, source: ModelSource, options: ServeOptions, facts: Capabilities) -> None:
        super().__init__(name, source)
        self.backend = make_text_backend(source, backend=options.backend, precision=options.precision,
                                         device=options.device, provider=options.provider, capabilities=facts)
        self.input_channels = self.backend.input_channels
        self.domains: dict[str, list[str]] = dict(self.backend.config.get("domains") or {})
        self._rows: OrderedDict[str, Any] = OrderedDict()

    def batch_key(self, job: ImageJob, direction: str | None) -> Hashable:
        return tuple(job.pixels.shape)  # prompts may differ within a batch: one text row per image

    def _row(self, prompt: str) -> Any:
        row = self._rows.pop(prompt, None)
        if row is None:
            row = self.backend.text_rows([prompt])
        self._rows[prompt] = row
        while len(self._rows) > _PROMPT_CACHE:
            self._rows.popitem(last=False)
        return row

    def run_batch(self, key: Hashable, jobs: Sequence[ImageJob]) -> list[np.ndarray | Exception]:
        results: list[np.ndarray | Exception] = []
        rows, runnable = [], []
        for job in jobs:  # a prompt the model refuses fails its own request only
            try:
                rows.append(self._row(str(job.prompt)))
                runnable.append(job)
                results.append(np.empty(0))
            except ValueError as error:
                results.append(PromptError(str(error)))
        if not runnable:
            return results
        if isinstance(rows[0], Tensor):
            text: Any = torch.cat(rows)
        else:
            text = {name: np.concatenate([row[name] for row in rows]) for name in rows[0]}
        x = from_uint8(torch.stack([job.pixels for job in runnable]).to(self.backend.device))
        padded, (height, width) = pad_to_multiple(x, self.backend.size_multiple)
        out = self.backend.run_rows(padded, text)[..., :height, :width]
        outputs = iter(to_uint8(out).permute(0, 2, 3, 1).contiguous().cpu().numpy())
        return [result if isinstance(result, Exception) else next(outputs) for result in results]

    def warm_up(self, size: int) -> None:
        side = _warm_size(size, self.backend.size_multiple)
        prompt = next((p for prompts in self.domains.values() for p in prompts), "warm up")
        job = ImageJob(torch.full((self.input_channels, side, side), 128, dtype=torch.uint8), prompt)
        self.run_batch(self.batch_key(job, None), [job])

    def info(self) -> dict[str, Any]:
        return {"directions": [], **_backend_info(self.backend), "description": self.backend.describe(),
                "domains": self.domains, "needs_prompt": True}


class Text2ImageModel(ServedModel):
    """Captions -> images: PyTorch weights in fp32, or an exported `.onnx` file on ONNX Runtime."""

    kind, endpoint = TEXT2IMAGE_KIND, "generate"

    def __init__(self, name: str, source: ModelSource, options: ServeOptions, facts: Capabilities) -> None:
        super().__init__(name, source)
        if source.is_onnx:
            self.onnx = OnnxTextModel(source.path)
            self.noise_dim = int(self.onnx.metadata["noise_dim"])
            self.device, self.description = torch.device("cpu"), f"onnxruntime on {self.onnx.provider}"
            self.image_size = int(self.onnx.metadata.get("image_size") or 0)
        else:
            self.device = choose_device(options.device, facts)
            self.torch_model = load_text2image(source, device=self.device)
            self.noise_dim = int(self.torch_model.generator.noise_dim)
            self.image_size = int(self.torch_model.config["architecture"].get("image_size") or 0)
            self.description = f"torch fp32 on {self.device.type}"
        self.domains: dict[str, list[str]] = dict(source.config().get("domains") or {})

    def batch_key(self, job: GenerateJob, direction: str | None) -> Hashable:
        return "generate"

    def run_batch(self, key: Hashable, jobs: Sequence[GenerateJob]) -> list[np.ndarray]:
        # Each job's noise is its own seed's, as `translate generate --seed S -n 1` draws it.
        noise = torch.cat([torch.randn(1, self.noise_dim, generator=torch.Generator().manual_seed(job.seed))
                           for job in jobs])
        prompts = [job.prompt for job in jobs]
        if self.source.is_onnx:
            out = self.onnx.run(noise, self.onnx.text_feed(prompts))
        else:
            with torch.inference_mode():
                cond = self.torch_model.text_encoder.encode(prompts).to(self.device)
                out = self.torch_model.generator(noise.to(self.device), cond)
        return list(to_uint8(out).permute(0, 2, 3, 1).contiguous().cpu().numpy())

    def warm_up(self, size: int) -> None:
        self.run_batch("generate", [GenerateJob("warm up", 0)])

    def info(self) -> dict[str, Any]:
        return {"directions": [], "backend": "onnxruntime" if self.source.is_onnx else "torch", "precision": "fp32",
                "provider": self.onnx.provider if self.source.is_onnx else self.device.type,
                "device": str(self.device), "size_multiple": 1, "image_size": self.image_size,
                "description": self.description, "domains": self.domains, "needs_prompt": True}


_KINDS: dict[str, type[ServedModel]] = {
    "generator": ImageModel,
    TEXTCYCLE_KIND: TextCycleModel,
    TEXT2IMAGE_KIND: Text2ImageModel,
}


def check_servable(spec: ModelSpec, options: ServeOptions) -> ModelSource:
    """Locate `spec.model` and refuse, before anything loads, what the server could not serve with
    `options`: a discriminator, or a text model with a precision or backend it does not run.

    Raises:
        FileNotFoundError / ParameterError: as `locate`.
        InvalidCombinationError: naming the option (Python names; the CLI shows flags).
    """
    source = locate(spec.model)
    where = f"{spec.name} ({source.path})"
    if source.kind not in _KINDS:
        raise InvalidCombinationError(f"{where} is a {source.kind}; translate serve serves generators, textcycle "
                                      "and text2image models", "models")
    if source.is_text and options.precision not in ("auto", "fp32"):
        raise InvalidCombinationError(f'{where} is a {source.kind} model, which runs in fp32 here: use '
                                      f'precision="auto" or "fp32" (or serve it apart)', "precision")
    if source.kind == TEXT2IMAGE_KIND and not source.is_onnx and options.backend == "onnxruntime":
        raise InvalidCombinationError(f'{where} is text2image PyTorch weights, which run on PyTorch: use '
                                      'backend="auto", or export it to .onnx and serve that file', "backend")
    return source


def load_served_model(spec: ModelSpec, options: ServeOptions, facts: Capabilities | None = None) -> ServedModel:
    """Locate and load `spec.model` for serving under `spec.name`.

    Raises:
        FileNotFoundError / ParameterError / InvalidCombinationError: as `make_backend`; ValueError for
            a kind that cannot be served (a discriminator).
    """
    source = locate(spec.model)
    cls = _KINDS.get(source.kind)
    if cls is None:
        raise ValueError(f"{spec.model!r} is a {source.kind}; translate serve serves generators, textcycle and "
                         "text2image models")
    model = cls(spec.name, source, options, detect_capabilities() if facts is None else facts)  # type: ignore[call-arg]
    logger.info("loaded %s (%s) from %s", spec.name, source.kind, source.path)
    return model

"""`ServeOptions`: what `translate serve` was asked for, checked before any model is loaded."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from translate.core.errors import InvalidValueError
from translate.deploy.selection import check_choices

__all__ = ["ModelSpec", "ServeOptions", "parse_model_spec", "public_bind_warning"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class ModelSpec:
    """One model to serve: the name in the URL (`/v1/models/{name}/...`) and what `locate` takes."""

    name: str
    model: str


def parse_model_spec(text: str) -> ModelSpec:
    """`NAME=MODEL` or `MODEL`; the name defaults to the model's folder or file name without suffix
    (`weights/maps_aerial2map` -> `maps_aerial2map`, `out/h2z.onnx` -> `h2z`)."""
    name, sep, model = text.partition("=")
    if not sep:
        model = text
        stem = text.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1]
        name = stem[:-5] if stem.lower().endswith(".onnx") else stem
    if not model:
        raise InvalidValueError("models", text, "NAME=MODEL or MODEL (a name, folder, run, checkpoint or .onnx)")
    if not _NAME.match(name):
        raise InvalidValueError("models", text, "a name of letters, digits, '.', '_' or '-' (at most 64), as in "
                                "NAME=MODEL", "e.g. maps=weights/maps_aerial2map")
    return ModelSpec(name, model)


@dataclass(frozen=True)
class ServeOptions:
    """The server's settings (the flags of `translate serve`, with the same names).

    Attributes:
        max_batch: images per model call; 1 turns batching off.
        max_delay_ms: how long the oldest waiting request may wait for its batch to fill.
        queue: requests waiting per model before new ones get 429.
        max_pixels: larger uploads get 413 (checked from the header, before decoding).
        max_body_mb: larger bodies get 413 (checked from Content-Length, and while reading).
        api_key: required on /v1/ as `Authorization: Bearer KEY` or `X-API-Key: KEY` when set.
        workers: threads that decode and encode images (inference has its own thread); default:
            the CPU count, at most 8.
        graceful_seconds: how long a stop waits for the requests in flight (at least 1).
        backend, precision, device, provider: as for `convert`.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    max_batch: int = 8
    max_delay_ms: float = 5.0
    queue: int = 64
    max_pixels: int = 16_000_000
    max_body_mb: float = 20.0
    api_key: str | None = None
    workers: int = field(default_factory=lambda: min(8, os.cpu_count() or 1))
    backend: str | None = "auto"
    precision: str = "auto"
    device: str = "auto"
    provider: str | None = None
    warmup_size: int = 256
    graceful_seconds: float = 30.0
    models: tuple[ModelSpec, ...] = field(default_factory=tuple)

    def check(self) -> None:
        """Raise `ParameterError` for a bad value (named as the Python field)."""
        check_choices(backend=self.backend, precision=self.precision, provider=self.provider, device=self.device)
        for name in ("max_batch", "queue", "max_pixels", "workers", "warmup_size"):
            if getattr(self, name) < 1:
                raise InvalidValueError(name, getattr(self, name), "an integer >= 1")
        if self.max_delay_ms < 0:
            raise InvalidValueError("max_delay_ms", self.max_delay_ms, "a number >= 0")
        if self.graceful_seconds < 1:
            raise InvalidValueError("graceful_seconds", self.graceful_seconds, "a number of seconds >= 1")
        if self.max_body_mb <= 0:
            raise InvalidValueError("max_body_mb", self.max_body_mb, "a number > 0")
        if not 0 <= self.port <= 65535:
            raise InvalidValueError("port", self.port, "a port number in 0..65535 (0: any free port)")
        if self.api_key is not None and len(self.api_key) < 8:
            raise InvalidValueError("api_key", "<hidden>", "at least 8 characters", "use a long random key")
        names = [spec.name for spec in self.models]
        if not names:
            raise InvalidValueError("models", "()", "at least one model")
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise InvalidValueError("models", ", ".join(duplicates), "distinct names",
                                    "name them apart with NAME=MODEL")

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)


def public_bind_warning(options: ServeOptions) -> str | None:
    """The warning for a server reachable from other machines without an API key, else None."""
    if options.host in ("127.0.0.1", "localhost", "::1") or options.api_key:
        return None
    return (f"serving on {options.host}:{options.port} without an API key: anyone who can reach this port can "
            "use the models; set --api-key (or TRANSLATE_API_KEY), or bind 127.0.0.1 behind a proxy")

"""`ServeOptions`: what `translate serve` was asked for, checked before any model is loaded.

Each setting is a field declared once with its help and check (translate.core.options); the model
choices are the ones convert has (translate.deploy.options), and `translate serve` builds its flags
from these fields."""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass

from translate.core.errors import InvalidValueError
from translate.core.options import check_options, integer, number, option
from translate.deploy.options import PRECISIONS, backend_option, device_option, precision_option, provider_option

__all__ = ["SERVE_PRECISIONS", "ModelSpec", "ServeOptions", "parse_model_spec", "public_bind_warning"]

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


def _check_api_key(name: str, value: str | None) -> None:
    if value is not None and (not isinstance(value, str) or len(value) < 8):
        raise InvalidValueError(name, "<hidden>", "at least 8 characters", "use a long random key")


def _check_models(name: str, specs: tuple[ModelSpec, ...]) -> None:
    names = [spec.name for spec in specs]
    if not names:
        raise InvalidValueError(name, "()", "at least one model")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InvalidValueError(name, ", ".join(duplicates), "distinct names", "name them apart with NAME=MODEL")


SERVER, BATCHING, LIMITS = "Server", "Batching", "Limits"
# int8 needs calibration images, which a server does not have.
SERVE_PRECISIONS = tuple(p for p in PRECISIONS if p != "int8")


@dataclass(frozen=True)
class ServeOptions:
    """The server's settings: the flags of `translate serve`, with the same names (each field's help
    says what it does), plus `warmup_size`, `graceful_seconds` and `models`, which the command sets
    otherwise. `check()` refuses bad values before any model is loaded."""

    host: str = option("127.0.0.1", "Address to bind; 0.0.0.0 makes the server reachable from other machines "
                       "(set --api-key).", panel=SERVER)
    port: int = option(8000, "TCP port.", panel=SERVER, check=integer(0, maximum=65535, why="0: any free port"))
    api_key: str | None = option(None, "Require this key on /v1/ (Authorization: Bearer KEY or X-API-Key); also "
                                 "read from TRANSLATE_API_KEY, which keeps it out of the process list.",
                                 panel=SERVER, envvar="TRANSLATE_API_KEY", check=_check_api_key)
    workers: int = option(dataclasses.MISSING, "Threads that decode and encode images (inference has its own "
                          "thread).", panel=SERVER, check=integer(1), default_help="the CPU count, at most 8",
                          default_factory=lambda: min(8, os.cpu_count() or 1))
    max_batch: int = option(8, "Images per model call; 1 turns dynamic batching off.", panel=BATCHING,
                            check=integer(1))
    max_delay_ms: float = option(5.0, "How long the oldest request waits for its batch to fill.", panel=BATCHING,
                                 check=number(0.0))
    queue: int = option(64, "Requests waiting per model before new ones get 429.", panel=BATCHING, check=integer(1))
    max_pixels: int = option(16_000_000, "Larger images get 413 (checked from the header, before decoding).",
                             panel=LIMITS, check=integer(1))
    max_body_mb: float = option(20.0, "Larger request bodies get 413.", panel=LIMITS, check=number(0.0, strict=True))
    backend: str | None = backend_option()
    precision: str = precision_option(SERVE_PRECISIONS, fix="int8 needs calibration images, which a server does "
                                      "not take; use translate convert for int8")
    device: str = device_option()
    provider: str | None = provider_option()
    warmup_size: int = option(256, "Side of the image each model is warmed up with before /readyz says ready.",
                              panel=SERVER, check=integer(1), cli=False)
    graceful_seconds: float = option(30.0, "How long a stop waits for the requests in flight.", panel=SERVER,
                                     check=number(1.0), cli=False)
    models: tuple[ModelSpec, ...] = option((), "The models to serve.", panel=SERVER, check=_check_models, cli=False)

    def check(self) -> None:
        """Raise `ParameterError` for a bad value (named as the Python field)."""
        check_options(self)

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)


def public_bind_warning(options: ServeOptions) -> str | None:
    """The warning for a server reachable from other machines without an API key, else None."""
    if options.host in ("127.0.0.1", "localhost", "::1") or options.api_key:
        return None
    return (f"serving on {options.host}:{options.port} without an API key: anyone who can reach this port can "
            "use the models; set --api-key (or TRANSLATE_API_KEY), or bind 127.0.0.1 behind a proxy")

"""The `translate serve` application: routes, the models' batchers and the server's state.

    app = create_app(ServeOptions(models=(ModelSpec("maps", "maps_aerial2map"),)))
    uvicorn.run(app)        # translate.serve.server.run_server does this, with graceful shutdown

Routes (the OpenAPI schema is at /openapi.json; docs/serve.md has curl examples):

- `POST /v1/models/{name}/translate`: an image (raw body or multipart) -> the translated image
- `POST /v1/models/{name}/generate`: `{"prompt": ..., "seed": ...}` -> an image (text2image models)
- `GET /v1/models`, `GET /v1/models/{name}`: what is served and how (backend, precision, provider)
- `GET /healthz` (alive), `GET /readyz` (models loaded and warmed up), `GET /metrics` (Prometheus)
- `GET /`: a page to try the models in a browser

Models load and warm up on the inference thread after the server starts, so /healthz answers at
once and /readyz (and the model routes, with 503) say when they are ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any, Literal

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import HTMLResponse, JSONResponse, Response

from translate.core.device import Capabilities
from translate.core.version import __version__
from translate.serve.batching import BatcherStoppedError, Done, DynamicBatcher, QueueFullError
from translate.serve.http_io import (
    ACCEPTED_TYPES,
    OUTPUT_TYPES,
    BodyLimit,
    ServeError,
    check_api_key,
    decode_upload,
    encode_output,
    error_response,
    read_upload,
)
from translate.serve.metrics import CONTENT_TYPE_LATEST, UNKNOWN_MODEL, ServeMetrics
from translate.serve.models import GenerateJob, ImageJob, PromptError, ServedModel, load_served_model
from translate.serve.options import ServeOptions

logger = logging.getLogger(__name__)

__all__ = ["GenerateRequest", "ServeState", "create_app"]


class GenerateRequest(BaseModel):
    """The body of `POST /v1/models/{name}/generate`."""

    prompt: str = Field(min_length=1, max_length=1000, description="What to draw.")
    seed: int | None = Field(None, ge=0, lt=2**63, description="Noise seed (default: random, returned in X-Seed).")
    format: Literal["png", "jpeg", "jpg", "webp"] = "png"
    quality: int = Field(95, ge=1, le=100, description="jpeg / webp quality.")


class ServeState:
    """The models, their batchers, the thread pools and the metrics of one app."""

    def __init__(self, options: ServeOptions, models: dict[str, ServedModel] | None,
                 facts: Capabilities | None, on_fatal: Callable[[str], None] | None) -> None:
        self.options, self.facts, self.on_fatal = options, facts, on_fatal
        self.names = [spec.name for spec in options.models]
        self.models: dict[str, ServedModel] = dict(models or {})
        self.batch_gains: dict[str, float | None] = {}
        self.batchers: dict[str, DynamicBatcher] = {}
        self.metrics = ServeMetrics()
        self.ready = False
        self.load_error: str | None = None
        self.infer_pool = ThreadPoolExecutor(1, thread_name_prefix="infer")
        self.io_pool = ThreadPoolExecutor(options.workers, thread_name_prefix="codec")

    def load(self) -> None:
        """Load (unless given) and warm up every model, and measure what batching gains; on the
        inference thread."""
        options = self.options
        for spec in options.models:
            if spec.name not in self.models:
                self.models[spec.name] = load_served_model(spec, options, self.facts)
            model = self.models[spec.name]
            model.warm_up(options.warmup_size)
            gain = model.measure_batching(options.warmup_size, options.max_batch) if options.max_batch > 1 else None
            self.batch_gains[spec.name] = gain
            if gain is not None and gain < 0.95:
                logger.warning("%s: a batch of %d runs at %.2fx the images/s of single images on %s at %d px: "
                               "batching does not pay here; --max-batch 1 serves as fast with lower latency",
                               spec.name, options.max_batch, gain, model.info()["description"], options.warmup_size)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self.infer_pool, self.load)
        except Exception as error:  # noqa: BLE001 - reported on /readyz, and the server stops
            self.load_error = f"{type(error).__name__}: {error}"
            logger.error("cannot load the models: %s", self.load_error)
            if self.on_fatal is not None:
                self.on_fatal(self.load_error)
            return
        for name, model in self.models.items():
            batcher = DynamicBatcher(model.run_batch, max_batch=self.options.max_batch,
                                     max_delay_s=self.options.max_delay_ms / 1000, max_queue=self.options.queue,
                                     executor=self.infer_pool,
                                     on_batch=lambda stats, name=name: self.metrics.observe_batch(name, stats))
            batcher.start()
            self.metrics.queue_depth.labels(name).set_function(lambda batcher=batcher: batcher.waiting)
            self.batchers[name] = batcher
        self.ready = True
        logger.info("ready: %s", ", ".join(f"{name} ({m.info()['description']})" for name, m in self.models.items()))

    async def stop(self) -> None:
        self.ready = False
        for batcher in self.batchers.values():
            await batcher.stop()
        self.infer_pool.shutdown(wait=True)
        self.io_pool.shutdown(wait=True)

    def model(self, name: str, endpoint: str) -> ServedModel:
        """The ready model `name` for `endpoint`, or the ServeError to answer."""
        if name not in self.names:
            raise ServeError(404, "unknown_model", f"no model named {name!r}; this server has "
                             f"{', '.join(map(repr, self.names))} (GET /v1/models)")
        if not self.ready:
            detail = f"the models failed to load: {self.load_error}" if self.load_error else \
                "the models are still loading; retry shortly (GET /readyz says when they are ready)"
            raise ServeError(503, "not_ready", detail, {"Retry-After": "2"})
        model = self.models[name]
        if model.endpoint != endpoint:
            raise ServeError(400, "wrong_endpoint", f"{name!r} is a {model.kind} model: use POST "
                             f"/v1/models/{name}/{model.endpoint}")
        return model

    async def submit(self, request: Request, name: str, key: Any, job: Any) -> Done:
        """The job's result from its batch; a client that disconnects while its job waits takes the
        job out of the queue (it is not run)."""
        waiting = asyncio.ensure_future(self.batchers[name].submit(key, job))
        watching = asyncio.ensure_future(_disconnected(request))
        try:
            await asyncio.wait({waiting, watching}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watching.cancel()
        if not waiting.done():
            waiting.cancel()  # out of the queue if its batch has not started; else its result is discarded
            with contextlib.suppress(asyncio.CancelledError):
                await waiting  # the withdrawal has happened when this returns
            raise ClientDisconnect()
        try:
            return waiting.result()
        except PromptError as error:
            raise ServeError(400, "bad_parameter", f"prompt: {error}") from None
        except QueueFullError as error:
            raise ServeError(429, "queue_full", f"{error}; retry later or add replicas (--queue sets the limit)",
                             {"Retry-After": "1"}) from None
        except BatcherStoppedError:
            raise ServeError(503, "shutting_down", "the server is shutting down; retry on another replica",
                             {"Retry-After": "1"}) from None
        except RuntimeError as error:
            raise ServeError(500, "inference_failed", f"inference failed: {str(error).splitlines()[0]}") from None
        except MemoryError:
            raise ServeError(500, "inference_failed", "inference ran out of memory; send a smaller image") from None

    async def in_io(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.io_pool, function, *args)


async def _disconnected(request: Request) -> None:
    """Return when the client goes away (after the body is read, receive() waits for that)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _image_options(model: ServedModel, fields: dict[str, str | None]) -> tuple[str | None, str | None, str, int]:
    """(direction, prompt, format, quality) from the query (or the multipart fields), checked."""
    direction, prompt = fields.get("direction") or None, fields.get("prompt")
    if direction is not None and direction not in model.directions:
        raise ServeError(400, "bad_parameter", f"direction {direction!r} is not one of this model's: "
                         f"{', '.join(model.directions) or 'none (it has one mapping)'}")
    needs_prompt = model.kind == "textcycle"
    if needs_prompt and not (prompt or "").strip():
        domains = getattr(model, "domains", {})
        examples = ", ".join(repr(p) for prompts in domains.values() for p in prompts[:1]) or "'map'"
        raise ServeError(400, "bad_parameter", f"{model.name!r} is a text-guided model: pass prompt=, e.g. {examples}")
    if prompt is not None and len(prompt) > 1000:
        raise ServeError(400, "bad_parameter", f"prompt is {len(prompt)} characters long; at most 1000")
    if prompt is not None and not needs_prompt:
        raise ServeError(400, "bad_parameter", f"prompt applies to text-guided models; {model.name!r} is an "
                         "image-only generator: drop prompt")
    return direction, prompt, *_output_options(fields.get("format"), fields.get("quality"))


def _output_options(fmt: str | None, quality: str | int | None) -> tuple[str, int]:
    fmt = (fmt or "png").lower()
    if fmt not in OUTPUT_TYPES:
        raise ServeError(400, "bad_parameter", f"format {fmt!r} is not one of {', '.join(OUTPUT_TYPES)}")
    try:
        value = 95 if quality in (None, "") else int(quality)
    except ValueError:
        value = -1
    if not 1 <= value <= 100:
        raise ServeError(400, "bad_parameter", f"quality {quality!r} is not an integer in 1..100")
    return fmt, value


def _image_response(body: bytes, fmt: str, done: Done, extra: dict[str, str]) -> Response:
    timing = f"queue;dur={done.queue_wait * 1000:.1f}, infer;dur={done.inference * 1000:.1f}"
    return Response(body, media_type=OUTPUT_TYPES[fmt][1],
                    headers={"X-Batch-Size": str(done.batch_size), "Server-Timing": timing, **extra})


_IMAGE_BODY = {"requestBody": {"required": True, "description": "The image: raw bytes with its Content-Type, or "
               "multipart/form-data with a file part 'image' (and optional direction, prompt, format, quality).",
               "content": {**{t: {"schema": {"type": "string", "format": "binary"}} for t in ACCEPTED_TYPES
                              if t != "image/jpg"},
                           "multipart/form-data": {"schema": {"type": "object", "required": ["image"], "properties": {
                               "image": {"type": "string", "format": "binary"}, "direction": {"type": "string"},
                               "prompt": {"type": "string"}, "format": {"type": "string"},
                               "quality": {"type": "integer"}}}}}}}
_IMAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {t: {} for _, t in OUTPUT_TYPES.values()}, "description": "The output image."},
    **{code: {"description": text} for code, text in (
        (400, "Not an image, truncated, empty, or a bad parameter"), (401, "Missing or wrong API key"),
        (404, "Unknown model"), (413, "Body over --max-body-mb or image over --max-pixels"),
        (415, "Unsupported Content-Type"), (429, "Queue full (Retry-After)"), (503, "Not ready (Retry-After)"))}}


def create_app(options: ServeOptions, *, models: dict[str, ServedModel] | None = None,
               capabilities: Capabilities | None = None, on_fatal: Callable[[str], None] | None = None) -> Any:
    """The ASGI app serving `options.models` (or the already loaded `models`, by name).

    `on_fatal(message)` is called if the models cannot be loaded (the server should stop). Returns
    the app wrapped in the body-size guard; `app.state.serve` (of the inner FastAPI app, also at
    `.app`) holds the ServeState."""
    options.check()
    state = ServeState(options, models, capabilities, on_fatal)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(state.start())
        yield
        await task
        await state.stop()

    app = FastAPI(title="translate serve", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Image-to-image translation models over HTTP (docs/serve.md).")
    app.state.serve = state
    _add_error_handlers(app)
    _add_model_routes(app, state)
    _add_service_routes(app, state)
    guarded = BodyLimit(app, options.max_body_bytes, on_refused=lambda path: _count_refused(state, path))
    guarded.state = app.state  # type: ignore[attr-defined]
    return guarded


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServeError)
    async def serve_error(_: Request, error: ServeError) -> JSONResponse:
        return error_response(error)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        return error_response(ServeError(400, "bad_parameter", problems))

    @app.exception_handler(ClientDisconnect)
    async def client_gone(_: Request, error: ClientDisconnect) -> Response:
        return Response(status_code=499)  # nobody reads it: the client went away

    @app.exception_handler(Exception)
    async def unexpected_error(_: Request, error: Exception) -> JSONResponse:
        logger.exception("unexpected error")
        return error_response(ServeError(500, "internal_error", f"{type(error).__name__}: {error}"))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, error: HTTPException) -> JSONResponse:
        kind = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return error_response(ServeError(error.status_code, kind, str(error.detail), dict(error.headers or {})))


def _add_model_routes(app: FastAPI, state: ServeState) -> None:
    options = state.options

    @app.post("/v1/models/{name}/translate", openapi_extra=_IMAGE_BODY, responses=_IMAGE_RESPONSES,
              response_class=Response, summary="Translate an image")
    async def translate_image(request: Request, name: str,
                              direction: str | None = Query(None, description="AtoB | BtoA (CycleGAN models)."),
                              prompt: str | None = Query(None, description="What to translate to (textcycle)."),
                              format: str | None = Query(None, description="png (default) | jpeg | webp."),
                              quality: str | None = Query(None, description="jpeg / webp quality 1-100 (95).")
                              ) -> Response:
        async with _observed(state, name, "translate") as outcome:
            check_api_key(request, options.api_key)
            model = state.model(name, "translate")
            upload = await read_upload(request)
            query = {"direction": direction, "prompt": prompt, "format": format, "quality": quality}
            fields = {key: value if value is not None else upload.fields.get(key) for key, value in query.items()}
            direction, prompt, fmt, level = _image_options(model, fields)
            pixels, alpha = await state.in_io(decode_upload, upload.data, model.input_channels, options.max_pixels)
            job = ImageJob(pixels, prompt)
            done = await state.submit(request, name, model.batch_key(job, direction), job)
            body = await state.in_io(encode_output, done.result, alpha, fmt, level)
            outcome.status = 200
            return _image_response(body, fmt, done, {"X-Model": name})

    @app.post("/v1/models/{name}/generate", response_class=Response, responses=_IMAGE_RESPONSES,
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": GenerateRequest.model_json_schema()}}}},
              summary="Generate an image from a caption (text2image models)")
    async def generate_image(request: Request, name: str) -> Response:
        async with _observed(state, name, "generate") as outcome:
            check_api_key(request, options.api_key)
            model = state.model(name, "generate")
            asked = await _generate_request(request)
            fmt, level = _output_options(asked.format, asked.quality)
            seed = asked.seed if asked.seed is not None else secrets.randbelow(2**31)
            done = await state.submit(request, name, model.batch_key(None, None), GenerateJob(asked.prompt, seed))
            body = await state.in_io(encode_output, done.result, None, fmt, level)
            outcome.status = 200
            return _image_response(body, fmt, done, {"X-Model": name, "X-Seed": str(seed)})

    @app.get("/v1/models", summary="The models served")
    async def list_models(request: Request) -> dict[str, Any]:
        check_api_key(request, options.api_key)
        return {"ready": state.ready, "error": state.load_error,
                "models": [_describe(state, name) for name in state.names]}

    @app.get("/v1/models/{name}", summary="One model")
    async def one_model(request: Request, name: str) -> dict[str, Any]:
        check_api_key(request, options.api_key)
        if name not in state.names:
            state.model(name, "")  # raises the 404
        return _describe(state, name)


async def _generate_request(request: Request) -> GenerateRequest:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise ServeError(415, "unsupported_media_type", f"Content-Type {content_type or '(none)'!r} is not "
                         "accepted; send application/json: {\"prompt\": \"...\", \"seed\": 0}")
    try:
        return GenerateRequest.model_validate_json(await request.body())
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in error.errors())
        raise ServeError(400, "bad_parameter", problems) from None


def _describe(state: ServeState, name: str) -> dict[str, Any]:
    model = state.models.get(name)
    if model is None or not state.ready:
        spec = next(spec for spec in state.options.models if spec.name == name)
        return {"name": name, "model": spec.model, "loaded": False}
    gain = state.batch_gains.get(name)
    return {"name": name, "kind": model.kind, "endpoint": f"/v1/models/{name}/{model.endpoint}",
            "model": str(model.source.path), "loaded": True, **model.info(),
            "max_batch": state.options.max_batch, "batch_speedup": round(gain, 3) if gain is not None else None}


def _count_refused(state: ServeState, path: str) -> None:
    """Count a body refused from its Content-Length before any route ran (413)."""
    parts = path.strip("/").split("/")
    if len(parts) == 4 and parts[:2] == ["v1", "models"]:
        name = parts[2] if parts[2] in state.names else UNKNOWN_MODEL
        state.metrics.observe_request(name, parts[3], 413, None)


class _Outcome:
    status = 500


@asynccontextmanager
async def _observed(state: ServeState, name: str, endpoint: str) -> AsyncIterator[_Outcome]:
    """Count the request by model, endpoint and status (499: the client went away) and time it."""
    outcome, started = _Outcome(), time.monotonic()
    try:
        yield outcome
    except ServeError as error:
        outcome.status = error.status
        raise
    except (ClientDisconnect, asyncio.CancelledError):
        outcome.status = 499
        raise
    finally:
        label = name if name in state.names else UNKNOWN_MODEL
        state.metrics.observe_request(label, endpoint, outcome.status,
                                      time.monotonic() - started if outcome.status == 200 else None)


def _add_service_routes(app: FastAPI, state: ServeState) -> None:
    @app.get("/healthz", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="The models are loaded and warmed up")
    async def readyz() -> JSONResponse:
        body = {"ready": state.ready, "models": state.names, "error": state.load_error}
        return JSONResponse(body, status_code=200 if state.ready else 503)

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(_page())


def _page() -> str:
    try:
        return resources.files("translate.serve").joinpath("static/index.html").read_text(encoding="utf-8")
    except FileNotFoundError:
        return "<!doctype html><title>translate serve</title><p>The page is missing from this install; " \
               "the API is at /v1/models (docs/serve.md).</p>"

"""`translate serve`: serve models over HTTP (docs/serve.md)."""

from __future__ import annotations

import os
from typing import Optional

import typer

from translate.cli.common import fail, library_errors

FLAGS = {"models": "MODEL", "max_batch": "--max-batch", "max_delay_ms": "--max-delay-ms", "queue": "--queue",
         "max_pixels": "--max-pixels", "max_body_mb": "--max-body-mb", "api_key": "--api-key"}


def serve_command(
    models: list[str] = typer.Argument(..., metavar="MODEL", help="Models to serve: NAME=MODEL or MODEL (a bundled or installed name, weights folder, run, checkpoint or .onnx); the name is the URL's /v1/models/NAME."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; 0.0.0.0 makes the server reachable from other machines (set --api-key)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    max_batch: int = typer.Option(8, "--max-batch", help="Images per model call; 1 turns dynamic batching off."),
    max_delay_ms: float = typer.Option(5.0, "--max-delay-ms", help="How long the oldest request waits for its batch to fill."),
    queue: int = typer.Option(64, "--queue", help="Requests waiting per model before new ones get 429."),
    max_pixels: int = typer.Option(16_000_000, "--max-pixels", help="Larger images get 413."),
    max_body_mb: float = typer.Option(20.0, "--max-body-mb", help="Larger request bodies get 413."),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="TRANSLATE_API_KEY", help="Require this key on /v1/ (Authorization: Bearer KEY or X-API-Key); also read from TRANSLATE_API_KEY, which keeps it out of the process list."),
    backend: str = typer.Option("auto", "--backend", help="auto | onnxruntime | torch (as for convert)."),
    precision: str = typer.Option("auto", "--precision", help="auto | fp32 | fp16 | bf16 (as for convert; text models run in fp32)."),
    provider: Optional[str] = typer.Option(None, "--provider", help="Force an ONNX Runtime provider: tensorrt | cuda | cpu."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | mps."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Threads that decode and encode images (default: the CPU count, at most 8)."),
) -> None:
    """Serve models over HTTP: translate and generate endpoints with dynamic batching, /healthz,
    /readyz, Prometheus /metrics, an OpenAPI schema and a page at / to try them.

    Stops on SIGTERM or Ctrl-C after the requests in flight finish (exit 0); exits 1 if a model fails to load, 2 for bad arguments."""
    try:
        from translate.serve.server import run_server
    except ImportError as error:
        fail(f"translate serve needs its extra packages ({error.name} is missing): "
             "pip install 'translate-gan[serve]'")
    from translate.serve.models import check_servable
    from translate.serve.options import ServeOptions, parse_model_spec, public_bind_warning

    with library_errors(FLAGS):
        if precision == "int8":
            raise ValueError("--precision int8 needs calibration images, which translate serve does not take; "
                             "use --precision auto, fp32, fp16 or bf16")
        specs = tuple(parse_model_spec(text) for text in models)
        options = ServeOptions(host=host, port=port, max_batch=max_batch, max_delay_ms=max_delay_ms, queue=queue,
                               max_pixels=max_pixels, max_body_mb=max_body_mb, api_key=api_key or None,
                               workers=workers or min(8, os.cpu_count() or 1), backend=backend,
                               precision=precision, device=device, provider=provider, models=specs)
        options.check()
        for spec in specs:  # a mistyped name or path, or a model these options cannot run, stops here
            check_servable(spec, options)
    warning = public_bind_warning(options)
    if warning:
        typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)
    where = f"http://{host}:{port}" if port else f"{host}, on a free port (uvicorn's log line names it)"
    typer.echo(f"serving {', '.join(spec.name for spec in specs)} on {where} (page at /, API at /v1/models, "
               "metrics at /metrics); Ctrl-C or SIGTERM stops")
    with library_errors(FLAGS):
        code = run_server(options)
    raise typer.Exit(code=code)

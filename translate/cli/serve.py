"""`translate serve`: serve models over HTTP (docs/serve.md).

Its options are `ServeOptions`' fields (translate.serve.options), generated as flags."""

from __future__ import annotations

from typing import Any

import typer

from translate.cli.common import fail, library_errors
from translate.cli.options import flags_of, with_options
from translate.serve.options import ServeOptions

FLAGS = {**flags_of(ServeOptions), "models": "MODEL"}


@with_options(ServeOptions)
def serve_command(
    models: list[str] = typer.Argument(..., metavar="MODEL", help="Models to serve: NAME=MODEL or MODEL (a bundled or installed name, weights folder, run, checkpoint or .onnx); the name is the URL's /v1/models/NAME."),
    *,
    options: dict[str, Any],  # the flags of ServeOptions given (see with_options)
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
    from translate.serve.options import parse_model_spec, public_bind_warning

    if not options.get("api_key"):  # TRANSLATE_API_KEY set but empty: no key
        options.pop("api_key", None)
    with library_errors(FLAGS):
        specs = tuple(parse_model_spec(text) for text in models)
        served = ServeOptions(**options, models=specs)
        served.check()
        for spec in specs:  # a mistyped name or path, or a model these options cannot run, stops here
            check_servable(spec, served)
    warning = public_bind_warning(served)
    if warning:
        typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)
    where = (f"http://{served.host}:{served.port}" if served.port
             else f"{served.host}, on a free port (uvicorn's log line names it)")
    typer.echo(f"serving {', '.join(spec.name for spec in specs)} on {where} (page at /, API at /v1/models, "
               "metrics at /metrics); Ctrl-C or SIGTERM stops")
    with library_errors(FLAGS):
        code = run_server(served)
    raise typer.Exit(code=code)

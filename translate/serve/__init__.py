"""`translate serve`: models over HTTP with dynamic batching, metrics and a page to try them.

    from translate.serve import ModelSpec, ServeOptions, run_server
    run_server(ServeOptions(models=(ModelSpec("maps", "maps_aerial2map"),), max_batch=8))

Layers inside: options -> batching, metrics, http_io -> models -> app -> server. The models run
through `translate.deploy` (the same backends, precision choice and padding as `convert`).
docs/serve.md describes the API.
"""

from translate.serve.options import ModelSpec, ServeOptions, parse_model_spec, public_bind_warning

__all__ = ["ModelSpec", "ServeOptions", "parse_model_spec", "public_bind_warning", "run_server", "create_app"]


def __getattr__(name: str):  # the app and server import fastapi / uvicorn: only when asked for
    if name == "run_server":
        from translate.serve.server import run_server

        return run_server
    if name == "create_app":
        from translate.serve.app import create_app

        return create_app
    raise AttributeError(name)

"""Running the app: uvicorn on the given host and port, with a graceful stop.

SIGTERM (or Ctrl-C) stops accepting connections, lets the requests in flight finish (their
batches keep running) for up to `graceful_seconds`, then stops the batchers and exits with 0.
"""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Iterator

import uvicorn

from translate.core.device import Capabilities
from translate.serve.app import create_app
from translate.serve.models import ServedModel
from translate.serve.options import ServeOptions

logger = logging.getLogger(__name__)

__all__ = ["GracefulServer", "build_server", "run_server"]


class GracefulServer(uvicorn.Server):
    """uvicorn's server, but a stop by signal ends the process normally (exit 0) instead of
    raising the signal again once shut down, and a failed model load stops it with `failed` set."""

    failed: str | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        try:
            originals = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        except ValueError:  # not the main thread (tests): the caller stops it with should_exit
            yield
            return
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)

    def fail(self, message: str) -> None:
        self.failed = message
        self.should_exit = True


def build_server(options: ServeOptions, *, capabilities: Capabilities | None = None,
                 models: dict[str, ServedModel] | None = None) -> GracefulServer:
    """A server for `options` (not started): `server.run()` blocks until it stops; `server.serve()`
    (a coroutine) serves on a running event loop. `models`: already loaded models, by name."""
    config = uvicorn.Config(None, host=options.host, port=options.port, log_config=None, access_log=False,
                            timeout_graceful_shutdown=max(1, round(options.graceful_seconds)),
                            lifespan="on", server_header=False)
    server = GracefulServer(config)
    config.app = create_app(options, capabilities=capabilities, models=models, on_fatal=server.fail)
    return server


def run_server(options: ServeOptions, *, capabilities: Capabilities | None = None) -> int:
    """Serve until SIGTERM / SIGINT; returns the exit status (0, or 1 if the models failed to load).

    Raises what `ServeOptions.check` raises, before anything starts."""
    server = build_server(options, capabilities=capabilities)
    server.run()
    if server.failed:
        logger.error("stopped: %s", server.failed)
        return 1
    return 0

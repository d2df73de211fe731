"""`translate serve` in a background thread on 127.0.0.1, for the tests.

    with RunningServer(ServeOptions(models=(ModelSpec("tiny", str(model_dir)),), port=0)) as server:
        status, headers, body = server.request("POST", "/v1/models/tiny/translate", png, "image/png")

Port 0: the system picks a free port (`server.port`). Leaving the block stops the server as
SIGTERM does (`should_exit`) and waits for it, bounded by `timeout`.
"""

from __future__ import annotations

import http.client
import io
import json
import threading
import time
from dataclasses import replace
from typing import Any

import numpy as np
from PIL import Image

from translate.core.device import Capabilities
from translate.serve.options import ServeOptions
from translate.serve.server import build_server

# A CPU without native bf16 or VNNI: the auto choices are fp32 on every machine the tests run on.
PLAIN_CPU = Capabilities(cuda=False, mps=False, cpu_native_bf16=False, cpu_vnni=False)


class RunningServer:
    def __init__(self, options: ServeOptions, *, capabilities: Capabilities | None = PLAIN_CPU,
                 models: dict[str, Any] | None = None, timeout: float = 60.0) -> None:
        self.options = replace(options, port=0, host="127.0.0.1")
        self.server = build_server(self.options, capabilities=capabilities, models=models)
        self.timeout = timeout
        self.thread = threading.Thread(target=self.server.run, name="test-server", daemon=True)

    def __enter__(self) -> RunningServer:
        self.thread.start()
        deadline = time.monotonic() + self.timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.timeout
        while self.request("GET", "/readyz")[0] != 200:
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready: {self.request('GET', '/readyz')}")
            time.sleep(0.05)

    @property
    def state(self) -> Any:
        return self.server.config.app.state.serve

    def request(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            sent = dict(headers or {})
            if content_type is not None:
                sent["Content-Type"] = content_type
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()

    def json(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        status, _, body = self.request(method, path, **kwargs)
        return status, json.loads(body)

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(self.timeout)


def png_bytes(width: int = 48, height: int = 40, seed: int = 0, mode: str = "RGB") -> bytes:
    """A random image of that size encoded as PNG."""
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    image = Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels, mode)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def decoded(body: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(body))
    image.load()
    return image

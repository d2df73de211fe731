"""`translate serve` subprocesses: a free loopback port, readiness, GET /v1/models, /metrics, VmRSS and the stop."""

from __future__ import annotations

import ctypes
import http.client
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .serve_config import METRICS, REPO, SERVED_NAME, Config, logger


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _die_with_parent() -> None:
    """In the server child: SIGTERM when this script dies (a killed test must not leave servers)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class ServerProcess:
    """`python -m translate serve` in a subprocess on a free loopback port; ready on entry, stopped
    (SIGTERM, then SIGKILL past --stop-timeout) on exit."""

    def __init__(self, model: str, max_batch: int, config: Config, log_path: Path) -> None:
        self.port, self.config, self.log_path = free_port(), config, log_path
        self.command = [sys.executable, "-m", "translate", "serve", f"{SERVED_NAME}={model}", "--port", str(self.port),
                        "--max-batch", str(max_batch), "--max-delay-ms", f"{config.max_delay_ms:g}",
                        "--queue", str(config.queue), "--backend", config.backend, "--precision", config.precision,
                        "--device", config.device]
        if config.workers:
            self.command += ["--workers", str(config.workers)]
        self.process: subprocess.Popen[bytes] | None = None
        self.stopped: dict[str, Any] | None = None

    def __enter__(self) -> ServerProcess:
        env = dict(os.environ)
        if self.config.threads:
            env["OMP_NUM_THREADS"] = str(self.config.threads)
        with open(self.log_path, "ab") as log:
            preexec = _die_with_parent if platform.system() == "Linux" else None
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env,
                                            preexec_fn=preexec)  # spawned before any client thread
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.stopped is None:
            self.stop()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def request(self, method: str, path: str, timeout: float = 30.0) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.config.ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode} before it was ready:\n"
                                   f"{self.log_tail()}")
            try:
                if self.request("GET", "/readyz", timeout=5)[0] == 200:
                    return
            except OSError:  # not listening yet
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the server was not ready within {self.config.ready_timeout:g} s:\n{self.log_tail()}")

    def info(self) -> dict[str, Any]:
        """The served model's entry of GET /v1/models (backend, precision, provider, device)."""
        status, body = self.request("GET", "/v1/models")
        if status != 200:
            raise RuntimeError(f"GET /v1/models answered {status}: {body[:200]!r}")
        return next(m for m in json.loads(body)["models"] if m["name"] == SERVED_NAME)

    def metrics(self) -> dict[str, float]:
        """The batch-size and inference-time sums and counts of /metrics (summed over labels)."""
        status, body = self.request("GET", "/metrics")
        totals = dict.fromkeys(METRICS, 0.0)
        if status == 200:
            for line in body.decode().splitlines():
                name = line.split("{", 1)[0].split(" ", 1)[0]
                if name in totals:
                    totals[name] += float(line.rsplit(" ", 1)[1])
        return totals

    def rss_kb(self) -> int | None:
        assert self.process is not None
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return None

    def stop(self) -> dict[str, Any]:
        """SIGTERM and wait up to --stop-timeout; SIGKILL past it. Returns the exit code and the time."""
        assert self.process is not None
        started = time.monotonic()
        killed = False
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(self.config.stop_timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                killed = True
        self.stopped = {"exit_code": self.process.returncode, "stop_seconds": time.monotonic() - started,
                        "killed": killed}
        if self.process.returncode != 0 or killed:
            logger.warning("server stop: %s\n%s", self.stopped, self.log_tail())
        return self.stopped

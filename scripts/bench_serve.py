"""Load test of `translate serve`: HTTP throughput and latency beside the model's own throughput.

    .venv/bin/python scripts/bench_serve.py --json serve.json             # the full run, ~10 min on 2 cores
    .venv/bin/python scripts/bench_serve.py --seconds 8 --rss-requests 300   # a shorter check, ~4 min
    .venv/bin/python scripts/bench_serve.py --smoke --json /tmp/serve.json   # tiny model, 64 px, < 40 s (the test)

A client on loopback against `translate serve` running the bundled model (default `maps_aerial2map`)
at 256 px on the CPU, all in one run, in this order (so that the model figures sit beside the cells):

1. Model throughput, "before": the backend and precision the server picks (`make_backend` with the
   same --backend / --precision / --device; checked against the server's GET /v1/models), at batch 1
   and batch --max-batch, in this process with no server running. After warm-up, rounds interleave
   the batch sizes; the figure is the median of --model-rounds. Same method as bench_infer.py.
2. Sizes mixed (model level, same backend): 8 images, 4 of SxS and 4 of (S-16)xS, run (a) apart, as
   two batches of 4 (what the server and `convert` do: they batch equal sizes only), and (b) as one
   batch of 8, the short ones reflect-padded to SxS and cropped back. Median time of each, the ratio,
   and how far padding moves the short images' outputs.
3. Server cells: `python -m translate serve` as a subprocess on a free loopback port, first with
   batching (--max-batch 8, --max-delay-ms 5), then with --max-batch 1, never both at once. At each
   --concurrency (1, 8, 32 clients: threads with one keep-alive http.client connection each, all
   POSTing the same 256x256 PNG), after a warm-up (--warmup-seconds, and until every client has had
   an answer) a window of --seconds or --max-requests answers, whichever ends first: throughput = 200s
   answered in the window / its length; p50 / p99 latency of those; batch mean and model-call time
   from the server's /metrics (deltas over the window); status counts over the whole cell. Each server
   is stopped with SIGTERM and must exit 0 within --stop-timeout.
4. Model throughput again, "after"; the goals use the mean of before and after (harmonic: the rate of
   the mean call time).
5. RSS: a fresh batching server; VmRSS (/proc/PID/status) after --rss-warmup answers at
   --rss-concurrency clients and again after --rss-requests further ones (sampled every second
   between, for the peak).

Goals (PASS / FAIL in the report): at the largest concurrency with batching, >= 85% of the model's
batch throughput and >= 1.3x the --max-batch 1 server; p99 at 1 client (batching server) <= the
single-image inference time (batch-1 model call, median) + 20 ms; RSS growth < 5%; no 5xx (nor
failed connections) anywhere; both servers stop cleanly.

Prints a markdown table for docs/benchmarks.md (with the machine and the command); --json writes
every number. --smoke runs the same code on a tiny random resnet_6blocks (ngf 8) at 64 px, 1 and 4
clients, 1 s cells and 50 RSS requests, on one thread: a check that it works, not a measurement.
"""

from __future__ import annotations

import argparse
import ctypes
import http.client
import io
import json
import logging
import math
import os
import platform
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO, REPO / "scripts"):  # run as a file from anywhere; bench_infer.py sits beside this file
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from bench_infer import device_name, model_rate_now, natural_images, versions  # noqa: E402

from translate.core.images import from_uint8, to_uint8  # noqa: E402
from translate.deploy.backends import Backend, make_backend  # noqa: E402
from translate.deploy.inference import translate_tensor, translate_uint8  # noqa: E402
from translate.formats.weights import save_weights  # noqa: E402
from translate.models import GeneratorConfig, build_generator  # noqa: E402

logger = logging.getLogger("bench_serve")

SERVED_NAME = "bench"  # the URL's model name: /v1/models/bench/translate
DEFAULT_IMAGE = REPO / "weights" / "maps_aerial2map" / "samples" / "aerial_1.jpg"
METRICS = ("translate_batch_size_sum", "translate_batch_size_count", "translate_inference_seconds_sum",
           "translate_inference_seconds_count")

# Settings --smoke and the full run differ in; an explicit flag overrides either.
FULL = {"model": "maps_aerial2map", "size": 256, "concurrency": [1, 8, 32], "seconds": 20.0, "warmup_seconds": 3.0,
        "max_requests": 2000, "rss_requests": 2000, "rss_concurrency": 8, "rss_warmup": 100, "model_rounds": 3,
        "model_round_s": 2.0, "threads": None, "ready_timeout": 300.0}
SMOKE = {"model": None, "size": 64, "concurrency": [1, 4], "seconds": 1.0, "warmup_seconds": 0.2,
         "max_requests": 400, "rss_requests": 50, "rss_concurrency": 4, "rss_warmup": 10, "model_rounds": 2,
         "model_round_s": 0.1, "threads": 1, "ready_timeout": 60.0}


@dataclass
class Config:
    model: str | None = "maps_aerial2map"  # None: a tiny random model (--smoke)
    image: str | None = None
    size: int = 256
    concurrency: list[int] = field(default_factory=lambda: [1, 8, 32])
    max_batch: int = 8
    max_delay_ms: float = 5.0
    queue: int = 64
    backend: str = "auto"
    precision: str = "auto"
    device: str = "cpu"
    workers: int | None = None
    threads: int | None = None
    seconds: float = 20.0
    warmup_seconds: float = 3.0
    max_requests: int = 2000
    rss_requests: int = 2000
    rss_concurrency: int = 8
    rss_warmup: int = 100
    rss_max_seconds: float = 1200.0
    model_rounds: int = 3
    model_round_s: float = 2.0
    request_timeout: float = 120.0
    ready_timeout: float = 300.0
    stop_timeout: float = 60.0
    smoke: bool = False
    seed: int = 0


# --- inputs ------------------------------------------------------------------------------------


def input_image(path: Path | None, size: int, channels: int, *, seed: int) -> tuple[Tensor, bytes]:
    """`(channels, size, size)` uint8 pixels and their PNG: `path` centre-cropped square and resized,
    or (no file) a natural-looking random image."""
    mode = "RGB" if channels == 3 else "L" if channels == 1 else "RGBA"
    if path is not None and path.is_file():
        image = Image.open(path).convert(mode)
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        image = image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BICUBIC)
    else:
        pixels = natural_images(1, channels, size, seed=seed)[0]
        array = ((pixels + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
        image = Image.fromarray(array[:, :, 0] if channels == 1 else array, mode)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    array = np.asarray(image).reshape(size, size, channels)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous(), buffer.getvalue()


def save_tiny_model(folder: Path) -> Path:
    """The tests' tiny generator (resnet_6blocks, ngf 8, seed 0) as a weights folder."""
    torch.manual_seed(0)
    architecture = GeneratorConfig(name="resnet_6blocks", ngf=8)
    return save_weights(build_generator(architecture), folder / "tiny", architecture, direction="AtoB")


# --- the server --------------------------------------------------------------------------------


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


# --- the load ----------------------------------------------------------------------------------


class Load:
    """The clients of one cell: threads with one keep-alive connection each, POSTing `body` until
    `stop_at`. Each records `(start, end, status)`; status 0 is a failed connection."""

    def __init__(self, port: int, body: bytes, clients: int, timeout: float) -> None:
        self.port, self.body, self.timeout = port, body, timeout
        self.headers = {"Content-Type": "image/png"}
        self.path = f"/v1/models/{SERVED_NAME}/translate"
        self.records: list[list[tuple[float, float, int]]] = [[] for _ in range(clients)]
        self.stop_at = math.inf
        self.window_start = math.inf
        self.max_in_window = 0
        self.in_window = 0
        self.lock = threading.Lock()

    def open_window(self, start: float, seconds: float, max_requests: int) -> None:
        with self.lock:
            self.window_start, self.max_in_window, self.stop_at = start, max_requests, start + seconds

    def warmed(self, until: float, requests: int) -> bool:
        """Past `until`, every client answered once, and `requests` answered in all."""
        return (time.perf_counter() >= until and all(self.records)
                and sum(len(r) for r in self.records) >= requests)

    def _record(self, index: int, start: float, end: float, status: int) -> None:
        self.records[index].append((start, end, status))
        if end >= self.window_start:
            with self.lock:
                self.in_window += 1
                if self.in_window >= self.max_in_window:
                    self.stop_at = min(self.stop_at, end)

    def client(self, index: int) -> None:
        connection: http.client.HTTPConnection | None = None
        while time.perf_counter() < self.stop_at:
            if connection is None:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            start = time.perf_counter()
            try:
                connection.request("POST", self.path, body=self.body, headers=self.headers)
                response = connection.getresponse()
                response.read()
                status = response.status
                if response.will_close:
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException):
                status = 0
                connection.close()
                connection = None
                time.sleep(0.05)  # a refused connection must not spin
            self._record(index, start, time.perf_counter(), status)
        if connection is not None:
            connection.close()


def run_cell(server: ServerProcess, body: bytes, clients: int, *, seconds: float, max_requests: int,
             warmup_s: float, warmup_requests: int, config: Config,
             on_open: Callable[[], None] | None = None) -> dict[str, Any]:
    """`clients` concurrent clients; the window opens after the warm-up and ends after `seconds` or
    `max_requests` answers. Samples the server's RSS every second in the window."""
    load = Load(server.port, body, clients, config.request_timeout)
    threads = [threading.Thread(target=load.client, args=(i,), name=f"client-{i}", daemon=True)
               for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    warm_deadline = started + warmup_s + config.request_timeout
    while time.perf_counter() < warm_deadline and not load.warmed(started + warmup_s, warmup_requests):
        time.sleep(0.01)
    metrics_before = server.metrics()
    if on_open is not None:
        on_open()
    window_start = time.perf_counter()
    load.open_window(window_start, seconds, max_requests)
    rss_samples, next_sample = [], window_start
    while time.perf_counter() < load.stop_at:
        if time.perf_counter() >= next_sample:
            rss_samples.append(server.rss_kb())
            next_sample += 1.0
        time.sleep(0.01)
    metrics_after = server.metrics()
    for thread in threads:
        thread.join(config.request_timeout + 5)
    cell = summarize(load, window_start, metrics_before, metrics_after)
    cell.update(clients=clients, warmup_seconds=window_start - started,
                rss_peak_kb=max((s for s in rss_samples if s is not None), default=None))
    logger.info("%d clients: %.2f req/s, p50 %.1f ms, p99 %.1f ms, batch mean %.2f, statuses %s", clients,
                cell["requests_per_s"], cell["p50_ms"], cell["p99_ms"], cell["batch_mean"], cell["statuses"])
    return cell


def summarize(load: Load, window_start: float, before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """Throughput and latency of the window's 200s; statuses over the whole cell; /metrics deltas."""
    window_end = load.stop_at
    records = [r for client in load.records for r in client]
    window = [r for r in records if window_start <= r[1] <= window_end]
    latencies = sorted((end - start) * 1000 for start, end, status in window if status == 200)
    statuses = Counter(status for _, _, status in records)
    p50, p99 = (float(v) for v in np.percentile(latencies, [50, 99])) if latencies else (math.nan, math.nan)
    delta = {name: after[name] - before[name] for name in METRICS}
    batches = delta["translate_batch_size_count"]
    return {"window_seconds": window_end - window_start, "window_requests": len(window), "window_ok": len(latencies),
            "requests_per_s": len(latencies) / (window_end - window_start) if window_end > window_start else 0.0,
            "p50_ms": p50, "p99_ms": p99, "mean_ms": statistics.fmean(latencies) if latencies else math.nan,
            "max_ms": latencies[-1] if latencies else math.nan,
            "batch_mean": delta["translate_batch_size_sum"] / batches if batches else math.nan,
            "model_call_ms": 1000 * delta["translate_inference_seconds_sum"] / batches if batches else math.nan,
            "batches": batches, "requests_total": len(records), "requests_after_window_start":
            sum(1 for r in records if r[1] >= window_start),
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "errors_5xx": sum(v for k, v in statuses.items() if k >= 500), "failed_connections": statuses.get(0, 0),
            "other_non_200": sum(v for k, v in statuses.items() if 0 < k < 500 and k != 200),
            "latencies_ms": [round(v, 2) for v in latencies]}


def bench_server(label: str, max_batch: int, model: str, body: bytes, config: Config, work: Path) -> dict[str, Any]:
    """One server's cells at every --concurrency, then its stop."""
    logger.info("server %s: --max-batch %d", label, max_batch)
    with ServerProcess(model, max_batch, config, work / f"server_{label.replace(' ', '_')}.log") as server:
        info = server.info()
        rss_ready = server.rss_kb()
        cells = [run_cell(server, body, clients, seconds=config.seconds, max_requests=config.max_requests,
                          warmup_s=config.warmup_seconds, warmup_requests=0, config=config)
                 for clients in config.concurrency]
        stop = server.stop()
    return {"label": label, "max_batch": max_batch, "info": info, "rss_ready_kb": rss_ready, "cells": cells,
            "stop": stop, "command": shlex.join(["python", *server.command[1:]])}


def bench_rss(model: str, body: bytes, config: Config, work: Path) -> dict[str, Any]:
    """A fresh batching server: VmRSS after --rss-warmup answers and after --rss-requests more."""
    logger.info("RSS: %d requests at %d clients after %d to warm up", config.rss_requests, config.rss_concurrency,
                config.rss_warmup)
    with ServerProcess(model, config.max_batch, config, work / "server_rss.log") as server:
        marks: dict[str, int | None] = {"ready_kb": server.rss_kb()}
        cell = run_cell(server, body, config.rss_concurrency, seconds=config.rss_max_seconds,
                        max_requests=config.rss_requests, warmup_s=0.0, warmup_requests=config.rss_warmup,
                        config=config, on_open=lambda: marks.update(before_kb=server.rss_kb()))
        marks["after_kb"] = server.rss_kb()
        stop = server.stop()
    before, after = marks.get("before_kb"), marks["after_kb"]
    growth = 100 * (after - before) / before if before and after else math.nan
    cell.pop("latencies_ms")
    logger.info("RSS %s -> %s kB (%+.2f%%)", before, after, growth)
    return {**marks, "growth_percent": growth, "requests_between": cell["requests_after_window_start"],
            "cell": cell, "stop": stop}


# --- the model ---------------------------------------------------------------------------------


def measure_model(backend: Backend, size: int, batches: Sequence[int], config: Config) -> list[dict[str, Any]]:
    """Images/s of `backend` at each batch: calls per round sized on warm-up calls, rounds interleaved
    (rotating order), median over --model-rounds. As bench_infer.py times its cells."""
    calls = {}
    for batch in batches:
        model_rate_now(backend, size, batch, 1, seed=config.seed)  # first call: set-up
        call_s = batch / model_rate_now(backend, size, batch, 1, seed=config.seed)
        calls[batch] = max(1, math.ceil(config.model_round_s / call_s))
    rates: dict[int, list[float]] = {batch: [] for batch in batches}
    order = list(batches)
    for round_index in range(config.model_rounds):
        shift = round_index % len(order)
        for batch in order[shift:] + order[:shift]:
            rates[batch].append(model_rate_now(backend, size, batch, calls[batch], seed=config.seed))
    rows = []
    for batch in batches:
        rate = statistics.median(rates[batch])
        rows.append({"batch": batch, "images_per_s": rate, "call_ms": 1000 * batch / rate, "rounds": rates[batch],
                     "calls_per_round": calls[batch]})
        logger.info("model batch %d: %.2f images/s (%.1f ms a call)", batch, rate, 1000 * batch / rate)
    return rows


def _mix_padded(backend: Backend, full: Tensor, short: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """One batch: `short` reflect-padded at the bottom to `full`'s height, run with `full`, cropped back."""
    device, height = backend.device, short.shape[-2]
    padded = F.pad(from_uint8(short.to(device)), (0, 0, 0, full.shape[-2] - height), mode="reflect")
    out = translate_tensor(backend, torch.cat([from_uint8(full.to(device)), padded]), backend.size_multiple)
    out = to_uint8(out).permute(0, 2, 3, 1).contiguous().cpu().numpy()
    return out[:len(full)], out[len(full):, :height]


def bench_mix(backend: Backend, pixels: Tensor, config: Config, per_size: int = 4) -> dict[str, Any]:
    """Two sizes, `per_size` images each: apart (two batches, as the server runs them) against one
    batch padded to the larger size and cropped back. Median seconds per 2 x `per_size` images."""
    size = pixels.shape[-1]
    other = size - 16
    variants = [pixels, pixels.flip(-1), pixels.flip(-2), pixels.flip(-2, -1)]
    full = torch.stack([variants[i % 4] for i in range(per_size)])
    short = full[:, :, :other, :].contiguous()

    def apart() -> tuple[np.ndarray, np.ndarray]:
        return (translate_uint8(backend, full, backend.size_multiple, backend.device),
                translate_uint8(backend, short, backend.size_multiple, backend.device))

    def padded() -> tuple[np.ndarray, np.ndarray]:
        return _mix_padded(backend, full, short)

    runs: dict[str, Callable[[], tuple[np.ndarray, np.ndarray]]] = {"apart": apart, "padded": padded}
    outputs, calls = {}, 1
    for name, run in runs.items():
        run()
        start = time.perf_counter()
        outputs[name] = run()
        calls = max(calls, math.ceil(config.model_round_s / (time.perf_counter() - start)))
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for round_index in range(config.model_rounds):
        for name in (list(runs) if round_index % 2 == 0 else list(runs)[::-1]):
            start = time.perf_counter()
            for _ in range(calls):
                runs[name]()
            seconds[name].append((time.perf_counter() - start) / calls)
    apart_s, padded_s = statistics.median(seconds["apart"]), statistics.median(seconds["padded"])
    diff = np.abs(outputs["apart"][1].astype(np.int16) - outputs["padded"][1].astype(np.int16))
    logger.info("sizes mixed: apart %.1f ms, padded %.1f ms per %d images", 1000 * apart_s, 1000 * padded_s,
                2 * per_size)
    return {"sizes": [[size, size], [other, size]], "per_size": per_size, "apart_ms": 1000 * apart_s,
            "padded_ms": 1000 * padded_s, "apart_over_padded": apart_s / padded_s,
            "faster": "apart" if apart_s <= padded_s else "padded", "rounds_ms": {k: [1000 * s for s in v]
                                                                               for k, v in seconds.items()},
            "calls_per_round": calls, "padding_max_abs_diff": int(diff.max()),
            "padding_mean_abs_diff": float(diff.mean()), "padding_changed_fraction": float((diff > 0).mean())}


def harmonic_mean_rows(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per batch, the rate of the mean call time of the two measurements."""
    rows = []
    for first, second in zip(before, after, strict=True):
        rate = 2 / (1 / first["images_per_s"] + 1 / second["images_per_s"])
        rows.append({"batch": first["batch"], "images_per_s": rate, "call_ms": 1000 * first["batch"] / rate})
    return rows


# --- run ---------------------------------------------------------------------------------------


def check_same_backend(info: dict[str, Any], backend: Backend) -> None:
    """The server must run what the model figures were measured on."""
    served = (info.get("backend"), info.get("precision"), info.get("provider"))
    if served != (backend.name, backend.precision, backend.provider):
        raise RuntimeError(f"the server runs {served}, this process measured {backend.describe()}: pass explicit "
                           "--backend and --precision")


def run(config: Config, work: Path) -> dict[str, Any]:
    """The whole benchmark (see the module docstring); returns the JSON-ready result."""
    if config.threads:
        torch.set_num_threads(config.threads)
    started = time.perf_counter()
    model = config.model or str(save_tiny_model(work / "models"))
    backend = make_backend(model, backend=config.backend, precision=config.precision, device=config.device,
                           threads=config.threads)
    logger.info("model %s on %s", model, backend.describe())
    image = Path(config.image) if config.image else DEFAULT_IMAGE
    pixels, body = input_image(image, config.size, backend.input_channels, seed=config.seed)
    batches = sorted({1, config.max_batch})
    model_before = measure_model(backend, config.size, batches, config)
    mix = bench_mix(backend, pixels, config)
    servers = []
    for label, max_batch in (("batching", config.max_batch), ("no batching", 1)):
        servers.append(bench_server(label, max_batch, model, body, config, work))
        check_same_backend(servers[-1]["info"], backend)
    model_after = measure_model(backend, config.size, batches, config)
    rss = bench_rss(model, body, config, work)
    meta = {"device_name": device_name(backend.device), "versions": {**versions(), **serve_versions()},
            "backend": backend.describe(), "model": config.model or "tiny random resnet_6blocks ngf 8",
            "image": str(image) if image.is_file() else "generated", "body_bytes": len(body),
            "config": asdict(config), "total_seconds": time.perf_counter() - started,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    result = {"meta": meta, "model": {"before": model_before, "after": model_after,
                                      "mean": harmonic_mean_rows(model_before, model_after)},
              "mix": mix, "servers": servers, "rss": rss}
    result["goals"] = evaluate_goals(result, config)
    return result


def serve_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("fastapi", "uvicorn"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


# --- goals and report --------------------------------------------------------------------------


def _goal(goal: str, measured: str, passed: bool) -> dict[str, Any]:
    return {"goal": goal, "measured": measured, "pass": bool(passed)}


def evaluate_goals(result: dict[str, Any], config: Config) -> list[dict[str, Any]]:
    """The issue's goals, each with its measured value and pass / fail."""
    on, off = ({c["clients"]: c for c in s["cells"]} for s in result["servers"])
    model = {row["batch"]: row for row in result["model"]["mean"]}
    top, batch = max(config.concurrency), config.max_batch
    share = on[top]["requests_per_s"] / model[batch]["images_per_s"]
    speedup = on[top]["requests_per_s"] / off[top]["requests_per_s"] if off[top]["requests_per_s"] else math.inf
    goals = [
        _goal(f"{top} clients, batching: >= 85% of the model's batch-{batch} throughput",
              f"{on[top]['requests_per_s']:.2f} req/s = {100 * share:.0f}% of {model[batch]['images_per_s']:.2f}",
              share >= 0.85),
        _goal(f"{top} clients: batching >= 1.3x --max-batch 1",
              f"{speedup:.2f}x ({on[top]['requests_per_s']:.2f} / {off[top]['requests_per_s']:.2f} req/s)",
              speedup >= 1.3)]
    if 1 in on:
        limit = model[1]["call_ms"] + 20
        goals.append(_goal("p99 at 1 client (batching server) <= single-image inference + 20 ms",
                           f"{on[1]['p99_ms']:.1f} ms vs {model[1]['call_ms']:.1f} + 20 = {limit:.1f} ms "
                           f"(--max-batch 1 server: {off[1]['p99_ms']:.1f} ms)", on[1]["p99_ms"] <= limit))
    rss = result["rss"]
    goals.append(_goal(f"RSS growth < 5% over {rss['requests_between']} requests",
                       f"{rss['before_kb'] / 1024:.0f} -> {rss['after_kb'] / 1024:.0f} MiB "
                       f"({rss['growth_percent']:+.2f}%)", rss["growth_percent"] < 5))
    cells = [c for s in result["servers"] for c in s["cells"]] + [rss["cell"]]
    errors = sum(c["errors_5xx"] for c in cells)
    failed = sum(c["failed_connections"] for c in cells)
    others = sum(c["other_non_200"] for c in cells)
    goals.append(_goal("no 5xx (nor failed connections)", f"{errors} 5xx, {failed} failed connections, {others} "
                       f"other non-200, of {sum(c['requests_total'] for c in cells)} requests",
                       errors == 0 and failed == 0))
    stops = [s["stop"] for s in result["servers"]] + [rss["stop"]]
    clean = sum(1 for s in stops if s["exit_code"] == 0 and not s["killed"])
    goals.append(_goal(f"SIGTERM -> exit 0 within {config.stop_timeout:g} s", f"{clean} of {len(stops)} servers "
                       f"(slowest {max(s['stop_seconds'] for s in stops):.1f} s)", clean == len(stops)))
    return goals


def _f(value: Any, fmt: str = ".1f") -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, fmt)


def markdown(result: dict[str, Any], command: str) -> str:
    meta, config = result["meta"], result["meta"]["config"]
    model = {row["batch"]: row for row in result["model"]["mean"]}
    batch = config["max_batch"]
    lines = [f"Machine: {meta['device_name']}. Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
             + f". {meta['date']}, {meta['total_seconds'] / 60:.1f} min.", "",
             "```bash", command, "```", "",
             f"`translate serve` on 127.0.0.1, model {meta['model']} on {meta['backend']} (the server's choice, "
             f"checked), {config['size']}x{config['size']} PNG ({meta['body_bytes'] / 1024:.0f} KiB) per request, "
             f"windows of {config['seconds']:g} s or {config['max_requests']} answers after warm-up; model figures "
             "in the benchmark process with no server running, mean of before and after:", "",
             f"| server | clients | req/s | vs model batch {batch} | p50 ms | p99 ms | batch mean | model call ms (a batch) "
             "| 5xx | other non-200 | answers in window |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for server in result["servers"]:
        name = (f"batching (--max-batch {server['max_batch']}, --max-delay-ms {config['max_delay_ms']:g})"
                if server["max_batch"] > 1 else "no batching (--max-batch 1)")
        for cell in server["cells"]:
            lines.append(f"| {name} | {cell['clients']} | {cell['requests_per_s']:.2f} | "
                         f"{cell['requests_per_s'] / model[batch]['images_per_s']:.2f} | {_f(cell['p50_ms'])} | "
                         f"{_f(cell['p99_ms'])} | {_f(cell['batch_mean'], '.2f')} | {_f(cell['model_call_ms'])} | "
                         f"{cell['errors_5xx']} | {cell['other_non_200'] + cell['failed_connections']} | "
                         f"{cell['window_requests']} |")
    lines += ["", "| model, batch | images/s before | after | mean | ms a call (mean) |", "|---|---|---|---|---|"]
    for first, second in zip(result["model"]["before"], result["model"]["after"], strict=True):
        mean = model[first["batch"]]
        lines.append(f"| {first['batch']} | {first['images_per_s']:.2f} | {second['images_per_s']:.2f} | "
                     f"{mean['images_per_s']:.2f} | {mean['call_ms']:.1f} |")
    lines += ["", *mix_lines(result["mix"]), "", *rss_lines(result["rss"]), "", "| goal | measured | result |",
              "|---|---|---|"]
    lines += [f"| {g['goal']} | {g['measured']} | **{'PASS' if g['pass'] else 'FAIL'}** |" for g in result["goals"]]
    return "\n".join(lines)


def mix_lines(mix: dict[str, Any]) -> list[str]:
    (size_h, size_w), (other_h, other_w) = mix["sizes"]
    n = mix["per_size"]
    return [f"Sizes mixed, same backend: {n} images of {size_w}x{size_h} and {n} of {other_w}x{other_h} "
            f"(width x height), median of {len(mix['rounds_ms']['apart'])} rounds:", "",
            f"| run | ms per {2 * n} images | images/s |", "|---|---|---|",
            f"| apart: batches of {n} per size (what the server does) | {mix['apart_ms']:.1f} | "
            f"{2000 * n / mix['apart_ms']:.2f} |",
            f"| one batch of {2 * n}, padded to {size_w}x{size_h} and cropped | {mix['padded_ms']:.1f} | "
            f"{2000 * n / mix['padded_ms']:.2f} |", "",
            f"Apart / padded time: {mix['apart_over_padded']:.2f} ({mix['faster']} is faster). Padding changes the "
            f"short images' outputs: {100 * mix['padding_changed_fraction']:.1f}% of the values, by up to "
            f"{mix['padding_max_abs_diff']} levels (mean {mix['padding_mean_abs_diff']:.2f})."]


def rss_lines(rss: dict[str, Any]) -> list[str]:
    def mib(kb: int | None) -> str:
        return "-" if kb is None else f"{kb / 1024:.0f} MiB"

    cell = rss["cell"]
    return [f"RSS of a batching server at {cell['clients']} clients: {mib(rss['ready_kb'])} when ready, "
            f"{mib(rss['before_kb'])} after warm-up, {mib(rss['after_kb'])} after {rss['requests_between']} more "
            f"requests (peak {mib(cell['rss_peak_kb'])}; {cell['requests_per_s']:.2f} req/s, p99 "
            f"{_f(cell['p99_ms'])} ms): {rss['growth_percent']:+.2f}%."]


# --- main --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> tuple[Config, str | None]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--smoke", action="store_true", help="tiny random model, 64 px, 1 and 4 clients, short cells (the test)")
    add("--model", help="what `translate serve` takes (default maps_aerial2map; --smoke: a tiny random model)")
    add("--image", help=f"the request image, centre-cropped and resized (default {DEFAULT_IMAGE.relative_to(REPO)})")
    add("--size", type=int, help="image side in px (default 256; --smoke 64)")
    add("--concurrency", type=int, nargs="+", help="clients per cell (default 1 8 32; --smoke 1 4)")
    add("--max-batch", type=int, default=8, help="the batching server's --max-batch")
    add("--max-delay-ms", type=float, default=5.0, help="the servers' --max-delay-ms")
    add("--queue", type=int, default=64, help="the servers' --queue (keep it >= the largest concurrency)")
    add("--backend", default="auto", choices=("auto", "onnxruntime", "torch"))
    add("--precision", default="auto", choices=("auto", "fp32", "fp16", "bf16"))
    add("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    add("--workers", type=int, help="the servers' --workers (decode / encode threads; default theirs)")
    add("--threads", type=int, help="intra-op threads, here and in the servers (OMP_NUM_THREADS; default all)")
    add("--seconds", type=float, help="window per cell (default 20; --smoke 1)")
    add("--warmup-seconds", type=float, help="warm-up per cell, at least one answer per client (default 3)")
    add("--max-requests", type=int, help="answers per window at most (default 2000)")
    add("--rss-requests", type=int, help="requests between the RSS readings (default 2000; --smoke 50)")
    add("--rss-concurrency", type=int, help="clients of the RSS phase (default 8; --smoke 4)")
    add("--rss-warmup", type=int, help="answers before the first RSS reading (default 100; --smoke 10)")
    add("--model-rounds", type=int, help="timed rounds of the model measurements, median (default 3)")
    add("--model-round-s", type=float, help="seconds per batch size per round (default 2)")
    add("--ready-timeout", type=float, help="seconds for a server to load and warm up (default 300)")
    add("--stop-timeout", type=float, default=60.0, help="seconds for a server to exit after SIGTERM")
    add("--json", help="write every number to this file")
    args = parser.parse_args(argv)
    preset = SMOKE if args.smoke else FULL
    values = {name: getattr(args, name) if getattr(args, name) is not None else default
              for name, default in preset.items()}
    config = Config(**values, image=args.image, max_batch=args.max_batch, max_delay_ms=args.max_delay_ms,
                    queue=args.queue, backend=args.backend, precision=args.precision, device=args.device,
                    workers=args.workers, stop_timeout=args.stop_timeout, smoke=args.smoke)
    for name in ("size", "max_batch", "queue", "max_requests", "rss_requests", "rss_concurrency", "model_rounds"):
        if getattr(config, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if min(config.concurrency) < 1 or config.seconds <= 0 or config.size <= 16:
        parser.error("--concurrency must be >= 1, --seconds > 0 and --size > 16")
    if max(config.concurrency) > config.queue:
        parser.error(f"--queue {config.queue} is below --concurrency {max(config.concurrency)}: the server would "
                     "answer 429")
    return config, args.json


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse `argv`, run, print the markdown report, write --json; returns the result."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    config, json_path = parse_args(arguments)
    command = shlex.join(["python", "scripts/bench_serve.py", *arguments])
    with tempfile.TemporaryDirectory(prefix="bench_serve-") as work:
        previous = os.environ.get("TRANSLATE_CACHE")  # ONNX exports: a throwaway cache, shared with the servers
        if previous is None:
            os.environ["TRANSLATE_CACHE"] = str(Path(work) / "cache")
        try:
            result = run(config, Path(work))
        finally:
            if previous is None:
                os.environ.pop("TRANSLATE_CACHE", None)
    result["meta"]["command"] = command
    print(markdown(result, command))
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    main()

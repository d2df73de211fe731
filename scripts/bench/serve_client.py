"""The loopback load client: keep-alive client threads, one cell's window and latency stats, a server's cells
and the RSS phase."""

from __future__ import annotations

import http.client
import math
import shlex
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .serve_config import METRICS, SERVED_NAME, Config, logger
from .serve_servers import ServerProcess


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

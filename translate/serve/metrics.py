"""The server's Prometheus metrics, in a registry of their own (so that several apps in one process,
as in the tests, do not collide).

- `translate_requests_total{model, endpoint, status}`
- `translate_queue_depth{model}`: requests waiting for a batch
- `translate_batch_size{model}`: images per model call (histogram)
- `translate_queue_wait_seconds{model}`, `translate_inference_seconds{model}` (per batch),
  `translate_request_seconds{model, endpoint}` (the whole request: reading, decoding, waiting,
  inference, encoding)
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from translate.serve.batching import BatchStats

__all__ = ["CONTENT_TYPE_LATEST", "ServeMetrics", "UNKNOWN_MODEL"]

UNKNOWN_MODEL = "_unknown"  # requests for a name that is not served: one label, not one per typo
_BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                    10.0, 30.0)


class ServeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("translate_requests", "Requests by model, endpoint and HTTP status.",
                                ["model", "endpoint", "status"], registry=self.registry)
        self.queue_depth = Gauge("translate_queue_depth", "Requests waiting for a batch.", ["model"],
                                 registry=self.registry)
        self.batch_size = Histogram("translate_batch_size", "Images per model call.", ["model"],
                                    buckets=_BATCH_BUCKETS, registry=self.registry)
        self.queue_wait = Histogram("translate_queue_wait_seconds", "Time from arrival in the queue to the start "
                                    "of its batch.", ["model"], buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.inference = Histogram("translate_inference_seconds", "Model call time per batch.", ["model"],
                                   buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.request_time = Histogram("translate_request_seconds", "Whole request time, body read to response.",
                                      ["model", "endpoint"], buckets=_LATENCY_BUCKETS, registry=self.registry)

    def observe_batch(self, model: str, stats: BatchStats) -> None:
        self.batch_size.labels(model).observe(stats.size)
        self.inference.labels(model).observe(stats.seconds)
        for wait in stats.queue_waits:
            self.queue_wait.labels(model).observe(wait)

    def observe_request(self, model: str, endpoint: str, status: int, seconds: float | None) -> None:
        self.requests.labels(model, endpoint, str(status)).inc()
        if seconds is not None:
            self.request_time.labels(model, endpoint).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

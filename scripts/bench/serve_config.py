"""What every part of `python -m scripts.bench.serve` shares: the logger, the served name, the /metrics names, the presets
(FULL, SMOKE) and Config."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from .common import REPO

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

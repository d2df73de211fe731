"""Load test of `translate serve`: HTTP throughput and latency beside the model's own throughput.

    python -m scripts.bench.serve --json serve.json               # the full run, ~10 min on 2 cores
    python -m scripts.bench.serve --seconds 8 --rss-requests 300  # a shorter check, ~4 min
    python -m scripts.bench.serve --smoke --json /tmp/serve.json  # tiny model, 64 px, ~25 s: it works, no figures

A client on loopback against `translate serve` running the bundled model (default `maps_aerial2map`)
at 256 px on the CPU, all in one run, in this order (so that the model figures sit beside the cells):

1. Model throughput, "before": the backend and precision the server picks (`make_backend` with the
   same --backend / --precision / --device; checked against the server's GET /v1/models), at batch 1
   and batch --max-batch, in this process with no server running. After warm-up, rounds interleave
   the batch sizes; the figure is the median of --model-rounds. Same method as scripts/bench/infer.py.
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
import logging
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from translate.deploy.backends import Backend, make_backend

from .common import REPO, device_name, save_random_model, throwaway_cache, utc_now, versions, write_json
from .serve_client import bench_rss, bench_server
from .serve_config import DEFAULT_IMAGE, FULL, SMOKE, Config, logger
from .serve_model import bench_mix, harmonic_mean_rows, input_image, measure_model
from .serve_report import evaluate_goals, markdown, serve_versions

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
    model = config.model or str(save_random_model("resnet_6blocks", 8, work / "models", seed=0))
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
            "date": utc_now()}
    result = {"meta": meta, "model": {"before": model_before, "after": model_after,
                                      "mean": harmonic_mean_rows(model_before, model_after)},
              "mix": mix, "servers": servers, "rss": rss}
    result["goals"] = evaluate_goals(result, config)
    return result


# --- main --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> tuple[Config, str | None]:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench.serve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
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
    command = shlex.join(["python", "-m", "scripts.bench.serve", *arguments])
    # ONNX exports go to a throwaway cache, shared with the servers.
    with tempfile.TemporaryDirectory(prefix="bench_serve-") as work, throwaway_cache(Path(work)):
        result = run(config, Path(work))
    result["meta"]["command"] = command
    print(markdown(result, command))
    if json_path:
        write_json(Path(json_path), result)
    return result


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    main()

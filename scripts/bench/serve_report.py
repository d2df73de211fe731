"""The goals (pass / fail), the markdown report and the serving packages' versions."""

from __future__ import annotations

import math
from typing import Any

from .serve_config import Config


def serve_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("fastapi", "uvicorn"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found



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

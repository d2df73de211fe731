"""Smoke test of scripts/bench_serve.py: `--smoke` end to end (tiny model, real servers as subprocesses),
checking the JSON it writes. About 25 s on 2 idle cores."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "bench_serve.py"


def test_smoke_run_measures_every_cell(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")  # translate serve's extra
    pytest.importorskip("uvicorn")
    out = tmp_path / "serve.json"
    completed = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--json", str(out)], cwd=REPO,
                               capture_output=True, text=True, timeout=150)
    assert completed.returncode == 0, completed.stderr[-4000:]
    result = json.loads(out.read_text())
    assert set(result) == {"meta", "model", "mix", "servers", "rss", "goals"}

    servers = {server["max_batch"]: server for server in result["servers"]}
    assert set(servers) == {8, 1}
    for server in servers.values():
        assert server["info"]["backend"] in ("torch", "onnxruntime")
        assert server["stop"] == {**server["stop"], "exit_code": 0, "killed": False}
        assert [cell["clients"] for cell in server["cells"]] == [1, 4]
        for cell in server["cells"]:
            assert cell["requests_per_s"] > 0 and cell["window_ok"] > 0
            assert 0 < cell["p50_ms"] <= cell["p99_ms"]
            assert cell["errors_5xx"] == 0 and cell["failed_connections"] == 0 and cell["other_non_200"] == 0
            assert cell["batch_mean"] >= 1  # read from the server's /metrics
    assert all(cell["batch_mean"] == 1 for cell in servers[1]["cells"])

    rss = result["rss"]
    assert rss["ready_kb"] > 0 and rss["before_kb"] > 0 and rss["after_kb"] > 0
    assert math.isfinite(rss["growth_percent"]) and rss["requests_between"] >= 50
    assert rss["cell"]["errors_5xx"] == 0 and rss["stop"]["exit_code"] == 0

    for phase in ("before", "after", "mean"):
        assert [row["batch"] for row in result["model"][phase]] == [1, 8]
        assert all(row["images_per_s"] > 0 for row in result["model"][phase])
    mix = result["mix"]
    assert mix["sizes"] == [[64, 64], [48, 64]] and mix["apart_ms"] > 0 and mix["padded_ms"] > 0
    assert mix["faster"] in ("apart", "padded")

    assert len(result["goals"]) == 6 and all(isinstance(goal["pass"], bool) for goal in result["goals"])
    assert "| goal | measured | result |" in completed.stdout
    assert "python scripts/bench_serve.py --smoke" in completed.stdout

"""`python -m scripts.bench.serve`: the model measurements and the load client's cells against a server in
this process (fast), and `--smoke` end to end with real servers as subprocesses (slow, ~25 s on 2 idle cores)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from scripts.bench.common import save_random_model
from scripts.bench.serve_client import run_cell
from scripts.bench.serve_config import SERVED_NAME, SMOKE, Config
from scripts.bench.serve_model import bench_mix, input_image, measure_model
from scripts.bench.serve_servers import ServerProcess
from translate.deploy.backends import make_backend

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.usefixtures("single_thread")


class InProcessServer(ServerProcess):
    """What the client reads of a server that runs in this process: its port, /metrics, and (for the
    RSS samples) this process's VmRSS."""

    def __init__(self, port: int) -> None:  # no subprocess to start
        self.port = port
        self.process = SimpleNamespace(pid=os.getpid())


def test_model_figures_and_cells_against_a_served_model(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")  # translate serve's extra
    pytest.importorskip("uvicorn")
    from tests.helpers.serve import RunningServer  # needs the serve extra
    from translate.serve.options import ModelSpec, ServeOptions

    model = save_random_model("resnet_6blocks", 8, tmp_path, seed=0)
    config = replace(Config(**{**SMOKE, "model": str(model)}), backend="torch", precision="fp32", smoke=True)
    backend = make_backend(model, backend="torch", precision="fp32", device="cpu")
    pixels, body = input_image(None, config.size, backend.input_channels, seed=0)
    rows = measure_model(backend, config.size, [1, 4], config)
    assert [row["batch"] for row in rows] == [1, 4] and all(row["images_per_s"] > 0 for row in rows)
    assert all(len(row["rounds"]) == config.model_rounds for row in rows)
    mix = bench_mix(backend, pixels, config)
    assert mix["sizes"] == [[64, 64], [48, 64]] and mix["apart_ms"] > 0 and mix["padded_ms"] > 0

    options = ServeOptions(models=(ModelSpec(SERVED_NAME, str(model)),), max_batch=4, max_delay_ms=5,
                           warmup_size=32, backend="torch", precision="fp32")
    with RunningServer(options) as running:
        running.wait_ready()
        server = InProcessServer(running.port)
        cells = [run_cell(server, body, clients, seconds=0.4, max_requests=200, warmup_s=0.1, warmup_requests=0,
                          config=config) for clients in (1, 3)]
    for cell in cells:
        assert cell["requests_per_s"] > 0 and cell["window_ok"] > 0 and cell["statuses"].keys() == {"200"}
        assert 0 < cell["p50_ms"] <= cell["p99_ms"] and cell["rss_peak_kb"] > 0
        assert cell["errors_5xx"] == 0 and cell["failed_connections"] == 0 and cell["other_non_200"] == 0
    assert cells[0]["batch_mean"] == 1  # one client: one image a batch, read from /metrics
    assert 1 <= cells[1]["batch_mean"] <= 3


@pytest.mark.slow
def test_smoke_run_measures_every_cell(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")  # translate serve's extra
    pytest.importorskip("uvicorn")
    out = tmp_path / "serve.json"
    completed = subprocess.run([sys.executable, "-m", "scripts.bench.serve", "--smoke", "--json", str(out)], cwd=REPO,
                               capture_output=True, text=True, timeout=300)
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
    assert "python -m scripts.bench.serve --smoke" in completed.stdout

"""`translate serve` as users run it: the command's checks and warnings, and a real process that
drains its requests in flight on SIGTERM and exits 0."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import translate.serve.server
from tests.helpers.serve import png_bytes
from translate.cli import app
from translate.core.errors import InvalidValueError, ParameterError
from translate.serve.options import ModelSpec, ServeOptions, parse_model_spec, public_bind_warning


def test_model_specs_and_their_names():
    assert parse_model_spec("weights/maps_aerial2map/") == ModelSpec("maps_aerial2map", "weights/maps_aerial2map/")
    assert parse_model_spec("out/h2z.onnx") == ModelSpec("h2z", "out/h2z.onnx")
    assert parse_model_spec("maps=runs/a=b") == ModelSpec("maps", "runs/a=b")
    with pytest.raises(InvalidValueError, match="letters, digits"):
        parse_model_spec("bad name=x")
    with pytest.raises(InvalidValueError):
        parse_model_spec("maps=")


@pytest.mark.parametrize(("field", "value", "match"), [
    ("max_batch", 0, "max_batch=0: expected a positive integer"), ("queue", 0, "positive integer"),
    ("workers", 0, "workers=0"), ("max_delay_ms", -1, ">= 0"), ("max_body_mb", 0, "> 0"),
    ("port", 70000, "port"), ("api_key", "short", "8 characters"), ("graceful_seconds", 0.5, ">= 1"), ("precision", "fp8", "fp8"),
    ("precision", "int8", "precision='int8' is not one of auto, fp32, fp16, bf16; int8 needs calibration images"),
    ("backend", "tensorflow", "tensorflow"), ("provider", "warp", "provider='warp' is not one of auto, tensorrt")])
def test_options_refuse_bad_values(field: str, value: object, match: str):
    options = ServeOptions(models=(ModelSpec("a", "a"),), **{field: value})
    with pytest.raises(ParameterError, match=match):
        options.check()


def test_options_refuse_duplicate_names_and_no_models():
    with pytest.raises(InvalidValueError, match="NAME=MODEL"):
        ServeOptions(models=(ModelSpec("a", "x"), ModelSpec("a", "y"))).check()
    with pytest.raises(InvalidValueError, match="at least one"):
        ServeOptions().check()


def test_public_bind_warning():
    spec = (ModelSpec("a", "a"),)
    assert public_bind_warning(ServeOptions(models=spec)) is None
    assert public_bind_warning(ServeOptions(models=spec, host="0.0.0.0", api_key="k" * 8)) is None
    warning = public_bind_warning(ServeOptions(models=spec, host="0.0.0.0"))
    assert warning is not None and "--api-key" in warning


@pytest.fixture
def no_serving(monkeypatch):
    """The command up to the server: records the options instead of serving."""
    seen = []
    monkeypatch.setattr(translate.serve.server, "run_server", lambda options: seen.append(options) or 0)
    return seen


def test_the_command_checks_flags_before_serving(no_serving, model_dir: Path):
    runner = CliRunner()
    result = runner.invoke(app, ["serve", str(model_dir), "--max-batch", "0"])
    assert result.exit_code == 2 and "--max-batch 0" in result.output
    result = runner.invoke(app, ["serve", "no/such/model"])
    assert result.exit_code == 2 and "no/such/model" in result.output
    result = runner.invoke(app, ["serve", str(model_dir), "--precision", "int8"])
    assert result.exit_code == 2 and "calibration" in result.output
    result = runner.invoke(app, ["serve", "maps_textcycle", "--precision", "fp16"])
    assert result.exit_code == 2 and "--precision" in result.output and "fp32" in result.output
    result = runner.invoke(app, ["serve", "shapes_text2image", "--backend", "onnxruntime"])
    assert result.exit_code == 2 and "--backend" in result.output
    result = runner.invoke(app, ["serve", f"a={model_dir}", f"a={model_dir}"])
    assert result.exit_code == 2 and "NAME=MODEL" in result.output
    assert no_serving == []


def test_the_command_warns_on_a_public_address_without_a_key(no_serving, model_dir: Path, monkeypatch):
    monkeypatch.delenv("TRANSLATE_API_KEY", raising=False)
    result = CliRunner().invoke(app, ["serve", f"maps={model_dir}", "--host", "0.0.0.0", "--max-batch", "4"])
    assert result.exit_code == 0 and "warning" in result.output and "--api-key" in result.output
    (options,) = no_serving
    assert options.host == "0.0.0.0" and options.max_batch == 4 and options.models == (ModelSpec("maps", str(model_dir)),)
    monkeypatch.setenv("TRANSLATE_API_KEY", "a-long-key-from-env")
    result = CliRunner().invoke(app, ["serve", str(model_dir), "--host", "0.0.0.0"])
    assert result.exit_code == 0 and "warning" not in result.output
    assert no_serving[-1].api_key == "a-long-key-from-env"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_sigterm_finishes_the_requests_in_flight_and_exits_0(model_dir: Path, tmp_path: Path):
    port = free_port()
    # A batch of 4 that waits up to 2 s to fill: two requests are still waiting when SIGTERM comes.
    command = [sys.executable, "-m", "translate", "serve", f"tiny={model_dir}", "--port", str(port),
               "--max-batch", "4", "--max-delay-ms", "2000", "--workers", "1"]
    # One PyTorch thread: the tiny model gains nothing from more, and on a busy CPU they wait on each other.
    environment = {**os.environ, "TRANSLATE_CPU_BF16": "0", "TRANSLATE_CPU_VNNI": "0", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=environment)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if get(port, "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, process.stdout.read().decode()
            time.sleep(0.1)
        image, answers = png_bytes(24, 20), []

        def send() -> None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request("POST", "/v1/models/tiny/translate", body=image, headers={"Content-Type": "image/png"})
            response = connection.getresponse()
            answers.append((response.status, response.getheader("X-Batch-Size"), len(response.read())))

        senders = [threading.Thread(target=send) for _ in range(2)]
        for sender in senders:
            sender.start()
        while b'translate_queue_depth{model="tiny"} 2.0' not in get(port, "/metrics")[1]:
            assert time.monotonic() < deadline + 10
            time.sleep(0.05)
        assert answers == [], "the batch left before SIGTERM; make --max-delay-ms longer"
        process.send_signal(signal.SIGTERM)
        while True:  # no longer accepting, while the batch still waits
            try:
                get(port, "/healthz", timeout=2)
            except OSError:
                break
            assert time.monotonic() < deadline + 20
            time.sleep(0.02)
        assert answers == []
        for sender in senders:
            sender.join(30)
        code = process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
    output = process.stdout.read().decode()
    assert answers == [(200, "2", answers[0][2])] * 2, output
    assert code == 0, output

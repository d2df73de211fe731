"""The wheel carries the bundled models: built from the sources, installed into a fresh virtual
environment, it runs `translate demo`, `translate convert --model NAME` and `translate serve NAME`
from a folder outside the checkout.

The environment reuses this interpreter's installed packages (torch and the rest) through a .pth
line instead of downloading them; site-packages reached that way do not run their own .pth files,
so the checkout's editable install is not seen and `translate` comes from the wheel.
"""

from __future__ import annotations

import http.client
import io
import os
import re
import shutil
import signal
import site
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

pytestmark = [pytest.mark.slow, pytest.mark.wheel]

REPO = Path(__file__).resolve().parents[2]
# What the build reads: the project files, the package and the bundled models.
SOURCES = ("pyproject.toml", "setup.py", "README.md", "translate", "weights")
TIMEOUT = 300  # seconds for one command on a busy 2-core CPU (the demo takes about 30)
# The packaging is under test, not the auto choices (int8 calibration on some CPUs): fixed, fast ones.
FIXED_BACKEND = ["--backend", "torch", "--precision", "fp32", "--device", "cpu"]


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    work: Path  # an empty folder outside the checkout, the commands' working directory
    env: dict[str, str]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.venv / "bin" / "translate"), *args], cwd=self.work, env=self.env,
                              capture_output=True, text=True, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("wheel")
    # Built from a copy: an in-tree build leaves build/ in the checkout, whose stale files would ship.
    source = root / "source"
    source.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(REPO / name, source / name)
    dist = root / "dist"
    _check([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q",
            "-w", str(dist)])
    wheel = next(dist.glob("translate_gan-*.whl"))
    venv = root / "venv"
    _check([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    _check([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--no-deps",
            "--no-index", "-q", str(wheel)])
    # Added after the install, so pip saw an environment without translate-gan.
    venv_site = next((venv / "lib").glob("python3*/site-packages"))
    (venv_site / "host_packages.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    work = root / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(TRANSLATE_CACHE=str(root / "cache"), TRANSLATE_MODELS=str(root / "models"), PYTHONNOUSERSITE="1")
    return Installed(wheel, venv, work, env)


def _check(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"


def test_wheel_carries_every_bundled_model_with_its_card_and_samples(installed):
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    models = [p.parent for p in (REPO / "weights").glob("*/config.json")]
    assert {m.name for m in models} >= {"maps_aerial2map", "horse2zebra_cut_ema"}
    for model in models:
        files = ["config.json", "model.safetensors", "README.md"]
        files += [f"samples/{p.name}" for p in (model / "samples").glob("*") if p.is_file()]
        for file in files:
            assert f"translate/bundled/{model.name}/{file}" in names
    assert not any(n.startswith(("weights/", "tests/")) for n in names)


def test_installed_package_and_its_bundled_models_come_from_the_venv(installed):
    result = subprocess.run(
        [str(installed.venv / "bin" / "python"), "-c",
         "import translate, translate.core.paths as p; print(translate.__file__); print(p.bundled_dir())"],
        cwd=installed.work, env=installed.env, capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    package_file, bundled = (Path(line) for line in result.stdout.split())
    assert package_file.is_relative_to(installed.venv) and bundled.is_relative_to(installed.venv)
    assert (bundled / "maps_aerial2map" / "model.safetensors").is_file()


def test_demo_runs_on_the_bundled_models(installed):
    result = installed.run("demo", "out_demo")
    assert result.returncode == 0, result.stdout + result.stderr
    out = installed.work / "out_demo"
    assert (out / "contact_sheet.png").is_file()
    for model in ("maps_aerial2map", "horse2zebra_cut_ema"):
        samples = [p for p in (REPO / "weights" / model / "samples").iterdir() if p.is_file()]
        assert len(list((out / "converted" / model).glob("*.png"))) == len(samples)


def test_convert_finds_a_bundled_model_by_name(installed):
    inputs = installed.work / "convert_in"
    inputs.mkdir()
    Image.new("RGB", (64, 48), (90, 140, 60)).save(inputs / "field.png")
    result = installed.run("convert", str(inputs), "convert_out", "--model", "horse2zebra_cut_ema", *FIXED_BACKEND)
    assert result.returncode == 0, result.stdout + result.stderr
    assert Image.open(installed.work / "convert_out" / "field.png").size == (64, 48)


def test_serve_answers_a_translate_request_with_a_bundled_model(installed):
    log = installed.work / "serve.log"
    with log.open("w") as log_file:
        server = subprocess.Popen(
            [str(installed.venv / "bin" / "translate"), "serve", "maps_aerial2map", "--host", "127.0.0.1",
             "--port", "0", "--max-batch", "1", *FIXED_BACKEND],
            cwd=installed.work, env=installed.env, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        port = _wait_ready(server, log)
        image = io.BytesIO()
        Image.new("RGB", (64, 64), (120, 110, 90)).save(image, "PNG")
        status, content_type, body = _request(port, "POST", "/v1/models/maps_aerial2map/translate",
                                              image.getvalue(), "image/png")
        assert (status, content_type) == (200, "image/png"), body[:500]
        assert Image.open(io.BytesIO(body)).size == (64, 64)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _wait_ready(server: subprocess.Popen, log: Path) -> int:
    """The port uvicorn's log line names, once /readyz answers 200."""
    deadline = time.monotonic() + TIMEOUT
    port = None
    while time.monotonic() < deadline and server.poll() is None:
        if port is None:
            found = re.search(r"http://127\.0\.0\.1:(\d+)", log.read_text())
            port = int(found.group(1)) if found else None
        if port is not None and _request(port, "GET", "/readyz")[0] == 200:
            return port
        time.sleep(0.2)
    raise AssertionError(f"translate serve did not get ready (exit status {server.poll()}):\n{log.read_text()}")


def _request(port: int, method: str, path: str, body: bytes | None = None,
             content_type: str | None = None) -> tuple[int, str, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(method, path, body=body, headers={"Content-Type": content_type} if content_type else {})
        response = connection.getresponse()
        return response.status, response.getheader("content-type", ""), response.read()
    finally:
        connection.close()

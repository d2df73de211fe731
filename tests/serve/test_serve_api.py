"""`translate serve` over HTTP on loopback: every endpoint, every error status, batching that gives
each request the bytes `convert` writes, the API key, readiness, faults and metrics."""

from __future__ import annotations

import http.client
import io
import json
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers.serve import PLAIN_CPU, RunningServer, decoded, png_bytes
from translate.core.images import to_uint8
from translate.deploy.convert import convert_folder
from translate.deploy.text_export import export_text_onnx
from translate.formats.locator import ModelSource, locate
from translate.serve.models import ImageJob, ServedModel
from translate.serve.options import ModelSpec, ServeOptions
from translate.text.model import load_text2image

pytestmark = pytest.mark.usefixtures("single_thread")

KEY = "secret-key-123"


@pytest.fixture(scope="module")
def server(model_dir: Path):
    options = ServeOptions(models=(ModelSpec("tiny", str(model_dir)),), max_batch=4, max_delay_ms=5,
                           max_body_mb=0.05, max_pixels=200 * 200, warmup_size=32)
    with RunningServer(options) as running:
        running.wait_ready()
        yield running


def translate(server: RunningServer, body: bytes, content_type: str = "image/png", query: str = "",
              name: str = "tiny", headers: dict[str, str] | None = None):
    return server.request("POST", f"/v1/models/{name}/translate{query}", body, content_type, headers)


def test_service_endpoints(server: RunningServer):
    assert server.json("GET", "/healthz") == (200, {"status": "ok"})
    status, ready = server.json("GET", "/readyz")
    assert status == 200 and ready["ready"] and ready["models"] == ["tiny"]
    status, listing = server.json("GET", "/v1/models")
    (tiny,) = listing["models"]
    assert status == 200 and tiny["name"] == "tiny" and tiny["kind"] == "generator"
    assert (tiny["backend"], tiny["precision"], tiny["provider"]) == ("onnxruntime", "fp32", "CPUExecutionProvider")
    assert tiny["directions"] == ["AtoB"] and tiny["size_multiple"] == 4
    assert tiny["max_batch"] == 4 and tiny["batch_speedup"] > 0  # measured at warm-up
    assert server.json("GET", "/v1/models/tiny") == (200, tiny)
    status, schema = server.json("GET", "/openapi.json")
    assert status == 200
    assert {"/v1/models/{name}/translate", "/v1/models/{name}/generate", "/v1/models", "/healthz", "/readyz",
            "/metrics"} <= set(schema["paths"])
    assert "multipart/form-data" in schema["paths"]["/v1/models/{name}/translate"]["post"]["requestBody"]["content"]
    status, headers, page = server.request("GET", "/")
    assert status == 200 and headers["content-type"].startswith("text/html") and b"<html" in page.lower()


def test_translate_keeps_the_size_for_every_input_format(server: RunningServer):
    image = Image.open(io.BytesIO(png_bytes(50, 38)))
    for pil_format, content_type in (("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")):
        buffer = io.BytesIO()
        image.save(buffer, format=pil_format)
        status, headers, body = translate(server, buffer.getvalue(), content_type)
        assert status == 200, body
        assert headers["content-type"] == "image/png" and decoded(body).size == (50, 38)
        assert int(headers["x-batch-size"]) >= 1 and "infer;dur=" in headers["server-timing"]


@pytest.mark.parametrize(("fmt", "content_type", "pil_format"),
                         [("jpeg", "image/jpeg", "JPEG"), ("webp", "image/webp", "WEBP"), ("png", "image/png", "PNG")])
def test_output_format(server: RunningServer, fmt: str, content_type: str, pil_format: str):
    status, headers, body = translate(server, png_bytes(), query=f"?format={fmt}&quality=80")
    assert status == 200 and headers["content-type"] == content_type
    assert decoded(body).format == pil_format


def test_multipart_upload_with_its_fields(server: RunningServer):
    boundary = "xYzBoundary"
    parts = [('Content-Disposition: form-data; name="image"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
              ).encode() + png_bytes(30, 20), b'Content-Disposition: form-data; name="format"\r\n\r\njpeg']
    body = b"".join(f"--{boundary}\r\n".encode() + part + b"\r\n" for part in parts) + f"--{boundary}--\r\n".encode()
    status, headers, out = translate(server, body, f"multipart/form-data; boundary={boundary}")
    assert status == 200, out
    assert headers["content-type"] == "image/jpeg" and decoded(out).size == (30, 20)
    text_part = body.replace(b"Content-Type: image/png", b"Content-Type: text/plain")
    status, _, out = translate(server, text_part, f"multipart/form-data; boundary={boundary}")
    assert status == 415 and b"text/plain" in out
    no_image = body.replace(b'name="image"', b'name="picture"')
    status, _, out = translate(server, no_image, f"multipart/form-data; boundary={boundary}")
    assert status == 400 and b"'image'" in out


def test_exif_orientation_is_applied(server: RunningServer):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90: a 40x24 file shows as 24x40
    buffer = io.BytesIO()
    Image.open(io.BytesIO(png_bytes(40, 24))).save(buffer, format="JPEG", exif=exif)
    status, _, body = translate(server, buffer.getvalue(), "image/jpeg")
    assert status == 200 and decoded(body).size == (24, 40)


def test_alpha_is_carried_over_as_convert_does(server: RunningServer):
    source = png_bytes(32, 28, seed=3, mode="RGBA")
    status, _, body = translate(server, source)
    output = decoded(body)
    assert status == 200 and output.mode == "RGBA"
    assert np.array_equal(np.asarray(output)[..., 3], np.asarray(decoded(source))[..., 3])


def error_of(status_body: tuple[int, dict[str, str], bytes]) -> tuple[int, str, str]:
    status, _, body = status_body
    error = json.loads(body)["error"]
    assert error["status"] == status
    return status, error["type"], error["message"]


def test_bad_bodies_get_400_415_and_413(server: RunningServer):
    good = png_bytes(40, 40)
    assert error_of(translate(server, b""))[:2] == (400, "bad_image")
    assert error_of(translate(server, good[: len(good) // 2]))[:2] == (400, "bad_image")
    assert error_of(translate(server, b"hello, not an image"))[:2] == (400, "bad_image")
    gif = io.BytesIO()
    Image.new("RGB", (8, 8)).save(gif, format="GIF")
    status, kind, message = error_of(translate(server, gif.getvalue()))
    assert (status, kind) == (400, "bad_image") and "PNG, JPEG" in message
    status, kind, message = error_of(translate(server, good, "text/plain"))
    assert (status, kind) == (415, "unsupported_media_type") and "text/plain" in message
    assert error_of(translate(server, good, ""))[0] == 415
    big_pixels = Image.new("RGB", (300, 300))  # 90,000 pixels > max_pixels 40,000, a small file
    buffer = io.BytesIO()
    big_pixels.save(buffer, format="PNG")
    status, kind, message = error_of(translate(server, buffer.getvalue()))
    assert (status, kind) == (413, "image_too_large") and "--max-pixels" in message
    status, kind, message = error_of(translate(server, bytes(60_000)))  # over 0.05 MB
    assert (status, kind) == (413, "body_too_large") and "--max-body-mb" in message
    metrics = server.request("GET", "/metrics")[2].decode()
    assert 'translate_requests_total{endpoint="translate",model="tiny",status="413"}' in metrics


def test_a_chunked_body_over_the_limit_gets_413(server: RunningServer):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    chunks = (bytes(8192) for _ in range(10))  # 80 KB, no Content-Length
    connection.request("POST", "/v1/models/tiny/translate", body=chunks, encode_chunked=True,
                       headers={"Content-Type": "image/png", "Transfer-Encoding": "chunked"})
    response = connection.getresponse()
    assert response.status == 413 and json.loads(response.read())["error"]["type"] == "body_too_large"
    connection.close()


def test_bad_parameters_and_unknown_names(server: RunningServer):
    good = png_bytes()
    status, kind, message = error_of(translate(server, good, name="nope"))
    assert (status, kind) == (404, "unknown_model") and "'tiny'" in message
    assert error_of(translate(server, good, query="?direction=BtoA"))[:2] == (400, "bad_parameter")
    status, _, message = error_of(translate(server, good, query="?prompt=zebra"))
    assert status == 400 and "prompt" in message
    assert error_of(translate(server, good, query="?format=gif"))[:2] == (400, "bad_parameter")
    assert error_of(translate(server, good, query="?format=jpeg&quality=500"))[:2] == (400, "bad_parameter")
    status, kind, message = error_of(server.request("POST", "/v1/models/tiny/generate", b"{}", "application/json"))
    assert (status, kind) == (400, "wrong_endpoint") and "/translate" in message
    assert error_of(server.request("GET", "/nothing/here"))[:2] == (404, "not_found")
    assert error_of(server.request("GET", "/v1/models/nope"))[:2] == (404, "unknown_model")


def concurrently(count: int, send) -> list:
    results: list = [None] * count

    def worker(index: int) -> None:
        results[index] = send(index)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_concurrent_requests_share_one_batch_and_match_convert_byte_for_byte(model_dir: Path, tmp_path: Path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    images = [png_bytes(44, 36, seed=index) for index in range(4)]
    for index, data in enumerate(images):
        (inputs / f"{index}.png").write_bytes(data)
    convert_folder(inputs, tmp_path / "out", model_dir, batch_size=4, workers=1, capabilities=PLAIN_CPU)
    expected = [(tmp_path / "out" / f"{index}.png").read_bytes() for index in range(4)]
    # A long delay: the batch goes when it is full, so all four must be in it.
    options = ServeOptions(models=(ModelSpec("tiny", str(model_dir)),), max_batch=4, max_delay_ms=20_000,
                           warmup_size=32)
    with RunningServer(options) as server:
        server.wait_ready()
        started = time.monotonic()
        results = concurrently(4, lambda i: translate(server, images[i]))
        elapsed = time.monotonic() - started
        metrics = server.request("GET", "/metrics")[2].decode()
    assert elapsed < 15
    for (status, headers, body), want in zip(results, expected, strict=True):
        assert status == 200 and headers["x-batch-size"] == "4"
        assert body == want
    assert 'translate_batch_size_count{model="tiny"} 1.0' in metrics
    assert 'translate_batch_size_sum{model="tiny"} 4.0' in metrics


class HeldModel(ServedModel):
    """A fake model whose batches (and warm-up) wait on events; it inverts the image, and fails on
    images 13 pixels wide."""

    kind, endpoint, directions = "generator", "translate", ("AtoB",)
    input_channels = 3

    def __init__(self) -> None:
        super().__init__("held", ModelSource("held", Path("held"), "path", "weights", "generator"))
        self.gate, self.warm_gate = threading.Event(), threading.Event()
        self.gate.set()
        self.warm_gate.set()
        self.batches: list[int] = []

    def batch_key(self, job: ImageJob, direction: str | None):
        return tuple(job.pixels.shape)

    def run_batch(self, key, jobs):
        self.gate.wait(30)
        self.batches.append(len(jobs))
        if key[-1] == 13:
            raise RuntimeError("kernel failure on this size")
        return [(255 - job.pixels).permute(1, 2, 0).numpy() for job in jobs]

    def warm_up(self, size: int) -> None:
        self.warm_gate.wait(30)

    def info(self) -> dict:
        return {"directions": list(self.directions), "backend": "fake", "precision": "fp32", "provider": "cpu",
                "size_multiple": 1, "description": "fake"}


def held_server(model: HeldModel, **settings) -> RunningServer:
    options = ServeOptions(models=(ModelSpec("held", "unused"),), **settings)
    return RunningServer(options, models={"held": model})


def test_not_ready_until_warmed_up_then_ready():
    model = HeldModel()
    model.warm_gate.clear()
    with held_server(model) as server:
        assert server.json("GET", "/healthz")[0] == 200
        assert server.json("GET", "/readyz")[0] == 503
        status, headers, body = translate(server, png_bytes(), name="held")
        assert status == 503 and headers["retry-after"] and json.loads(body)["error"]["type"] == "not_ready"
        model.warm_gate.set()
        server.wait_ready()
        assert translate(server, png_bytes(), name="held")[0] == 200


def test_a_full_queue_gets_429_with_retry_after_and_the_rest_are_served():
    model = HeldModel()
    with held_server(model, max_batch=1, max_delay_ms=0, queue=2) as server:
        server.wait_ready()
        model.gate.clear()
        held = [threading.Thread(target=translate, args=(server, png_bytes()), kwargs={"name": "held"})
                for _ in range(3)]  # one runs (held at the gate), two wait: the queue is full
        for thread in held:
            thread.start()
            time.sleep(0.2)
        status, headers, body = translate(server, png_bytes(), name="held")
        assert status == 429 and headers["retry-after"] == "1"
        assert json.loads(body)["error"]["type"] == "queue_full"
        metrics = server.request("GET", "/metrics")[2].decode()
        assert 'translate_queue_depth{model="held"} 2.0' in metrics
        model.gate.set()
        for thread in held:
            thread.join(30)
        assert translate(server, png_bytes(), name="held")[0] == 200
    assert model.batches == [1, 1, 1, 1]


def test_a_failing_batch_gets_500_and_the_server_goes_on():
    with held_server(HeldModel()) as server:
        server.wait_ready()
        status, kind, message = error_of(translate(server, png_bytes(13, 10), name="held"))
        assert (status, kind) == (500, "inference_failed") and "kernel failure" in message
        assert translate(server, png_bytes(14, 10), name="held")[0] == 200


def test_a_client_that_goes_away_does_not_break_its_batch():
    model = HeldModel()
    with held_server(model, max_batch=3, max_delay_ms=20_000) as server:
        server.wait_ready()
        model.gate.clear()
        image = png_bytes(20, 16)
        leaver = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        leaver.sendall(b"POST /v1/models/held/translate HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                       + f"Content-Length: {len(image)}\r\n\r\n".encode() + image)
        stayers = []
        for _ in range(2):
            thread = threading.Thread(target=lambda: stayers.append(translate(server, image, name="held")))
            thread.start()
        time.sleep(0.5)  # the batch of three is running, held at the gate
        leaver.close()
        model.gate.set()
        deadline = time.monotonic() + 30
        while len(stayers) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    expected = 255 - np.asarray(decoded(image))
    assert model.batches == [3]
    for status, _, body in stayers:
        assert status == 200 and np.array_equal(np.asarray(decoded(body)), expected)


def test_a_client_that_goes_away_while_waiting_is_dropped_from_the_queue():
    model = HeldModel()
    with held_server(model, max_batch=3, max_delay_ms=20_000) as server:
        server.wait_ready()
        image = png_bytes(20, 16)
        leaver = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        leaver.sendall(b"POST /v1/models/held/translate HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                       + f"Content-Length: {len(image)}\r\n\r\n".encode() + image)
        deadline = time.monotonic() + 10
        while b'translate_queue_depth{model="held"} 1.0' not in server.request("GET", "/metrics")[2]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        leaver.close()
        while b'status="499"' not in server.request("GET", "/metrics")[2]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        stayers = concurrently(3, lambda i: translate(server, image, name="held"))
    assert model.batches == [3]  # the three who stayed; the one who left was never run
    assert all(status == 200 and headers["x-batch-size"] == "3" for status, headers, _ in stayers)


def test_the_api_key(model_dir: Path):
    options = ServeOptions(models=(ModelSpec("tiny", str(model_dir)),), api_key=KEY, warmup_size=32)
    with RunningServer(options) as server:
        server.wait_ready()
        status, headers, body = translate(server, png_bytes())
        assert status == 401 and headers["www-authenticate"] == "Bearer"
        assert "Authorization: Bearer" in json.loads(body)["error"]["message"]
        assert translate(server, png_bytes(), headers={"Authorization": "Bearer wrong-key-000"})[0] == 401
        assert translate(server, png_bytes(), headers={"X-API-Key": "wrong-key-000"})[0] == 401
        assert server.request("GET", "/v1/models")[0] == 401
        assert translate(server, png_bytes(), headers={"Authorization": f"Bearer {KEY}"})[0] == 200
        assert translate(server, png_bytes(), headers={"X-API-Key": KEY})[0] == 200
        assert server.request("GET", "/v1/models", headers={"X-API-Key": KEY})[0] == 200
        for open_path in ("/healthz", "/readyz", "/metrics", "/"):  # probes, scrapers and the page
            assert server.request("GET", open_path)[0] == 200


def test_metrics_count_requests_by_status_and_time_them(server: RunningServer):
    translate(server, png_bytes())
    translate(server, b"", "image/png")
    translate(server, png_bytes(), name="nope")
    status, headers, body = server.request("GET", "/metrics")
    text = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert 'translate_requests_total{endpoint="translate",model="tiny",status="200"}' in text
    assert 'translate_requests_total{endpoint="translate",model="tiny",status="400"}' in text
    assert 'translate_requests_total{endpoint="translate",model="_unknown",status="404"}' in text
    for name in ("translate_queue_depth", "translate_batch_size_bucket", "translate_queue_wait_seconds_bucket",
                 "translate_inference_seconds_bucket", "translate_request_seconds_bucket"):
        assert f'{name}{{' in text, name


def test_a_model_that_fails_to_load_stops_the_server(tmp_path: Path, model_dir: Path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((model_dir / "config.json").read_text())
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    options = ServeOptions(models=(ModelSpec("broken", str(broken)),))
    running = RunningServer(options)
    with running:
        running.thread.join(30)
        assert not running.thread.is_alive()
    assert running.server.failed is not None and "Error" in running.server.failed


def test_text_models_translate_with_a_prompt_and_generate_from_a_seed():
    options = ServeOptions(models=(ModelSpec("tc", "maps_textcycle"), ModelSpec("shapes", "shapes_text2image")),
                           warmup_size=32)
    with RunningServer(options) as server:
        server.wait_ready()
        status, _, body = translate(server, png_bytes(36, 28), name="tc", query="?prompt=map")
        assert status == 200 and decoded(body).size == (36, 28)
        status, kind, message = error_of(translate(server, png_bytes(36, 28), name="tc"))
        assert (status, kind) == (400, "bad_parameter") and "prompt" in message
        ask = json.dumps({"prompt": "a red circle", "seed": 5}).encode()
        first = server.request("POST", "/v1/models/shapes/generate", ask, "application/json")
        second = server.request("POST", "/v1/models/shapes/generate", ask, "application/json")
        assert first[0] == 200 and first[1]["x-seed"] == "5" and first[2] == second[2]
        assert decoded(first[2]).size == (32, 32)
        assert error_of(server.request("POST", "/v1/models/shapes/generate", b"{", "application/json"))[0] == 400
        assert error_of(server.request("POST", "/v1/models/shapes/generate", ask, "text/plain"))[0] == 415
        assert error_of(translate(server, png_bytes(), name="shapes"))[1] == "wrong_endpoint"
    # The image `translate generate --seed 5 -n 1` makes, to the byte.
    with torch.no_grad():
        reference = load_text2image(locate("shapes_text2image").path).generate(["a red circle"], n=1, seed=5)
    assert np.array_equal(np.asarray(decoded(first[2])), to_uint8(reference)[0].permute(1, 2, 0).numpy())


def test_a_prompt_the_model_refuses_fails_alone_in_its_batch(tmp_path: Path):
    onnx = tmp_path / "tc_baked.onnx"
    export_text_onnx(locate("maps_textcycle").path, onnx, bake_prompts=["map"], parity_sizes=[(32, 32)])
    options = ServeOptions(models=(ModelSpec("baked", str(onnx)),), max_batch=2, max_delay_ms=20_000,
                           warmup_size=32)
    image = png_bytes(32, 32)
    with RunningServer(options) as server:
        server.wait_ready()
        results = concurrently(2, lambda i: translate(server, image, name="baked",
                                                      query="?prompt=" + ("map" if i == 0 else "zebra")))
    assert results[0][0] == 200 and results[0][1]["x-batch-size"] == "2"
    status, kind, message = error_of(results[1])
    assert (status, kind) == (400, "bad_parameter") and "'zebra'" in message and "baked" in message

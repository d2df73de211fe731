"""The page at `/` of `translate serve`, end to end in headless Chromium (Playwright driving Debian's
/usr/bin/chromium, or TRANSLATE_CHROMIUM): pick a model, upload an image, download the output.

Skipped only when Playwright is not installed or Chromium is missing or cannot start. With
TRANSLATE_SCREENSHOTS=DIR the first test saves DIR/serve_page.png (docs/images/serve_page.png).
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers.serve import RunningServer
from translate.core.paths import BUNDLED_DIR
from translate.serve.options import ModelSpec, ServeOptions

pytestmark = pytest.mark.usefixtures("single_thread")

CHROMIUM = os.environ.get("TRANSLATE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 60_000
API_KEY = "secret-key-123"
SIZE = (150, 110)  # not square: a width / height swap shows


def _options(*models: ModelSpec, **kwargs: object) -> ServeOptions:
    # max_batch 1: the page sends one request at a time, and the server skips timing batches at start-up.
    return ServeOptions(models=models, warmup_size=64, workers=1, max_batch=1, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError as error:
        pytest.skip(f"playwright is not installed: {error}")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set TRANSLATE_CHROMIUM)")
    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                                                  timeout=TIMEOUT_MS)
        except Error as error:
            pytest.skip(f"Chromium at {CHROMIUM} does not start: {str(error).splitlines()[0]}")
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def server(browser):  # after the browser: no model loads when the tests skip
    """The bundled generator as "maps" and the bundled text2image model as "shapes", no API key."""
    options = _options(ModelSpec("maps", "maps_aerial2map"), ModelSpec("shapes", "shapes_text2image"))
    with RunningServer(options) as running:
        running.wait_ready()
        yield running


@pytest.fixture
def page(browser):
    context = browser.new_context(accept_downloads=True, viewport={"width": 780, "height": 600})
    context.set_default_timeout(TIMEOUT_MS)
    yield context.new_page()
    context.close()


@pytest.fixture(scope="module")
def aerial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 150x110 crop of a bundled aerial sample, as PNG."""
    path = tmp_path_factory.mktemp("page") / "aerial.png"
    sample = Image.open(BUNDLED_DIR / "maps_aerial2map" / "samples" / "aerial_1.jpg").convert("RGB")
    sample.crop((60, 80, 60 + SIZE[0], 80 + SIZE[1])).save(path)
    return path


def _output_loaded(page) -> None:
    page.wait_for_function("() => { const i = document.getElementById('output-image');"
                           " return i.src.startsWith('blob:') && i.complete && i.naturalWidth > 0; }",
                           timeout=TIMEOUT_MS)


def _translate(page, image: Path) -> None:
    page.select_option("#model", "maps")
    page.set_input_files("#file", str(image))
    _output_loaded(page)


def _drop(page, image: Path) -> None:
    """Drop `image` (a PNG) on #drop as a drag from the desktop would."""
    transfer = page.evaluate_handle("([data, name]) => { const t = new DataTransfer(); t.items.add(new File("
                                    "[Uint8Array.from(atob(data), c => c.charCodeAt(0))], name, {type: 'image/png'}));"
                                    " return t; }", [base64.b64encode(image.read_bytes()).decode(), image.name])
    page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})


def _download(page, tmp_path: Path) -> Image.Image:
    with page.expect_download(timeout=TIMEOUT_MS) as info:
        page.click("#download")
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    out = Image.open(path)
    out.load()
    return out


def test_page_translates_an_upload_and_downloads_the_output(server, page, aerial, tmp_path):
    page.goto(server.url + "/")
    _translate(page, aerial)
    out = _download(page, tmp_path)

    assert page.text_content("#error") == ""
    assert page.get_attribute("#download", "download") == "aerial_translated.png"
    assert out.format == "PNG" and out.size == SIZE
    diff = np.abs(np.asarray(out.convert("RGB"), np.int16) - np.asarray(Image.open(aerial), np.int16))
    assert diff.mean() > 10, "the output should be a map, not the photo"
    page.wait_for_function("() => document.getElementById('output-size').textContent !== ''", timeout=TIMEOUT_MS)
    assert page.text_content("#input-size") == page.text_content("#output-size") == "150 × 110"
    assert "batch size 1" in page.text_content("#meta") and "infer;dur=" in page.text_content("#meta")
    assert page.is_hidden("#direction") and page.is_hidden("#prompt") and page.is_hidden("#api-key")

    shots = os.environ.get("TRANSLATE_SCREENSHOTS")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(shots) / "serve_page.png"), full_page=True)


def test_page_shows_the_servers_error_message(server, page, tmp_path):
    not_an_image = tmp_path / "broken.png"
    not_an_image.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    page.goto(server.url + "/")
    page.select_option("#model", "maps")
    page.set_input_files("#file", str(not_an_image))
    page.wait_for_function("() => document.getElementById('error').textContent !== ''", timeout=TIMEOUT_MS)
    assert "not a readable PNG, JPEG or WebP image" in page.text_content("#error")
    assert page.is_hidden("#output-image")


def test_page_asks_for_the_api_key_and_sends_it_with_a_dropped_image(page, aerial, tmp_path):
    with RunningServer(_options(ModelSpec("maps", "maps_aerial2map"), api_key=API_KEY)) as keyed:
        keyed.wait_ready()
        page.goto(keyed.url + "/")
        page.wait_for_selector("#api-key", state="visible", timeout=TIMEOUT_MS)
        assert "API key" in page.text_content("#error")
        page.fill("#api-key", API_KEY)
        page.press("#api-key", "Enter")
        page.select_option("#model", "maps")
        _drop(page, aerial)
        _output_loaded(page)
        assert page.text_content("#error") == ""
        assert page.is_hidden("#api-key")
        assert page.evaluate("sessionStorage.getItem('translate-api-key')") == API_KEY
        assert _download(page, tmp_path).size == SIZE


def test_page_generates_from_a_prompt(server, page, tmp_path):
    page.goto(server.url + "/")
    page.select_option("#model", "shapes")
    assert page.is_hidden("#drop") and page.is_visible("#generate")
    page.fill("#prompt", "a red circle")
    page.fill("#seed", "7")
    page.click("#generate")
    _output_loaded(page)
    assert page.text_content("#error") == ""
    size = page.evaluate("() => { const i = document.getElementById('output-image');"
                         " return [i.naturalWidth, i.naturalHeight]; }")
    assert size == [32, 32]
    assert "seed 7" in page.text_content("#meta")
    assert _download(page, tmp_path).size == (32, 32)


def test_page_waits_while_the_models_load(server, page):
    # What the server answers while it loads: /v1/models with ready false, the model routes with 503.
    loading = [{"status": 200, "json": {"ready": False, "models": [{"name": "maps", "loaded": False}]}},
               {"status": 503, "json": {"error": {"status": 503, "type": "not_ready", "message": "loading"}},
                "headers": {"Retry-After": "1"}}]
    page.route("**/v1/models", lambda route: route.fulfill(**loading.pop(0)), times=len(loading))
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url) if request.url.endswith("/v1/models") else None)
    page.clock.install()  # the page's 1 s retries run on a fake clock, advanced below
    page.goto(server.url + "/")
    assert "Loading" in page.text_content("#status") and page.is_disabled("#model")
    for _ in range(20):  # each step passes one retry interval once the page has read the last answer
        if page.is_enabled("#model"):
            break
        page.wait_for_timeout(50)
        page.clock.run_for(1000)
    assert page.is_enabled("#model")
    assert len(asked) == 3 and not loading
    assert page.eval_on_selector_all("#model option", "options => options.map(o => o.value)") == ["maps", "shapes"]
    assert page.text_content("#error") == ""

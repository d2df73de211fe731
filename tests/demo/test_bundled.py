"""The bundled default model: loads by name, and the README's main job (translate demo) runs on it."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from translate import Translator
from translate.cli import app
from translate.core.paths import BUNDLED_DIR
from translate.demo import bundled_demo_models

# The auto rules pick different paths on different CPUs: CI runs these with bf16 reported both ways.
pytestmark = [pytest.mark.selection, pytest.mark.usefixtures("single_thread")]

MODEL = BUNDLED_DIR / "maps_aerial2map"


def test_bundled_model_is_a_small_float16_weights_folder_with_a_card():
    config = json.loads((MODEL / "config.json").read_text())
    assert config["dtype"] == "float16" and config["domains"] == {"source": "aerial", "target": "map"}
    assert (MODEL / "model.safetensors").stat().st_size < 20e6
    card = (MODEL / "README.md").read_text()
    for needle in ("steps", "L1", "licence"):
        assert needle in card


def test_bundled_model_loads_by_name_and_keeps_image_size():
    t = Translator("maps_aerial2map", device="cpu")
    sample = sorted((MODEL / "samples").glob("*.jpg"))[0]
    out = t(Image.open(sample))
    assert out.size == Image.open(sample).size


def test_demo_exports_converts_the_samples_and_writes_a_contact_sheet(tmp_path):
    result = CliRunner().invoke(app, ["demo", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    rows = 0
    for name in bundled_demo_models():
        samples = sorted(p for p in (BUNDLED_DIR / name / "samples").iterdir() if p.is_file())
        converted = sorted((tmp_path / "demo" / "converted" / name).glob("*.png"))
        assert [p.stem for p in converted] == [p.stem for p in samples]
        assert all(Image.open(c).size == Image.open(s).size for c, s in zip(converted, samples, strict=True))
        assert (tmp_path / "demo" / f"{name}.onnx").is_file() and f"{name}.onnx" in result.output
        rows += len(samples)
    assert "maps_aerial2map" in bundled_demo_models()
    sheet = Image.open(tmp_path / "demo" / "contact_sheet.png")
    assert sheet.height > 256 * rows, "a row per sample of every model"


def test_bundled_textcycle_model_translates_by_prompt_both_ways():
    import torch

    from translate.data.images import to_uint8_tensor
    from translate.text.model import load_text_model

    folder = BUNDLED_DIR / "maps_textcycle"
    config = json.loads((folder / "config.json").read_text())
    assert config["kind"] == "textcycle" and config["dtype"] == "float16"
    assert set(config["domains"]) == {"aerial", "map"}
    assert (folder / "model.safetensors").stat().st_size < 10e6
    card = (folder / "README.md").read_text()
    for needle in ("RMSE", "identity", "licence", "steps"):
        assert needle in card
    model = load_text_model("maps_textcycle")
    image = Image.open(sorted((MODEL / "samples").glob("*.jpg"))[0]).convert("RGB").resize((128, 128))
    aerial = to_uint8_tensor(image)[None].float() / 127.5 - 1  # (1, 3, 128, 128) in [-1, 1]
    with torch.no_grad():
        as_map, as_aerial = model.translate(aerial, "map"), model.translate(aerial, "aerial photo")
    # Map tiles are light and flat; the aerial prompt on an aerial photo stays close to it.
    assert as_map.mean() > aerial.mean() + 0.5
    assert (as_aerial - aerial).abs().mean() < (as_map - aerial).abs().mean() / 2


def test_bundled_shapes_model_draws_the_colour_position_and_size_asked():
    """The shipped text2image model, loaded by name, on 40 prompts (every colour at every position,
    sizes and shapes drawn), scored from the pixels."""
    import numpy as np

    from translate.evaluation.shapes import (
        COLORS,
        POSITIONS,
        SHAPES,
        SIZES,
        TEMPLATES,
        conditioning_accuracy,
        make_caption,
    )
    from translate.text.model import load_text_model

    folder = BUNDLED_DIR / "shapes_text2image"
    config = json.loads((folder / "config.json").read_text())
    assert config["kind"] == "text2image" and config["dtype"] == "float16"
    assert (folder / "model.safetensors").stat().st_size < 10e6
    card = (folder / "README.md").read_text()
    for needle in ("colour", "position", "held-out", "steps", "refit-matcher"):
        assert needle in card
    rng = np.random.default_rng(0)
    prompts = [make_caption({"shape": str(rng.choice(SHAPES)), "color": colour, "size": str(rng.choice(SIZES)),
                             "position": position}, rng, template=TEMPLATES[0])
               for colour in COLORS for position in POSITIONS]
    model = load_text_model("shapes_text2image")
    images = model.generate(prompts, seed=0)
    assert images.shape == (40, 3, 32, 32) and images.min() >= -1 and images.max() <= 1
    scores = conditioning_accuracy(images, prompts)
    assert scores["color"] >= 0.8 and scores["position"] >= 0.8 and scores["size"] >= 0.8, scores

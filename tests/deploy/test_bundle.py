"""`translate bundle` (translate.deploy.bundle): a float16 weights folder with samples, a card to
complete, and the float16-vs-float32 check, for an image model and a text2image model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from translate.cli import app
from translate.deploy.bundle import bundle_model
from translate.formats.weights import load
from translate.models.conditioned import TextToImageGenerator
from translate.text.encoders import ByteTextEncoder
from translate.text.model import load_text2image, save_text_model

pytestmark = pytest.mark.usefixtures("single_thread")

runner = CliRunner()


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """Three 36 x 28 RGB images (not multiples of the generator's 4: the check pads them)."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for index in range(3):
        Image.fromarray(rng.integers(0, 256, (28, 36, 3), dtype=np.uint8)).save(folder / f"{index}.png")
    return folder


def test_bundle_writes_float16_weights_samples_and_a_card(model_dir, images, paired_data, tmp_path):
    out = tmp_path / "weights" / "tiny"
    args = ["bundle", "--checkpoint", str(model_dir), "--out", str(out), "--images", str(images), "--n", "2",
            "--data", str(paired_data), "--phase", "test", "--samples", str(images), "--n-samples", "2",
            "--input-resize", "64"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["dtype"] == "float16" and config["input_resize"] == 64 and config["direction"] == "AtoB"
    assert config["source"]["weights_folder"] == "model" and len(config["source"]["sha256"]) == 64
    tensors = load_file(str(out / "model.safetensors"))
    assert {t.dtype for t in tensors.values() if t.is_floating_point()} == {torch.float16}
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["0.png", "1.png"]
    # float16 weights of an untrained generator: outputs within a few 1e-3 of float32, far above 40 dB
    lines = [line for line in result.output.splitlines() if "worst PSNR" in line]
    assert len(lines) == 2 and "2 images of" in lines[0] and "2 test pairs of" in lines[1]
    assert all(float(line.split("worst PSNR ")[1].split()[0]) > 40 for line in lines)
    card = (out / "README.md").read_text()
    assert card.startswith("# tiny — image, A → B") and "## Data" in card and "worst PSNR" in card
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert (load(out)(x) - load(model_dir)(x)).abs().max() < 0.02
    # Bundling again keeps the card someone completed.
    (out / "README.md").write_text("# tiny\n\nmy card\n")
    result = runner.invoke(app, args[:5] + ["--dtype", "float32"])
    assert result.exit_code == 0 and "kept the existing card" in result.output
    assert (out / "README.md").read_text() == "# tiny\n\nmy card\n"
    assert json.loads((out / "config.json").read_text())["dtype"] == "float32"


def test_bundle_refusals(model_dir, images, tmp_path):
    result = runner.invoke(app, ["bundle", "--checkpoint", str(model_dir), "--out", str(tmp_path / "b"),
                                 "--dtype", "float8"])
    assert result.exit_code == 2 and "--dtype 'float8' is not one of float16, float32" in result.output
    result = runner.invoke(app, ["bundle", "--checkpoint", str(tmp_path / "nothing"), "--out", str(tmp_path / "b")])
    assert result.exit_code == 2 and "nothing" in result.output
    result = runner.invoke(app, ["bundle", "--checkpoint", str(model_dir), "--out", str(tmp_path / "b"),
                                 "--samples", str(tmp_path)])
    assert result.exit_code == 2 and "no images in" in result.output


def test_bundle_text2image_checks_generated_images(images, tmp_path):
    torch.manual_seed(0)
    encoder = ByteTextEncoder(dim=16)
    architecture = {"name": "text2image", "noise_dim": 8, "cond_dim": 16, "ngf": 8, "image_size": 32, "output_nc": 3}
    folder = save_text_model(TextToImageGenerator(8, 16, 8, 32, 3), encoder, tmp_path / "t2i", kind="text2image",
                             architecture=architecture, text_encoder_config={"name": "byte", **encoder.config()})
    report = bundle_model(folder, tmp_path / "bundled")
    assert report.kind == "text2image" and report.dtype == "float16" and report.card_written
    assert [c.images for c in report.checks] == [12] and report.checks[0].worst_psnr_db > 30
    assert load_text2image(report.folder).config["dtype"] == "float16"
    result = runner.invoke(app, ["bundle", "--checkpoint", str(folder), "--out", str(tmp_path / "b"),
                                 "--images", str(images)])
    assert result.exit_code == 2 and "is a text model: --images" in result.output

"""Tests for the shapes data set (render, captions, parse) and its conditioning metric; all in tmp_path."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from translate.cli import app
from translate.data.captions import read_captions
from translate.data.images import load_image
from translate.evaluation.shapes import (
    COLORS,
    POSITIONS,
    SHAPES,
    SIZES,
    TEMPLATES,
    conditioning_accuracy,
    make_caption,
    make_shapes_dataset,
    measure_shape,
    parse_prompt,
    render_shape,
)

runner = CliRunner()
ALL_ATTRS = [
    {"shape": s, "color": c, "size": z, "position": p}
    for s, c, z, p in itertools.product(SHAPES, COLORS, SIZES, POSITIONS)
]


def _render(attrs: dict[str, str], image_size: int, rng: np.random.Generator):
    return render_shape(attrs["shape"], attrs["color"], attrs["size"], attrs["position"], image_size, rng)


# --- render + measure ------------------------------------------------------------------------------


@pytest.mark.parametrize("image_size", [32, 64])
def test_round_trip_every_combination(image_size: int) -> None:
    rng = np.random.default_rng(image_size)
    wrong = []
    for attrs in ALL_ATTRS:
        measured = measure_shape(_render(attrs, image_size, rng))
        for name in ("color", "position", "size"):
            if measured[name] != attrs[name]:
                wrong.append((attrs, name, measured[name]))
    assert wrong == []


def test_measure_survives_noisy_grey_background() -> None:
    # A GAN's background is rarely pure black: lift it to ~30/255 and add per-pixel noise.
    rng = np.random.default_rng(0)
    images, prompts = [], []
    for attrs in ALL_ATTRS:
        clean = np.asarray(_render(attrs, 64, rng), dtype=np.float64)
        noisy = clean * 0.85 + 30.0 + rng.normal(0.0, 15.0, clean.shape)
        images.append(np.clip(noisy, 0, 255).astype(np.uint8))
        prompts.append(make_caption(attrs, rng))
    accuracy = conditioning_accuracy(images, prompts)
    assert accuracy["color"] >= 0.99 and accuracy["position"] >= 0.97 and accuracy["size"] >= 0.97


def test_measure_accepts_tensor_array_and_pil_alike() -> None:
    img = render_shape("triangle", "orange", "large", "bottom", 48, np.random.default_rng(1))
    array = np.asarray(img)
    tensor = torch.from_numpy(array.copy()).permute(2, 0, 1).float() / 127.5 - 1.0
    results = [measure_shape(x) for x in (img, array, tensor)]
    assert results[0]["color"] == "orange" and results[0]["position"] == "bottom"
    for other in results[1:]:
        assert other["color"] == results[0]["color"] and other["position"] == results[0]["position"]
        assert other["area"] == pytest.approx(results[0]["area"], abs=1e-3)


def test_measure_empty_image_and_bad_inputs() -> None:
    empty = measure_shape(np.zeros((32, 32, 3), dtype=np.uint8))
    assert empty["color"] is None and empty["position"] is None and empty["area"] == 0.0
    # Grey (unsaturated) content is background, whatever its brightness.
    assert measure_shape(np.full((32, 32, 3), 200, dtype=np.uint8))["color"] is None
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        measure_shape(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="uint8"):
        measure_shape(np.zeros((8, 8, 3), dtype=np.float32))
    with pytest.raises(TypeError, match="list"):
        measure_shape([[0, 0, 0]])


def test_render_rejects_bad_values() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="'pink'"):
        render_shape("circle", "pink", "small", "left", 32, rng)
    with pytest.raises(ValueError, match="'hexagon'"):
        render_shape("hexagon", "red", "small", "left", 32, rng)
    with pytest.raises(ValueError, match="at least 32"):
        render_shape("circle", "red", "small", "left", 16, rng)


def test_render_is_deterministic_given_rng_state() -> None:
    a = np.asarray(render_shape("square", "cyan", "small", "top", 32, np.random.default_rng(5)))
    b = np.asarray(render_shape("square", "cyan", "small", "top", 32, np.random.default_rng(5)))
    c = np.asarray(render_shape("square", "cyan", "small", "top", 32, np.random.default_rng(6)))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


# --- captions <-> attributes -----------------------------------------------------------------------


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_phrasing_parses_back(template: str) -> None:
    rng = np.random.default_rng(0)
    for attrs in ALL_ATTRS:
        for _ in range(2):  # two synonym draws each
            caption = make_caption(attrs, rng, template=template)
            assert parse_prompt(caption) == attrs, caption


def test_make_caption_varies_and_checks_attrs() -> None:
    rng = np.random.default_rng(0)
    attrs = ALL_ATTRS[0]
    assert len({make_caption(attrs, rng) for _ in range(50)}) >= 5
    with pytest.raises(ValueError, match="'pink'"):
        make_caption({**attrs, "color": "pink"}, rng)
    with pytest.raises(ValueError, match="position"):
        make_caption({"shape": "circle", "color": "red", "size": "small"}, rng)


def test_parse_prompt_free_phrasings() -> None:
    assert parse_prompt("Draw a HUGE violet disk, centred.") == {
        "shape": "circle", "color": "purple", "size": "large", "position": "center",
    }
    assert parse_prompt("two turquoise triangles in the upper part") == {
        "shape": "triangle", "color": "cyan", "size": None, "position": "top",
    }
    assert parse_prompt("something") == dict.fromkeys(("shape", "color", "size", "position"))
    with pytest.raises(ValueError, match="red.*blue|blue.*red"):
        parse_prompt("a red and blue square")


def test_conditioning_accuracy_counts_mismatches() -> None:
    rng = np.random.default_rng(3)
    attrs = [ALL_ATTRS[i] for i in range(0, 240, 12)]
    batch = torch.stack([
        torch.from_numpy(np.array(_render(a, 32, rng))).permute(2, 0, 1).float() / 127.5 - 1.0 for a in attrs
    ])
    right = [make_caption(a, rng) for a in attrs]
    assert conditioning_accuracy(batch, right) == {"color": 1.0, "position": 1.0, "size": 1.0, "n": len(attrs)}
    # Ask every image for a color it does not have; positions still right.
    names = list(COLORS)
    wrong = [make_caption({**a, "color": names[(names.index(a["color"]) + 1) % 8]}, rng) for a in attrs]
    result = conditioning_accuracy(batch, wrong)
    assert result["color"] == 0.0 and result["position"] == 1.0
    # Prompts that do not name the size leave it unscored.
    assert np.isnan(conditioning_accuracy(batch[:1], ["a red thing"])["size"])
    with pytest.raises(ValueError, match="2 images but 1 prompts"):
        conditioning_accuracy(batch[:2], right[:1])


# --- the data set on disk --------------------------------------------------------------------------


def test_data_make_shapes_command_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "shapes"
    args = ["data", "make-shapes", "--out", str(out), "--n", "20", "--size", "32", "--seed", "0"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "wrote 18 train and 2 val images" in result.output
    train, val = sorted((out / "train").glob("*.png")), sorted((out / "val").glob("*.png"))
    assert (len(train), len(val)) == (18, 2)
    assert load_image(train[0]).size == (32, 32)
    truth = {json.loads(line)["file"]: json.loads(line) for line in (out / "attributes.jsonl").read_text().splitlines()}
    assert len(truth) == 20
    for split in ("train", "val"):
        captions = read_captions(out / split)
        assert len(captions) == len(train if split == "train" else val)
        for path, texts in captions.items():
            expected = {k: v for k, v in truth[f"{split}/{path.name}"].items() if k != "file"}
            assert len(texts) == 3 and len(set(texts)) == 3
            assert all(parse_prompt(text) == expected for text in texts)
            measured = measure_shape(load_image(path))
            assert (measured["color"], measured["position"], measured["size"]) == (
                expected["color"], expected["position"], expected["size"],
            )
    # A second run must not overwrite the data set.
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "already exists" in result.output
    result = runner.invoke(app, ["data", "make-shapes", "--out", str(tmp_path / "small"), "--n", "4", "--size", "16"])
    assert result.exit_code == 2 and "size must be at least 32" in result.output


def test_make_shapes_dataset_deterministic(tmp_path: Path) -> None:
    make_shapes_dataset(tmp_path / "a", n=12, size=32, seed=7, val_fraction=0.25)
    make_shapes_dataset(tmp_path / "b", n=12, size=32, seed=7, val_fraction=0.25)
    make_shapes_dataset(tmp_path / "c", n=12, size=32, seed=8, val_fraction=0.25)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 12 + 2 + 1
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    assert (tmp_path / "a" / "attributes.jsonl").read_bytes() != (tmp_path / "c" / "attributes.jsonl").read_bytes()


def test_make_shapes_dataset_balanced_and_validated(tmp_path: Path) -> None:
    make_shapes_dataset(tmp_path / "d", n=240, size=32, seed=0, val_fraction=0.0, captions_per_image=1)
    rows = [json.loads(line) for line in (tmp_path / "d" / "attributes.jsonl").read_text().splitlines()]
    # One full round of the 240 combinations: each exactly once.
    assert len({(r["shape"], r["color"], r["size"], r["position"]) for r in rows}) == 240
    assert not (tmp_path / "d" / "val").exists()
    with pytest.raises(ValueError, match="val_fraction"):
        make_shapes_dataset(tmp_path / "e", n=10, size=32, seed=0, val_fraction=1.0)
    with pytest.raises(ValueError, match="n must be"):
        make_shapes_dataset(tmp_path / "e", n=0, size=32, seed=0)
    with pytest.raises(FileExistsError, match="attributes.jsonl|train"):
        make_shapes_dataset(tmp_path / "d", n=10, size=32, seed=0)

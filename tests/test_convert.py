"""Folder conversion: the pipeline, its backends and its edge cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from translate.convert import convert_folder
from translate.inference import pad_to_multiple, translate_tensor
from translate.models import GeneratorConfig, build_generator
from translate.weights import save_weights


def _make_model(tmp_path: Path, name: str = "resnet_6blocks", input_nc: int = 3, output_nc: int = 3) -> Path:
    torch.manual_seed(0)
    architecture = GeneratorConfig(name=name, ngf=8, input_nc=input_nc, output_nc=output_nc)
    return save_weights(build_generator(architecture), tmp_path / f"model_{name}_{input_nc}{output_nc}",
                        architecture, direction="AtoB")


@pytest.fixture
def model_dir(tmp_path) -> Path:
    return _make_model(tmp_path)


def _write(path: Path, size: tuple[int, int], mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(str(path)))
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    array = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    Image.fromarray(array[..., 0] if channels == 1 else array, mode).save(path)
    return path


def test_pad_to_multiple_reflects_and_reports_the_size():
    x = torch.arange(2 * 3 * 5 * 7, dtype=torch.float).reshape(2, 3, 5, 7)
    padded, size = pad_to_multiple(x, 4)
    assert padded.shape == (2, 3, 8, 8) and size == (5, 7)
    assert torch.equal(padded[..., :5, :7], x)
    assert torch.equal(padded[..., 5, :7], x[..., 3, :])  # reflection, not zeros
    small, _ = pad_to_multiple(torch.zeros(1, 3, 10, 10), 256)  # pad larger than the image
    assert small.shape == (1, 3, 256, 256)


def test_translate_tensor_keeps_any_size(model_dir):
    from translate import load

    model = load(model_dir)
    for h, w in [(32, 32), (37, 50), (9, 13)]:
        out = translate_tensor(model, torch.rand(2, 3, h, w) * 2 - 1, 4)
        assert out.shape == (2, 3, h, w)
        assert out.min() >= -1 and out.max() <= 1


def test_convert_folder_keeps_tree_sizes_and_matches_the_model(model_dir, tmp_path):
    from translate import load

    source = tmp_path / "in"
    _write(source / "a.jpg", (40, 30))
    _write(source / "sub" / "deeper" / "b.png", (33, 21))
    _write(source / "c.png", (40, 30), "RGBA")
    _write(source / "gray.png", (16, 16), "L")
    summary = convert_folder(source, tmp_path / "out", model_dir, device="cpu", batch_size=2)
    assert len(summary.converted) == 4 and not summary.failed
    outputs = {p.relative_to(tmp_path / "out").as_posix(): Image.open(p) for p in (tmp_path / "out").rglob("*.png")}
    assert set(outputs) == {"a.png", "sub/deeper/b.png", "c.png", "gray.png"}
    assert outputs["a.png"].size == (40, 30) and outputs["sub/deeper/b.png"].size == (33, 21)
    assert {name: im.mode for name, im in outputs.items()} == {
        "a.png": "RGB", "sub/deeper/b.png": "RGB", "c.png": "RGBA", "gray.png": "RGB"}  # alpha carried over
    # The saved file equals the model applied to the (padded) image, to 8-bit rounding.
    image = torch.from_numpy(np.array(Image.open(source / "sub" / "deeper" / "b.png").convert("RGB")))
    x = image.permute(2, 0, 1)[None].float() / 127.5 - 1
    expected = ((translate_tensor(load(model_dir), x, 4)[0].clamp(-1, 1) + 1) * 127.5).round()
    got = torch.from_numpy(np.array(outputs["sub/deeper/b.png"])).permute(2, 0, 1).float()
    assert (expected - got).abs().max() <= 1


def test_batching_does_not_change_results(model_dir, tmp_path):
    source = tmp_path / "in"
    for i in range(5):
        _write(source / f"{i}.png", (24, 20))
    convert_folder(source, tmp_path / "one", model_dir, device="cpu", batch_size=1)
    convert_folder(source, tmp_path / "many", model_dir, device="cpu", batch_size=4)
    for i in range(5):
        a = np.array(Image.open(tmp_path / "one" / f"{i}.png"), dtype=int)
        b = np.array(Image.open(tmp_path / "many" / f"{i}.png"), dtype=int)
        assert np.abs(a - b).max() <= 1


def test_bad_files_are_reported_and_the_rest_converted(model_dir, tmp_path):
    source = tmp_path / "in"
    _write(source / "good.png", (16, 16))
    (source / "empty.png").write_bytes(b"")
    (source / "text.jpg").write_text("hello")
    good = (source / "good.png").read_bytes()
    (source / "truncated.png").write_bytes(good[: len(good) // 2])
    summary = convert_folder(source, tmp_path / "out", model_dir, device="cpu")
    assert [p.name for p in summary.converted] == ["good.png"]
    assert sorted(p.name for p, _ in summary.failed) == ["empty.png", "text.jpg", "truncated.png"]
    assert not list((tmp_path / "out").glob(".*partial"))


def test_existing_outputs_are_skipped_unless_overwrite(model_dir, tmp_path):
    source = tmp_path / "in"
    _write(source / "x.png", (16, 16))
    convert_folder(source, tmp_path / "out", model_dir, device="cpu")
    (tmp_path / "out" / "x.png").write_bytes(b"marker")
    summary = convert_folder(source, tmp_path / "out", model_dir, device="cpu")
    assert [p.name for p in summary.skipped] == ["x.png"] and not summary.converted
    assert (tmp_path / "out" / "x.png").read_bytes() == b"marker"
    convert_folder(source, tmp_path / "out", model_dir, device="cpu", overwrite=True)
    assert Image.open(tmp_path / "out" / "x.png").size == (16, 16)


def test_colliding_stems_keep_their_extension(model_dir, tmp_path):
    source = tmp_path / "in"
    _write(source / "a.png", (16, 16))
    _write(source / "a.jpg", (16, 16))
    convert_folder(source, tmp_path / "out", model_dir, device="cpu", fmt="jpg")
    assert sorted(p.name for p in (tmp_path / "out").glob("*.jpg")) == ["a_jpg.jpg", "a_png.jpg"]


def test_unet_model_and_channel_counts(tmp_path):
    model = _make_model(tmp_path, "unet_128", input_nc=1, output_nc=3)
    source = tmp_path / "in"
    _write(source / "x.png", (130, 70))  # RGB input, converted to the model's 1 channel
    convert_folder(source, tmp_path / "out", model, device="cpu")
    out = Image.open(tmp_path / "out" / "x.png")
    assert out.size == (130, 70) and out.mode == "RGB"


@pytest.mark.parametrize("kwargs, error, needle", [
    ({"fmt": "gif"}, ValueError, "png, jpg, webp"),
    ({"batch_size": 0}, ValueError, "--batch-size"),
])
def test_bad_arguments(model_dir, tmp_path, kwargs, error, needle):
    _write(tmp_path / "in" / "x.png", (16, 16))
    with pytest.raises(error, match=needle):
        convert_folder(tmp_path / "in", tmp_path / "out", model_dir, device="cpu", **kwargs)


def test_output_inside_input_and_missing_input_are_refused(model_dir, tmp_path):
    _write(tmp_path / "in" / "x.png", (16, 16))
    with pytest.raises(ValueError, match="input folder or inside it"):
        convert_folder(tmp_path / "in", tmp_path / "in" / "out", model_dir, device="cpu")
    with pytest.raises(ValueError, match="input folder or inside it"):
        convert_folder(tmp_path / "in", tmp_path / "in", model_dir, device="cpu")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        convert_folder(tmp_path / "nope", tmp_path / "out", model_dir, device="cpu")


def test_convert_with_an_onnx_model_matches_pytorch(model_dir, tmp_path):
    from translate.export import export_onnx

    onnx_path = export_onnx(model_dir, tmp_path / "m.onnx").path
    _write(tmp_path / "in" / "x.png", (30, 22))
    convert_folder(tmp_path / "in", tmp_path / "torch", model_dir, device="cpu")
    convert_folder(tmp_path / "in", tmp_path / "onnx", onnx_path, device="cpu")
    a = np.array(Image.open(tmp_path / "torch" / "x.png"), dtype=int)
    b = np.array(Image.open(tmp_path / "onnx" / "x.png"), dtype=int)
    assert a.shape == b.shape == (22, 30, 3) and np.abs(a - b).max() <= 1

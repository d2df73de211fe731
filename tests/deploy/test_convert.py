"""Folder conversion: the pipeline, its backends and its edge cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from translate.core.errors import InvalidChoiceError, InvalidValueError
from translate.deploy.convert import convert_folder
from translate.deploy.inference import pad_to_multiple, translate_tensor
from translate.formats import locator
from translate.formats.weights import save_weights
from translate.models import GeneratorConfig, build_generator

# The auto rules pick different paths on different CPUs: CI runs these with bf16 reported both ways.
pytestmark = [pytest.mark.selection, pytest.mark.usefixtures("single_thread")]


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
    summary = convert_folder(source, tmp_path / "out", model_dir, precision="fp32", device="cpu", batch_size=2)
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
    convert_folder(source, tmp_path / "one", model_dir, precision="fp32", device="cpu", batch_size=1)
    convert_folder(source, tmp_path / "many", model_dir, precision="fp32", device="cpu", batch_size=4)
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
    summary = convert_folder(source, tmp_path / "out", model_dir, precision="fp32", device="cpu")
    assert [p.name for p in summary.converted] == ["good.png"]
    assert sorted(p.name for p, _ in summary.failed) == ["empty.png", "text.jpg", "truncated.png"]
    assert not list((tmp_path / "out").glob(".*partial"))


def test_existing_outputs_are_skipped_unless_overwrite(model_dir, tmp_path):
    source = tmp_path / "in"
    _write(source / "x.png", (16, 16))
    convert_folder(source, tmp_path / "out", model_dir, precision="fp32", device="cpu")
    (tmp_path / "out" / "x.png").write_bytes(b"marker")
    summary = convert_folder(source, tmp_path / "out", model_dir, precision="fp32", device="cpu")
    assert [p.name for p in summary.skipped] == ["x.png"] and not summary.converted
    assert (tmp_path / "out" / "x.png").read_bytes() == b"marker"
    convert_folder(source, tmp_path / "out", model_dir, precision="fp32", device="cpu", overwrite=True)
    assert Image.open(tmp_path / "out" / "x.png").size == (16, 16)


def test_colliding_stems_keep_their_extension(model_dir, tmp_path):
    source = tmp_path / "in"
    _write(source / "a.png", (16, 16))
    _write(source / "a.jpg", (16, 16))
    convert_folder(source, tmp_path / "out", model_dir, precision="fp32", device="cpu", fmt="jpg")
    assert sorted(p.name for p in (tmp_path / "out").glob("*.jpg")) == ["a_jpg.jpg", "a_png.jpg"]


def test_unet_model_and_channel_counts(tmp_path):
    model = _make_model(tmp_path, "unet_128", input_nc=1, output_nc=3)
    source = tmp_path / "in"
    _write(source / "x.png", (130, 70))  # RGB input, converted to the model's 1 channel
    convert_folder(source, tmp_path / "out", model, precision="fp32", device="cpu")
    out = Image.open(tmp_path / "out" / "x.png")
    assert out.size == (130, 70) and out.mode == "RGB"


@pytest.mark.parametrize("kwargs, error, needle", [
    ({"fmt": "gif"}, ValueError, "png, jpg, webp"),
    ({"batch_size": 0}, ValueError, "batch_size=0: expected a positive integer"),
])
def test_bad_arguments(model_dir, tmp_path, kwargs, error, needle):
    _write(tmp_path / "in" / "x.png", (16, 16))
    with pytest.raises(error, match=needle):
        convert_folder(tmp_path / "in", tmp_path / "out", model_dir, precision="fp32", device="cpu", **kwargs)


@pytest.mark.parametrize("kwargs, error, parameter, message", [
    ({"precision": "int9"}, InvalidChoiceError, "precision", "precision='int9' is not one of auto, fp32, fp16, bf16, int8"),
    ({"backend": "tf"}, InvalidChoiceError, "backend", "backend='tf' is not one of auto, onnxruntime, torch"),
    ({"device": "tpu"}, InvalidChoiceError, "device", "device='tpu' is not one of auto, cpu, cuda, mps"),
    ({"direction": "AtoC"}, InvalidChoiceError, "direction", "direction='AtoC' is not one of AtoB, BtoA"),
    ({"png_compression": 10}, InvalidValueError, "png_compression", "png_compression=10: expected an integer in 0..9"),
    ({"resize": 0}, InvalidValueError, "resize", "resize=0: expected N (shorter side, aspect kept)"),
    ({"shard": (2, 2)}, InvalidValueError, "shard", "shard=(2, 2): expected I/N with 0 <= I < N"),
    ({"tile": 0}, InvalidValueError, "tile", "tile=0: expected a positive integer or None"),
])
def test_a_bad_option_is_refused_in_python_terms_before_any_work(tmp_path, kwargs, error, parameter, message):
    """Checked from the option's declaration before the model or the folders are looked at."""
    with pytest.raises(error) as caught:
        convert_folder(tmp_path / "missing", tmp_path / "out", "no_such_model", **kwargs)
    assert caught.value.parameter == parameter and str(caught.value).startswith(message)
    assert not (tmp_path / "out").exists()


def test_an_unknown_keyword_is_a_type_error(tmp_path):
    with pytest.raises(TypeError, match="colour"):
        convert_folder(tmp_path / "missing", tmp_path / "out", "no_such_model", colour="red")


def test_output_inside_input_and_missing_input_are_refused(model_dir, tmp_path):
    _write(tmp_path / "in" / "x.png", (16, 16))
    with pytest.raises(ValueError, match="input folder or inside it"):
        convert_folder(tmp_path / "in", tmp_path / "in" / "out", model_dir, precision="fp32", device="cpu")
    with pytest.raises(ValueError, match="input folder or inside it"):
        convert_folder(tmp_path / "in", tmp_path / "in", model_dir, precision="fp32", device="cpu")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        convert_folder(tmp_path / "nope", tmp_path / "out", model_dir, precision="fp32", device="cpu")


def test_convert_with_an_onnx_model_matches_pytorch(model_dir, tmp_path):
    from translate.deploy.export import export_onnx

    onnx_path = export_onnx(model_dir, tmp_path / "m.onnx").path
    _write(tmp_path / "in" / "x.png", (30, 22))
    convert_folder(tmp_path / "in", tmp_path / "torch", model_dir, precision="fp32", device="cpu")
    convert_folder(tmp_path / "in", tmp_path / "onnx", onnx_path, precision="fp32", device="cpu")
    a = np.array(Image.open(tmp_path / "torch" / "x.png"), dtype=int)
    b = np.array(Image.open(tmp_path / "onnx" / "x.png"), dtype=int)
    assert a.shape == b.shape == (22, 30, 3) and np.abs(a - b).max() <= 1


# --- pipeline edge cases -------------------------------------------------------------------------


def _torch(**kwargs):
    return {"backend": "torch", "precision": "fp32", "device": "cpu", **kwargs}


def test_too_many_pixels_is_reported_and_the_rest_converted(model_dir, tmp_path):
    _write(tmp_path / "in" / "small.png", (16, 16))
    _write(tmp_path / "in" / "big.png", (64, 48))
    summary = convert_folder(tmp_path / "in", tmp_path / "out", model_dir, max_pixels=1000, **_torch())
    assert [p.name for p in summary.converted] == ["small.png"]
    [(path, reason)] = summary.failed
    assert path.name == "big.png" and "3072 pixels" in reason and "max_pixels=1000" in reason


def test_alpha_is_carried_over_and_dropped_for_jpg(model_dir, tmp_path):
    rgba = np.random.default_rng(0).integers(0, 256, (20, 24, 4), dtype=np.uint8)
    (tmp_path / "in").mkdir()
    Image.fromarray(rgba, "RGBA").save(tmp_path / "in" / "x.png")
    convert_folder(tmp_path / "in", tmp_path / "png", model_dir, **_torch())
    out = Image.open(tmp_path / "png" / "x.png")
    assert out.mode == "RGBA" and np.array_equal(np.array(out)[..., 3], rgba[..., 3])
    convert_folder(tmp_path / "in", tmp_path / "jpg", model_dir, fmt="jpg", **_torch())
    assert Image.open(tmp_path / "jpg" / "x.jpg").mode == "RGB"


def test_exif_orientation_is_applied(model_dir, tmp_path):
    (tmp_path / "in").mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    Image.new("RGB", (40, 24), (200, 10, 10)).save(tmp_path / "in" / "r.jpg", exif=exif)
    convert_folder(tmp_path / "in", tmp_path / "out", model_dir, **_torch())
    assert Image.open(tmp_path / "out" / "r.png").size == (24, 40)


@pytest.mark.parametrize("resize, size", [("16", (24, 16)), ("20x12", (20, 12)), (16, (24, 16))])
def test_resize(model_dir, tmp_path, resize, size):
    _write(tmp_path / "in" / "x.png", (48, 32))
    convert_folder(tmp_path / "in", tmp_path / "out", model_dir, resize=resize, **_torch())
    assert Image.open(tmp_path / "out" / "x.png").size == size


def test_suffix_names_the_outputs_and_a_rerun_finds_them(model_dir, tmp_path):
    _write(tmp_path / "in" / "a.png", (16, 16))
    _write(tmp_path / "in" / "a.jpg", (16, 16))
    _write(tmp_path / "in" / "sub" / "b.png", (16, 16))
    summary = convert_folder(tmp_path / "in", tmp_path / "out", model_dir, suffix="_map", **_torch())
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png"))
    assert written == ["a_jpg_map.png", "a_png_map.png", "sub/b_map.png"] and len(summary.converted) == 3
    again = convert_folder(tmp_path / "in", tmp_path / "out", model_dir, suffix="_map", **_torch())
    assert len(again.skipped) == 3 and not again.converted
    with pytest.raises(InvalidValueError, match="suffix='x/y': expected text without /"):
        convert_folder(tmp_path / "in", tmp_path / "out", model_dir, suffix="x/y", **_torch())


def test_tiled_conversion_keeps_the_size(model_dir, tmp_path):
    _write(tmp_path / "in" / "x.png", (70, 50))
    summary = convert_folder(tmp_path / "in", tmp_path / "out", model_dir, tile=32, overlap=8, **_torch())
    assert not summary.failed and Image.open(tmp_path / "out" / "x.png").size == (70, 50)


def test_shards_split_the_folder_deterministically(model_dir, tmp_path, monkeypatch):
    for i in range(12):
        _write(tmp_path / "in" / f"{i:02d}.png", (16, 16))
    seen: list[set[str]] = []
    for index in range(3):
        summary = convert_folder(tmp_path / "in", tmp_path / "out", model_dir, shard=f"{index}/3", **_torch())
        seen.append({p.name for p in summary.converted})
        assert (tmp_path / "out" / f"convert_report.shard{index}of3.json").is_file()
    assert set().union(*seen) == {f"{i:02d}.png" for i in range(12)}
    assert sum(len(s) for s in seen) == 12 and all(seen)  # disjoint, none empty
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "1")
    summary = convert_folder(tmp_path / "in", tmp_path / "env", model_dir, **_torch())
    assert {p.name for p in summary.converted} == seen[1]


@pytest.mark.parametrize("shard", ["3/3", "1", "a/b", "-1/2"])
def test_bad_shard_is_refused(model_dir, tmp_path, shard):
    _write(tmp_path / "in" / "x.png", (16, 16))
    with pytest.raises(ValueError, match="shard="):
        convert_folder(tmp_path / "in", tmp_path / "out", model_dir, shard=shard, **_torch())


@pytest.mark.parametrize("kwargs, needle", [
    ({"tile": 30, "overlap": 2}, "tile=30: expected a positive multiple of the model's size multiple 4; the nearest is 28"),
    ({"tile": 32, "overlap": 16}, "overlap=16: expected an integer in 0..15 for tile=32; the nearest is 15"),
    ({"resize": "big"}, "resize='big'"),
    ({"quality": 0}, "quality=0"),
    ({"workers": 0}, "workers=0"),
    ({"max_pixels": 0}, "max_pixels=0"),
    ({"provider": "warp"}, "provider='warp' is not one of"),
])
def test_bad_pipeline_arguments(model_dir, tmp_path, kwargs, needle):
    _write(tmp_path / "in" / "x.png", (16, 16))
    with pytest.raises(ValueError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        convert_folder(tmp_path / "in", tmp_path / "out", model_dir, **_torch(**kwargs))


def test_report_lists_failures(model_dir, tmp_path):
    import json

    _write(tmp_path / "in" / "good.png", (16, 16))
    (tmp_path / "in" / "bad.png").write_bytes(b"\x89PNG not really")
    summary = convert_folder(tmp_path / "in", tmp_path / "out", model_dir, **_torch())
    report = json.loads(summary.report.read_text())
    assert report["converted"] == 1 and report["failed"] == 1
    assert report["failures"][0]["file"].endswith("bad.png") and report["failures"][0]["reason"]
    assert report["backend"] == "torch fp32 on cpu"


def test_stale_partial_files_are_removed_and_the_job_finished(model_dir, tmp_path):
    _write(tmp_path / "in" / "a.png", (16, 16))
    (tmp_path / "out").mkdir()
    stale = tmp_path / "out" / ".a.png.translate-partial"
    stale.write_bytes(b"half a png")
    summary = convert_folder(tmp_path / "in", tmp_path / "out", model_dir, **_torch())
    assert not stale.exists() and [p.name for p in summary.converted] == ["a.png"]


def test_batcher_holds_a_bounded_number_of_images():
    from translate.deploy.convert import _Batcher, _Decoded

    batcher, emitted = _Batcher(batch_size=4, hold=8), []
    for i in range(100):  # every image a new size: the worst case for grouping
        item = _Decoded(Path(f"{i}.png"), torch.zeros(3, 8, 8 + i))
        emitted.extend(batcher.add(item))
        assert batcher.held <= 8
    emitted.extend(batcher.rest())
    assert sum(len(b) for b in emitted) == 100
    same = _Batcher(batch_size=4, hold=16)
    batches = [b for i in range(10) for b in same.add(_Decoded(Path(f"{i}"), torch.zeros(3, 8, 8)))]
    assert [len(b) for b in batches] == [4, 4] and [len(b) for b in same.rest()] == [2]


def test_progress_reports_images_per_second(model_dir, tmp_path):
    for i in range(3):
        _write(tmp_path / "in" / f"{i}.png", (16, 16))
    events = []
    convert_folder(tmp_path / "in", tmp_path / "out", model_dir, on_progress=events.append, **_torch())
    assert [e.done for e in events] == [1, 2, 3] and events[-1].total == 3
    assert all(e.images_per_s > 0 for e in events)


def test_onnxruntime_is_the_default_backend_and_matches_torch(model_dir, tmp_path):
    _write(tmp_path / "in" / "x.png", (30, 22))
    torch_run = convert_folder(tmp_path / "in", tmp_path / "torch", model_dir, **_torch())
    default = convert_folder(tmp_path / "in", tmp_path / "ort", model_dir, precision="fp32", device="cpu")
    assert default.backend_description == "onnxruntime fp32 on CPUExecutionProvider"
    a = np.array(Image.open(tmp_path / "torch" / "x.png"), dtype=int)
    b = np.array(Image.open(tmp_path / "ort" / "x.png"), dtype=int)
    assert torch_run.backend_description == "torch fp32 on cpu" and np.abs(a - b).max() <= 1


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_a_conversion_locates_its_model_once(tmp_path, monkeypatch, backend):
    # Fresh weights, so that the ONNX Runtime conversion also exports (no cached copy to reuse).
    torch.manual_seed(len(backend))
    architecture = GeneratorConfig(name="resnet_6blocks", ngf=8)
    model = save_weights(build_generator(architecture), tmp_path / "model", architecture, direction="AtoB")
    _write(tmp_path / "in" / "x.png", (16, 16))
    resolved = []
    resolve_path = locator.resolve_path
    monkeypatch.setattr(locator, "resolve_path", lambda name: resolved.append(name) or resolve_path(name))
    summary = convert_folder(tmp_path / "in", tmp_path / "out", model, backend=backend, precision="fp32",
                             device="cpu")
    assert summary.backend_description.startswith(backend) and len(summary.converted) == 1
    assert resolved == [model]


def test_killed_run_leaves_no_partial_file_and_a_rerun_finishes(model_dir, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from typer.testing import CliRunner

    from translate.cli import app

    source = tmp_path / "in"
    for i in range(40):
        _write(source / f"{i:02d}.png", (192, 160))
    out = tmp_path / "out"
    args = ["convert", str(source), str(out), "--model", str(model_dir), "--backend", "torch", "--precision", "fp32",
            "--device", "cpu", "--batch-size", "1", "--workers", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "translate", *args], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None and len(list(out.glob("*.png"))) < 3:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = len(list(out.glob("*.png")))
    assert done_before < 40, "the run finished before it could be killed; make the job longer"
    for path in out.glob("*.png"):
        Image.open(path).load()  # every finished output is complete
    rerun = CliRunner().invoke(app, args)  # in this process: only the killed run needs one of its own
    assert rerun.exit_code == 0, rerun.output
    outputs = sorted(out.glob("*.png"))
    assert len(outputs) == 40
    for path in outputs:
        Image.open(path).load()
    assert not list(out.glob(".*")), "a temporary file remains"
    assert f"skipped {done_before}" in rerun.output


def test_decoding_never_runs_far_ahead_of_writing(model_dir, tmp_path, monkeypatch):
    """Memory stays flat: decoded-but-unwritten images are bounded, whatever the folder's size."""
    import threading

    import translate.deploy.convert as convert_module

    for i in range(60):
        _write(tmp_path / "in" / f"{i:02d}.png", (16, 16))
    lock, state = threading.Lock(), {"decoded": 0, "written": 0, "worst": 0}
    real_decode, real_encode = convert_module._decode, convert_module._encode

    def decode(*args, **kwargs):
        with lock:
            state["decoded"] += 1
            state["worst"] = max(state["worst"], state["decoded"] - state["written"])
        return real_decode(*args, **kwargs)

    def encode(*args, **kwargs):
        real_encode(*args, **kwargs)
        with lock:
            state["written"] += 1

    monkeypatch.setattr(convert_module, "_decode", decode)
    monkeypatch.setattr(convert_module, "_encode", encode)
    convert_folder(tmp_path / "in", tmp_path / "out", model_dir, batch_size=2, workers=2, **_torch())
    assert state["written"] == 60
    # prefetch (2 x max(workers, batch)) + images held for grouping (4 x batch) + write slots (prefetch)
    assert state["worst"] <= 4 + 8 + 4 + 2, state

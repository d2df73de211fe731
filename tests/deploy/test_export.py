"""ONNX export: parity with PyTorch, dynamic axes, uint8 io, float16, metadata, errors, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from typer.testing import CliRunner

from translate.cli import app
from translate.deploy import export as export_module
from translate.deploy.export import (
    PARITY_TOLERANCES,
    ExportParityError,
    export_onnx,
    read_onnx_metadata,
    sha256_file,
)
from translate.formats.weights import load, save_weights
from translate.models import GeneratorConfig, build_generator

pytestmark = pytest.mark.usefixtures("single_thread")
runner = CliRunner()


def _weights(root: Path, name: str = "resnet_6blocks", input_nc: int = 3, output_nc: int = 3,
             direction: str = "AtoB", seed: int = 0) -> Path:
    torch.manual_seed(seed)
    cfg = GeneratorConfig(name=name, input_nc=input_nc, output_nc=output_nc, ngf=8)
    return save_weights(build_generator(cfg), root, cfg, task="pix2pix", direction=direction)


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.fixture(scope="module")
def resnet(tmp_path_factory) -> Path:
    return _weights(tmp_path_factory.mktemp("resnet") / "w")


@pytest.fixture(scope="module")
def resnet_onnx(resnet, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "g.onnx"
    return export_onnx(resnet, out)


@pytest.mark.parametrize("input_nc", [3, 1])
def test_float32_parity_two_sizes_two_batches(tmp_path, input_nc):
    weights = _weights(tmp_path / "w", input_nc=input_nc)
    report = export_onnx(weights, tmp_path / "g.onnx", parity_sizes=[(32, 32), (48, 64)])
    assert {(c.batch, c.height, c.width) for c in report.cases} == {
        (1, 32, 32), (2, 32, 32), (1, 48, 64), (2, 48, 64)}
    assert all(c.max_abs_error <= 1e-4 for c in report.cases), report.cases
    assert report.path.is_file() and report.precision == "float32" and report.opset == 20
    graph_input = onnx.load(str(report.path)).graph.input[0]
    assert graph_input.type.tensor_type.shape.dim[1].dim_value == input_nc


def test_dynamic_axes_run_at_a_size_not_used_in_export(resnet, resnet_onnx):
    x = torch.rand(3, 3, 40, 56) * 2 - 1  # batch 3, 40x56: neither used at export nor in parity
    got = _run(resnet_onnx.path, x.numpy())
    with torch.inference_mode():
        expected = load(resnet)(x).numpy()
    assert got.shape == (3, 3, 40, 56)
    assert np.abs(got - expected).max() <= 1e-4


def test_unet_128_parity_at_128(tmp_path):
    weights = _weights(tmp_path / "w", name="unet_128")
    report = export_onnx(weights, tmp_path / "u.onnx", parity_sizes=[(128, 128)])
    assert len(report.cases) == 2 and report.max_abs_error <= 1e-4
    assert read_onnx_metadata(report.path)["size_multiple"] == 128


def test_uint8_io_matches_float_path_within_one_level(resnet, resnet_onnx, tmp_path):
    report = export_onnx(resnet, tmp_path / "u8.onnx", io="uint8")
    assert report.max_abs_error <= 1.0
    image = np.random.default_rng(0).integers(0, 256, (2, 36, 44, 3), dtype=np.uint8)
    got = _run(report.path, image)
    assert got.dtype == np.uint8 and got.shape == (2, 36, 44, 3)
    x = (image.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0)
    y = _run(resnet_onnx.path, x)
    expected = np.round((np.clip(y, -1, 1) + 1) * 127.5).transpose(0, 2, 3, 1)
    assert np.abs(got.astype(np.int32) - expected.astype(np.int32)).max() <= 1


def test_half_export_runs_and_is_close(resnet, tmp_path):
    report = export_onnx(resnet, tmp_path / "h.onnx", half=True)
    assert report.precision == "float16" and report.tolerance == PARITY_TOLERANCES[("float16", "float")]
    assert 0 < report.max_abs_error <= 2e-2
    proto = onnx.load(str(report.path))
    conv_weights = [t for t in proto.graph.initializer if len(t.dims) == 4]
    assert conv_weights and all(t.data_type == onnx.TensorProto.FLOAT16 for t in conv_weights)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # io stays float32
    x = torch.rand(1, 3, 40, 40) * 2 - 1
    with torch.inference_mode():
        expected = load(resnet)(x).numpy()
    assert np.abs(_run(report.path, x.numpy()) - expected).max() <= 2e-2


def test_metadata_round_trip(resnet, resnet_onnx):
    meta = read_onnx_metadata(resnet_onnx.path)
    assert meta["architecture"]["name"] == "resnet_6blocks" and meta["architecture"]["ngf"] == 8
    assert meta["direction"] == "AtoB" and meta["domains"] == {"source": "A", "target": "B"}
    assert meta["input_channels"] == 3 and meta["output_channels"] == 3 and meta["size_multiple"] == 4
    assert meta["normalization"]["range"] == [-1.0, 1.0]
    assert meta["source_sha256"] == sha256_file(resnet / "model.safetensors")
    assert meta["io"] == "float" and meta["precision"] == "float32" and meta["opset"] == 20
    assert meta["parity_max_abs_error"] == pytest.approx(resnet_onnx.max_abs_error, rel=1e-2)
    assert len(meta["parity_cases"]) == 4 and meta["toolkit_version"]


def test_direction_picks_the_generator_of_a_run_dir(tmp_path):
    run = tmp_path / "run"
    _weights(run / "weights" / "AtoB", input_nc=3, output_nc=1, direction="AtoB")
    _weights(run / "weights" / "BtoA", input_nc=1, output_nc=3, direction="BtoA", seed=1)
    report = export_onnx(run, tmp_path / "b2a.onnx", direction="BtoA", parity_sizes=[(32, 32)])
    meta = read_onnx_metadata(report.path)
    assert (meta["direction"], meta["input_channels"], meta["output_channels"]) == ("BtoA", 1, 3)
    assert meta["source_sha256"] == sha256_file(run / "weights" / "BtoA" / "model.safetensors")


@pytest.mark.parametrize("kwargs, error, needle", [
    ({"io": "int8"}, ValueError, "uint8"),
    ({"direction": "sideways"}, ValueError, "sideways"),
    ({"opset": 99}, ValueError, "99"),
    ({"parity_sizes": [(30, 32)]}, ValueError, "multiple"),
])
def test_bad_options_raise_with_clear_messages(resnet, tmp_path, kwargs, error, needle):
    with pytest.raises(error, match=needle):
        export_onnx(resnet, tmp_path / "x.onnx", **kwargs)
    assert not (tmp_path / "x.onnx").exists()


def test_missing_model_and_bad_onnx_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model"):
        export_onnx(tmp_path / "nowhere", tmp_path / "x.onnx")
    with pytest.raises(FileNotFoundError, match="no ONNX file"):
        read_onnx_metadata(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\x00not a model" * 10)
    with pytest.raises(ValueError, match="not a readable ONNX model"):
        read_onnx_metadata(tmp_path / "junk.onnx")


def test_parity_failure_raises_and_writes_nothing(resnet, tmp_path, monkeypatch):
    monkeypatch.setitem(export_module.PARITY_TOLERANCES, ("float32", "float"), 0.0)
    with pytest.raises(ExportParityError, match="bound 0") as info:
        export_onnx(resnet, tmp_path / "x.onnx", parity_sizes=[(32, 32)])
    assert len(info.value.report.cases) == 2 and info.value.report.max_abs_error > 0
    assert list(tmp_path.iterdir()) == []  # neither the output nor a temporary file remains


def test_cli_export_and_info(resnet, tmp_path):
    out = tmp_path / "g.onnx"
    result = runner.invoke(app, ["export", str(resnet), str(out), "--io", "uint8", "--opset", "18"])
    assert result.exit_code == 0, result.output
    assert result.output.count("max abs error") == 5 and out.is_file()
    assert read_onnx_metadata(out)["opset"] == 18
    result = runner.invoke(app, ["info", str(out)])
    assert result.exit_code == 0, result.output
    assert "source_sha256" in result.output and "NHWC" in result.output
    result = runner.invoke(app, ["info", str(resnet)])
    assert result.exit_code == 0 and "resnet_6blocks" in result.output and "size_multiple" in result.output


@pytest.mark.parametrize("args, needle", [
    (["--io", "int8"], "int8"),
    (["--direction", "sideways"], "sideways"),
])
def test_cli_rejects_bad_options(resnet, tmp_path, args, needle):
    result = runner.invoke(app, ["export", str(resnet), str(tmp_path / "x.onnx"), *args])
    assert result.exit_code == 2 and needle in result.output


def test_cli_exits_non_zero_on_parity_failure(resnet, tmp_path, monkeypatch):
    monkeypatch.setitem(export_module.PARITY_TOLERANCES, ("float32", "float"), 0.0)
    result = runner.invoke(app, ["export", str(resnet), str(tmp_path / "x.onnx")])
    assert result.exit_code == 1
    assert "max abs error" in result.output and "was not written" in result.output

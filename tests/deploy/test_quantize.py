"""int8 on ONNX Runtime: quantised on calibration images, checked against float32, refused below the bound."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from translate.core.device import Capabilities
from translate.core.errors import InvalidCombinationError
from translate.deploy import quantize
from translate.deploy.backends import make_backend
from translate.deploy.convert import convert_folder

# The auto rules pick different paths on different CPUs: CI runs these with bf16 reported both ways.
pytestmark = pytest.mark.selection

VNNI_CPU = Capabilities(cpu_vnni=True)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("calibration")
    rng = np.random.default_rng(0)
    ramp = np.add.outer(np.arange(64), np.arange(80)).astype(np.float32)
    paths = []
    for i in range(6):
        array = np.stack([ramp * (1 + i) % 256, ramp * 0.5, 255 - ramp], -1)
        array = (array + rng.normal(0, 10, array.shape)).clip(0, 255).astype(np.uint8)
        paths.append(folder / f"{i}.png")
        Image.fromarray(array).save(paths[-1])
    return paths


def test_calibration_arrays_are_center_crops_in_range(images):
    arrays = quantize.calibration_arrays(images[:2], 3, size=32)
    assert [a.shape for a in arrays] == [(1, 3, 32, 32)] * 2
    assert all(a.dtype == np.float32 and -1 <= a.min() and a.max() <= 1 for a in arrays)


def test_int8_copy_is_checked_cached_and_close_to_float32(model_dir, images, monkeypatch):
    monkeypatch.setattr(quantize, "MIN_PSNR_DB", 0.0)  # a random tiny model: check the mechanics
    runner = make_backend(model_dir, backend="onnxruntime", precision="int8", device="cpu", calibration=images)
    assert runner.precision == "int8" and "dB vs fp32" in runner.describe()
    path = runner.path
    mtime = path.stat().st_mtime_ns
    again = make_backend(model_dir, backend="onnxruntime", precision="int8", device="cpu", calibration=images)
    assert again.path == path and path.stat().st_mtime_ns == mtime  # quantised once
    assert again.describe() == runner.describe() and path.with_suffix(".psnr.json").is_file()
    reference = make_backend(model_dir, backend="torch", precision="fp32", device="cpu")
    x = torch.from_numpy(quantize.calibration_arrays(images[:1], 3, size=64)[0])
    assert quantize.psnr(runner(x).numpy(), reference(x).numpy()) > 20


def test_int8_below_the_bound_is_refused_or_falls_back(model_dir, images, monkeypatch):
    monkeypatch.setattr(quantize, "MIN_PSNR_DB", 500.0)  # nothing passes
    with pytest.raises(quantize.Int8AccuracyError, match="need >= 500 dB"):
        make_backend(model_dir, backend="onnxruntime", precision="int8", device="cpu", calibration=images)
    runner = make_backend(model_dir, precision="auto", device="cpu", calibration=images, capabilities=VNNI_CPU)
    assert runner.precision == "fp32" and "int8 refused" in runner.describe()


def test_auto_picks_int8_only_with_vnni_and_calibration(model_dir, images, monkeypatch):
    monkeypatch.setattr(quantize, "MIN_PSNR_DB", 0.0)
    assert make_backend(model_dir, device="cpu", calibration=images, capabilities=VNNI_CPU).precision == "int8"
    assert make_backend(model_dir, device="cpu", capabilities=VNNI_CPU).precision == "fp32"  # nothing to calibrate on
    assert make_backend(model_dir, device="cpu", calibration=images, capabilities=Capabilities()).precision == "fp32"
    # Native bf16 wins where PyTorch may run the model; a forced ONNX Runtime takes int8.
    bf16 = Capabilities(cpu_native_bf16=True, cpu_vnni=True)
    assert make_backend(model_dir, device="cpu", calibration=images, capabilities=bf16).precision == "bf16"
    assert make_backend(model_dir, backend="onnxruntime", device="cpu", calibration=images,
                        capabilities=bf16).precision == "int8"


@pytest.mark.parametrize("kwargs, needle, parameters", [
    ({"backend": "torch"}, 'precision="int8" runs on ONNX Runtime only', ("precision", "backend")),
    ({}, 'precision="int8" needs calibration images: pass calibration=[paths]', ("precision", "calibration")),
])
def test_int8_refusals(model_dir, kwargs, needle, parameters):
    with pytest.raises(InvalidCombinationError) as caught:
        make_backend(model_dir, precision="int8", device="cpu", **kwargs)
    assert needle in str(caught.value) and caught.value.parameters == parameters
    assert "--" not in str(caught.value)


def test_convert_reports_the_int8_path(model_dir, images, tmp_path, monkeypatch):
    monkeypatch.setattr(quantize, "MIN_PSNR_DB", 0.0)
    summary = convert_folder(images[0].parent, tmp_path / "out", model_dir, precision="int8", device="cpu")
    assert summary.precision == "int8" and len(summary.converted) == 6
    assert "onnxruntime int8 on CPUExecutionProvider" in summary.backend_description


@pytest.mark.slow
def test_the_bundled_model_keeps_35_db_in_int8():
    from translate.core.paths import BUNDLED_DIR

    samples = sorted((BUNDLED_DIR / "maps_aerial2map" / "samples").iterdir())
    runner = make_backend("maps_aerial2map", backend="onnxruntime", precision="int8", device="cpu",
                          calibration=samples)
    assert runner.precision == "int8"  # the check inside refused nothing under 35 dB

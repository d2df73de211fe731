"""The bottom layer: paths, device capabilities, file helpers, image conversions, typed errors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from translate.core import device, files, images, paths, torch_files
from translate.core.errors import (
    InvalidChoiceError,
    InvalidCombinationError,
    InvalidValueError,
    ParameterError,
    check_choice,
)


def test_paths_follow_their_environment_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRANSLATE_MODELS", str(tmp_path / "m"))
    monkeypatch.setenv("TRANSLATE_CACHE", str(tmp_path / "c"))
    assert paths.models_dir() == tmp_path / "m" and paths.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("TRANSLATE_MODELS")
    monkeypatch.delenv("TRANSLATE_CACHE")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert paths.models_dir() == tmp_path / "data" / "translate" / "models"
    assert paths.cache_dir() == tmp_path / "cache" / "translate"
    assert (paths.bundled_dir() / "maps_aerial2map" / "config.json").is_file()


@pytest.mark.parametrize("value", ["1", "0"])
def test_cpu_features_can_be_reported_either_way(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRANSLATE_CPU_BF16", value)
    monkeypatch.setenv("TRANSLATE_CPU_VNNI", value)
    expected = value == "1"
    assert device.cpu_has_native_bf16() is expected and device.cpu_has_vnni() is expected
    caps = device.detect_capabilities()
    assert (caps.cpu_native_bf16, caps.cpu_vnni) == (expected, expected)


def test_a_bad_override_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRANSLATE_CPU_BF16", "maybe")
    with pytest.raises(ValueError, match="TRANSLATE_CPU_BF16='maybe' must be 0 or 1"):
        device.cpu_has_native_bf16()


def test_pick_device() -> None:
    assert device.pick_device("cpu") == torch.device("cpu")
    with pytest.raises(InvalidChoiceError, match="device='tpu' is not one of auto, cpu, cuda, mps"):
        device.pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device='cuda'.*no CUDA device"):
            device.pick_device("cuda")


def test_atomic_write_replaces_whole_files_or_nothing(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    files.atomic_write_text(target, "first")
    files.atomic_write_text(target, "second")
    assert target.read_text() == "second"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask, "the permissions of a plain open(), not mkstemp's 0600"

    def broken(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        files.atomic_write(target, broken)
    assert target.read_text() == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"], "no temporary file is left behind"


def test_sha256_file(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_bytes(b"abc")
    assert files.sha256_file(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_torch_load_safely_refuses_pickled_objects(tmp_path: Path) -> None:
    good = tmp_path / "good.pt"
    torch.save({"w": torch.ones(2)}, good)
    assert torch.equal(torch_files.torch_load_safely(good, "a test file")["w"], torch.ones(2))
    evil = tmp_path / "evil.pt"
    torch.save({"p": Path("x")}, evil)  # an arbitrary class: unpickling it would run its code
    with pytest.raises(ValueError, match="weights_only=True.*expected a test file"):
        torch_files.torch_load_safely(evil, "a test file")
    (tmp_path / "junk.pt").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="junk.pt"):
        torch_files.torch_load_safely(tmp_path / "junk.pt", "a test file")


def test_uint8_round_trip_is_exact() -> None:
    pixels = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    x = images.from_uint8(pixels)
    assert x.dtype == torch.float32 and x.min() == -1 and x.max() == 1
    assert torch.equal(images.to_uint8(x), pixels)
    assert torch.equal(images.to_uint8(torch.tensor([-3.0, 3.0])), torch.tensor([0, 255], dtype=torch.uint8))


def test_array_and_pil_conversions_keep_layout_and_values() -> None:
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, (2, 5, 7, 3), dtype=np.uint8)
    x = images.array_to_tensor(array)
    assert x.shape == (2, 3, 5, 7)
    assert np.array_equal(images.tensor_to_array(x), array)
    pil = images.tensor_to_pil(x[0])
    assert pil.size == (7, 5) and pil.mode == "RGB"
    assert torch.equal(images.pil_to_tensor(pil), x[:1])
    gray = images.tensor_to_pil(x[0, :1])
    assert gray.mode == "L" and images.pil_to_tensor(gray).shape == (1, 1, 5, 7)
    with pytest.raises(ValueError, match=r"C = 1, 3 or 4.*\(2, 5, 7\)"):
        images.tensor_to_pil(x[0, :2])


def test_errors_name_the_python_parameter_and_render_as_flags() -> None:
    with pytest.raises(InvalidChoiceError) as caught:
        check_choice("precision", "int9", ("auto", "fp32"), "fp32 is exact")
    error = caught.value
    assert isinstance(error, ParameterError) and isinstance(error, ValueError)
    assert (error.parameter, error.value, error.allowed) == ("precision", "int9", ("auto", "fp32"))
    assert str(error) == "precision='int9' is not one of auto, fp32; fp32 is exact"
    assert error.for_flag("--precision") == "--precision 'int9' is not one of auto, fp32; fp32 is exact"
    check_choice("precision", "fp32", ("auto", "fp32"))  # no error
    value_error = InvalidValueError("crop_size", -1, "a positive integer")
    assert str(value_error) == "crop_size=-1: expected a positive integer"
    assert value_error.for_flag("--crop-size") == "--crop-size -1: expected a positive integer"
    combination = InvalidCombinationError('precision="bf16" runs on PyTorch only', "precision", "backend")
    assert combination.parameters == ("precision", "backend")

"""Inference backends: how auto resolves, what each combination refuses, and that all agree."""

from __future__ import annotations

import pytest
import torch

from translate.deploy import backends
from translate.deploy.backends import choose_backend, make_backend, resolve_precision, resolve_providers

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize("native_bf16, device, expected", [
    (False, CPU, "fp32"), (True, CPU, "bf16"), (False, CUDA, "fp16"), (True, CUDA, "fp16")])
def test_auto_precision_follows_the_hardware(monkeypatch, native_bf16, device, expected):
    monkeypatch.setattr(backends, "cpu_has_native_bf16", lambda: native_bf16)
    assert resolve_precision("auto", device) == expected
    assert resolve_precision("fp16", device) == "fp16"  # explicit choices are kept


@pytest.mark.parametrize("backend, is_onnx, precision, device, expected", [
    ("auto", False, "fp32", CPU, "onnxruntime"),
    ("auto", False, "bf16", CPU, "torch"),
    ("auto", False, "fp16", torch.device("mps"), "torch"),
    ("auto", True, "fp32", CPU, "onnxruntime"),
    (None, False, "fp32", CPU, "torch"),
    (None, True, "fp32", CPU, "onnxruntime"),
    ("torch", False, "bf16", CPU, "torch"),
])
def test_backend_choice(backend, is_onnx, precision, device, expected):
    assert choose_backend(backend, is_onnx=is_onnx, precision=precision, device=device) == expected


@pytest.mark.parametrize("backend, is_onnx, precision, needle", [
    ("torch", True, "fp32", "cannot run an .onnx file"),
    ("onnxruntime", False, "bf16", "bf16 runs on PyTorch only"),
    ("tensorflow", False, "fp32", "--backend 'tensorflow'"),
])
def test_backend_refusals(backend, is_onnx, precision, needle):
    with pytest.raises(ValueError, match=needle):
        choose_backend(backend, is_onnx=is_onnx, precision=precision, device=CPU)


def test_providers_without_a_gpu_are_the_cpu_only():
    assert resolve_providers(None, CPU) == ["CPUExecutionProvider"]
    assert resolve_providers("cpu", CPU) == ["CPUExecutionProvider"]
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        resolve_providers("cuda", CPU)
    with pytest.raises(ValueError, match="--provider 'metal'"):
        resolve_providers("metal", CPU)


def test_providers_on_a_gpu_prefer_tensorrt_then_cuda(monkeypatch):
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: [
        "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(backends, "_tensorrt_installed", lambda: True)
    assert resolve_providers(None, CUDA) == ["TensorrtExecutionProvider", "CUDAExecutionProvider",
                                             "CPUExecutionProvider"]
    monkeypatch.setattr(backends, "_tensorrt_installed", lambda: False)
    assert resolve_providers(None, CUDA)[0] == "CUDAExecutionProvider"
    assert resolve_providers("cuda", CUDA) == ["CUDAExecutionProvider", "CPUExecutionProvider"]


@pytest.mark.parametrize("backend, precision, tolerance", [
    ("onnxruntime", "fp32", 1e-4), ("onnxruntime", "fp16", 2e-2), ("torch", "bf16", 0.1), ("torch", "fp32", 0.0)])
def test_every_backend_agrees_with_torch_fp32(model_dir, backend, precision, tolerance):
    reference = make_backend(model_dir, backend="torch", precision="fp32", device="cpu")
    runner = make_backend(model_dir, backend=backend, precision=precision, device="cpu")
    assert runner.precision == precision and runner.name == backend
    x = torch.rand(2, 3, 32, 48) * 2 - 1
    got = runner(x)
    assert got.dtype == torch.float32 and got.shape == (2, 3, 32, 48)
    assert (got - reference(x)).abs().max().item() <= tolerance


def test_onnx_copies_are_cached_by_checksum_and_precision(model_dir, onnx_cache):
    first = backends.onnx_copy(model_dir, direction=None, precision="fp32")
    assert first.is_file() and first.parent.parent == onnx_cache
    mtime = first.stat().st_mtime_ns
    assert backends.onnx_copy(model_dir, direction=None, precision="fp32") == first
    assert first.stat().st_mtime_ns == mtime  # reused, not exported again
    assert backends.onnx_copy(model_dir, direction=None, precision="fp16") != first


def test_an_onnx_file_runs_at_its_own_precision(model_dir, tmp_path):
    from translate.deploy.export import export_onnx

    path = export_onnx(model_dir, tmp_path / "m.onnx").path
    assert make_backend(path, device="cpu").precision == "fp32"
    with pytest.raises(ValueError, match="exported in fp32.*--half"):
        make_backend(path, precision="fp16", device="cpu")
    with pytest.raises(ValueError, match="--provider tensorrt applies to ONNX Runtime"):
        make_backend(model_dir, backend="torch", provider="tensorrt", device="cpu")


def _cuda_provider_usable() -> bool:
    import onnxruntime as ort

    return torch.cuda.is_available() and "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.mark.skipif(not _cuda_provider_usable(), reason="needs a GPU and onnxruntime-gpu")
@pytest.mark.parametrize("precision, tolerance", [("fp32", 1e-3), ("fp16", 3e-2)])
def test_cuda_io_binding_keeps_tensors_on_the_gpu_and_agrees(model_dir, precision, tolerance):
    reference = make_backend(model_dir, backend="torch", precision="fp32", device="cpu")
    runner = make_backend(model_dir, backend="onnxruntime", precision=precision, device="cuda")
    assert runner.provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider") and runner.io_binding
    x = torch.rand(3, 3, 64, 96) * 2 - 1
    got = runner(x.cuda())
    assert got.is_cuda and got.shape == (3, 3, 64, 96)
    assert (got.cpu() - reference(x)).abs().max().item() <= tolerance  # TF32 convolutions on the GPU

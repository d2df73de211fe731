"""`translate pretrained`: the reference's 23 generators by name, served here by a loopback server."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import translate
from translate.cli import app
from translate.hub import DownloadError
from translate.hub import pretrained as hub
from translate.hub.pretrained import PRETRAINED, download_pretrained, find_pretrained
from translate.hub.reference import ReferenceMismatchError
from translate.models import GeneratorConfig, build_generator

# The reference's lists (scripts/download_cyclegan_model.sh, scripts/download_pix2pix_model.sh).
CYCLEGAN_NAMES = ("apple2orange orange2apple summer2winter_yosemite winter2summer_yosemite horse2zebra zebra2horse "
                  "monet2photo style_monet style_cezanne style_ukiyoe style_vangogh sat2map map2sat "
                  "cityscapes_photo2label cityscapes_label2photo facades_photo2label facades_label2photo "
                  "iphone2dslr_flower").split()
PIX2PIX_NAMES = "edges2shoes sat2map map2sat facades_label2photo day2night".split()
SMALL_PIX2PIX = GeneratorConfig(name="unet_256", ngf=8, norm="batch", dropout=True)

pytestmark = pytest.mark.usefixtures("single_thread")


def serve_reference_checkpoint(server, filename: str, architecture: GeneratorConfig, seed: int = 0,
                               legacy: bool = False) -> torch.nn.Module:
    """Write a random generator as the reference saved it (a bare state_dict) under the server."""
    torch.manual_seed(seed)
    network = build_generator(architecture).eval()
    if architecture.norm == "batch":  # running statistics that differ from the initial ones
        network.train()
        with torch.no_grad():
            network(torch.rand(2, 3, 256, 256) * 2 - 1)
        network.eval()
    state = network.state_dict()
    if legacy:  # as saved from DataParallel
        state = {f"module.{k}": v for k, v in state.items()}
    torch.save(state, server.root / filename)
    return network


@pytest.fixture
def models(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "models"
    monkeypatch.setenv("TRANSLATE_MODELS", str(root))
    return root


def test_the_registry_holds_the_reference_lists_with_their_options():
    cyclegan = [e for e in PRETRAINED.values() if e.family == "cyclegan"]
    pix2pix = [e for e in PRETRAINED.values() if e.family == "pix2pix"]
    assert [e.name for e in cyclegan] == CYCLEGAN_NAMES and [e.name for e in pix2pix] == PIX2PIX_NAMES
    for entry in cyclegan:
        assert entry.url == f"http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/{entry.name}.pth"
        assert entry.architecture == GeneratorConfig(name="resnet_9blocks", ngf=64, norm="instance", dropout=False)
    for entry in pix2pix:
        assert entry.url == f"http://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch/{entry.name}.pth"
        assert entry.architecture == GeneratorConfig(name="unet_256", ngf=64, norm="batch", dropout=True)
    folders = [e.folder_name for e in PRETRAINED.values()]
    assert len(set(folders)) == 23, "every model installs to its own folder"
    assert {e.direction for e in PRETRAINED.values()} == {"AtoB", "BtoA"}


@pytest.mark.parametrize("name, family, key", [
    ("horse2zebra", None, "cyclegan/horse2zebra"),
    ("sat2map", None, "cyclegan/sat2map"),
    ("sat2map", "pix2pix", "pix2pix/sat2map"),
    ("pix2pix/sat2map", None, "pix2pix/sat2map"),
    ("sat2map_pix2pix", None, "pix2pix/sat2map"),
    ("facades_label2photo", "pix2pix", "pix2pix/facades_label2photo"),
    ("day2night", None, "pix2pix/day2night"),
])
def test_names_resolve(name, family, key):
    assert find_pretrained(name, family).key == key


def test_unknown_names_get_close_matches():
    with pytest.raises(ValueError, match="'hors2zebra'; did you mean horse2zebra"):
        find_pretrained("hors2zebra")
    with pytest.raises(ValueError, match="no pretrained model 'edges2shoes'"):
        find_pretrained("edges2shoes", "cyclegan")
    with pytest.raises(ValueError, match="family must be cyclegan or pix2pix, got 'stylegan'"):
        find_pretrained("horse2zebra", "stylegan")


def test_horse2zebra_installs_verified_and_converts_by_name(loopback_server, models, tmp_path, monkeypatch):
    """The real options (resnet_9blocks, ngf 64) on a random reference-layout checkpoint."""
    monkeypatch.setattr(hub, "_VERIFY_SIZE", 64)  # every weight still counts, at 1/16 of 256 px's cost
    reference = serve_reference_checkpoint(loopback_server, "horse2zebra.pth", hub.CYCLEGAN_G, legacy=True)
    result = CliRunner().invoke(app, ["pretrained", "horse2zebra", "--mirror", loopback_server.url])
    assert result.exit_code == 0, result.output
    folder = models / "horse2zebra"
    assert {p.name for p in folder.iterdir()} == {"config.json", "model.safetensors", "README.md"}
    config = json.loads((folder / "config.json").read_text())
    assert config["direction"] == "AtoB" and config["domains"] == {"source": "horse", "target": "zebra"}
    assert config["source"]["origin"] == f"{loopback_server.url}/horse2zebra.pth"
    assert "--netG resnet_9blocks --ngf 64 --norm instance --no-dropout" in (folder / "README.md").read_text()
    assert not list((models / ".downloads").iterdir()), "the .pth is removed after the import"
    assert [p.name for p in models.iterdir() if p.name.startswith(".horse2zebra")] == [], "no staging left"

    probe = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(translate.load(folder)(probe), reference(probe), atol=1e-5)
        assert torch.allclose(translate.load("horse2zebra")(probe), reference(probe), atol=1e-5), "by name"

    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(photos / "h.png")
    converted = CliRunner().invoke(app, ["convert", str(photos), str(out), "--model", "horse2zebra",
                                         "--device", "cpu"])
    assert converted.exit_code == 0, converted.output
    assert Image.open(out / "h.png").size == (48, 40)

    requests = len(loopback_server.requests)
    again = CliRunner().invoke(app, ["pretrained", "horse2zebra", "--mirror", loopback_server.url])
    assert again.exit_code == 0 and len(loopback_server.requests) == requests, "installed: no second download"


def test_pix2pix_name_shared_with_cyclegan_installs_beside_it(loopback_server, tmp_path, monkeypatch):
    monkeypatch.setattr(hub, "PIX2PIX_G", SMALL_PIX2PIX)
    reference = serve_reference_checkpoint(loopback_server, "sat2map.pth", SMALL_PIX2PIX)
    result = CliRunner().invoke(app, ["pretrained", "sat2map", str(tmp_path / "zoo"), "--pix2pix",
                                      "--mirror", loopback_server.url + "/"])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "zoo" / "sat2map_pix2pix"
    config = json.loads((folder / "config.json").read_text())
    assert config["task"] == "pix2pix" and config["architecture"]["norm"] == "batch"
    probe = torch.rand(1, 3, 256, 256) * 2 - 1
    with torch.no_grad():  # eval mode: the checkpoint's running statistics, no dropout
        assert torch.allclose(translate.load(folder)(probe), reference(probe), atol=1e-5)
    assert "batch statistics and dropout on" in (folder / "README.md").read_text()


def test_interrupted_download_fails_cleanly_then_resumes(loopback_server, models):
    small = dataclasses.replace(hub.CYCLEGAN_G, ngf=8)
    serve_reference_checkpoint(loopback_server, "zebra2horse.pth", small)
    size = (loopback_server.root / "zebra2horse.pth").stat().st_size
    loopback_server.truncate["/zebra2horse.pth"] = size // 3
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hub, "CYCLEGAN_G", small)
        result = CliRunner().invoke(app, ["pretrained", "zebra2horse", "--mirror", loopback_server.url])
        assert result.exit_code == 1 and f"after {size // 3} of {size} bytes" in result.output
        assert "again resumes it" in result.output
        assert not (models / "zebra2horse").exists()
        del loopback_server.truncate["/zebra2horse.pth"]
        path = download_pretrained("zebra2horse", mirror=loopback_server.url)
    assert path == models / "zebra2horse" and (path / "model.safetensors").is_file()
    assert loopback_server.requests[-1] == ("/zebra2horse.pth", f"bytes={size // 3}-")


def test_wrong_file_is_refused_and_nothing_installed(loopback_server, models):
    serve_reference_checkpoint(loopback_server, "apple2orange.pth", GeneratorConfig(name="resnet_6blocks", ngf=64))
    result = CliRunner().invoke(app, ["pretrained", "apple2orange", "--mirror", loopback_server.url])
    assert result.exit_code == 1
    assert "does not match" in result.output and "resnet_6blocks" in result.output
    assert sorted(p.name for p in models.iterdir()) == [".downloads"]
    assert not list((models / ".downloads").iterdir()), "a file that does not import is not kept"
    with pytest.raises(ReferenceMismatchError):
        download_pretrained("apple2orange", mirror=loopback_server.url)
    # the server is fixed: the next run downloads again instead of failing on the old bytes
    monkeypatch_small = dataclasses.replace(hub.CYCLEGAN_G, ngf=8)
    serve_reference_checkpoint(loopback_server, "apple2orange.pth", monkeypatch_small)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hub, "CYCLEGAN_G", monkeypatch_small)
        assert (download_pretrained("apple2orange", mirror=loopback_server.url) / "config.json").is_file()


def test_a_folder_that_is_not_a_model_is_never_replaced(loopback_server, tmp_path):
    data = tmp_path / "datasets" / "horse2zebra" / "trainA"
    data.mkdir(parents=True)
    (data / "1.jpg").write_bytes(b"a horse")
    requests = len(loopback_server.requests)
    for force in (False, True):
        result = CliRunner().invoke(app, ["pretrained", "horse2zebra", str(tmp_path / "datasets"), "--mirror",
                                          loopback_server.url] + (["--force"] if force else []))
        assert result.exit_code == 1 and "is not a translate model" in result.output
    assert (data / "1.jpg").read_bytes() == b"a horse" and len(loopback_server.requests) == requests


def test_checksum_mismatch_and_missing_file_are_errors(loopback_server, models, monkeypatch):
    monkeypatch.setattr(hub, "CYCLEGAN_G", dataclasses.replace(hub.CYCLEGAN_G, ngf=8))
    serve_reference_checkpoint(loopback_server, "style_monet.pth", hub.CYCLEGAN_G)
    with pytest.raises(DownloadError, match="SHA-256|sha256"):
        download_pretrained("style_monet", mirror=loopback_server.url, sha256="0" * 64)
    assert not (models / "style_monet").exists()
    missing = CliRunner().invoke(app, ["pretrained", "style_vangogh", "--mirror", loopback_server.url])
    assert missing.exit_code == 1 and "style_vangogh.pth" in missing.output and "404" in missing.output


def test_force_replaces_an_installed_model(loopback_server, models, monkeypatch):
    monkeypatch.setattr(hub, "CYCLEGAN_G", dataclasses.replace(hub.CYCLEGAN_G, ngf=8))
    serve_reference_checkpoint(loopback_server, "map2sat.pth", hub.CYCLEGAN_G, seed=0)
    first = (download_pretrained("map2sat", mirror=loopback_server.url) / "model.safetensors").read_bytes()
    serve_reference_checkpoint(loopback_server, "map2sat.pth", hub.CYCLEGAN_G, seed=1)
    assert (download_pretrained("map2sat", mirror=loopback_server.url) / "model.safetensors").read_bytes() == first
    second = download_pretrained("map2sat", mirror=loopback_server.url, force=True)
    assert (second / "model.safetensors").read_bytes() != first
    exported = CliRunner().invoke(app, ["export", "map2sat", str(models / "map2sat.onnx")])
    assert exported.exit_code == 0, exported.output
    assert (models / "map2sat.onnx").stat().st_size > 0


def test_cli_lists_every_model_and_refuses_bad_input():
    listing = CliRunner().invoke(app, ["pretrained", "--list"])
    assert listing.exit_code == 0
    for entry in PRETRAINED.values():
        assert entry.key in listing.output and entry.folder_name in listing.output
    unknown = CliRunner().invoke(app, ["pretrained", "horse2zebr"])
    assert unknown.exit_code == 2 and "did you mean horse2zebra" in unknown.output
    assert CliRunner().invoke(app, ["pretrained"]).exit_code == 2
    bad_mirror = CliRunner().invoke(app, ["pretrained", "horse2zebra", "/tmp/x", "--mirror", "ftp://example.org"])
    assert bad_mirror.exit_code != 0 and "ftp://example.org" in bad_mirror.output

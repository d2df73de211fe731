"""Reference checkpoint import: exact outputs on ../shared/reference, legacy files, mismatch diagnosis, CLI."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from translate.cli import app
from translate.formats.weights import load, load_with_config
from translate.hub.reference import ReferenceMismatchError, import_reference, read_reference_state_dict
from translate.models import DiscriminatorConfig, GeneratorConfig

pytestmark = pytest.mark.usefixtures("single_thread")

# file stem -> the options the reference trained it with (its README's table)
ARCHITECTURES = {
    "resnet_9blocks_ngf16_instance": GeneratorConfig(name="resnet_9blocks", ngf=16),
    "resnet_9blocks_ngf16_instance_legacy": GeneratorConfig(name="resnet_9blocks", ngf=16),
    "resnet_6blocks_ngf16_instance_dropout": GeneratorConfig(name="resnet_6blocks", ngf=16, dropout=True),
    "unet_256_ngf8_batch_dropout": GeneratorConfig(name="unet_256", ngf=8, norm="batch", dropout=True),
    "unet_128_ngf8_instance": GeneratorConfig(name="unet_128", ngf=8, input_nc=1, output_nc=3),
    "basic_ndf16_instance": DiscriminatorConfig(name="basic", ndf=16),
    "n_layers5_ndf8_batch_in6": DiscriminatorConfig(name="n_layers", n_layers=5, ndf=8, norm="batch", input_nc=6),
    "pixel_ndf16_instance": DiscriminatorConfig(name="pixel", ndf=16),
}


@pytest.fixture(scope="module")
def vectors(reference_dir: Path) -> dict[str, dict[str, torch.Tensor]]:
    return torch.load(reference_dir / "vectors.pt", weights_only=True)


def _assert_reproduces(net: torch.nn.Module, vector: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        output = net(vector["input"])
    torch.testing.assert_close(output, vector["output"], rtol=0, atol=1e-5)


def test_every_vector_has_a_case(vectors: dict) -> None:
    assert set(vectors) == {stem for stem in ARCHITECTURES if not stem.endswith("_legacy")}


@pytest.mark.parametrize("stem", list(ARCHITECTURES))
def test_import_reproduces_reference_output(stem: str, reference_dir: Path, vectors: dict, tmp_path: Path) -> None:
    ckpt = reference_dir / f"{stem}.pth"
    out = import_reference(ckpt, tmp_path / stem, ARCHITECTURES[stem])
    net, config = load_with_config(out)
    _assert_reproduces(net, vectors[stem.removesuffix("_legacy")])
    assert config["source"] == {"reference_checkpoint": ckpt.name,
                                "sha256": hashlib.sha256(ckpt.read_bytes()).hexdigest()}
    assert config["architecture"]["name"] == ARCHITECTURES[stem].name


def test_legacy_file_is_adapted(reference_dir: Path, tmp_path: Path) -> None:
    legacy = read_reference_state_dict(reference_dir / "resnet_9blocks_ngf16_instance_legacy.pth")
    plain = read_reference_state_dict(reference_dir / "resnet_9blocks_ngf16_instance.pth")
    assert not any(k.startswith("module.") for k in legacy)
    stale = sorted(set(legacy) - set(plain))
    assert stale and all(k.endswith(("running_mean", "running_var")) for k in stale)
    cfg = ARCHITECTURES["resnet_9blocks_ngf16_instance"]
    a = load(import_reference(reference_dir / "resnet_9blocks_ngf16_instance_legacy.pth", tmp_path / "a", cfg))
    b = load(import_reference(reference_dir / "resnet_9blocks_ngf16_instance.pth", tmp_path / "b", cfg))
    for key, tensor in b.state_dict().items():
        assert torch.equal(a.state_dict()[key], tensor), key


def test_wrapped_and_pre_0_4_batchnorm_checkpoints(reference_dir: Path, vectors: dict, tmp_path: Path) -> None:
    stem = "unet_256_ngf8_batch_dropout"
    state = read_reference_state_dict(reference_dir / f"{stem}.pth")
    # PyTorch < 0.4.1 saved BatchNorm without num_batches_tracked, and some tools wrap the dict.
    old = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save({"state_dict": old}, tmp_path / "old.pth")
    assert read_reference_state_dict(tmp_path / "old.pth").keys() == old.keys()
    _assert_reproduces(load(import_reference(tmp_path / "old.pth", tmp_path / "w", ARCHITECTURES[stem])),
                       vectors[stem])


def test_read_reference_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no reference checkpoint at .*nope.pth"):
        read_reference_state_dict(tmp_path / "nope.pth")
    weight = torch.zeros(1)
    torch.save({"module.x": weight, "x": weight}, tmp_path / "dup.pth")
    with pytest.raises(ValueError, match="'x' both with and without"):
        read_reference_state_dict(tmp_path / "dup.pth")
    torch.save({"x": weight, "epoch": 3}, tmp_path / "mixed.pth")
    with pytest.raises(ValueError, match="not tensors.*epoch"):
        read_reference_state_dict(tmp_path / "mixed.pth")
    torch.save({"format": "translate.checkpoint", "models": {}}, tmp_path / "ours.pt")
    with pytest.raises(ValueError, match="translate.load"):
        read_reference_state_dict(tmp_path / "ours.pt")
    torch.save([weight], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="holds a list"):
        read_reference_state_dict(tmp_path / "list.pth")


@pytest.mark.parametrize(
    ("stem", "architecture", "in_message"),
    [
        # trained with dropout, imported without
        ("resnet_6blocks_ngf16_instance_dropout", GeneratorConfig(name="resnet_6blocks", ngf=16),
         ["missing keys (12): model.10.conv_block.5.weight", "unexpected keys (12): model.10.conv_block.6.weight",
          "likely cause: the checkpoint was trained with dropout", "pass --dropout"]),
        ("resnet_9blocks_ngf16_instance", GeneratorConfig(name="resnet_9blocks", ngf=16, dropout=True),
         ["trained without dropout", "pass --no-dropout"]),
        ("resnet_9blocks_ngf16_instance", GeneratorConfig(name="resnet_9blocks", ngf=64),
         ["shape mismatches (47): model.1.weight: file (16, 3, 7, 7) vs model (64, 3, 7, 7)",
          "likely cause: the checkpoint has ngf 16", "pass --ngf 16"]),
        ("unet_256_ngf8_batch_dropout", GeneratorConfig(name="unet_256", ngf=8, dropout=True),
         ["missing keys (15): model.model.0.bias", "unexpected keys (26): model.model.1.model.2.weight",
          "uses norm 'batch'", "pass --norm batch"]),
        ("unet_128_ngf8_instance", GeneratorConfig(name="unet_128", ngf=8, input_nc=1, norm="batch"),
         ["uses norm 'instance'", "pass --norm instance"]),
        ("resnet_9blocks_ngf16_instance", GeneratorConfig(name="resnet_6blocks", ngf=16),
         ["9 residual blocks", "pass --netG resnet_9blocks"]),
        ("unet_256_ngf8_batch_dropout", GeneratorConfig(name="unet_128", ngf=8, norm="batch"),
         ["8 downsamplings", "pass --netG unet_256"]),
        ("unet_128_ngf8_instance", GeneratorConfig(name="unet_128", ngf=8),
         ["model.model.0.weight: file (8, 1, 4, 4) vs model (8, 3, 4, 4)", "pass --input-nc 1"]),
        ("resnet_9blocks_ngf16_instance", GeneratorConfig(name="resnet_9blocks", ngf=16, output_nc=1),
         ["pass --output-nc 3"]),
        ("n_layers5_ndf8_batch_in6", DiscriminatorConfig(name="basic", ndf=8, norm="batch", input_nc=6),
         ["with 5 layers", "pass --netD n_layers --n-layers-D 5"]),
        ("pixel_ndf16_instance", DiscriminatorConfig(name="basic", ndf=16), ["pass --netD pixel"]),
        ("basic_ndf16_instance", DiscriminatorConfig(name="basic", ndf=64), ["pass --ndf 16"]),
        ("basic_ndf16_instance", GeneratorConfig(), ["pass --netD basic"]),
    ],
)
def test_mismatch_messages(stem: str, architecture, in_message: list[str], reference_dir: Path,
                           tmp_path: Path) -> None:
    with pytest.raises(ReferenceMismatchError) as info:
        import_reference(reference_dir / f"{stem}.pth", tmp_path / "out", architecture)
    message = str(info.value)
    assert message.startswith(f"{stem}.pth does not match {architecture.name} (")
    for fragment in in_message:
        assert fragment in message
    assert info.value.hints and info.value.diff
    assert not (tmp_path / "out").exists()


def test_discriminator_takes_no_direction(reference_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="direction='AtoB' applies to generators only"):
        import_reference(reference_dir / "basic_ndf16_instance.pth", tmp_path, DiscriminatorConfig(ndf=16),
                         direction="AtoB")


# --- CLI ------------------------------------------------------------------------------------

runner = CliRunner()


def test_cli_models() -> None:
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    for name in ("resnet_9blocks", "resnet_6blocks", "unet_256", "unet_128", "basic", "n_layers", "pixel"):
        assert name in result.output
    assert "11.38M" in result.output and "54.41M" in result.output


def test_cli_import_reference(reference_dir: Path, vectors: dict, tmp_path: Path) -> None:
    stem = "unet_128_ngf8_instance"
    args = ["import-reference", str(reference_dir / f"{stem}.pth"), str(tmp_path / "g"), "--netG", "unet_128",
            "--ngf", "8", "--input-nc", "1", "--direction", "BtoA"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    net, config = load_with_config(tmp_path / "g")
    _assert_reproduces(net, vectors[stem])
    assert config["direction"] == "BtoA" and config["architecture"]["input_nc"] == 1

    stem = "n_layers5_ndf8_batch_in6"
    result = runner.invoke(app, ["import-reference", str(reference_dir / f"{stem}.pth"), str(tmp_path / "d"),
                                 "--netD", "n_layers", "--ndf", "8", "--n-layers-D", "5", "--norm", "batch",
                                 "--input-nc", "6"])
    assert result.exit_code == 0, result.output
    _assert_reproduces(load(tmp_path / "d"), vectors[stem])


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--netG", "resnet_6blocks", "--ngf", "16"], "pass --dropout"),
        (["--netG", "resnet_6blocks", "--netD", "basic"], "exactly one of --netG"),
        ([], "exactly one of --netG"),
        (["--netG", "resnet_6blocks", "--ndf", "16"], "--ndf and --n-layers-D apply to discriminators"),
        (["--netD", "basic", "--ngf", "16"], "apply to generators"),
        (["--netG", "resnet_7blocks"], "'resnet_7blocks'"),
        (["--netG", "resnet_6blocks", "--norm", "group"], "'group'"),
        (["--netG", "resnet_6blocks", "--ngf", "16", "--dropout", "--direction", "up"], "'up'"),
    ],
)
def test_cli_import_reference_errors(extra: list[str], fragment: str, reference_dir: Path, tmp_path: Path) -> None:
    ckpt = reference_dir / "resnet_6blocks_ngf16_instance_dropout.pth"
    result = runner.invoke(app, ["import-reference", str(ckpt), str(tmp_path / "out"), *extra])
    assert result.exit_code == 2
    assert fragment in result.output
    assert isinstance(result.exception, SystemExit)  # a clean exit, not an uncaught error
    assert "Traceback" not in result.output


def test_cli_missing_checkpoint(tmp_path: Path) -> None:
    result = runner.invoke(app, ["import-reference", str(tmp_path / "none.pth"), str(tmp_path / "out"),
                                 "--netG", "resnet_9blocks"])
    assert result.exit_code == 2
    assert "no reference checkpoint at" in result.output

"""mobile_resnet_9blocks: its layout against resnet_9blocks (CUT's layer indices), depthwise-separable
residual blocks, CUT / FastCUT, ONNX export parity, `translate convert` and `translate serve`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from tests.helpers.serve import RunningServer, decoded
from translate.cli import app
from translate.core.errors import InvalidChoiceError
from translate.deploy.export import PARITY_TOLERANCES, export_onnx
from translate.deploy.inference import translate_tensor
from translate.formats.weights import load, save_weights
from translate.models import GeneratorConfig, build_generator
from translate.models.mobile import MobileResnetBlock
from translate.models.patch_heads import layer_sequence, layer_widths
from translate.serve.options import ModelSpec, ServeOptions
from translate.training import get_task, make_config
from translate.training.tasks.cut import CUTStep, generator_layer_count

pytestmark = pytest.mark.usefixtures("single_thread")
runner = CliRunner()
MOBILE = "mobile_resnet_9blocks"


def _tiny(name: str = MOBILE, **overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_generator(GeneratorConfig(name=name, ngf=8, **overrides))


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    architecture = GeneratorConfig(name=MOBILE, ngf=8)
    return save_weights(_tiny(), tmp_path_factory.mktemp("mobile") / "w", architecture, direction="AtoB")


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for name, (width, height) in {"a.png": (40, 30), "b.jpg": (33, 21), "c.png": (32, 32)}.items():
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(folder / name)
    return folder


def _expected_uint8(model_dir: Path, path: Path) -> np.ndarray:
    """The model applied to the image in PyTorch (padded to a multiple of 4), as 8-bit pixels."""
    image = torch.from_numpy(np.array(Image.open(path).convert("RGB")))
    x = image.permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.inference_mode():
        out = translate_tensor(load(model_dir), x, 4)[0]
    return ((out.clamp(-1, 1) + 1) * 127.5).round().permute(1, 2, 0).numpy().astype(int)


# --- layout ---------------------------------------------------------------------------------------

def test_top_level_layers_are_those_of_resnet_9blocks_with_other_blocks() -> None:
    mobile, resnet = layer_sequence(_tiny()), layer_sequence(_tiny("resnet_9blocks"))
    assert len(mobile) == len(resnet) == generator_layer_count(MOBILE) == 28
    assert layer_widths(mobile, 3) == layer_widths(resnet, 3)
    for index, (light, full) in enumerate(zip(mobile, resnet, strict=True)):
        if 10 <= index < 19:
            assert isinstance(light, MobileResnetBlock), index
        else:  # stem, downsamplings, upsamplings and head: the same layers and parameter shapes
            assert type(light) is type(full), index
            assert {k: v.shape for k, v in light.state_dict().items()} == {
                k: v.shape for k, v in full.state_dict().items()}, index
    # so CUT's default nce_layers 0,4,7,10,14 are the input, both stride-2 convolutions, residual blocks 1 and 5
    assert mobile[4].stride == mobile[7].stride == (2, 2)


@pytest.mark.parametrize(("dropout", "second"), [(False, 6), (True, 7)])
def test_blocks_are_depthwise_separable_residuals(dropout: bool, second: int) -> None:
    block = _tiny(dropout=dropout).model[10]
    convs = block.conv_block
    for depthwise in (1, second + 1):
        assert convs[depthwise].groups == convs[depthwise].in_channels == 32 and convs[depthwise].kernel_size == (3, 3)
        assert convs[depthwise + 2].groups == 1 and convs[depthwise + 2].kernel_size == (1, 1)
    assert isinstance(convs[5], torch.nn.ReLU) and isinstance(convs[6], torch.nn.Dropout) == dropout
    # A zero last pointwise convolution leaves only the skip: the block is the identity.
    torch.nn.init.zeros_(convs[second + 3].weight)
    torch.nn.init.zeros_(convs[second + 3].bias)
    x = torch.randn(2, 32, 8, 8)
    assert torch.equal(block.eval()(x), x)


def test_default_parameter_count_is_a_sixth_of_resnet_9blocks() -> None:
    with torch.device("meta"):
        mobile = build_generator(GeneratorConfig(name=MOBILE), init=False)
    assert sum(p.numel() for p in mobile.parameters()) == 1_987_075  # resnet_9blocks: 11_378_179


@pytest.mark.parametrize("norm", ["instance", "batch", "none"])
def test_forward_keeps_any_multiple_of_4_and_channel_counts(norm: str) -> None:
    g = _tiny(norm=norm, input_nc=1, output_nc=3)
    real_a = torch.rand(2, 1, 36, 44) * 2 - 1
    fake_b = g(real_a)
    assert fake_b.shape == (2, 3, 36, 44) and fake_b.abs().max() <= 1
    fake_b.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in g.parameters())


# --- CUT ----------------------------------------------------------------------------------------------

def test_cut_and_fastcut_accept_it_and_patch_nce_reaches_its_blocks() -> None:
    for task in ("cut", "fastcut"):
        assert MOBILE in get_task(task).generators and "unet_256" not in get_task(task).generators
    with pytest.raises(InvalidChoiceError, match="unet_128"):
        make_config("cut", overrides={"netG": "unet_128"})
    config = make_config("cut", overrides=dict(netG=MOBILE, ngf=8, ndf=8, num_patches=16, netF_nc=8, data="unused",
                                               out="unused", device="cpu"))
    step = CUTStep(config, torch.device("cpu"))
    assert step.f.widths == (3, 16, 32, 32, 32)
    real_a = torch.rand(1, 3, 32, 32) * 2 - 1
    loss = step.patch_nce(real_a, step.g(real_a))
    loss.backward()
    depthwise = step.g.model[10].conv_block[1].weight.grad  # residual block 1, one of the tapped layers
    assert loss > 0 and depthwise is not None and depthwise.abs().sum() > 0


# --- export, convert, serve -----------------------------------------------------------------------

def test_onnx_export_parity_and_a_size_not_used_in_export(weights: Path, tmp_path: Path) -> None:
    report = export_onnx(weights, tmp_path / "g.onnx", parity_sizes=[(32, 32), (48, 64)])
    assert len(report.cases) == 4 and report.max_abs_error <= PARITY_TOLERANCES[("float32", "float")]
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    x = torch.rand(3, 3, 40, 56) * 2 - 1
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.inference_mode():
        expected = load(weights)(x).numpy()
    assert got.shape == (3, 3, 40, 56) and np.abs(got - expected).max() <= 1e-4


@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_cli_convert_writes_what_the_model_computes(backend: str, weights: Path, images: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["convert", str(images), str(out), "--model", str(weights), "--backend", backend,
                                 "--precision", "fp32", "--device", "cpu", "--batch-size", "2", "--workers", "1"])
    assert result.exit_code == 0, result.output
    for source in images.iterdir():
        written = np.array(Image.open(out / f"{source.stem}.png"), dtype=int)
        assert written.shape[:2] == Image.open(source).size[::-1]
        assert np.abs(written - _expected_uint8(weights, source)).max() <= 1, source.name


def test_serve_translates_as_the_model_does(weights: Path, images: Path) -> None:
    options = ServeOptions(models=(ModelSpec("mobile", str(weights)),), max_batch=2, warmup_size=32)
    with RunningServer(options) as server:
        server.wait_ready()
        status, listing = server.json("GET", "/v1/models/mobile")
        assert status == 200 and listing["size_multiple"] == 4
        status, _, body = server.request("POST", "/v1/models/mobile/translate", (images / "a.png").read_bytes(),
                                         "image/png")
    assert status == 200
    served = np.array(decoded(body).convert("RGB"), dtype=int)
    assert np.abs(served - _expected_uint8(weights, images / "a.png")).max() <= 1

"""Networks and registry: shapes, gradients, norms, dropout, init, channels, config validation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from translate.models import (
    INIT_TYPES,
    NORMS,
    DiscriminatorConfig,
    GeneratorConfig,
    build_discriminator,
    build_generator,
    config_from_dict,
    config_to_dict,
    discriminator_names,
    generator_names,
    init_weights,
    list_models,
    register_generator,
    registry,
    size_multiple,
    text_generator_names,
)
from translate.models.networks import ResnetGenerator

pytestmark = pytest.mark.usefixtures("single_thread")

# Smallest input each generator accepts: its total downsampling.
GENERATOR_SIZE = {"mobile_resnet_9blocks": 32, "resnet_6blocks": 32, "resnet_9blocks": 32, "unet_128": 128,
                  "unet_256": 256}
# (config overrides, input size, expected output H = W; or the projected ones' {judge: logits shape})
DISCRIMINATOR_CASES = {
    "basic": ({}, 64, 6),  # 64 / 2**3 - 2
    "n_layers": ({"n_layers": 2}, 32, 6),  # 32 / 2**2 - 2
    "pixel": ({}, 32, 32),
    "projected": ({}, 64, {"projected": (2, 16)}),  # 4 levels x (64 / 32)**2 patches
    "projected+basic": ({}, 64, {"basic": (2, 1, 6, 6), "projected": (2, 16)}),
}
RGB_ONLY = {"projected", "projected+basic"}


def _tiny_generator(name: str, **overrides) -> nn.Module:
    return build_generator(GeneratorConfig(name=name, ngf=8, **overrides))


def _assert_finite_grads(net: nn.Module) -> None:
    for key, param in net.named_parameters():
        assert param.grad is not None, f"{key} got no gradient"
        assert torch.isfinite(param.grad).all(), f"{key} has a non-finite gradient"


def test_registry_names() -> None:
    assert generator_names() == ["mobile_resnet_9blocks", "resnet_6blocks", "resnet_9blocks", "unet_128", "unet_256"]
    # the generators whose layers CUT's PatchNCE can take by index: not the nested U-Nets
    assert generator_names(with_layer_sequence=True) == ["mobile_resnet_9blocks", "resnet_6blocks", "resnet_9blocks"]
    assert discriminator_names() == ["basic", "n_layers", "pixel", "projected", "projected+basic"]
    assert set(GENERATOR_SIZE) == set(generator_names())
    assert set(DISCRIMINATOR_CASES) == set(discriminator_names())


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("name", generator_names())
def test_generator_forward_backward(name: str, norm: str) -> None:
    torch.manual_seed(0)
    size = GENERATOR_SIZE[name]
    g = _tiny_generator(name, norm=norm)
    real_a = torch.rand(2, 3, size, size) * 2 - 1
    fake_b = g(real_a)
    assert fake_b.shape == (2, 3, size, size)
    assert torch.isfinite(fake_b).all()
    assert fake_b.abs().max() <= 1.0  # Tanh head
    fake_b.mean().backward()
    _assert_finite_grads(g)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("name", discriminator_names())
def test_discriminator_forward_backward(name: str, norm: str) -> None:
    torch.manual_seed(0)
    overrides, size, out = DISCRIMINATOR_CASES[name]
    d = build_discriminator(DiscriminatorConfig(name=name, ndf=8, norm=norm, **overrides))
    logits = d(torch.randn(2, 3, size, size))
    if isinstance(out, dict):  # several judges, each its own logits
        assert {judge: tuple(value.shape) for judge, value in logits.items()} == out
        logits = torch.cat([value.flatten() for value in logits.values()])
    else:
        assert logits.shape == (2, 1, out, out)
    assert torch.isfinite(logits).all()
    logits.mean().backward()
    _assert_finite_grads(d)


@pytest.mark.parametrize("name", ["resnet_6blocks", "unet_128"])
@pytest.mark.parametrize(("input_nc", "output_nc"), [(1, 3), (3, 1), (4, 4), (3, 3)])
def test_generator_channel_counts(name: str, input_nc: int, output_nc: int) -> None:
    size = GENERATOR_SIZE[name]
    g = _tiny_generator(name, input_nc=input_nc, output_nc=output_nc).eval()
    with torch.no_grad():
        assert g(torch.randn(1, input_nc, size, size)).shape == (1, output_nc, size, size)
    with pytest.raises(RuntimeError):
        g(torch.randn(1, input_nc + 1, size, size))


@pytest.mark.parametrize("name", discriminator_names())
@pytest.mark.parametrize("input_nc", [1, 4, 6])
def test_discriminator_channel_counts(name: str, input_nc: int) -> None:
    overrides, size, out = DISCRIMINATOR_CASES[name]
    if name in RGB_ONLY:  # an ImageNet feature network sees RGB only
        with pytest.raises(ValueError, match="input_nc"):
            build_discriminator(DiscriminatorConfig(name=name, ndf=8, input_nc=input_nc, **overrides))
        return
    d = build_discriminator(DiscriminatorConfig(name=name, ndf=8, input_nc=input_nc, **overrides)).eval()
    with torch.no_grad():
        assert d(torch.randn(1, input_nc, size, size)).shape == (1, 1, out, out)


def test_resnet_keeps_any_multiple_of_4() -> None:
    g = _tiny_generator("resnet_6blocks").eval()
    with torch.no_grad():
        assert g(torch.randn(1, 3, 36, 44)).shape == (1, 3, 36, 44)


def test_resnet_dropout_moves_second_block_conv() -> None:
    plain = _tiny_generator("resnet_6blocks").state_dict()
    dropped = _tiny_generator("resnet_6blocks", dropout=True).state_dict()
    assert "model.10.conv_block.5.weight" in plain and "model.10.conv_block.6.weight" not in plain
    assert "model.10.conv_block.6.weight" in dropped and "model.10.conv_block.5.weight" not in dropped
    assert len(plain) == len(dropped)


@pytest.mark.parametrize(("name", "middle_blocks"), [("unet_128", 2), ("unet_256", 3)])
def test_unet_dropout_keeps_keys_and_sits_in_middle_blocks(name: str, middle_blocks: int) -> None:
    plain = _tiny_generator(name, norm="batch")
    dropped = _tiny_generator(name, norm="batch", dropout=True)
    assert list(plain.state_dict()) == list(dropped.state_dict())
    assert sum(isinstance(m, nn.Dropout) for m in plain.modules()) == 0
    assert sum(isinstance(m, nn.Dropout) for m in dropped.modules()) == middle_blocks


def test_dropout_active_in_train_only() -> None:
    torch.manual_seed(0)
    g = _tiny_generator("resnet_6blocks", dropout=True)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert not torch.equal(g.train()(x), g(x))
        g.eval()
        assert torch.equal(g(x), g(x))


def test_norm_layouts() -> None:
    instance = _tiny_generator("resnet_6blocks", norm="instance").state_dict()
    batch = _tiny_generator("resnet_6blocks", norm="batch").state_dict()
    none = _tiny_generator("resnet_6blocks", norm="none").state_dict()
    # Instance norm has no keys; convs followed by it carry biases.
    assert not any("running" in k for k in instance)
    assert "model.1.bias" in instance and "model.10.conv_block.1.bias" in instance
    # Batch norm: affine weights and statistics, convs without bias.
    assert {"model.2.weight", "model.2.running_mean", "model.2.num_batches_tracked"} <= set(batch)
    assert "model.1.bias" not in batch
    # None: the reference's rule gives no conv bias either, and there are no norm keys.
    assert "model.1.bias" not in none and "model.2.weight" not in none
    # The 7x7 head is never followed by a norm and always has a bias.
    for state in (instance, batch, none):
        assert "model.23.bias" in state


def test_reference_parameter_counts() -> None:
    # The numbers the original implementation prints for its default networks.
    with torch.device("meta"):
        resnet = build_generator(GeneratorConfig(), init=False)
        unet = build_generator(GeneratorConfig(name="unet_256", norm="batch", dropout=True), init=False)
        patch = build_discriminator(DiscriminatorConfig(), init=False)
    assert sum(p.numel() for p in resnet.parameters()) == 11_378_179
    assert sum(p.numel() for p in unet.parameters()) == 54_413_955
    assert sum(p.numel() for p in patch.parameters()) == 2_764_737


def test_unet_key_layout() -> None:
    keys = _tiny_generator("unet_256").state_dict()
    assert "model.model.0.weight" in keys and "model.model.3.bias" in keys
    innermost_up = "model.model.1" + ".model.3" * 6 + ".model.3.weight"
    assert innermost_up in keys
    assert keys[innermost_up].shape == (64, 64, 4, 4)  # ConvTranspose: (in, out, k, k), ngf * 8 both


@pytest.mark.parametrize("init_type", INIT_TYPES)
def test_init_types(init_type: str) -> None:
    torch.manual_seed(0)
    g = build_generator(GeneratorConfig(name="resnet_6blocks", ngf=16, norm="batch", init_type=init_type,
                                        init_gain=0.02))
    convs = [m for m in g.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    norms = [m for m in g.modules() if isinstance(m, nn.BatchNorm2d)]
    for conv in convs:
        assert torch.isfinite(conv.weight).all()
        if conv.bias is not None:
            assert torch.count_nonzero(conv.bias) == 0
    for norm in norms:
        assert torch.count_nonzero(norm.bias) == 0
    bn_weights = torch.cat([n.weight.detach() for n in norms])
    assert abs(bn_weights.mean().item() - 1.0) < 0.01 and abs(bn_weights.std().item() - 0.02) < 0.005

    block_conv = g.model[10].conv_block[1].weight.detach()  # (64, 64, 3, 3)
    fan_in = block_conv[0].numel()
    if init_type == "normal":
        assert block_conv.std().item() == pytest.approx(0.02, rel=0.05)
    elif init_type == "xavier":
        expected = 0.02 * math.sqrt(2.0 / (fan_in + block_conv.shape[0] * 9))
        assert block_conv.std().item() == pytest.approx(expected, rel=0.05)
    elif init_type == "kaiming":
        assert block_conv.std().item() == pytest.approx(math.sqrt(2.0 / fan_in), rel=0.05)
    else:
        rows = block_conv.flatten(1)
        assert torch.allclose(rows @ rows.T, 0.02**2 * torch.eye(rows.shape[0]), atol=1e-6)


def test_init_flag_and_init_errors() -> None:
    torch.manual_seed(0)
    cfg = GeneratorConfig(name="resnet_6blocks", ngf=8, init_gain=0.5)
    initialised = build_generator(cfg).model[1].weight
    default = build_generator(cfg, init=False).model[1].weight
    assert initialised.std().item() == pytest.approx(0.5, rel=0.1)
    assert default.std().item() < 0.2  # PyTorch's own default init, untouched
    with pytest.raises(ValueError, match="'uniform'"):
        init_weights(nn.Conv2d(1, 1, 1), "uniform")
    with pytest.raises(ValueError, match="-1"):
        init_weights(nn.Conv2d(1, 1, 1), "normal", -1.0)


@pytest.mark.parametrize(
    ("cls", "kwargs", "fragment"),
    [
        (GeneratorConfig, {"name": "resnet_12blocks"}, "'resnet_12blocks'"),
        (GeneratorConfig, {"norm": "group"}, "'group'"),
        (GeneratorConfig, {"init_type": "uniform"}, "'uniform'"),
        (GeneratorConfig, {"input_nc": 0}, "input_nc=0: expected a positive integer"),
        (GeneratorConfig, {"output_nc": 2.5}, "output_nc=2.5"),
        (GeneratorConfig, {"ngf": True}, "ngf=True: expected a positive integer"),
        (GeneratorConfig, {"dropout": "yes"}, "'yes'"),
        (GeneratorConfig, {"init_gain": float("nan")}, "nan"),
        (DiscriminatorConfig, {"name": "patch"}, "'patch'"),
        (DiscriminatorConfig, {"ndf": -8}, "-8"),
        (DiscriminatorConfig, {"n_layers": 0}, "n_layers=0: expected a positive integer"),
        (DiscriminatorConfig, {"name": "basic", "n_layers": 5}, "n_layers=5"),
        (DiscriminatorConfig, {"norm": "layer"}, "'layer'"),
    ],
)
def test_bad_config_values(cls: type, kwargs: dict, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        cls(**kwargs)
    assert fragment in str(info.value)
    assert any(word in str(info.value) for word in ("expected", "must be", "use", "is not one of"))


def test_config_dict_round_trip_and_unknown_keys() -> None:
    cfg = GeneratorConfig(name="unet_128", ngf=8, norm="batch", dropout=True)
    assert config_from_dict("generator", config_to_dict(cfg)) == cfg
    d_cfg = DiscriminatorConfig(name="n_layers", n_layers=4)
    assert config_from_dict("discriminator", config_to_dict(d_cfg)) == d_cfg
    with pytest.raises(ValueError, match="'n_blocks'"):
        config_from_dict("generator", {"name": "resnet_9blocks", "n_blocks": 9})
    with pytest.raises(ValueError, match="'encoder'"):
        config_from_dict("encoder", {})


def test_list_models_and_size_multiple() -> None:
    infos = {info.name: info for info in list_models()}
    assert set(infos) == set(generator_names()) | set(text_generator_names()) | set(discriminator_names())
    assert infos["unet_256"].kind == "generator" and infos["pixel"].kind == "discriminator"
    assert infos["resnet_9blocks"].num_params == 11_378_179
    assert all(info.description for info in infos.values())
    pixel = build_discriminator(DiscriminatorConfig(name="pixel"), init=False)
    assert infos["pixel"].num_params == sum(p.numel() for p in pixel.parameters())
    assert [size_multiple(n) for n in generator_names()] == [4, 4, 4, 128, 256]
    with pytest.raises(ValueError, match="'unet_512'"):
        size_multiple("unet_512")


def test_register_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_GENERATORS", dict(registry._GENERATORS))

    @register_generator("resnet_2blocks", "ResNet, 2 residual blocks", size_multiple=4)
    def _resnet_2blocks(cfg: GeneratorConfig) -> nn.Module:
        return ResnetGenerator(cfg.input_nc, cfg.output_nc, cfg.ngf, cfg.norm, cfg.dropout, n_blocks=2)

    g = build_generator(GeneratorConfig(name="resnet_2blocks", ngf=8))
    assert sum(".conv_block.1.weight" in k for k in g.state_dict()) == 2
    with pytest.raises(ValueError, match="already registered"):
        register_generator("resnet_2blocks", "again", size_multiple=4)(_resnet_2blocks)


def test_build_rejects_wrong_config_type() -> None:
    with pytest.raises(TypeError, match="DiscriminatorConfig"):
        build_generator(DiscriminatorConfig())  # type: ignore[arg-type]

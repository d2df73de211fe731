"""Tiled inference: the tile grid, exactness on per-pixel functions, seams, batching, errors."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from translate.core.errors import InvalidValueError
from translate.deploy.tiling import check_tile, pad_end, tile_grid, translate_tiled
from translate.models import GeneratorConfig, build_generator

pytestmark = pytest.mark.usefixtures("single_thread")


def _random_image(batch: int, channels: int, height: int, width: int, seed: int = 0) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, channels, height, width, generator=generator) * 2 - 1


# ---------------------------------------------------------------------------------------------
# tile_grid


@pytest.mark.parametrize("length, tile, overlap", [
    (160, 64, 16), (96, 64, 16), (64, 64, 16), (65, 64, 16), (1000, 256, 32), (130, 32, 0),
    (127, 32, 15), (7, 4, 1), (40, 64, 16), (1, 4, 0),
])
def test_tile_grid_covers_every_pixel(length: int, tile: int, overlap: int) -> None:
    starts = tile_grid(length, tile, overlap)
    assert starts[0] == 0
    if length <= tile:
        assert starts == [0]
        return
    assert starts[-1] + tile == length  # the last tile ends flush with the border
    assert all(0 <= s <= length - tile for s in starts)  # no tile reaches beyond the image
    steps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert all(step == tile - overlap for step in steps[:-1])
    assert 0 < steps[-1] <= tile - overlap  # the shifted last tile overlaps at least `overlap`
    covered = torch.zeros(length, dtype=torch.bool)
    for start in starts:
        covered[start:start + tile] = True
    assert covered.all()


def test_tile_grid_example() -> None:
    assert tile_grid(160, 64, 16) == [0, 48, 96]
    assert tile_grid(100, 64, 16) == [0, 36]


@pytest.mark.parametrize("length, tile, overlap, bad", [
    (0, 64, 16, "0"), (100, 0, 0, "0"), (100, 64, -1, "-1"), (100, 64, 32, "32"), (100, 64, 40, "40"),
])
def test_tile_grid_rejects_bad_arguments(length: int, tile: int, overlap: int, bad: str) -> None:
    with pytest.raises(ValueError, match=bad):
        tile_grid(length, tile, overlap)


# ---------------------------------------------------------------------------------------------
# exactness: blending is a normalised weighted mean, so per-pixel functions pass through unchanged


@pytest.mark.parametrize("batch, channels, height, width", [
    (1, 3, 64, 64),  # exactly one tile
    (1, 3, 100, 130),  # non-multiples, shifted last tiles
    (2, 3, 40, 50),  # smaller than a tile: padded (reflect) and cropped
    (1, 1, 37, 200),  # short in H, tiled in W
    (2, 4, 150, 3),  # 3 px wide: pad larger than the image, replicate
    (1, 3, 161, 97),
])
@pytest.mark.parametrize("name, fn", [("identity", lambda t: t), ("tanh", lambda t: torch.tanh(2 * t))])
def test_per_pixel_function_tiled_equals_untiled(batch: int, channels: int, height: int, width: int,
                                                 name: str, fn) -> None:
    x = _random_image(batch, channels, height, width)
    out = translate_tiled(fn, x, tile=64, overlap=16, multiple=4, max_batch=3)
    assert out.shape == (batch, channels, height, width)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, fn(x), atol=1e-6, rtol=0)


def test_tile_sizes_are_multiples() -> None:
    shapes: list[tuple[int, ...]] = []

    def run(tiles: Tensor) -> Tensor:
        shapes.append(tuple(tiles.shape))
        return tiles

    x = _random_image(1, 3, 100, 300)
    out = translate_tiled(run, x, tile=256, overlap=32, multiple=256)  # a unet_256 setting
    torch.testing.assert_close(out, x, atol=1e-6, rtol=0)
    # H (100) is padded up to one 256 tile; W (300) is covered by two flush 256 tiles.
    assert shapes == [(2, 3, 256, 256)]


def test_output_channels_may_differ() -> None:
    x = _random_image(2, 3, 70, 90)
    out = translate_tiled(lambda t: t.mean(dim=1, keepdim=True), x, tile=32, overlap=8, multiple=4)
    assert out.shape == (2, 1, 70, 90)
    torch.testing.assert_close(out, x.mean(dim=1, keepdim=True), atol=1e-6, rtol=0)


def test_constant_input_stays_constant() -> None:
    # Pixels covered by one tile only (image corners) come back bit-exact: weight 1, no ramp to 0.
    x = torch.full((1, 3, 150, 170), 0.37)
    out = translate_tiled(lambda t: t, x, tile=64, overlap=16, multiple=4)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, x, atol=1e-6, rtol=0)
    # tile_grid: rows [0, 48, 86], columns [0, 48, 96, 106]; one tile only left of 48 and at the
    # bottom-right below row 112 and right of column 160.
    assert torch.equal(out[..., :48, :48], x[..., :48, :48])
    assert torch.equal(out[..., 112:, 160:], x[..., 112:, 160:])


def test_float64_input_gives_float32_and_tiles_keep_input_dtype() -> None:
    dtypes: list[torch.dtype] = []

    def run(tiles: Tensor) -> Tensor:
        dtypes.append(tiles.dtype)
        return tiles

    x = _random_image(1, 3, 80, 80).double()
    out = translate_tiled(run, x, tile=32, overlap=8, multiple=4)
    assert out.dtype == torch.float32
    assert set(dtypes) == {torch.float64}
    torch.testing.assert_close(out, x.float(), atol=1e-6, rtol=0)


def test_gradients_flow_to_the_input() -> None:
    x = _random_image(1, 2, 50, 70).requires_grad_()
    translate_tiled(lambda t: torch.tanh(2 * t), x, tile=32, overlap=8, multiple=4).sum().backward()
    expected = 2 * (1 - torch.tanh(2 * x.detach()) ** 2)
    torch.testing.assert_close(x.grad, expected, atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------
# memory bound


@pytest.mark.parametrize("max_batch", [1, 3, 4, 100])
def test_run_never_gets_more_than_max_batch_tiles(max_batch: int) -> None:
    sizes: list[int] = []

    def run(tiles: Tensor) -> Tensor:
        sizes.append(tiles.shape[0])
        return tiles

    x = _random_image(2, 3, 96, 160)  # 2 images x (2 x 3) tiles of 64 with overlap 16
    translate_tiled(run, x, tile=64, overlap=16, multiple=4, max_batch=max_batch)
    assert max(sizes) <= max_batch
    assert sum(sizes) == 12
    assert len(sizes) == -(-12 // max_batch)


# ---------------------------------------------------------------------------------------------
# seams through an instance-norm generator


def _smooth_generator(seed: int) -> nn.Module:
    """A ResNet generator (ngf 8, instance norm) that maps smooth inputs to smooth outputs.

    The default random init gives checkerboard textures (transposed convolutions), whose
    adjacent-pixel differences would drown any seam. Here every kernel is a random channel mix
    times a tent (bilinear for the transposed convolutions), like a trained model's smooth
    response; instance norm still sees per-tile statistics, so tiles disagree near their edges.
    """
    torch.manual_seed(seed)
    g = build_generator(GeneratorConfig(name="resnet_6blocks", ngf=8, norm="instance"))
    with torch.no_grad():
        for module in g.modules():
            if not isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                continue
            size = module.kernel_size[0]
            tent = 1 - (torch.arange(size) - (size - 1) / 2).abs() / ((size + 1) / 2)
            kernel = torch.outer(tent, tent)
            transposed = isinstance(module, nn.ConvTranspose2d)
            kernel = kernel / tent.max() ** 2 if transposed else kernel / kernel.sum()
            c_first, c_second = module.weight.shape[:2]
            fan_in = c_first if transposed else c_second
            mix = torch.randn(c_first, c_second) / fan_in ** 0.5
            module.weight.copy_(mix[:, :, None, None] * kernel)
            if module.bias is not None:
                module.bias.zero_()
    return g.eval()


def _smooth_input(height: int = 96, width: int = 160) -> Tensor:
    ramp = (torch.linspace(-0.8, 0.8, width).view(1, 1, 1, width)
            + torch.linspace(-0.5, 0.5, height).view(1, 1, height, 1))
    return ramp * torch.tensor([1.0, 0.6, -0.7]).view(1, 3, 1, 1)


def _seam_ratio(out: Tensor, tile: int, overlap: int) -> float:
    """Worst mean |difference| between adjacent columns (rows) across a tile edge inside the image,
    over the median adjacent difference of the whole image."""
    height, width = out.shape[-2:]
    ratios = []
    for axis, length in ((-1, width), (-2, height)):
        diff = out.diff(dim=axis).abs()
        profile = diff.mean(dim=(0, 1, 2) if axis == -1 else (0, 1, 3))  # profile[i]: between i, i+1
        starts = tile_grid(length, tile, overlap)
        edges = {p for s in starts for p in (s, s + tile) if 0 < p < length}
        ratios.append(max(profile[p - 1] for p in edges) / profile.median())
    return max(ratios).item()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_blending_hides_seams(seed: int) -> None:
    g = _smooth_generator(seed)
    x = _smooth_input()
    with torch.inference_mode():
        untiled = g(x)
        blended = translate_tiled(g, x, tile=64, overlap=16, multiple=4)
        pasted = translate_tiled(g, x, tile=64, overlap=0, multiple=4)
    assert untiled.std() > 0.1  # the model's output is not flat, so seams could show
    assert (blended - untiled).abs().mean() > 0.05  # tiles do see their own statistics
    blended_ratio = _seam_ratio(blended, tile=64, overlap=16)
    pasted_ratio = _seam_ratio(pasted, tile=64, overlap=0)
    # Measured: blended 0.9-1.5, untiled 1.1-1.4, pasted 5-24, blended without the ramps 5-11.
    assert blended_ratio < 3, f"seam {blended_ratio:.2f}x the median adjacent difference"
    assert pasted_ratio > 3, f"pasted tiles should show seams, got {pasted_ratio:.2f}"
    assert blended_ratio < pasted_ratio / 2


# ---------------------------------------------------------------------------------------------
# errors


@pytest.mark.parametrize("tile, multiple, nearest", [
    (100, 64, 128), (70, 64, 64), (2, 4, 4), (0, 4, 4), (-8, 4, 4),
    (6, 4, 4), (10, 4, 8),  # halfway: the smaller tile, which needs less memory
])
def test_bad_tile_names_the_nearest_multiple(tile: int, multiple: int, nearest: int) -> None:
    with pytest.raises(InvalidValueError) as error:
        translate_tiled(lambda t: t, torch.zeros(1, 3, 80, 80), tile=tile, overlap=0, multiple=multiple)
    assert (error.value.parameter, error.value.value) == ("tile", tile)
    assert str(error.value) == (f"tile={tile}: expected a positive multiple of the model's size multiple "
                                f"{multiple}; the nearest is {nearest}")


def test_bad_multiple_raises() -> None:
    with pytest.raises(InvalidValueError, match="multiple=0: expected a positive integer"):
        check_tile(64, 0, 0)


@pytest.mark.parametrize("overlap, nearest", [(-1, 0), (32, 31), (64, 31), (100, 31), (1.5, 0)])
def test_bad_overlap_names_the_nearest_overlap(overlap: int, nearest: int) -> None:
    with pytest.raises(InvalidValueError) as error:
        translate_tiled(lambda t: t, torch.zeros(1, 3, 80, 80), tile=64, overlap=overlap, multiple=4)
    assert (error.value.parameter, error.value.value) == ("overlap", overlap)
    assert str(error.value).startswith(f"overlap={overlap!r}: expected an integer in 0..31 for tile=64; "
                                       f"the nearest is {nearest}")


def test_check_tile_accepts_the_limits() -> None:
    check_tile(64, 31, 4)  # the largest overlap
    check_tile(1, 0, 1)  # the smallest tile, without overlap
    with pytest.raises(InvalidValueError, match="tile=1.0: expected a positive integer; the nearest is 1"):
        check_tile(1.0, 0, 1)  # type: ignore[arg-type]


def test_pad_end_reflects_per_axis_and_repeats_where_it_cannot() -> None:
    x = torch.arange(3 * 10, dtype=torch.float).reshape(1, 1, 3, 10)  # a strip: 3 rows, 10 columns
    padded = pad_end(x, 8, 12)
    assert padded.shape == (1, 1, 8, 12)
    assert torch.equal(padded[..., :3, :10], x)
    assert torch.equal(padded[..., :3, 10:], x[..., [8, 7]])  # 2 < 10 columns: reflected
    assert torch.equal(padded[..., 3:, :10], x[..., 2:3, :].expand(-1, -1, 5, -1))  # 5 >= 3 rows: repeated
    assert pad_end(x, 3, 10) is x


@pytest.mark.parametrize("x, match", [
    (torch.zeros(3, 80, 80), r"\(B, C, H, W\) tensor, got \(3, 80, 80\)"),
    (torch.zeros(1, 1, 3, 80, 80), r"got \(1, 1, 3, 80, 80\)"),
    (torch.zeros(1, 3, 80, 80, dtype=torch.uint8), "float tensor.*torch.uint8"),
    (torch.zeros(1, 3, 0, 80), r"not be empty.*\(1, 3, 0, 80\)"),
])
def test_bad_input_raises(x: Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        translate_tiled(lambda t: t, x, tile=64, overlap=16, multiple=4)


def test_bad_max_batch_raises() -> None:
    with pytest.raises(InvalidValueError, match="max_batch=0: expected a positive integer"):
        translate_tiled(lambda t: t, torch.zeros(1, 3, 80, 80), tile=64, overlap=16, multiple=4, max_batch=0)


def test_run_changing_the_size_raises() -> None:
    with pytest.raises(ValueError, match=r"returned \(4, 3, 32, 32\)"):
        translate_tiled(lambda t: t[..., ::2, ::2], torch.zeros(1, 3, 80, 80),
                        tile=64, overlap=16, multiple=4)

"""Tests for translate.data: decoding, preprocessing, datasets, collate, sampler. All files in tmp_path."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, DistributedSampler

from translate.data import (
    ImageReadError,
    PairedDataset,
    PreprocessConfig,
    ResumableSampler,
    UnpairedDataset,
    augment_batch,
    augment_pair,
    collate_images,
    convert_channels,
    eval_transform,
    list_images,
    load_image,
    prepare_image,
    resize_for_batching,
    to_uint8_tensor,
)
from translate.data.images import ImageTooLargeError, decode_image

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
MAPS = SHARED / "datasets" / "maps"


def _rgb(height: int = 24, width: int = 32, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _save(img: Image.Image, path: Path, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kwargs)
    return path


def _write_images(folder: Path, count: int, size: tuple[int, int] = (24, 32), ext: str = "png") -> list[Path]:
    return [_save(_rgb(*size, seed=i), folder / f"{i:03d}.{ext}") for i in range(count)]


# --- images --------------------------------------------------------------------------------------


def test_list_images_sorted_case_insensitive_hidden_skipped(tmp_path: Path) -> None:
    for name in ["b.png", "A.JPG", "c.TiFf", "sub/d.jpeg", ".hidden.png", ".cache/e.png", "notes.txt", "f.webp"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    names = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)]
    assert names == ["A.JPG", "b.png", "c.TiFf", "f.webp", "sub/d.jpeg"]
    flat = [p.name for p in list_images(tmp_path, recursive=False)]
    assert flat == ["A.JPG", "b.png", "c.TiFf", "f.webp"]


def test_list_images_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        list_images(tmp_path / "nowhere")


def test_palette_with_transparency(tmp_path: Path) -> None:
    img = Image.new("P", (8, 4))
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.paste(1, (4, 0, 8, 4))  # left half index 0 (red, transparent), right half index 1 (blue)
    path = _save(img, tmp_path / "p.png", transparency=0)
    rgb = np.asarray(load_image(path, 3))
    assert rgb.shape == (4, 8, 3)
    # Alpha dropped as the reference's .convert("RGB") does: colours stay, no compositing.
    assert (rgb[:, :4] == [255, 0, 0]).all() and (rgb[:, 4:] == [0, 0, 255]).all()
    rgba = np.asarray(load_image(path, 4))
    assert (rgba[:, :4, 3] == 0).all() and (rgba[:, 4:, 3] == 255).all()


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "1"])
def test_gray_and_alpha_modes(tmp_path: Path, mode: str) -> None:
    source = _rgb(6, 10).convert(mode)
    path = _save(source, tmp_path / "x.png")
    rgb = np.asarray(load_image(path, 3))
    expected = np.asarray(source.convert("RGBA").convert("RGB"))
    np.testing.assert_array_equal(rgb, expected)
    gray = load_image(path, 1)
    assert gray.mode == "L" and gray.size == (10, 6)


def test_rgba_alpha_is_dropped_not_composited(tmp_path: Path) -> None:
    array = np.zeros((4, 4, 4), dtype=np.uint8)
    array[..., 0] = 200  # red under a fully transparent alpha
    path = _save(Image.fromarray(array), tmp_path / "a.png")
    assert (np.asarray(load_image(path, 3))[..., 0] == 200).all()


def test_16_bit_png_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    path = _save(Image.fromarray(values), tmp_path / "deep.png")
    with Image.open(path) as raw:
        assert raw.mode.startswith("I")
    gray = np.asarray(load_image(path, 1))
    np.testing.assert_array_equal(gray, [[0, 1, 128, 255]])


@pytest.mark.parametrize(
    ("mode", "raw", "expected"),
    [
        ("I;16B", np.array([[0, 65535]], dtype=">u2"), [0, 255]),
        ("I", np.array([[0, 65535]], dtype=np.int32), [0, 255]),
        ("I", np.array([[-100, 100]], dtype=np.int32), [0, 255]),  # outside 16 bit: stretched
        ("F", np.array([[0.0, 0.5, 1.0]], dtype=np.float32), [0, 128, 255]),
        ("F", np.array([[-5.0, 1000.0]], dtype=np.float32), [0, 255]),  # HDR: stretched, not clipped
    ],
)
def test_high_depth_modes(mode: str, raw: np.ndarray, expected: list[int]) -> None:
    img = Image.frombytes(mode, (raw.shape[1], 1), raw.tobytes())
    assert img.mode == mode
    np.testing.assert_array_equal(np.asarray(convert_channels(img, 1))[0], expected)
    assert convert_channels(img, 3).mode == "RGB"


def test_cmyk_jpeg_and_ycbcr(tmp_path: Path) -> None:
    path = _save(_rgb(8, 12).convert("CMYK"), tmp_path / "cmyk.jpg")
    with Image.open(path) as raw:
        assert raw.mode == "CMYK"
    rgb = load_image(path, 3)
    assert rgb.mode == "RGB" and rgb.size == (12, 8)
    assert convert_channels(_rgb(8, 12).convert("YCbCr"), 3).size == (12, 8)


def test_exif_orientation_applied(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = _save(_rgb(20, 40), tmp_path / "rotated.jpg", exif=exif)
    with Image.open(path) as raw:
        assert raw.size == (40, 20)
    assert load_image(path, 3).size == (20, 40)


@pytest.mark.parametrize(("channels", "mode"), [(1, "L"), (3, "RGB"), (4, "RGBA")])
def test_channel_conversion_and_tensor(tmp_path: Path, channels: int, mode: str) -> None:
    path = _save(_rgb(6, 10).convert("L"), tmp_path / "g.png")
    img = load_image(path, channels)
    assert img.mode == mode
    tensor = to_uint8_tensor(img)
    assert tensor.shape == (channels, 6, 10) and tensor.dtype == torch.uint8
    with Image.open(path) as raw:
        np.testing.assert_array_equal(tensor[0].numpy(), np.asarray(raw))


@pytest.mark.parametrize("channels", [0, 2, 5])
def test_bad_channel_count(tmp_path: Path, channels: int) -> None:
    with pytest.raises(ValueError, match=str(channels)):
        load_image(tmp_path / "never_read.png", channels)


def test_to_uint8_tensor_rejects_palette() -> None:
    with pytest.raises(ValueError, match="'P'"):
        to_uint8_tensor(Image.new("P", (2, 2)))


def _bad_files(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    good_png = folder / "good.png"
    _rgb(64, 64).save(good_png)
    good_jpg = folder / "good.jpg"
    _rgb(64, 64).save(good_jpg)
    files = {
        "zero": folder / "zero.png",
        "text": folder / "text.jpg",
        "garbage": folder / "garbage.png",
        "truncated_png": folder / "truncated.png",
        "truncated_jpg": folder / "truncated2.jpg",
    }
    files["zero"].write_bytes(b"")
    files["text"].write_text("not an image\n")
    files["garbage"].write_bytes(good_png.read_bytes()[:30] + bytes(range(256)) * 8)
    files["truncated_png"].write_bytes(good_png.read_bytes()[: good_png.stat().st_size // 2])
    files["truncated_jpg"].write_bytes(good_jpg.read_bytes()[: good_jpg.stat().st_size // 2])
    good_png.unlink()
    good_jpg.unlink()
    return files


@pytest.mark.parametrize("kind", ["zero", "text", "garbage", "truncated_png", "truncated_jpg", "missing"])
def test_unreadable_files_raise_image_read_error(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "missing.png" if kind == "missing" else _bad_files(tmp_path)[kind]
    with pytest.raises(ImageReadError) as info:
        load_image(path, 3)
    assert isinstance(info.value, OSError)
    assert str(path) in str(info.value) and info.value.reason
    assert info.value.path == str(path)


# --- preprocessing -------------------------------------------------------------------------------


def test_preprocess_config_validation() -> None:
    with pytest.raises(ValueError, match="preprocess='bogus' is not one of resize_and_crop.*scale_width_and_crop"):
        PreprocessConfig(preprocess="bogus")
    with pytest.raises(ValueError, match="crop_size \\(300\\).*load_size \\(286\\)"):
        PreprocessConfig(crop_size=300)
    with pytest.raises(ValueError, match="load_size"):
        PreprocessConfig(load_size=0)
    PreprocessConfig(preprocess="crop", load_size=16, crop_size=32)  # crop mode ignores load_size


@pytest.mark.parametrize(
    ("mode", "size_in", "size_out"),
    [
        ("resize_and_crop", (50, 30), (40, 40)),
        ("scale_width", (50, 30), (40, 32)),  # height max(40 * 30 / 50, crop 32)
        ("scale_width_and_crop", (30, 60), (40, 80)),
        ("crop", (50, 30), (50, 30)),
        ("none", (50, 30), (50, 30)),
    ],
)
def test_resize_for_batching(mode: str, size_in: tuple[int, int], size_out: tuple[int, int]) -> None:
    cfg = PreprocessConfig(preprocess=mode, load_size=40, crop_size=32)
    assert resize_for_batching(_rgb(size_in[1], size_in[0]), cfg).size == size_out


@pytest.mark.parametrize(
    ("mode", "hw_in", "hw_out"),
    [
        ("resize_and_crop", (40, 40), (32, 32)),
        ("crop", (36, 50), (32, 32)),
        ("scale_width_and_crop", (48, 40), (32, 32)),
        ("scale_width", (31, 42), (32, 40)),  # Python rounding as the reference: 42 / 4 = 10.5 -> 40
        ("none", (30, 50), (32, 48)),
    ],
)
@pytest.mark.parametrize("channels", [1, 4])
def test_augment_and_eval_shapes(mode: str, hw_in: tuple[int, int], hw_out: tuple[int, int], channels: int) -> None:
    cfg = PreprocessConfig(preprocess=mode, load_size=40, crop_size=32)
    x = torch.randint(0, 256, (3, channels, *hw_in), dtype=torch.uint8)
    for out in (augment_batch(x, cfg, torch.Generator().manual_seed(0)), eval_transform(x, cfg)):
        assert out.shape == (3, channels, *hw_out) and out.dtype == torch.float32
        assert out.min() >= -1.0 and out.max() <= 1.0


def test_augment_draws_documented_parameters_exactly() -> None:
    cfg = PreprocessConfig(load_size=40, crop_size=32)
    x = torch.randint(0, 256, (6, 3, 40, 40), dtype=torch.uint8)
    out = augment_batch(x, cfg, torch.Generator().manual_seed(3))
    replay = torch.Generator().manual_seed(3)
    tops = torch.randint(0, 9, (6,), generator=replay)
    lefts = torch.randint(0, 9, (6,), generator=replay)
    flips = torch.rand(6, generator=replay) < 0.5
    for i in range(6):
        window = x[i, :, tops[i] : tops[i] + 32, lefts[i] : lefts[i] + 32].float() / 127.5 - 1
        expected = window.flip(-1) if flips[i] else window
        torch.testing.assert_close(out[i], expected, rtol=0, atol=1e-6)


def test_augment_independent_per_sample_and_deterministic() -> None:
    cfg = PreprocessConfig(load_size=48, crop_size=32)
    x = torch.randint(0, 256, (1, 3, 48, 48), dtype=torch.uint8).expand(16, -1, -1, -1)
    first = augment_batch(x, cfg, torch.Generator().manual_seed(7))
    again = augment_batch(x, cfg, torch.Generator().manual_seed(7))
    other = augment_batch(x, cfg, torch.Generator().manual_seed(8))
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.equal(first, other)
    distinct = {first[i].numpy().tobytes() for i in range(16)}
    assert len(distinct) > 8  # windows and flips are drawn per sample


def test_augment_flip_only_and_float_input() -> None:
    cfg = PreprocessConfig(preprocess="none", flip=True)
    x = torch.randint(0, 256, (32, 1, 8, 8), dtype=torch.uint8)
    out = augment_batch(x, cfg, torch.Generator().manual_seed(0))
    plain = x.float() / 127.5 - 1
    flipped = [bool(torch.equal(out[i], plain[i].flip(-1))) for i in range(32)]
    kept = [bool(torch.equal(out[i], plain[i])) for i in range(32)]
    assert all(f or k for f, k in zip(flipped, kept, strict=False)) and any(flipped) and any(kept)
    as_float = augment_batch(x.float(), cfg, torch.Generator().manual_seed(0))
    torch.testing.assert_close(as_float, out)
    no_flip = augment_batch(x, PreprocessConfig(preprocess="none", flip=False))
    torch.testing.assert_close(no_flip, plain)


def test_augment_gradients_flow() -> None:
    cfg = PreprocessConfig(load_size=16, crop_size=8)
    x = (torch.rand(2, 3, 16, 16) * 255).requires_grad_()
    augment_batch(x, cfg, torch.Generator().manual_seed(0)).sum().backward()
    assert x.grad is not None
    assert int((x.grad != 0).sum()) == 2 * 3 * 8 * 8  # exactly the cropped pixels


def test_augment_pair_keeps_alignment_with_mixed_channels() -> None:
    cfg = PreprocessConfig(load_size=40, crop_size=24)
    gray = torch.randint(0, 256, (8, 1, 40, 40), dtype=torch.uint8)
    rgb = gray.expand(-1, 3, -1, -1)
    a, b = augment_pair(gray, rgb, cfg, torch.Generator().manual_seed(1))
    assert a.shape == (8, 1, 24, 24) and b.shape == (8, 3, 24, 24)
    for channel in range(3):
        torch.testing.assert_close(b[:, channel : channel + 1], a, rtol=0, atol=0)
    same = torch.randint(0, 256, (8, 3, 40, 40), dtype=torch.uint8)
    both = augment_batch(torch.cat([same, same], dim=1), cfg, torch.Generator().manual_seed(2))
    torch.testing.assert_close(both[:, :3], both[:, 3:], rtol=0, atol=0)


def test_eval_transform_center_crop_no_randomness() -> None:
    cfg = PreprocessConfig(preprocess="crop", crop_size=4, flip=True)
    x = torch.arange(2 * 1 * 7 * 9, dtype=torch.uint8).view(2, 1, 7, 9)
    out = eval_transform(x, cfg)
    expected = x[..., 2:6, 2:6].float() / 127.5 - 1  # round(3 / 2) = 2, round(5 / 2) = 2
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_transform_errors() -> None:
    cfg = PreprocessConfig(preprocess="crop", crop_size=32)
    with pytest.raises(ValueError, match="unsqueeze"):
        augment_batch(torch.zeros(3, 40, 40, dtype=torch.uint8), cfg)
    with pytest.raises(ValueError, match="int32"):
        augment_batch(torch.zeros(1, 3, 40, 40, dtype=torch.int32), cfg)
    with pytest.raises(ValueError, match="32x32.*20x40"):
        augment_batch(torch.zeros(1, 3, 20, 40, dtype=torch.uint8), cfg)
    with pytest.raises(ValueError, match="20x40"):
        eval_transform(torch.zeros(1, 3, 20, 40, dtype=torch.uint8), cfg)
    with pytest.raises(ValueError, match="same batch size"):
        augment_pair(torch.zeros(1, 1, 40, 40), torch.zeros(1, 3, 40, 36), cfg)


# --- datasets ------------------------------------------------------------------------------------

SMALL = PreprocessConfig(load_size=36, crop_size=32)


def test_unpaired_items_and_length(tmp_path: Path) -> None:
    _write_images(tmp_path / "trainA", 3)
    _write_images(tmp_path / "trainB", 5, ext="jpg")
    dataset = UnpairedDataset(tmp_path, channels_a=1, channels_b=4, preprocess=SMALL)
    assert len(dataset) == 5
    item = dataset[4]
    assert item["a"].shape == (1, 36, 36) and item["b"].shape == (4, 36, 36)
    assert item["a"].dtype == torch.uint8
    assert item["path_a"].endswith("trainA/001.png")  # 4 % 3
    assert "5 in trainB/" in dataset.describe()
    with pytest.raises(IndexError):
        dataset[5]


def test_unpaired_b_choice_deterministic_per_seed_epoch_index(tmp_path: Path) -> None:
    _write_images(tmp_path / "testA", 2, size=(8, 8))
    _write_images(tmp_path / "testB", 7, size=(8, 8))

    def choices(seed: int, epoch: int) -> list[str]:
        dataset = UnpairedDataset(tmp_path, phase="test", preprocess=PreprocessConfig("none"), seed=seed)
        dataset.set_epoch(epoch)
        return [Path(dataset[i]["path_b"]).name for i in range(len(dataset))]

    first = choices(0, 1)
    assert first == choices(0, 1)
    expected = [f"{random.Random(f'0:1:{i}').randrange(7):03d}.png" for i in range(7)]
    assert first == expected
    assert first != choices(0, 2) and first != choices(1, 1)


def test_unpaired_missing_or_empty_folders(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist") as info:
        UnpairedDataset(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(info.value) and "trainA/" in str(info.value)
    _write_images(tmp_path / "trainA", 1, size=(8, 8))
    with pytest.raises(FileNotFoundError, match="trainB") as info:
        UnpairedDataset(tmp_path)
    assert "`-- trainB/" in str(info.value)
    (tmp_path / "trainB").mkdir()
    (tmp_path / "trainB" / "readme.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="holds no images"):
        UnpairedDataset(tmp_path)
    with pytest.raises(ValueError, match="channels_b"):
        UnpairedDataset(tmp_path, channels_b=2)


def test_bad_files_are_skipped_and_reported(tmp_path: Path) -> None:
    _write_images(tmp_path / "trainA", 2, size=(40, 40))
    bad = _bad_files(tmp_path / "trainA")
    _write_images(tmp_path / "trainB", 1, size=(40, 40))
    dataset = UnpairedDataset(tmp_path, preprocess=SMALL)
    assert len(dataset) == 2 + len(bad)
    loader = DataLoader(dataset, batch_size=len(dataset), collate_fn=collate_images)
    batch = next(iter(loader))
    assert batch["a"].shape == (2, 3, 36, 36) and len(batch["path_a"]) == 2
    assert sorted(path for path, _ in batch["skipped"]) == sorted(str(p) for p in bad.values())
    assert all(reason for _, reason in batch["skipped"])
    only_bad = collate_images([dataset[i] for i in range(len(dataset)) if "truncated" in dataset.paths_a[i].name])
    assert set(only_bad) == {"skipped"} and len(only_bad["skipped"]) == 2


def test_collate_rejects_mixed_sizes() -> None:
    items = [{"a": torch.zeros(3, 8, 8, dtype=torch.uint8)}, {"a": torch.zeros(3, 8, 12, dtype=torch.uint8)}]
    with pytest.raises(ValueError, match="resize_and_crop.*batch_size=1"):
        collate_images(items)
    assert collate_images(items[:1])["skipped"] == []


def test_dataset_through_worker_process(tmp_path: Path) -> None:
    _write_images(tmp_path / "trainA", 2, size=(40, 40))
    (tmp_path / "trainA" / "broken.png").write_bytes(b"\x89PNG broken")
    _write_images(tmp_path / "trainB", 2, size=(40, 40))
    loader = DataLoader(
        UnpairedDataset(tmp_path, preprocess=SMALL), batch_size=3, num_workers=1, collate_fn=collate_images
    )
    batch = next(iter(loader))
    assert batch["a"].shape == (2, 3, 36, 36) and batch["skipped"][0][0].endswith("broken.png")


def _side_by_side(path: Path, width: int = 41, height: int = 20) -> Path:
    array = np.zeros((height, width, 3), dtype=np.uint8)
    array[:, : width // 2, 0] = 255  # A: red
    array[:, width // 2 :, 2] = 255  # B: blue
    return _save(Image.fromarray(array), path)


def test_paired_side_by_side_split(tmp_path: Path) -> None:
    _side_by_side(tmp_path / "train" / "1.png")
    dataset = PairedDataset(tmp_path, preprocess=PreprocessConfig("none"))
    assert dataset.layout == "side_by_side" and len(dataset) == 1
    item = dataset[0]
    assert item["a"].shape == item["b"].shape == (3, 20, 20)  # odd last column dropped
    assert (item["a"][0] == 255).all() and (item["a"][2] == 0).all()
    assert (item["b"][2] == 255).all() and (item["b"][0] == 0).all()
    assert item["path_a"] == item["path_b"]


def test_paired_layouts_detected_in_order(tmp_path: Path) -> None:
    root = tmp_path / "phase_ab"
    _write_images(root / "train" / "A", 2, ext="jpg")
    _write_images(root / "train" / "B", 2, ext="png")  # same names, other extension
    _write_images(root / "A", 1)  # ignored: the phase folder wins
    dataset = PairedDataset(root, preprocess=SMALL)
    assert dataset.layout == "phase_ab" and len(dataset) == 2
    assert Path(dataset[1]["path_a"]).name == "001.jpg" and Path(dataset[1]["path_b"]).name == "001.png"

    root = tmp_path / "root_ab"
    _write_images(root / "A", 3)
    _write_images(root / "B", 3)
    dataset = PairedDataset(root, phase="test", preprocess=SMALL)
    assert dataset.layout == "root_ab" and len(dataset) == 3
    assert dataset[0]["b"].shape == (3, 36, 36)
    assert "matched by name" in dataset.describe()


def test_paired_unmatched_names(tmp_path: Path) -> None:
    _write_images(tmp_path / "train" / "A", 3)
    _write_images(tmp_path / "train" / "B", 2)
    (tmp_path / "train" / "B" / "000.png").rename(tmp_path / "train" / "B" / "extra.png")
    with pytest.raises(ValueError, match="000.*002.*extra"):
        PairedDataset(tmp_path)


def test_paired_missing_layout_and_missing_half(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        PairedDataset(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message and "side by side" in message and "|-- A/" in message
    _write_images(tmp_path / "train" / "A", 1)
    with pytest.raises(FileNotFoundError, match="B does not exist"):
        PairedDataset(tmp_path)


def test_paired_size_mismatch_is_skipped(tmp_path: Path) -> None:
    _save(_rgb(32, 32), tmp_path / "A" / "x.png")
    _save(_rgb(32, 40), tmp_path / "B" / "x.png")
    dataset = PairedDataset(tmp_path, preprocess=PreprocessConfig("crop", crop_size=16))
    item = dataset[0]
    assert item["error"].endswith("x.png") and "resize_and_crop" in item["reason"]
    resized = PairedDataset(tmp_path, preprocess=SMALL)[0]
    assert resized["a"].shape == resized["b"].shape


def test_paired_pipeline_same_image_gray_and_rgb(tmp_path: Path) -> None:
    gray = _rgb(30, 30).convert("L")
    pair = Image.new("L", (60, 30))
    pair.paste(gray, (0, 0))
    pair.paste(gray, (30, 0))
    _save(pair, tmp_path / "train" / "0.png")
    dataset = PairedDataset(tmp_path, channels_a=1, channels_b=3, preprocess=SMALL)
    batch = collate_images([dataset[0]] * 4)
    a, b = augment_pair(batch["a"], batch["b"], SMALL, torch.Generator().manual_seed(0))
    assert a.shape == (4, 1, 32, 32) and b.shape == (4, 3, 32, 32)
    torch.testing.assert_close(b, a.expand(-1, 3, -1, -1), rtol=0, atol=0)


@pytest.mark.skipif(not MAPS.is_dir(), reason="shared maps dataset not available")
def test_maps_dataset_side_by_side() -> None:
    dataset = PairedDataset(MAPS, phase="train")
    assert dataset.layout == "side_by_side" and len(dataset) > 100
    item = dataset[0]
    assert item["a"].shape == item["b"].shape == (3, 286, 286)
    assert not torch.equal(item["a"], item["b"])  # photo vs map


def test_prepare_image_matches_manual() -> None:
    img = _rgb(30, 50)
    cfg = PreprocessConfig("scale_width", load_size=40, crop_size=16)
    expected = to_uint8_tensor(img.resize((40, 24), Image.Resampling.BICUBIC))
    assert torch.equal(prepare_image(img, cfg), expected)


# --- sampler -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("length", "world_size"), [(10, 3), (2, 4), (8, 2), (1, 1)])
def test_sampler_shards_cover_and_match_distributed_sampler(length: int, world_size: int) -> None:
    shards = []
    for rank in range(world_size):
        sampler = ResumableSampler(length, seed=5, rank=rank, world_size=world_size)
        sampler.set_epoch(2)
        reference = DistributedSampler(range(length), num_replicas=world_size, rank=rank, seed=5)
        reference.set_epoch(2)
        assert list(sampler) == list(reference)
        assert len(sampler) == len(reference)
        shards.append(list(sampler))
    assert len({len(shard) for shard in shards}) == 1
    flat = [i for shard in shards for i in shard]
    assert set(flat) == set(range(length))
    # Only the padding repeats: the first `length` positions of the interleaved order are distinct.
    interleaved = [shards[r][k] for k in range(len(shards[0])) for r in range(world_size)]
    assert sorted(interleaved[:length]) == list(range(length))


def test_sampler_epochs_shuffle_and_order() -> None:
    sampler = ResumableSampler(20, seed=1)
    sampler.set_epoch(0)
    epoch0 = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != epoch0 and sorted(epoch0) == list(range(20))
    assert list(ResumableSampler(5, shuffle=False)) == [0, 1, 2, 3, 4]


def test_sampler_set_start_resumes_exact_remaining_order() -> None:
    sampler = ResumableSampler(23, seed=3, rank=1, world_size=2)
    sampler.set_epoch(4)
    full = list(sampler)
    sampler.set_start(5)
    assert list(sampler) == full[5:] and len(sampler) == len(full) - 5
    sampler.set_epoch(4)  # same epoch: a resumed loop calls this again; the start must survive
    assert list(sampler) == full[5:]
    sampler.set_epoch(5)
    assert len(sampler) == len(full) and sampler.start == 0
    fresh = ResumableSampler(23, seed=3, rank=1, world_size=2)
    fresh.set_epoch(4)
    fresh.set_start(len(full))
    assert list(fresh) == [] and len(fresh) == 0


def test_sampler_errors() -> None:
    with pytest.raises(ValueError, match="rank"):
        ResumableSampler(10, rank=2, world_size=2)
    with pytest.raises(ValueError, match="length"):
        ResumableSampler(0)
    with pytest.raises(ValueError, match="\\[0, 10\\].*11"):
        ResumableSampler(10).set_start(11)


def test_decode_image_refuses_too_many_pixels_from_the_header(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (40, 30)).save(path)
    with pytest.raises(ImageTooLargeError, match="1200 pixels, more than the limit of 1000") as caught:
        decode_image(path, max_pixels=1000)
    assert (caught.value.pixels, caught.value.limit) == (1200, 1000)
    assert decode_image(path, max_pixels=1200).size == (40, 30)

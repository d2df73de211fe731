"""Tests for translate.data.cache: the decoded-once training set and its loader.

The reference for every batch is the DataLoader the training loop uses otherwise (same sampler
settings, collate_images, no workers); the cache must give the same keys and the same bytes.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

import translate.data.cache as cache_module
import translate.data.datasets as datasets_module
from translate.data import (
    CachedLoader,
    CacheTooLargeError,
    PairedDataset,
    PreprocessConfig,
    ResumableSampler,
    UnpairedDataset,
    cache_dataset,
    collate_images,
)

CFG = PreprocessConfig(load_size=32, crop_size=32)


def _image(seed: int, size: tuple[int, int] = (40, 30)) -> Image.Image:
    width, height = size
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _folder(folder: Path, count: int, seed: int = 0, size: tuple[int, int] = (40, 30)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{i:03d}.png" for i in range(count)]
    for i, path in enumerate(paths):
        _image(seed + i, size).save(path)
    return paths


def _garbage(path: Path) -> Path:
    path.write_bytes(b"this is not a png" * 8)
    return path


def _unpaired(root: Path, n_a: int = 5, n_b: int = 3) -> Path:
    _folder(root / "trainA", n_a)
    _folder(root / "trainB", n_b, seed=100)
    return root


def _paired(root: Path, layout: str, count: int = 5) -> Path:
    if layout == "phase_ab":
        _folder(root / "train" / "A", count)
        _folder(root / "train" / "B", count, seed=100)
    else:  # side_by_side: A | B in one image, 80 x 30
        _folder(root / "train", count, size=(80, 30))
    return root


def _sampler(length: int, epoch: int, start: int, **kwargs: Any) -> ResumableSampler:
    sampler = ResumableSampler(length, seed=3, **kwargs)
    sampler.set_epoch(epoch)
    sampler.set_start(start)
    return sampler


def _reference(dataset: Dataset, batch_size: int, epoch: int, start: int, **kwargs: Any) -> list[dict[str, Any]]:
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=_sampler(len(dataset), epoch, start, **kwargs),
                        collate_fn=collate_images, num_workers=0)
    return list(loader)


def _cached(cached: Any, batch_size: int, epoch: int, start: int, **kwargs: Any) -> list[dict[str, Any]]:
    cached.set_epoch(epoch)
    loader = CachedLoader(cached, _sampler(len(cached), epoch, start, **kwargs), batch_size)
    batches = list(loader)
    assert len(loader) == len(batches)
    return batches


def _assert_same(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert len(got) == len(want)
    for mine, theirs in zip(got, want, strict=True):
        assert list(mine) == list(theirs)  # same keys, same order
        for key, value in theirs.items():
            if isinstance(value, torch.Tensor):
                assert isinstance(mine[key], torch.Tensor), key
                assert mine[key].dtype == value.dtype and mine[key].shape == value.shape, key
                assert torch.equal(mine[key], value), key
            else:
                assert mine[key] == value, key


def _count_decodes(monkeypatch: pytest.MonkeyPatch) -> Counter:
    calls: Counter = Counter()
    load_image, decode_image = datasets_module.load_image, datasets_module.decode_image

    def counting_load(path: Any, *args: Any) -> Any:
        calls[str(path)] += 1
        return load_image(path, *args)

    def counting_decode(path: Any, *args: Any) -> Any:
        calls[str(path)] += 1
        return decode_image(path, *args)

    monkeypatch.setattr(datasets_module, "load_image", counting_load)
    monkeypatch.setattr(datasets_module, "decode_image", counting_decode)
    return calls


# --- the same batches as the DataLoader ------------------------------------------------------------


def test_unpaired_batches_match_dataloader(tmp_path: Path) -> None:
    dataset = UnpairedDataset(_unpaired(tmp_path), preprocess=CFG, seed=7)
    cached = cache_dataset(dataset, workers=3)
    assert len(cached) == len(dataset) == 5
    assert cached.nbytes == (5 + 3) * 3 * 32 * 32
    for epoch in (0, 1):
        for start in (0, 3):
            for batch_size in (2, 5):
                _assert_same(_cached(cached, batch_size, epoch, start), _reference(dataset, batch_size, epoch, start))
    # The B draw really changes with the epoch, so the comparison above covers the pass-through.
    draws = []
    for epoch in (0, 1):
        cached.set_epoch(epoch)
        draws.append([cached[i]["path_b"] for i in range(len(cached))])
    assert draws[0] != draws[1]


def test_unpaired_sharded_sampler(tmp_path: Path) -> None:
    dataset = UnpairedDataset(_unpaired(tmp_path), preprocess=CFG)
    cached = cache_dataset(dataset)
    for rank in (0, 1):
        got = _cached(cached, 2, 1, 1, rank=rank, world_size=2)
        _assert_same(got, _reference(dataset, 2, 1, 1, rank=rank, world_size=2))


@pytest.mark.parametrize("layout", ["phase_ab", "side_by_side"])
def test_paired_batches_match_dataloader(tmp_path: Path, layout: str) -> None:
    dataset = PairedDataset(_paired(tmp_path, layout), preprocess=CFG)
    assert dataset.layout == layout
    cached = cache_dataset(dataset)
    for start in (0, 2):
        for batch_size in (1, 2):
            _assert_same(_cached(cached, batch_size, 4, start), _reference(dataset, batch_size, 4, start))
    for i in range(len(dataset)):  # items too, not only batches
        want, got = dataset[i], cached[i]
        assert got.keys() == want.keys() and torch.equal(got["a"], want["a"]) and torch.equal(got["b"], want["b"])


class _Items(Dataset):
    """A deterministic dataset of another shape: a 0-dim tensor, a float tensor, strings, an error."""

    def __len__(self) -> int:
        return 7

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index == 4:
            return {"error": "item4.png", "reason": "broken"}
        image = torch.arange(12, dtype=torch.uint8).reshape(3, 2, 2) + index
        return {"image": image, "label": torch.tensor(index), "weight": torch.full((2,), index / 2),
                "path": f"item{index}.png", "number": index}


def test_generic_dataset_matches_dataloader() -> None:
    dataset = _Items()
    cached = cache_dataset(dataset)
    assert cached.nbytes == 7 * (12 + 8 + 2 * 4)
    for batch_size in (1, 3):
        _assert_same(_cached(cached, batch_size, 0, 0), _reference(dataset, batch_size, 0, 0))


# --- unreadable files -------------------------------------------------------------------------------


def test_unreadable_files_skipped_alike(tmp_path: Path) -> None:
    root = _unpaired(tmp_path / "unpaired")
    bad_a = _garbage(root / "trainA" / "002.png")
    _garbage(root / "trainB" / "001.png")
    dataset = UnpairedDataset(root, preprocess=CFG, seed=1)
    cached = cache_dataset(dataset)
    seen: set[str] = set()
    for epoch in (0, 1, 2):
        for batch_size in (1, 2):  # batch size 1: batches holding only {"skipped": [...]}
            got = _cached(cached, batch_size, epoch, 0)
            _assert_same(got, _reference(dataset, batch_size, epoch, 0))
            seen |= {path for batch in got for path, _ in batch["skipped"]}
    assert str(bad_a) in seen and len(seen) == 2

    # Both files of an item unreadable: A's error is the one reported, as in __getitem__.
    both = tmp_path / "both"
    _folder(both / "trainA", 2)
    _folder(both / "trainB", 1)
    bad_a, bad_b = _garbage(both / "trainA" / "001.png"), _garbage(both / "trainB" / "000.png")
    dataset = UnpairedDataset(both, preprocess=CFG)
    got = _cached(cache_dataset(dataset), 1, 0, 0)
    _assert_same(got, _reference(dataset, 1, 0, 0))
    assert sorted(path for batch in got for path, _ in batch["skipped"]) == [str(bad_a), str(bad_b)]

    paired = PairedDataset(_paired(tmp_path / "paired", "phase_ab"), preprocess=CFG)
    _garbage(tmp_path / "paired" / "train" / "B" / "003.png")
    cached = cache_dataset(paired)
    got = _cached(cached, 2, 0, 0)
    _assert_same(got, _reference(paired, 2, 0, 0))
    assert sum(len(batch["skipped"]) for batch in got) == 1


# --- refusals ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("preprocess", ["none", "scale_width", "crop"])
def test_size_keeping_modes_refused_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     preprocess: str) -> None:
    root = _unpaired(tmp_path)
    _image(9, (36, 28)).save(root / "trainA" / "010.png")  # mixed sizes, as these modes would keep them
    cfg = PreprocessConfig(preprocess=preprocess, load_size=32, crop_size=16)
    calls = _count_decodes(monkeypatch)
    paired = PairedDataset(_paired(tmp_path / "paired", "phase_ab"), preprocess=cfg)
    for dataset in (UnpairedDataset(root, preprocess=cfg), paired):
        with pytest.raises(ValueError, match=f"preprocess={preprocess!r}") as raised:
            cache_dataset(dataset)
        assert "cache_data=False" in str(raised.value) and "preprocess='resize_and_crop'" in str(raised.value)
    assert not calls


def test_generic_items_of_other_sizes_refused() -> None:
    class Sizes(_Items):
        def __getitem__(self, index: int) -> dict[str, Any]:
            return {"image": torch.zeros(3, 4 + index % 2, 4, dtype=torch.uint8), "path": f"{index}.png"}

    with pytest.raises(ValueError, match=r"item 1 \(1.png\).*\(3, 5, 4\).*\(3, 4, 4\).*cache_data=False"):
        cache_dataset(Sizes())


def test_too_large_raises_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset = UnpairedDataset(_unpaired(tmp_path), preprocess=CFG)
    calls = _count_decodes(monkeypatch)
    with pytest.raises(CacheTooLargeError, match=r"needs 0\.02 MB") as raised:  # 8 x 3 x 32 x 32 = 24,576 bytes
        cache_dataset(dataset, max_bytes=10_000)
    assert isinstance(raised.value, MemoryError)
    assert "0.01 MB" in str(raised.value) and "cache_data=False" in str(raised.value)
    assert raised.value.nbytes == 24_576 and not calls


def test_epoch_dependent_dataset_refused() -> None:
    class PerEpoch(_Items):
        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

    with pytest.raises(TypeError, match="PerEpoch.*cache_data=False"):
        cache_dataset(PerEpoch())


def test_batch_size_checked() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        CachedLoader(cache_dataset(_Items()), ResumableSampler(7), 0)


# --- decoded once; memory ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["unpaired", "phase_ab", "side_by_side"])
def test_each_file_decoded_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    if kind == "unpaired":
        dataset: Dataset = UnpairedDataset(_unpaired(tmp_path), preprocess=CFG)
        files = [*dataset.paths_a, *dataset.paths_b]
    else:
        dataset = PairedDataset(_paired(tmp_path, kind), preprocess=CFG)
        files = sorted({path for pair in dataset.pairs for path in pair})
    calls = _count_decodes(monkeypatch)
    cached = cache_dataset(dataset, workers=4)
    for epoch in (0, 1):
        assert sum(len(batch["a"]) for batch in _cached(cached, 2, epoch, 0)) == len(dataset)
    assert calls == Counter({str(path): 1 for path in files})


def test_pin_memory_without_cuda_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    dataset = UnpairedDataset(_unpaired(tmp_path), preprocess=CFG)
    with caplog.at_level(logging.INFO, logger="translate.data.cache"):
        cached = cache_dataset(dataset, pin_memory=True)
    assert cached.pin_memory == torch.cuda.is_available()
    batch = next(iter(CachedLoader(cached, ResumableSampler(len(cached)), 2)))
    assert batch["a"].is_pinned() == torch.cuda.is_available()
    assert "decoded in" in caplog.text
    if not torch.cuda.is_available():
        assert "CUDA is not available" in caplog.text


def test_pinned_batches_match_dataloader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pinned gather path (index_select into a fresh buffer), with pageable buffers standing in
    for pinned ones where there is no CUDA."""
    buffers: list[torch.Tensor] = []
    if not torch.cuda.is_available():
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(cache_module, "_pinned_buffer",
                            lambda shape, dtype: buffers.append(torch.empty(shape, dtype=dtype)) or buffers[-1])
    root = _unpaired(tmp_path)
    _garbage(root / "trainA" / "001.png")
    dataset = UnpairedDataset(root, preprocess=CFG)
    cached = cache_dataset(dataset, pin_memory=True)
    assert cached.pin_memory
    for epoch in (0, 1):
        got = _cached(cached, 2, epoch, 0)
        _assert_same(got, _reference(dataset, 2, epoch, 0))
        for batch in got:
            if "a" in batch:
                assert batch["a"].is_pinned() or any(batch["a"] is buffer for buffer in buffers)

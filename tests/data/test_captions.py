"""Tests for translate.data.captions: caption readers, domain prompts, CaptionedDataset. All in tmp_path."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from translate.data import collate_images
from translate.data.captions import CaptionedDataset, read_captions, read_domain_prompts


def _image(path: Path, size: tuple[int, int] = (40, 24), seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def _jsonl(path: Path, rows: list[dict | str]) -> None:
    path.write_text("\n".join(row if isinstance(row, str) else json.dumps(row) for row in rows) + "\n")


# --- read_captions ---------------------------------------------------------------------------------


def test_txt_captions_all_lines_or_first(tmp_path: Path) -> None:
    a = _image(tmp_path / "a.png")
    (tmp_path / "a.txt").write_text("\n  a red circle  \n\na big red disc\n")
    captions = read_captions(tmp_path)
    assert captions == {a.resolve(): ["a red circle", "a big red disc"]}
    assert all(path.is_absolute() for path in captions)
    assert read_captions(tmp_path, all_txt_lines=False) == {a.resolve(): ["a red circle"]}


def test_jsonl_captions_several_per_file_and_subfolders(tmp_path: Path) -> None:
    a, b = _image(tmp_path / "a.png"), _image(tmp_path / "sub" / "b.jpg")
    _jsonl(tmp_path / "captions.jsonl", [
        {"file": "a.png", "text": "first"}, "", {"file": "sub/b.jpg", "text": "b"}, {"file": "a.png", "text": "second"},
    ])
    assert read_captions(tmp_path) == {a.resolve(): ["first", "second"], b.resolve(): ["b"]}


def test_csv_captions_with_quoted_commas(tmp_path: Path) -> None:
    a, b = _image(tmp_path / "a.png"), _image(tmp_path / "b.png")
    (tmp_path / "captions.csv").write_text(
        'id, file ,text\n1,a.png,"red circle, large, left side"\n2,b.png,plain\n3,a.png,"say ""hi"""\n'
    )
    assert read_captions(tmp_path) == {a.resolve(): ["red circle, large, left side", 'say "hi"'], b.resolve(): ["plain"]}


def test_sources_combine(tmp_path: Path) -> None:
    a = _image(tmp_path / "a.png")
    (tmp_path / "a.txt").write_text("from txt\n")
    _jsonl(tmp_path / "captions.jsonl", [{"file": "a.png", "text": "from jsonl"}])
    (tmp_path / "captions.csv").write_text("file,text\na.png,from csv\n")
    assert read_captions(tmp_path)[a.resolve()] == ["from txt", "from jsonl", "from csv"]


def test_uncaptioned_images_skipped_with_count(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    a = _image(tmp_path / "a.png")
    _image(tmp_path / "b.png")
    _image(tmp_path / "c.png")
    (tmp_path / "a.txt").write_text("only a\n")
    with caplog.at_level(logging.WARNING, logger="translate.data.captions"):
        assert list(read_captions(tmp_path)) == [a.resolve()]
    assert "2 of 3 images" in caplog.text


def test_caption_for_missing_file(tmp_path: Path) -> None:
    _image(tmp_path / "a.png")
    _jsonl(tmp_path / "captions.jsonl", [{"file": "a.png", "text": "x"}, {"file": "gone.png", "text": "y"}])
    with pytest.raises(FileNotFoundError, match=r"captions.jsonl:2.*'gone.png'"):
        read_captions(tmp_path)


def test_caption_for_non_image_file(tmp_path: Path) -> None:
    _image(tmp_path / "a.png")
    (tmp_path / "notes.md").write_text("hi")
    (tmp_path / "captions.csv").write_text("file,text\nnotes.md,x\n")
    with pytest.raises(ValueError, match=r"captions.csv:2.*'notes.md'.*not an image"):
        read_captions(tmp_path)


def test_malformed_jsonl_line_number(tmp_path: Path) -> None:
    _image(tmp_path / "a.png")
    _jsonl(tmp_path / "captions.jsonl", [{"file": "a.png", "text": "x"}, "", '{"file": "a.png", text: broken}'])
    with pytest.raises(ValueError, match=r"captions.jsonl:3: not valid JSON"):
        read_captions(tmp_path)
    _jsonl(tmp_path / "captions.jsonl", [{"file": "a.png"}])
    with pytest.raises(ValueError, match=r'captions.jsonl:1: expected an object with "file" and "text"'):
        read_captions(tmp_path)
    _jsonl(tmp_path / "captions.jsonl", [{"file": "a.png", "text": 3}])
    with pytest.raises(ValueError, match="must be a string, got 3"):
        read_captions(tmp_path)


@pytest.mark.parametrize("source", ["txt", "jsonl", "csv"])
def test_empty_caption(tmp_path: Path, source: str) -> None:
    _image(tmp_path / "a.png")
    if source == "txt":
        (tmp_path / "a.txt").write_text("\n   \n")
    elif source == "jsonl":
        _jsonl(tmp_path / "captions.jsonl", [{"file": "a.png", "text": "  "}])
    else:
        (tmp_path / "captions.csv").write_text("file,text\na.png,\n")
    with pytest.raises(ValueError, match="empty caption"):
        read_captions(tmp_path)


def test_csv_without_file_text_columns(tmp_path: Path) -> None:
    _image(tmp_path / "a.png")
    (tmp_path / "captions.csv").write_text("image,caption\na.png,x\n")
    with pytest.raises(ValueError, match=r"\['image', 'caption'\].*'file,text'"):
        read_captions(tmp_path)


def test_no_caption_at_all_or_no_folder(tmp_path: Path) -> None:
    _image(tmp_path / "a.png")
    with pytest.raises(FileNotFoundError, match="no image .* has a caption"):
        read_captions(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_captions(tmp_path / "missing")


# --- read_domain_prompts ---------------------------------------------------------------------------


def test_domain_prompts(tmp_path: Path) -> None:
    (tmp_path / "map").mkdir()
    (tmp_path / "map" / "prompts.txt").write_text("# phrasings of the map domain\na map\n\n  a street map \n")
    (tmp_path / "aerial photo").mkdir()
    (tmp_path / "aerial photo" / "prompts.txt").write_text("an aerial photo\n")
    (tmp_path / ".cache").mkdir()  # hidden folders are not domains
    (tmp_path / "readme.txt").write_text("not a domain")
    prompts = read_domain_prompts(tmp_path)
    assert prompts == {"aerial photo": ["an aerial photo"], "map": ["a map", "a street map"]}
    assert list(prompts) == ["aerial photo", "map"]


def test_domain_prompts_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_domain_prompts(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no subfolders"):
        read_domain_prompts(tmp_path)
    (tmp_path / "map").mkdir()
    with pytest.raises(FileNotFoundError, match="domain 'map' has no .*prompts.txt"):
        read_domain_prompts(tmp_path)
    (tmp_path / "map" / "prompts.txt").write_text("# only a comment\n\n")
    with pytest.raises(ValueError, match="holds no prompt"):
        read_domain_prompts(tmp_path)


# --- CaptionedDataset ------------------------------------------------------------------------------


def _captioned_folder(folder: Path, count: int = 6) -> None:
    rows = []
    for i in range(count):
        _image(folder / f"{i}.png", size=(40, 24), seed=i)
        rows += [{"file": f"{i}.png", "text": f"image {i} caption {k}"} for k in range(4)]
    _jsonl(folder / "captions.jsonl", rows)


def test_dataset_item(tmp_path: Path) -> None:
    _captioned_folder(tmp_path)
    dataset = CaptionedDataset(tmp_path, size=16)
    assert len(dataset) == 6
    item = dataset[2]
    assert item["image"].shape == (3, 16, 16) and item["image"].dtype == torch.float32
    assert -1.0 <= item["image"].min() and item["image"].max() <= 1.0
    assert item["text"].startswith("image 2 caption ")
    assert Path(item["path"]).name == "2.png"


def test_dataset_caption_choice_deterministic_per_epoch(tmp_path: Path) -> None:
    _captioned_folder(tmp_path)
    first = [CaptionedDataset(tmp_path, size=8, seed=1)[i]["text"] for i in range(6)]
    again = [CaptionedDataset(tmp_path, size=8, seed=1)[i]["text"] for i in range(6)]
    assert first == again
    dataset = CaptionedDataset(tmp_path, size=8, seed=1)
    draws = set()
    for epoch in range(40):
        dataset.set_epoch(epoch)
        draws.add(tuple(dataset[i]["text"] for i in range(6)))
    assert len(draws) > 1
    assert {text for texts in draws for text in texts} >= {f"image 0 caption {k}" for k in range(4)}


def test_dataset_unreadable_image_dropped_by_collate(tmp_path: Path) -> None:
    _captioned_folder(tmp_path, count=3)
    (tmp_path / "1.png").write_bytes(b"not a png")
    dataset = CaptionedDataset(tmp_path, size=8)
    batch = next(iter(DataLoader(dataset, batch_size=3, collate_fn=collate_images)))
    assert batch["image"].shape == (2, 3, 8, 8)
    assert len(batch["text"]) == 2
    assert [Path(path).name for path, _ in batch["skipped"]] == ["1.png"]


def test_dataset_bad_size(tmp_path: Path) -> None:
    _captioned_folder(tmp_path, count=1)
    with pytest.raises(ValueError, match="got 0"):
        CaptionedDataset(tmp_path, size=0)

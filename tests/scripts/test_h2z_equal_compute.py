"""`python -m scripts.studies.h2z_equal_compute`: the parts that decide what is trained and which epoch is scored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from scripts.studies import h2z_equal_compute


def test_every_task_gets_the_same_budget_and_width(tmp_path: Path) -> None:
    args = h2z_equal_compute.parse_args(["--data", "h2z", "--out", str(tmp_path), "--minutes", "45", "--eval-every", "2"])
    args.variants = h2z_equal_compute.parse_variants(args)
    commands = [h2z_equal_compute.train_command(task, args) for task in args.tasks]
    assert [c[c.index("train") + 1] for c in commands] == ["cyclegan", "cut", "fastcut"]
    for command in commands:
        assert command[command.index("--max-minutes") + 1] == "45.0" and command[command.index("--ngf") + 1] == "64"
        assert command[command.index("--save-epoch-freq") + 1] == "2", "the best eval epoch keeps its checkpoint"


def test_the_best_eval_epoch_is_the_lowest_held_out_fid_with_a_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "checkpoints").mkdir()
    for epoch in (2, 4):
        (tmp_path / "checkpoints" / f"epoch_{epoch:04d}.pt").write_bytes(b"")
    evals = [{"event": "eval", "epoch": 2, "AtoB/fid": 90.0}, {"event": "eval", "epoch": 4, "AtoB/fid": 80.0},
             {"event": "eval", "epoch": 5, "AtoB/fid": 70.0}]  # epoch 5: the final score, no epoch checkpoint
    assert h2z_equal_compute.best_epoch_checkpoint(tmp_path, evals) is None
    assert h2z_equal_compute.best_epoch_checkpoint(tmp_path, evals[:2]) == (4, tmp_path / "checkpoints" / "epoch_0004.pt")
    assert h2z_equal_compute.best_epoch_checkpoint(tmp_path, []) is None
    stopped = evals[:2] + [{"event": "eval", "epoch": 4, "AtoB/fid": 10.0}]  # the final score, mid epoch 5
    assert h2z_equal_compute.best_epoch_checkpoint(tmp_path, stopped) == (4, tmp_path / "checkpoints" / "epoch_0004.pt")
    better_before = [{"event": "eval", "epoch": 2, "AtoB/fid": 50.0}] + stopped[1:]
    assert h2z_equal_compute.best_epoch_checkpoint(tmp_path, better_before)[0] == 2, "the final score is not epoch 4's"


def test_run_summary_reads_the_last_end_event(tmp_path: Path) -> None:
    events = [{"event": "start", "step": 0}, {"event": "end", "step": 10, "epoch": 0, "seconds": 5.0},
              {"event": "start", "step": 10}, {"event": "eval", "step": 30, "epoch": 1, "AtoB/fid": 1.0},
              {"event": "end", "step": 30, "epoch": 1, "seconds": 10.0}]
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    summary = h2z_equal_compute.run_summary(tmp_path)
    assert (summary["steps"], summary["it_per_s"], len(summary["evals"])) == (30, 3.0, 1)


def test_variants_add_their_flags_after_the_common_ones(tmp_path: Path) -> None:
    args = h2z_equal_compute.parse_args(["--data", "h2z", "--out", str(tmp_path), "--minutes", "30", "--variant", "base=cut:",
                              "--variant", "proj=cut:--netD projected --crop-size 96", "--extra", "--amp"])
    args.variants = h2z_equal_compute.parse_variants(args)
    assert args.variants == {"base": ("cut", []), "proj": ("cut", ["--netD", "projected", "--crop-size", "96"])}
    command = h2z_equal_compute.train_command("proj", args)
    assert command[command.index("--out") + 1] == str(tmp_path / "proj")
    assert command[-5:] == ["--amp", "--netD", "projected", "--crop-size", "96"], "the variant's flags win"
    assert command.index("--crop-size") < len(command) - 2  # the common crop comes first, the variant's last
    args.variant = ["no-task"]
    with pytest.raises(SystemExit, match="NAME=TASK:FLAGS"):
        h2z_equal_compute.parse_variants(args)


def test_the_grid_has_a_row_per_final_model(tmp_path: Path) -> None:
    test_a, fake = tmp_path / "testA", tmp_path / "fake"
    test_a.mkdir()
    fake.mkdir()
    for i in range(3):
        Image.new("RGB", (40, 40), (i * 80, 0, 0)).save(test_a / f"h{i}.jpg")
        Image.new("RGB", (40, 40), (0, i * 80, 0)).save(fake / f"h{i}.png")
    rows = [{"task": "cut", "direction": "AtoB", "model": "final", "input": "native 256 px", "images": str(fake)},
            {"task": "cut", "direction": "AtoB", "model": "best eval epoch 2", "input": "native 256 px",
             "images": str(fake)}]
    grid = Image.open(h2z_equal_compute.write_grid(rows, test_a, tmp_path / "grid.png", count=3, size=16, label=10))
    assert grid.size == (10 + 3 * 16, 2 * 16)
    assert grid.getpixel((10 + 16 + 8, 16 + 8))[1] > 60, "the second row holds the model's output for h1"

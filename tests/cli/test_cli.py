"""The `translate` command line through typer's CliRunner, and a 2-process DDP run under torchrun."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from tests.helpers.datasets import write_paired
from tests.helpers.training import tiny_flags
from translate.cli import app
from translate.training import read_checkpoint

pytestmark = pytest.mark.usefixtures("single_thread")

runner = CliRunner()
TINY_FLAGS = tiny_flags("cyclegan")


def test_train_resume_and_convert_through_the_cli(unpaired_data, tmp_path):
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", "cyclegan", "--data", str(unpaired_data), "--out", str(run),
                                 "--max-steps", "3", *TINY_FLAGS])
    assert result.exit_code == 0, result.output
    assert "done: 3 steps" in result.output
    assert read_checkpoint(run)["step"] == 3
    result = runner.invoke(app, ["train", "--resume", str(run), "--max-steps", "5"])
    assert result.exit_code == 0, result.output
    state = read_checkpoint(run)
    assert state["step"] == 5 and state["config"]["max_steps"] == 5
    assert state["config"]["ngf"] == 8  # saved options survive the resume
    out = tmp_path / "converted"
    result = runner.invoke(app, ["convert", str(unpaired_data / "testA"), str(out), "--model", str(run),
                                 "--direction", "BtoA", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert len(list(out.glob("*.png"))) == len(list((unpaired_data / "testA").glob("*.png")))


def test_train_refuses_to_overwrite_a_run(unpaired_data, tmp_path):
    run = tmp_path / "run"
    args = ["train", "cyclegan", "--data", str(unpaired_data), "--out", str(run), "--max-steps", "1", *TINY_FLAGS]
    assert runner.invoke(app, args).exit_code == 0
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "--resume" in result.output


@pytest.mark.parametrize("flags, needle", [
    (["--gan-mode", "wgan"], "lsgan, vanilla, wgangp, hinge"),
    (["--netG", "resnet_12blocks"], "resnet_12blocks"),
    (["--norm", "layer"], "layer"),
    (["--preprocess", "zoom"], "zoom"),
    (["--direction", "up"], "AtoB, BtoA"),
])
def test_bad_option_values_fail_with_the_allowed_values(unpaired_data, tmp_path, flags, needle):
    result = runner.invoke(app, ["train", "cyclegan", "--data", str(unpaired_data), "--out", str(tmp_path / "r"),
                                 *TINY_FLAGS, *flags])
    assert result.exit_code == 2, result.output
    assert needle in result.output
    assert "Traceback" not in result.output


def test_missing_data_folder_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["train", "pix2pix", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert str(tmp_path / "none") in result.output


def test_train_needs_a_task_or_resume():
    result = runner.invoke(app, ["train"])
    assert result.exit_code == 2 and "--resume" in result.output


def test_yaml_config_file(unpaired_data, tmp_path):
    config = tmp_path / "opts.yaml"
    config.write_text("lambda-A: 3.5\nmax_steps: 2\nngf: 16\n")
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", "cyclegan", "--data", str(unpaired_data), "--out", str(run),
                                 "--config", str(config), *TINY_FLAGS])  # --ngf 8 overrides the file
    assert result.exit_code == 0, result.output
    saved = read_checkpoint(run)["config"]
    assert (saved["lambda_A"], saved["max_steps"], saved["ngf"]) == (3.5, 2, 8)


def test_convert_exits_1_when_a_file_fails(unpaired_data, tmp_path):
    run = tmp_path / "run"
    assert runner.invoke(app, ["train", "cyclegan", "--data", str(unpaired_data), "--out", str(run),
                               "--max-steps", "1", *TINY_FLAGS]).exit_code == 0
    source = tmp_path / "in"
    source.mkdir()
    (source / "broken.png").write_bytes(b"\x89PNG broken")
    (source / "ok.png").write_bytes(sorted((unpaired_data / "testA").glob("*.png"))[0].read_bytes())
    result = runner.invoke(app, ["convert", str(source), str(tmp_path / "out"), "--model", str(run), "--device", "cpu",
                                 "--precision", "fp32"])
    assert result.exit_code == 1
    assert "converted 1" in result.output and "failed 1" in result.output and "broken.png" in result.output
    assert "convert_report.json" in result.output and "images/s" in result.output
    assert "onnxruntime fp32 on CPUExecutionProvider" in result.output  # the path it took is reported


@pytest.mark.selection
@pytest.mark.parametrize("flags, needle", [
    (["--backend", "onnxruntime", "--precision", "bf16"], "bf16 runs on PyTorch only"),
    (["--provider", "cuda", "--device", "cpu"], "--provider cuda"),
    (["--provider", "warp"], "--provider 'warp'"),
    (["--precision", "int4"], "--precision 'int4'"),
    (["--shard", "2/2"], "--shard '2/2'"),
])
def test_convert_refuses_bad_choices_with_exit_2(unpaired_data, tmp_path, flags, needle):
    run = tmp_path / "run"
    assert runner.invoke(app, ["train", "cyclegan", "--data", str(unpaired_data), "--out", str(run),
                               "--max-steps", "1", *TINY_FLAGS]).exit_code == 0
    result = runner.invoke(app, ["convert", str(unpaired_data / "testA"), str(tmp_path / "out"), "--model", str(run),
                                 "--direction", "AtoB", *flags])
    assert result.exit_code == 2, result.output
    assert needle in result.output


def test_demo_runs_end_to_end(tmp_path):
    result = runner.invoke(app, ["demo", str(tmp_path / "demo"), "--train", "--steps", "4"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "demo" / "contact_sheet.png").is_file()
    assert len(list((tmp_path / "demo" / "converted").glob("*.png"))) == 8


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_ddp_run_on_cpu(tmp_path):
    """torchrun --nproc_per_node=2 with gloo: both ranks train in step, rank 0 alone writes."""
    data = write_paired(tmp_path / "data", n_train=8, n_test=1, size=32)
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
               f"--master_port={_free_port()}", "-m", "translate", "train", "pix2pix", "--data", str(data),
               "--out", str(run), "--netG", "resnet_6blocks", "--norm", "instance", "--ngf", "8", "--ndf", "8",
               "--preprocess", "none", "--batch-size", "2", "--workers", "0", "--device", "cpu",
               "--n-epochs", "2", "--n-epochs-decay", "0", "--log-every", "1"]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    state = read_checkpoint(run)
    # 8 items over 2 ranks, batch 2: 2 steps per epoch per rank, 2 epochs.
    assert (state["step"], state["epoch"]) == (4, 2)
    start = json.loads((run / "log.jsonl").read_text().splitlines()[0])
    assert start["world_size"] == 2 and start["steps_per_epoch"] == 2
    losses = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert sum(r["event"] == "losses" for r in losses) == 4  # rank 0 only
    assert torch.isfinite(torch.cat([v.flatten().float() for v in state["models"]["g"].values()])).all()

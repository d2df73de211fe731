"""`translate train`'s options, generated from TrainConfig: per-task help, every flag, the error
messages in flag terms (and in Python terms from the library), resume's task."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from translate.cli import app
from translate.cli.common import error_message, flag_of
from translate.cli.train import task_named_by
from translate.core.errors import InvalidCombinationError, InvalidValueError
from translate.training import TrainResult, make_config

runner = CliRunner()


def help_of(*args: str) -> str:
    result = runner.invoke(app, ["train", *args, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return result.output


def test_each_task_lists_only_its_own_options():
    cyclegan = help_of("cyclegan")
    assert "--lambda-B" in cyclegan and "--pool-size" in cyclegan and "--eval-every" in cyclegan
    assert "--text-encoder" not in cyclegan and "--noise-dim" not in cyclegan and "--lambda-L1" not in cyclegan
    text2image = help_of("text2image")
    assert "--text-encoder" in text2image and "--noise-dim" in text2image and "--ema-decay" in text2image
    assert "--lambda-B" not in text2image and "--eval-every" not in text2image
    pix2pix = help_of("pix2pix")
    assert "--lambda-L1" in pix2pix and "--lambda-A" not in pix2pix
    textcycle = help_of("textcycle")
    assert "--text-encoder" in textcycle and "--lambda-A" in textcycle and "--noise-dim" not in textcycle


def test_the_task_defaults_and_choices_are_in_the_help():
    assert "unet_256" in help_of("pix2pix") and "text_resnet_6blocks" in help_of("textcycle")
    assert "(64)" in help_of("text2image").split("--crop-size")[1].split("--")[0]  # text2image's own default


def test_train_help_lists_the_tasks_and_the_common_options():
    output = help_of()
    for task in ("cyclegan", "pix2pix", "cut", "fastcut", "text2image", "textcycle"):
        assert task in output
    assert "--resume" in output and "--lr" in output and "--data" in output
    assert "--text-encoder" not in output and "--lambda-B" not in output


def test_resume_help_shows_the_runs_task(tmp_path):
    (tmp_path / "config.yaml").write_text("task: text2image\nngf: 8\n")
    assert "--text-encoder" in help_of("--resume", str(tmp_path))
    assert task_named_by(["--resume", str(tmp_path), "--ngf", "8"], {"--ngf", "--resume"}) == "text2image"
    assert task_named_by(["--ngf", "8", "pix2pix"], {"--ngf"}) == "pix2pix"
    assert task_named_by(["--flip", "cyclegan"], {"--ngf"}) == "cyclegan"
    assert task_named_by(["--resume", str(tmp_path / "none")], set()) is None


@pytest.fixture
def captured(monkeypatch) -> list:
    """Replaces the training itself: the CLI's resolved configs are collected instead."""
    configs: list = []

    def fake_train(config, resume_state=None, on_progress=None):
        configs.append(config)
        return TrainResult(run_dir=Path(config.out), step=0, epoch=0, losses={}, skipped_files=[], weights={},
                           seconds=0.0)

    monkeypatch.setattr("translate.training.train", fake_train)
    return configs


# (task, flags, field, expected value); together they cover every flag of `translate train`.
FLAGS = [
    ("cyclegan", ["--netG", "resnet_6blocks"], "netG", "resnet_6blocks"),
    ("cyclegan", ["--netD", "n_layers"], "netD", "n_layers"),
    ("cyclegan", ["--ngf", "16"], "ngf", 16),
    ("cyclegan", ["--ndf", "16"], "ndf", 16),
    ("cyclegan", ["--n-layers-D", "2"], "n_layers_D", 2),
    ("cyclegan", ["--norm", "batch"], "norm", "batch"),
    ("cyclegan", ["--dropout"], "dropout", True),
    ("pix2pix", ["--no-dropout"], "dropout", False),
    ("cyclegan", ["--init-type", "xavier"], "init_type", "xavier"),
    ("cyclegan", ["--init-gain", "0.05"], "init_gain", 0.05),
    ("pix2pix", ["--input-nc", "1"], "input_nc", 1),
    ("pix2pix", ["--output-nc", "1"], "output_nc", 1),
    ("cyclegan", ["--direction", "BtoA"], "direction", "BtoA"),
    ("cyclegan", ["--preprocess", "crop"], "preprocess", "crop"),
    ("cyclegan", ["--load-size", "300"], "load_size", 300),
    ("cyclegan", ["--crop-size", "128"], "crop_size", 128),
    ("cyclegan", ["--flip"], "flip", True),
    ("cyclegan", ["--no-flip"], "flip", False),
    ("cyclegan", ["--batch-size", "2"], "batch_size", 2),
    ("cyclegan", ["--workers", "0"], "workers", 0),
    ("cyclegan", ["--name-a", "aerial"], "name_a", "aerial"),
    ("cyclegan", ["--name-b", "map"], "name_b", "map"),
    ("cyclegan", ["--gan-mode", "vanilla"], "gan_mode", "vanilla"),
    ("cyclegan", ["--lambda-A", "5"], "lambda_A", 5.0),
    ("cyclegan", ["--lambda-B", "6"], "lambda_B", 6.0),
    ("cyclegan", ["--lambda-identity", "0.1"], "lambda_identity", 0.1),
    ("pix2pix", ["--lambda-L1", "50"], "lambda_L1", 50.0),
    ("cyclegan", ["--pool-size", "0"], "pool_size", 0),
    ("textcycle", ["--text-encoder", "byte"], "text_encoder", "byte"),
    ("text2image", ["--text-dim", "32"], "text_dim", 32),
    ("text2image", ["--noise-dim", "16"], "noise_dim", 16),
    ("text2image", ["--pretrain-text-steps", "5"], "pretrain_text_steps", 5),
    ("text2image", ["--match-bank", "8"], "match_bank", 8),
    ("text2image", ["--lambda-match", "0.5"], "lambda_match", 0.5),
    ("text2image", ["--matcher-ndf", "16"], "matcher_ndf", 16),
    ("text2image", ["--lambda-ma-gp", "1"], "lambda_ma_gp", 1.0),
    ("text2image", ["--ema-decay", "0.9"], "ema_decay", 0.9),
    ("cyclegan", ["--lr", "0.001"], "lr", 0.001),
    ("cyclegan", ["--beta1", "0.9"], "beta1", 0.9),
    ("cyclegan", ["--lr-policy", "cosine"], "lr_policy", "cosine"),
    ("cyclegan", ["--n-epochs", "3"], "n_epochs", 3),
    ("cyclegan", ["--n-epochs-decay", "4"], "n_epochs_decay", 4),
    ("cyclegan", ["--max-steps", "7"], "max_steps", 7),
    ("cyclegan", ["--seed", "3"], "seed", 3),
    ("cyclegan", ["--device", "cpu"], "device", "cpu"),
    ("cyclegan", ["--amp"], "amp", True),
    ("cyclegan", ["--no-amp"], "amp", False),
    ("cyclegan", ["--log-every", "2"], "log_every", 2),
    ("cyclegan", ["--sample-every", "3"], "sample_every", 3),
    ("cyclegan", ["--save-epoch-freq", "2"], "save_epoch_freq", 2),
    ("pix2pix", ["--eval-every", "2"], "eval_every", 2),
    ("pix2pix", ["--eval-phase", "test"], "eval_phase", "test"),
    ("pix2pix", ["--eval-limit", "10"], "eval_limit", 10),
    ("pix2pix", ["--eval-fid"], "eval_fid", True),
    ("pix2pix", ["--no-eval-fid"], "eval_fid", False),
]


@pytest.mark.parametrize("task, flags, field, expected", FLAGS, ids=[" ".join(f[1]) for f in FLAGS])
def test_every_flag_parses_into_its_field(task, flags, field, expected, captured, tmp_path):
    result = runner.invoke(app, ["train", task, "--data", str(tmp_path / "d"), "--out", str(tmp_path / "o"), *flags])
    assert result.exit_code == 0, result.output
    (config,) = captured
    assert getattr(config, field) == expected
    assert (config.task, config.data, config.out) == (task, str(tmp_path / "d"), str(tmp_path / "o"))


def test_options_not_given_keep_the_task_defaults(captured, tmp_path):
    assert runner.invoke(app, ["train", "pix2pix", "--data", "d", "--out", str(tmp_path / "o")]).exit_code == 0
    assert captured[0] == make_config("pix2pix", overrides={"data": "d", "out": str(tmp_path / "o")})


def test_an_option_of_another_task_is_reported_as_ignored(captured, tmp_path):
    result = runner.invoke(app, ["train", "cyclegan", "--data", "d", "--out", str(tmp_path / "o"),
                                 "--text-dim", "32"])
    assert result.exit_code == 0, result.output
    assert "warning: --text-dim does not apply to cyclegan; ignored" in result.output


@pytest.mark.parametrize("task, overrides, flags, python, cli", [
    ("cyclegan", {"batch_size": 0}, ["--batch-size", "0"], "batch_size=0: expected a positive integer",
     "--batch-size 0: expected a positive integer"),
    ("cyclegan", {"lambda_A": -1.0}, ["--lambda-A", "-1"], "lambda_A=-1.0: expected a number >= 0",
     "--lambda-A -1.0: expected a number >= 0"),
    ("cyclegan", {"n_layers_D": 0}, ["--n-layers-D", "0"], "n_layers_D=0: expected a positive integer",
     "--n-layers-D 0: expected a positive integer"),
    ("cyclegan", {"netG": "resnet_12blocks"}, ["--netG", "resnet_12blocks"], "netG='resnet_12blocks' is not one of",
     "--netG 'resnet_12blocks' is not one of"),
    ("pix2pix", {"crop_size": 100}, ["--crop-size", "100"],
     "netG='unet_256' needs image sides that are multiples of 256, but crop_size=100; use crop_size=256",
     "--netG unet_256 needs image sides that are multiples of 256, but --crop-size 100; use --crop-size 256"),
    ("cyclegan", {"eval_every": 1, "eval_fid": False}, ["--eval-every", "1", "--no-eval-fid"],
     "so it cannot run with eval_fid=False",
     "--eval-every 1 on cyclegan scores FID and KID only (unpaired data has no ground truth), so it cannot run "
     "with --no-eval-fid"),
    ("text2image", {"lambda_match": 1.0, "pretrain_text_steps": 0}, ["--lambda-match", "1", "--pretrain-text-steps", "0"],
     "set pretrain_text_steps (e.g. 1000), or lambda_match=0",
     "set --pretrain-text-steps (e.g. 1000), or --lambda-match 0"),
])
def test_errors_speak_python_in_the_library_and_flags_in_the_cli(task, overrides, flags, python, cli, captured,
                                                                 tmp_path):
    with pytest.raises(ValueError) as caught:
        make_config(task, overrides=overrides)
    assert python in str(caught.value)
    result = runner.invoke(app, ["train", task, "--data", "d", "--out", str(tmp_path / "o"), *flags],
                           terminal_width=300)
    assert result.exit_code == 2, result.output
    assert cli in " ".join(result.output.split()) and not captured


def test_unknown_task_is_named_with_the_others():
    result = runner.invoke(app, ["train", "stargan", "--data", "d", "--out", "o"])
    assert result.exit_code == 2
    assert "'stargan' is not one of cyclegan, pix2pix, text2image, textcycle" in result.output


def test_flag_forms_of_typed_errors():
    assert flag_of("lambda_L1") == "--lambda-L1" and flag_of("n_layers_D") == "--n-layers-D"
    assert InvalidValueError("crop_size", 100, "a multiple of 4").for_flag("--crop-size") == (
        "--crop-size 100: expected a multiple of 4")
    error = InvalidCombinationError("n_epochs plus n_epochs_decay must be at least 1, got 0", "n_epochs",
                                    "n_epochs_decay")
    assert error_message(error) == "--n-epochs plus --n-epochs-decay must be at least 1, got 0"

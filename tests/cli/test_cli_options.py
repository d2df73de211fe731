"""`translate convert` and `translate serve` flags, generated from ConvertOptions' and ServeOptions'
fields: the flag names users know, what reaches the library, and bad values in flag terms."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import translate.deploy.convert
from translate.cli import app

runner = CliRunner()

CONVERT_FLAGS = ("--model", "--direction", "--backend", "--precision", "--provider", "--device", "--batch-size",
                 "--workers", "--format", "--quality", "--png-compression", "--resize", "--tile", "--overlap",
                 "--max-pixels", "--shard", "--report", "--overwrite", "--prompt", "--suffix")
SERVE_FLAGS = ("--host", "--port", "--max-batch", "--max-delay-ms", "--queue", "--max-pixels", "--max-body-mb",
               "--api-key", "--backend", "--precision", "--provider", "--device", "--workers")


def help_of(command: str) -> str:
    result = runner.invoke(app, [command, "--help"], terminal_width=240)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.replace("│", " ").split())  # help text wrapped in rich's boxes, joined


@pytest.mark.parametrize("command, flags, choices", [
    ("convert", CONVERT_FLAGS, ("png | jpg | webp", "auto | fp32 | fp16 | bf16 | int8", "AtoB | BtoA")),
    ("serve", SERVE_FLAGS, ("auto | fp32 | fp16 | bf16.", "auto | onnxruntime | torch", "TRANSLATE_API_KEY")),
])
def test_the_flags_keep_their_names_and_list_their_choices(command, flags, choices):
    output = help_of(command)
    missing = [flag for flag in flags if flag not in output]
    assert not missing
    assert all(choice in output for choice in choices)


@pytest.fixture
def converted(monkeypatch) -> list[dict]:
    """convert_folder's keywords as the command passes them (nothing is converted)."""
    calls: list[dict] = []

    def record(input_dir, output_dir, model, **keywords):
        calls.append(keywords)
        raise ValueError("recorded")

    monkeypatch.setattr(translate.deploy.convert, "convert_folder", record)
    return calls


def test_only_the_flags_given_reach_convert_folder(converted, tmp_path):
    base = ["convert", str(tmp_path / "in"), str(tmp_path / "out"), "--model", "m"]
    runner.invoke(app, [*base, "--format", "jpg", "--png-compression", "3", "--overwrite", "--resize", "20x12",
                        "--report", "r.json", "--tile", "64", "--suffix", "_map"])
    runner.invoke(app, [*base, "--no-overwrite"])
    first, second = ({k: v for k, v in call.items() if k != "on_progress"} for call in converted)
    assert first == {"fmt": "jpg", "png_compression": 3, "overwrite": True, "resize": "20x12",
                     "report": Path("r.json"), "tile": 64, "suffix": "_map"}
    assert second == {"overwrite": False}


@pytest.mark.parametrize("flags, message", [
    (["--precision", "int9"], "--precision 'int9' is not one of auto, fp32, fp16, bf16, int8"),
    (["--direction", "AtoC"], "--direction 'AtoC' is not one of AtoB, BtoA"),
    (["--quality", "0"], "--quality 0: expected an integer in 1..100"),
    (["--png-compression", "10"], "--png-compression 10: expected an integer in 0..9"),
    (["--shard", "3/3"], "--shard '3/3': expected I/N with 0 <= I < N"),
    (["--resize", "big"], "--resize 'big': expected N (shorter side, aspect kept), WxH or native"),
    (["--tile", "32", "--overlap", "16"], "--overlap 16: expected an integer in 0..15 for tile=32"),
])
def test_convert_refuses_a_bad_value_by_its_flag(tmp_path, flags, message):
    result = runner.invoke(app, ["convert", str(tmp_path / "in"), str(tmp_path / "out"), "--model", "m", *flags],
                           terminal_width=240)
    assert result.exit_code == 2, result.output
    assert f"error: {message}" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flags, message", [
    (["--precision", "int9"], "--precision 'int9' is not one of auto, fp32, fp16, bf16"),
    (["--precision", "int8"], "--precision 'int8' is not one of auto, fp32, fp16, bf16; int8 needs calibration "
                              "images, which a server does not take"),
    (["--port", "70000"], "--port 70000: expected an integer in 0..65535 (0: any free port)"),
    (["--max-delay-ms", "-1"], "--max-delay-ms -1.0: expected a number >= 0"),
    (["--workers", "0"], "--workers 0: expected a positive integer"),
    (["--provider", "warp"], "--provider 'warp' is not one of auto, tensorrt, cuda, cpu"),
])
def test_serve_refuses_a_bad_value_by_its_flag(flags, message):
    result = runner.invoke(app, ["serve", "maps_aerial2map", *flags], terminal_width=240)
    assert result.exit_code == 2, result.output
    assert f"error: {message}" in " ".join(result.output.split()) and "Traceback" not in result.output

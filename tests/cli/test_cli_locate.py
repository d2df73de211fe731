"""The commands ask `translate.formats.locator.locate` what a model is (info, generate, eval, demo),
and `translate --help` stays free of the library's heavy imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from translate.cli import app
from translate.cli.demo import _has_image_model

runner = CliRunner()


def test_info_says_what_the_locator_found():
    result = runner.invoke(app, ["info", "maps_aerial2map"])
    assert result.exit_code == 0, result.output
    first, *rest = result.output.splitlines()
    assert first.startswith("located: weights folder (kind generator, origin bundled, directions AtoB) at ")
    assert first.endswith(str(Path("weights") / "maps_aerial2map"))
    assert any(line.startswith("architecture ") for line in rest)  # the config follows as before


def test_info_on_a_text_model_and_a_missing_one():
    result = runner.invoke(app, ["info", "shapes_text2image"])
    assert result.exit_code == 0, result.output
    assert "kind text2image, origin bundled, directions none recorded" in result.output
    assert "text_encoder" in result.output
    result = runner.invoke(app, ["info", "no_such_model"])
    assert result.exit_code == 2 and "no model at 'no_such_model'" in result.output
    assert "maps_aerial2map" in result.output  # the bundled names are listed


def test_generate_refuses_an_image_model(tmp_path):
    result = runner.invoke(app, ["generate", "--model", "maps_aerial2map", "--prompt", "x", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "no text model" in result.output


def test_eval_all_checkpoints_needs_a_run(tmp_path):
    (tmp_path / "data" / "val").mkdir(parents=True)
    result = runner.invoke(app, ["eval", "--model", "maps_aerial2map", "--data", str(tmp_path / "data"),
                                 "--all-checkpoints", "--no-fid"])
    assert result.exit_code == 2
    assert "--all-checkpoints scores the epoch checkpoints of a run directory" in result.output
    assert "--model maps_aerial2map is a weights folder" in result.output


def test_demo_finds_the_bundled_image_model():
    assert _has_image_model("maps_aerial2map")
    assert not _has_image_model("shapes_text2image")  # a text model cannot run the image demo
    assert not _has_image_model("no_such_model")


def test_help_does_not_import_the_library():
    """Nor does the help of the commands whose flags are generated from the library's option fields."""
    code = ("import sys; from translate.cli import app; from typer.testing import CliRunner; "
            "results = [CliRunner().invoke(app, [*command, '--help']) for command in ([], ['convert'], ['serve'])]; "
            "assert all(r.exit_code == 0 for r in results), [r.output for r in results]; "
            "heavy = sorted(m for m in ('torch', 'numpy', 'PIL', 'onnx', 'onnxruntime') if m in sys.modules); "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)

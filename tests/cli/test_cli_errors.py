"""The library's typed errors in command-line terms (`translate.cli.common`): built directly, and
through `translate convert` with bad choices. Nothing here depends on the machine's CPU or GPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from translate.cli import app
from translate.cli.common import error_message, flag_of, library_errors
from translate.core.errors import InvalidChoiceError, InvalidCombinationError, InvalidValueError

# The auto rules pick different paths on different CPUs: CI runs these with bf16 reported both ways.
pytestmark = pytest.mark.selection

runner = CliRunner()


def test_flag_of_maps_or_dashes_the_parameter():
    assert flag_of("crop_size") == "--crop-size"
    assert flag_of("netG") == "--netG"
    assert flag_of("fmt", {"fmt": "--format"}) == "--format"
    assert flag_of("precision", {"fmt": "--format"}) == "--precision"


def test_a_parameter_error_names_its_flag():
    error = InvalidChoiceError("precision", "int9", ("auto", "fp32", "fp16", "bf16", "int8"))
    assert error_message(error) == "--precision 'int9' is not one of auto, fp32, fp16, bf16, int8"
    error = InvalidChoiceError("fmt", "gif", ("png", "jpg", "webp"))
    assert error_message(error, {"fmt": "--format"}) == "--format 'gif' is not one of png, jpg, webp"
    error = InvalidValueError("crop_size", -1, "a positive integer", "e.g. 256")
    assert error_message(error) == "--crop-size -1: expected a positive integer; e.g. 256"


def test_a_combination_error_writes_its_parameters_as_flags():
    error = InvalidCombinationError('precision="bf16" runs on PyTorch only, not backend=\'onnxruntime\'; use '
                                    "backend=torch, or precision=fp32.", "precision", "backend")
    assert error_message(error) == ("--precision bf16 runs on PyTorch only, not --backend onnxruntime; use "
                                     "--backend torch, or --precision fp32.")
    error = InvalidCombinationError("half=True needs device='cuda' (got device='cpu')", "half", "device")
    assert error_message(error) == "--half needs --device cuda (got --device cpu)"


def test_a_combination_error_writes_booleans_and_bare_identifiers_as_flags():
    error = InvalidCombinationError("eval_every=1 cannot run with eval_fid=False; n_epochs plus n_epochs_decay",
                                    "eval_every", "eval_fid", "n_epochs", "n_epochs_decay")
    assert error_message(error) == "--eval-every 1 cannot run with --no-eval-fid; --n-epochs plus --n-epochs-decay"
    # A parameter that is also an English word stays a word where it stands alone.
    error = InvalidCombinationError('channels_last=True with norm="instance": an instance norm followed by '
                                    "channels_last layers", "channels_last", "norm")
    assert error_message(error) == ("--channels-last with --norm instance: an instance norm followed by "
                                    "--channels-last layers")


def test_a_combination_error_leaves_other_names_alone():
    error = InvalidCombinationError("fmt='jpg' with io=uint8 and model_precision=fp16 (file_fmt=png)", "fmt",
                                    "precision")
    assert error_message(error, {"fmt": "--format"}) == ("--format jpg with io=uint8 and model_precision=fp16 "
                                                         "(file_fmt=png)")


def test_other_errors_keep_their_message():
    assert error_message(ValueError("--shard '2/2': need 0 <= I < N")) == "--shard '2/2': need 0 <= I < N"
    assert error_message(FileNotFoundError("no model at 'x'")) == "no model at 'x'"


def _exit_of(error: BaseException, capsys, **options) -> tuple[int, str]:
    with pytest.raises(typer.Exit) as exited, library_errors(**options):
        raise error
    return exited.value.exit_code, capsys.readouterr().err


def test_library_errors_fails_with_the_flag_and_exit_2(capsys):
    code, err = _exit_of(InvalidChoiceError("fmt", "gif", ("png", "jpg")), capsys, flags={"fmt": "--format"})
    assert code == 2 and err == "error: --format 'gif' is not one of png, jpg\n"
    code, err = _exit_of(FileNotFoundError("no model at 'x'"), capsys)
    assert code == 2 and err == "error: no model at 'x'\n"
    code, err = _exit_of(OSError("disk full"), capsys, code=1, catch=(OSError,))
    assert code == 1 and err == "error: disk full\n"


def test_library_errors_lets_other_errors_through():
    with pytest.raises(RuntimeError), library_errors():
        raise RuntimeError("a bug, not bad input: keep the traceback")
    with pytest.raises(typer.Exit), library_errors():
        raise typer.Exit(code=1)  # a command's own exit inside the block is not rewritten
    with library_errors():
        pass


@pytest.fixture(scope="module")
def one_image(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("in")
    Image.new("RGB", (32, 32), (10, 200, 30)).save(folder / "a.png")
    return folder


@pytest.mark.parametrize("flags, needle", [
    (["--precision", "int9"], "--precision 'int9' is not one of auto, fp32, fp16, bf16, int8"),
    (["--backend", "tensorflow"], "--backend 'tensorflow' is not one of auto, onnxruntime, torch"),
    (["--format", "gif"], "--format 'gif' is not one of png, jpg, webp"),
])
def test_convert_reports_bad_choices_by_flag(one_image, tmp_path, flags, needle):
    result = runner.invoke(app, ["convert", str(one_image), str(tmp_path / "out"), "--model", "maps_aerial2map",
                                 "--device", "cpu", *flags])
    assert result.exit_code == 2, result.output
    assert needle in result.output
    assert "Traceback" not in result.output and "fmt" not in result.output
    assert not list((tmp_path / "out").glob("*.png"))


def test_convert_names_the_flag_of_a_python_parameter(one_image, tmp_path, monkeypatch):
    """Whatever the library's check says, the command maps `fmt` to --format and rewrites combinations."""
    import translate.deploy.convert as convert_module

    def refuse(*args, **kwargs):
        raise InvalidCombinationError("fmt='webp' cannot hold io=uint8 with precision='int8'", "fmt", "precision")

    monkeypatch.setattr(convert_module, "convert_folder", refuse)
    result = runner.invoke(app, ["convert", str(one_image), str(tmp_path / "out"), "--model", "maps_aerial2map"])
    assert result.exit_code == 2
    assert "--format webp cannot hold io=uint8 with --precision int8" in result.output

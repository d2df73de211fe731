"""What the CLI's command modules share: the error exit, the translation of the library's errors
into command-line terms, and the progress displays (a rich bar on a terminal, plain lines in logs
and pipes).

Only the CLI prints; these helpers turn the library's errors and progress callbacks into output.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NoReturn, Optional

import typer

from translate.core.errors import InvalidCombinationError, ParameterError


def fail(message: str, code: int = 2) -> NoReturn:
    """Print `error: MESSAGE` in red on stderr and exit with `code` (2: bad arguments or input;
    1: a download or check that failed)."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=code)


def flag_of(parameter: str, flags: Mapping[str, str] | None = None) -> str:
    """The command-line spelling of a Python parameter: `flags[parameter]`, else `--name-with-dashes`
    (`crop_size` -> `--crop-size`; `fmt` needs `{"fmt": "--format"}`)."""
    if flags and parameter in flags:
        return flags[parameter]
    return "--" + parameter.replace("_", "-")


# `name=value` as the library writes it: a quoted string, or a bare word (a sentence's full stop is
# not part of it).
_MENTION = r"(?<![\w.-]){name}=(\"[^\"]*\"|'[^']*'|[^\s,;:()\[\]]*[^\s,;:()\[\].])"
# `name` alone, where it reads as the identifier it is (`n_epochs plus n_epochs_decay`).
_BARE = r"(?<![\w.-]){name}(?![\w=-])"


def _as_flag(flag: str, value: str) -> str:
    """`--flag value` for `name=value`, unquoted; `--flag` alone for `name=True`, `--no-flag` for
    `name=False` (the form of the generated boolean flags)."""
    if value == "True":
        return flag
    if value == "False" and flag.startswith("--"):
        return f"--no-{flag[2:]}"
    if value[:1] in ("'", '"'):
        value = value[1:-1]
    return f"{flag} {value}"


def _is_identifier(name: str) -> bool:
    """Whether a bare `name` can only be the parameter (`crop_size`, `netG`), not an English word
    (`norm`, `device`), which a message may use as one."""
    return "_" in name or any(c.isupper() or c.isdigit() for c in name)


def error_message(error: BaseException, flags: Mapping[str, str] | None = None) -> str:
    """`error`'s message in command-line terms: a `ParameterError` names its flag
    (`--precision 'int9' is not one of ...`), and an `InvalidCombinationError`'s mentions of its
    parameters become flags: `name=value` -> `--flag value` (`precision="bf16"` -> `--precision
    bf16`, `half=True` -> `--half`, `eval_fid=False` -> `--no-eval-fid`), and a bare identifier
    -> its flag (`n_epochs plus n_epochs_decay` -> `--n-epochs plus --n-epochs-decay`). Any other
    error keeps its message. This is the one rewrite every command uses."""
    if isinstance(error, ParameterError):
        return error.for_flag(flag_of(error.parameter, flags))
    message = str(error)
    if isinstance(error, InvalidCombinationError):
        for parameter in error.parameters:
            flag, name = flag_of(parameter, flags), re.escape(parameter)
            message = re.sub(_MENTION.format(name=name), lambda match, flag=flag: _as_flag(flag, match.group(1)),
                             message)
            if _is_identifier(parameter):
                message = re.sub(_BARE.format(name=name), lambda _, flag=flag: flag, message)
    return message


@contextmanager
def library_errors(flags: Mapping[str, str] | None = None, *, code: int = 2,
                   catch: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError)) -> Iterator[None]:
    """Turn the library's errors (`catch`) raised in the block into `fail(message, code)`, with the
    message in command-line terms (`error_message`). `flags` maps the command's Python parameter
    names to their flags where they differ from `--name-with-dashes`.

        with library_errors({"fmt": "--format"}):
            convert_folder(..., fmt=fmt)    # InvalidChoiceError("fmt", "gif", ...) -> exit 2:
                                            # error: --format 'gif' is not one of png, jpg, webp
    """
    try:
        yield
    except catch as error:
        fail(error_message(error, flags), code)


# How the commands name the locator's forms (`ModelSource.form`).
FORM_NAMES = {"weights": "weights folder", "run": "run directory", "checkpoint": "training checkpoint",
              "onnx": "ONNX file"}


class _StepRate:
    """it/s since the first event seen (a resumed run starts counting at its resume step)."""

    def __init__(self) -> None:
        self.clock = time.time
        self.t0: float | None = None
        self.s0 = 0

    def __call__(self, step: int) -> float:
        if self.t0 is None:
            self.t0, self.s0 = self.clock(), step - 1
        return (step - self.s0) / max(self.clock() - self.t0, 1e-9)


def _format_losses(losses: dict, limit: int = 6) -> str:
    return " ".join(f"{k} {v:.3f}" for k, v in list(losses.items())[:limit])


def progress_printer(every_s: float = 30.0) -> tuple[Callable[[Any], None], Callable[[], None]]:
    """Training progress: a rich bar with it/s, ETA and the latest losses on a terminal; one plain
    line every `every_s` seconds in logs and pipes, where a bar cannot redraw. Returns
    (callback, close)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    rate = _StepRate()
    if not sys.stdout.isatty():
        last = {"time": None}

        def print_line(event) -> None:
            speed = rate(event.step)
            if last["time"] is None:  # the first step only starts the clock: no rate to show yet
                last["time"] = rate.clock()
            if rate.clock() - last["time"] < every_s and event.step != event.total_steps:
                return
            last["time"] = rate.clock()
            eta = (event.total_steps - event.step) / max(speed, 1e-9)
            typer.echo(f"step {event.step}/{event.total_steps} epoch {event.epoch + 1}/{event.total_epochs} "
                       f"{speed:.2f} it/s ETA {eta / 60:.1f} min | {_format_losses(event.losses)}")

        return print_line, lambda: None

    bar = Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"),
                   TimeRemainingColumn(), TextColumn("{task.fields[losses]}"))
    task_ids: list = []

    def update(event) -> None:
        if not task_ids:
            bar.start()
            task_ids.append(bar.add_task("train", total=event.total_steps, completed=event.step - 1,
                                         epoch="", rate="", losses=""))
        bar.update(task_ids[0], completed=event.step, epoch=f"{event.epoch + 1}/{event.total_epochs}",
                   rate=f"{rate(event.step):.2f} it/s", losses=_format_losses(event.losses))

    return update, bar.stop


def convert_progress(every_s: float = 10.0) -> tuple[Callable[[Any], None], Callable[[], None]]:
    """A rich bar with images/s on a terminal; a plain line every `every_s` seconds elsewhere.
    Returns (callback, close). Called from the writer threads; both outputs lock internally."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    if not sys.stdout.isatty():
        last = {"time": time.monotonic()}
        lock = threading.Lock()

        def print_line(event) -> None:
            with lock:
                if time.monotonic() - last["time"] < every_s and event.done != event.total:
                    return
                last["time"] = time.monotonic()
            typer.echo(f"{event.done}/{event.total} images, {event.images_per_s:.2f} images/s, "
                       f"{event.failed} failed")

        return print_line, lambda: None

    bar = Progress(TextColumn("convert"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                   TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[failed]}"))
    task_ids: list = []

    def update(event) -> None:
        if not task_ids:
            bar.start()
            task_ids.append(bar.add_task("convert", total=event.total, rate="", failed=""))
        bar.update(task_ids[0], completed=event.done, rate=f"{event.images_per_s:.2f} images/s",
                   failed=f"{event.failed} failed" if event.failed else "")

    return update, bar.stop


def download_progress(label: str, every_s: float = 10.0) -> tuple[Callable[[int, Optional[int]], None],
                                                                   Callable[[], None]]:
    """A rich bar (bytes, speed, ETA) on stderr when it is a terminal; elsewhere a plain stderr line
    every `every_s` seconds and at the end. Returns (callback, close)."""
    if not sys.stderr.isatty():
        last = {"time": time.monotonic()}

        def print_line(done: int, total: Optional[int]) -> None:
            finished = total is not None and done >= total
            if time.monotonic() - last["time"] < every_s and not finished:
                return
            last["time"] = time.monotonic()
            of = f" of {total / 1e6:.1f}" if total is not None else ""
            typer.echo(f"{label}: {done / 1e6:.1f}{of} MB", err=True)

        return print_line, lambda: None

    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    bar = Progress(TextColumn(label), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                   console=Console(stderr=True))
    task_ids: list = []

    def update(done: int, total: Optional[int]) -> None:
        if not task_ids:
            bar.start()
            task_ids.append(bar.add_task(label, total=total))
        bar.update(task_ids[0], completed=done, total=total)
        if total is not None and done >= total:
            bar.stop()  # before the extraction's log lines, which would tangle with a live bar

    return update, bar.stop

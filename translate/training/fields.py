"""What each TrainConfig field is: its help text, the option group that decides which tasks use
it, its choices, and the check of its value.

A field is declared once (`option(...)` in translate.training.config); the checks here read the
metadata, and `translate train` builds its flags and help from the same metadata.

Metadata keys (all optional but `help` and `panel`):
    help: one sentence for `--help`.
    panel: the heading it is listed under in `--help` ("Networks", "Data", ...).
    group: the option group; a task uses the field when its row lists the group (None: every task).
    choices: the allowed values, a tuple or a function returning one (called when checked).
    task_choices: `task row -> allowed values`, for choices that depend on the task (netG, netD).
    check: a function `(name, value) -> None` that raises InvalidValueError.
    default_help: how `--help` shows the default when the value itself would not say it.
    path: the flag takes a file system path (the value is stored as a string).
    cli: False for a field that is not a flag (the task is the command's argument).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from translate.core.errors import InvalidValueError, check_choice

__all__ = ["Check", "option", "integer", "number", "check_field_choice", "check_field_value"]

Check = Callable[[str, Any], None]


def option(default: Any, help: str, *, panel: str, group: str | None = None, choices: Any = None,
           task_choices: Callable[[Any], tuple[str, ...]] | None = None, check: Check | None = None, default_help: str | None = None,
           path: bool = False, cli: bool = True) -> Any:
    """A dataclass field with its description (see the module docstring for the keys)."""
    metadata = {"help": help, "panel": panel, "group": group, "choices": choices, "task_choices": task_choices,
                "check": check, "default_help": default_help, "path": path, "cli": cli}
    return dataclasses.field(default=default, metadata=metadata)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def integer(minimum: int, *, optional: bool = False, why: str = "", none: str = "") -> Check:
    """Check: an int >= `minimum` (or None when `optional`); `why` explains the bound, `none`
    what None means."""
    expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    expected += f" ({why})" if why else ""
    expected += (" or None" + (f" ({none})" if none else "")) if optional else ""

    def check(name: str, value: Any) -> None:
        if optional and value is None:
            return
        if not _is_int(value) or value < minimum:
            raise InvalidValueError(name, value, expected)
    return check


def number(minimum: float, *, strict: bool = False, below: float | None = None, fix: str = "",
           optional: bool = False) -> Check:
    """Check: a number > `minimum` (`strict`) or >= it, and < `below` when given (or None when
    `optional`)."""
    if below is not None:
        expected = f"a number in [{minimum:g}, {below:g})"
    else:
        expected = f"a number {'>' if strict else '>='} {minimum:g}"
    expected += " or None" if optional else ""

    def check(name: str, value: Any) -> None:
        if optional and value is None:
            return
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise InvalidValueError(name, value, expected, fix)
        too_low = value <= minimum if strict else value < minimum
        if too_low or (below is not None and value >= below):
            raise InvalidValueError(name, value, expected, fix)
    return check


def check_field_choice(field: dataclasses.Field, value: Any, task: Any) -> None:
    """Raise InvalidChoiceError unless `value` is one of the field's choices for `task` (a Task row)."""
    choices = field.metadata.get("choices")
    if field.metadata.get("task_choices"):
        choices = field.metadata["task_choices"](task)
    if choices is None:
        return
    check_choice(field.name, value, choices() if callable(choices) else choices)


def check_field_value(field: dataclasses.Field, value: Any) -> None:
    """Run the field's value check, if it has one."""
    check = field.metadata.get("check")
    if check is not None:
        check(field.name, value)

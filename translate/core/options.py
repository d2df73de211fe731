"""Options declared once: a dataclass field carries its help text, the heading it is listed under,
its choices and the check of its value. The library checks values from these fields, and the
command line builds its flags, help and error messages from the same fields.

    @dataclass(frozen=True)
    class Options:
        quality: int = option(95, "jpg / webp quality.", panel="Output", check=integer(1, maximum=100))

    check_options(Options(quality=0))   # InvalidValueError: quality=0: expected an integer in 1..100

Metadata keys (all optional but `help` and `panel`):
    help: one sentence for `--help`.
    panel: the heading it is listed under in `--help` ("Networks", "Output", ...).
    group: the option group; a training task uses the field when its row lists the group (None: always).
    choices: the allowed values, a tuple or a function returning one (called when checked).
    task_choices: `task row -> allowed values`, for choices that depend on the training task.
    optional: None is allowed besides the choices (it means "the default behaviour").
    fix: what to do instead, added to the refusal of a value outside the choices.
    check: a function `(name, value) -> None` that raises InvalidValueError.
    default_help: how `--help` shows the default when the value itself would not say it.
    path: the flag takes a file system path.
    flag: the flag, where it is not `--name-with-dashes` (`fmt` -> `--format`).
    flag_type: the type the flag's text converts to, where the field holds a parsed form
        (`resize`: "640x480" on the command line, (640, 480) in the field).
    envvar: an environment variable the flag is read from when not given (secrets).
    cli: False for a field that is not a flag (an argument, or a Python-only value).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from translate.core.errors import InvalidValueError, check_choice

__all__ = ["Check", "option", "integer", "number", "check_field_choice", "check_field_value", "check_options",
           "choices_of"]

Check = Callable[[str, Any], None]


def option(default: Any, help: str, *, panel: str, group: str | None = None, choices: Any = None,
           task_choices: Callable[[Any], tuple[str, ...]] | None = None, optional: bool = False, fix: str = "",
           check: Check | None = None, default_help: str | None = None, path: bool = False, flag: str | None = None,
           flag_type: type | None = None, envvar: str | None = None, cli: bool = True,
           default_factory: Callable[[], Any] | None = None) -> Any:
    """A dataclass field with its description (see the module docstring for the keys); pass
    `default_factory` (and `dataclasses.MISSING` as `default`) for a default computed per instance."""
    metadata = {"help": help, "panel": panel, "group": group, "choices": choices, "task_choices": task_choices,
                "optional": optional, "fix": fix, "check": check, "default_help": default_help, "path": path,
                "flag": flag, "flag_type": flag_type, "envvar": envvar, "cli": cli}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def integer(minimum: int, *, maximum: int | None = None, optional: bool = False, why: str = "",
            none: str = "") -> Check:
    """Check: an int >= `minimum` (and <= `maximum` when given), or None when `optional`; `why`
    explains the bound, `none` what None means."""
    if maximum is not None:
        expected = f"an integer in {minimum}..{maximum}"
    else:
        expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    expected += f" ({why})" if why else ""
    expected += (" or None" + (f" ({none})" if none else "")) if optional else ""

    def check(name: str, value: Any) -> None:
        if optional and value is None:
            return
        if not _is_int(value) or value < minimum or (maximum is not None and value > maximum):
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


def choices_of(field: dataclasses.Field, task: Any = None) -> tuple[Any, ...] | None:
    """The field's allowed values (for `task`, a training task row, where they depend on it), or None."""
    if field.metadata.get("task_choices") and task is not None:
        return tuple(field.metadata["task_choices"](task))
    choices = field.metadata.get("choices")
    if choices is None:
        return None
    return tuple(choices() if callable(choices) else choices)


def check_field_choice(field: dataclasses.Field, value: Any, task: Any = None) -> None:
    """Raise InvalidChoiceError unless `value` is one of the field's choices (for `task`, a training
    task row), or None where the field is `optional`."""
    choices = choices_of(field, task)
    if choices is None or (value is None and field.metadata.get("optional")):
        return
    check_choice(field.name, value, choices, field.metadata.get("fix", ""))


def check_field_value(field: dataclasses.Field, value: Any) -> None:
    """Run the field's value check, if it has one."""
    check = field.metadata.get("check")
    if check is not None:
        check(field.name, value)


def check_options(options: Any) -> None:
    """Run every field's choice and value check on the dataclass instance `options`.

    Raises:
        InvalidChoiceError, InvalidValueError: the first bad field, named as Python spells it.
    """
    for field in dataclasses.fields(options):
        value = getattr(options, field.name)
        check_field_choice(field, value)
        check_field_value(field, value)

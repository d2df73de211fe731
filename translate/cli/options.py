"""Flags generated from the library's option fields (translate.core.options): one flag per field,
with the field's help text, choices, panel and default, so that an option is declared once, in the
library, and `translate train`, `convert` and `serve` describe theirs alike.

    @with_options(ConvertOptions)
    def convert(input_dir: Path = typer.Argument(...), ..., options: dict[str, Any]) -> None:
        convert_folder(input_dir, output_dir, model, **options)   # only the flags given

A generated flag defaults to None (not given): the library fills in its own default, which
`--help` shows. Values are not checked here: the library's checks refuse a bad one, and
`common.error_message` names the flag.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import typer

from translate.core.options import choices_of

__all__ = ["flag_of", "flags_of", "flag_fields", "help_of", "shown_default", "flag_parameter", "click_parameters",
           "with_options"]


def flag_of(field: dataclasses.Field) -> str:
    """The field's flag: its `flag` metadata, else `--name-with-dashes` (`crop_size` -> `--crop-size`,
    `netG` -> `--netG`)."""
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def flags_of(options_class: type) -> dict[str, str]:
    """Python name -> flag, for every field of `options_class` (for `common.error_message`)."""
    return {field.name: flag_of(field) for field in dataclasses.fields(options_class)}


def flag_fields(options_class: type) -> list[tuple[dataclasses.Field, type]]:
    """(field, the type its flag's text converts to) of each field of `options_class` that is a flag."""
    hints = typing.get_type_hints(options_class)
    out = []
    for field in dataclasses.fields(options_class):
        if not field.metadata.get("cli", True):
            continue
        types = [a for a in typing.get_args(hints[field.name]) if a is not type(None)] or [hints[field.name]]
        value_type = Path if field.metadata.get("path") else field.metadata.get("flag_type") or types[0]
        out.append((field, value_type))
    return out


def help_of(field: dataclasses.Field, choices: tuple[Any, ...] | None = None) -> str:
    """The field's help text followed by its choices (`choices`: where they depend on a task)."""
    choices = choices if choices is not None else choices_of(field)
    text = field.metadata["help"]
    return text + (" " + " | ".join(map(str, choices)) + "." if choices else "")


def shown_default(field: dataclasses.Field, default: Any = dataclasses.MISSING) -> str:
    """How `--help` shows the default (`default`: where it is not the field's, e.g. a task's)."""
    if field.metadata.get("default_help"):
        return field.metadata["default_help"]
    value = field.default if default is dataclasses.MISSING else default
    if isinstance(value, bool):
        return "on" if value else "off"
    return "" if value is None or value is dataclasses.MISSING else str(value)


def flag_parameter(field: dataclasses.Field, value_type: type, *, help: str | None = None, hidden: bool = False,
                   default: str | None = None) -> inspect.Parameter:
    """The keyword parameter typer turns into the field's flag (`--flag/--no-flag` for a bool),
    defaulting to None (not given); `help` and `default` (as shown) override the field's."""
    flag = flag_of(field)
    declaration = f"{flag}/--no-{flag[2:]}" if value_type is bool else flag
    shown = shown_default(field) if default is None else default
    option = typer.Option(None, declaration, help=help_of(field) if help is None else help, hidden=hidden,
                          rich_help_panel=field.metadata["panel"], show_default=shown or False,
                          envvar=field.metadata.get("envvar"))
    return inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=option,
                             annotation=Optional[value_type])


def click_parameters(parameters: list[inspect.Parameter]) -> list[Any]:
    """The click parameters typer makes of `parameters` (for a command that builds its flags late)."""
    def options(**values: Any) -> None:
        """The generated options, read by typer to build click parameters."""

    options.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    options.__annotations__ = {p.name: p.annotation for p in parameters}
    scratch = typer.Typer(add_completion=False)
    scratch.command()(options)
    return list(typer.main.get_command(scratch).params)


def with_options(options_class: type) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A command function that takes `options` gains one flag per field of `options_class`, after
    its own parameters; it is called with the flags given (not None) as `options`."""
    generated = [flag_parameter(field, value_type) for field, value_type in flag_fields(options_class)]
    names = [parameter.name for parameter in generated]

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        hints = typing.get_type_hints(command)
        own = [p.replace(annotation=hints.get(p.name, p.annotation))
               for p in inspect.signature(command).parameters.values() if p.name != "options"]

        def run(**values: Any) -> Any:
            given = {name: values.pop(name) for name in names}
            return command(**values, options={name: value for name, value in given.items() if value is not None})

        run.__signature__ = inspect.Signature([*own, *generated])  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in [*own, *generated]}
        run.__name__, run.__qualname__, run.__doc__ = command.__name__, command.__qualname__, command.__doc__
        run.__module__ = command.__module__
        return run
    return decorate

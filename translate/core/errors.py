"""Typed errors that speak the terms of the API that was called.

Library code names a parameter as Python spells it (`precision="int8"`); the command line maps
that name to its flag (`--precision int8`) with `ParameterError.for_flag`, so one check serves
both audiences.

    check_choice("precision", precision, PRECISIONS)
    # InvalidChoiceError: precision='int9' is not one of auto, fp32, fp16, bf16, int8
    # the CLI prints:     --precision 'int9' is not one of auto, fp32, fp16, bf16, int8
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from translate.core.version import __version__

__all__ = ["ParameterError", "InvalidChoiceError", "InvalidValueError", "InvalidCombinationError",
           "UnsupportedFormatVersionError", "check_choice"]


class ParameterError(ValueError):
    """A bad value for one parameter. `parameter`: the Python name; `value`: what was given;
    `expected`: what is allowed; `fix`: what to do instead ("" when `expected` says it)."""

    def __init__(self, parameter: str, value: Any, expected: str, fix: str = "") -> None:
        self.parameter, self.value, self.expected, self.fix = parameter, value, expected, fix
        super().__init__(self._render(f"{parameter}={value!r}"))

    def _render(self, given: str) -> str:
        return f"{given}: expected {self.expected}" + (f"; {self.fix}" if self.fix else "")

    def for_flag(self, flag: str) -> str:
        """The same message in command-line terms (`--crop-size 100: expected ...`)."""
        value = self.value if isinstance(self.value, (int, float)) else repr(self.value)
        return self._render(f"{flag} {value}")


class InvalidChoiceError(ParameterError):
    """A parameter got a value outside its set of choices; `allowed` lists them."""

    def __init__(self, parameter: str, value: Any, allowed: Iterable[Any], fix: str = "") -> None:
        self.allowed = tuple(allowed)
        listing = ", ".join(repr(a) if a is None else str(a) for a in self.allowed)
        super().__init__(parameter, value, f"one of {listing}", fix)

    def _render(self, given: str) -> str:
        return f"{given} is not {self.expected}" + (f"; {self.fix}" if self.fix else "")


class InvalidValueError(ParameterError):
    """A parameter got a value of the right kind but out of range (`crop_size=-1`)."""


class InvalidCombinationError(ValueError):
    """Parameters that are each valid but cannot be used together (e.g. `precision="bf16"` with
    `backend="onnxruntime"`). `parameters` names them as the Python API spells them; the message
    says which other values would work."""

    def __init__(self, message: str, *parameters: str) -> None:
        super().__init__(message)
        self.parameters = parameters


class UnsupportedFormatVersionError(ValueError):
    """A saved file records a `format_version` this release does not read: a newer release wrote
    it (or the file was edited). `path`: the file; `found`: the version it records (any JSON
    value); `readable`: the versions this release reads."""

    def __init__(self, path: str, found: Any, readable: Iterable[int]) -> None:
        self.path, self.found, self.readable = path, found, tuple(readable)
        versions = ", ".join(str(v) for v in self.readable)
        super().__init__(f"{path!r} has format_version {found!r}; this translate ({__version__}) reads "
                         f"format_version {versions}: upgrade translate (pip install --upgrade translate-gan) "
                         "to read it")


def check_choice(parameter: str, value: Any, allowed: Iterable[Any], fix: str = "") -> None:
    """Raise `InvalidChoiceError` unless `value` is one of `allowed`."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise InvalidChoiceError(parameter, value, allowed, fix)

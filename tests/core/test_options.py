"""Options declared as fields (translate.core.options): `check_options` runs each field's choice and
value check and names the field as Python spells it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from translate.core.errors import InvalidChoiceError, InvalidValueError
from translate.core.options import check_options, integer, number, option


@dataclass(frozen=True)
class Settings:
    level: int = option(1, "A level.", panel="P", check=integer(0, maximum=9))
    mode: str | None = option("a", "A mode.", panel="P", choices=("a", "b"), optional=True)
    speed: str = option("slow", "A speed.", panel="P", choices=lambda: ("slow", "fast"), fix="fast needs a GPU")
    rate: float = option(0.5, "A rate.", panel="P", check=number(0.0, below=1.0))


@pytest.mark.parametrize("values, error, message", [
    ({"level": 10}, InvalidValueError, "level=10: expected an integer in 0..9"),
    ({"level": True}, InvalidValueError, "level=True: expected an integer in 0..9"),
    ({"mode": "c"}, InvalidChoiceError, "mode='c' is not one of a, b"),
    ({"speed": "warp"}, InvalidChoiceError, "speed='warp' is not one of slow, fast; fast needs a GPU"),
    ({"rate": 1.0}, InvalidValueError, "rate=1.0: expected a number in [0, 1)"),
])
def test_check_options_refuses_a_bad_field_by_its_name(values, error, message):
    with pytest.raises(error) as caught:
        check_options(Settings(**values))
    assert str(caught.value) == message and caught.value.parameter == next(iter(values))


def test_check_options_accepts_good_values_and_none_where_optional():
    check_options(Settings())
    check_options(Settings(level=0, mode=None, speed="fast", rate=0.0))

"""`max_minutes`: a wall-clock budget that stops a run and saves it as `max_steps` does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.training import tiny_config
from translate.core.errors import InvalidValueError
from translate.training import make_config, read_checkpoint, train

SMALL_D = {"netD": "n_layers", "n_layers_D": 2, "pool_size": 2}

pytestmark = pytest.mark.usefixtures("single_thread")


def test_a_spent_budget_stops_after_the_step_in_flight_and_saves(unpaired_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    # A budget this small is spent during the first step: the run stops after it, inside epoch 0.
    config = tiny_config("cyclegan", data=unpaired_data, out=run, max_minutes=1e-6, n_epochs=5, n_epochs_decay=5,
                         **SMALL_D)
    result = train(config)
    assert result.step == 1 and result.epoch == 0
    assert (run / "weights" / "AtoB" / "config.json").is_file() and (run / "weights" / "BtoA").is_dir()
    state = read_checkpoint(run)
    assert (state["step"], state["samples_in_epoch"]) == (1, 1), "the position inside the epoch is kept"
    events = [json.loads(line)["event"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert "time_budget_reached" in events and events[-1] == "end"


def test_a_generous_budget_changes_nothing(unpaired_data: Path, tmp_path: Path) -> None:
    overrides = dict(SMALL_D, data=unpaired_data, max_steps=3)
    budgeted = train(tiny_config("cyclegan", out=tmp_path / "a", max_minutes=60, **overrides))
    plain = train(tiny_config("cyclegan", out=tmp_path / "b", **overrides))
    assert budgeted.step == plain.step == 3
    assert budgeted.losses == plain.losses


@pytest.mark.parametrize("value", [0, -1.0, "ten"])
def test_a_bad_budget_is_refused_before_any_data_is_read(value: object) -> None:
    with pytest.raises(InvalidValueError, match="max_minutes=.*expected a number > 0 or None"):
        make_config("cyclegan", overrides={"data": "nowhere", "out": "x", "max_minutes": value})

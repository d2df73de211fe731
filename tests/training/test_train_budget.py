"""`max_minutes`: a wall-clock budget that stops a run and saves it as `max_steps` does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from translate.core.errors import InvalidValueError
from translate.demo import make_unpaired_dataset
from translate.training import make_config, read_checkpoint, train

TINY = {"ngf": 8, "ndf": 8, "workers": 0, "device": "cpu", "log_every": 1, "sample_every": 100,
        "load_size": 36, "crop_size": 32, "netG": "resnet_6blocks", "netD": "n_layers", "n_layers_D": 2, "pool_size": 2}

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def unpaired(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_unpaired_dataset(tmp_path_factory.mktemp("unpaired"), n=6, size=40)


def test_a_spent_budget_stops_after_the_step_in_flight_and_saves(unpaired: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    # A budget this small is spent during the first step: the run stops after it, inside epoch 0.
    config = make_config("cyclegan", overrides=dict(TINY, data=str(unpaired), out=str(run), max_minutes=1e-6,
                                                    n_epochs=5, n_epochs_decay=5))
    result = train(config)
    assert result.step == 1 and result.epoch == 0
    assert (run / "weights" / "AtoB" / "config.json").is_file() and (run / "weights" / "BtoA").is_dir()
    state = read_checkpoint(run)
    assert (state["step"], state["samples_in_epoch"]) == (1, 1), "the position inside the epoch is kept"
    events = [json.loads(line)["event"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert "time_budget_reached" in events and events[-1] == "end"


def test_a_generous_budget_changes_nothing(unpaired: Path, tmp_path: Path) -> None:
    overrides = dict(TINY, data=str(unpaired), max_steps=3)
    budgeted = train(make_config("cyclegan", overrides=dict(overrides, out=str(tmp_path / "a"), max_minutes=60)))
    plain = train(make_config("cyclegan", overrides=dict(overrides, out=str(tmp_path / "b"))))
    assert budgeted.step == plain.step == 3
    assert budgeted.losses == plain.losses


@pytest.mark.parametrize("value", [0, -1.0, "ten"])
def test_a_bad_budget_is_refused_before_any_data_is_read(value: object) -> None:
    with pytest.raises(InvalidValueError, match="max_minutes=.*expected a number > 0 or None"):
        make_config("cyclegan", overrides={"data": "nowhere", "out": "x", "max_minutes": value})

"""The task table: every task has a complete row, the loop knows no task by name, and a new task is
one row (a fake one trains, resumes and is listed by `translate train` without other changes)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from typer.testing import CliRunner

import translate.training.config as config_module
from translate.cli import app
from translate.data import UnpairedDataset, augment_batch
from translate.demo import make_unpaired_dataset
from translate.training import TABLE, Task, get_task, make_config, read_checkpoint, task_names, train
from translate.training.tasks import TaskStep, build_step
from translate.training.tasks.base import preprocess_config

TRAINING = Path(__file__).resolve().parents[2] / "translate" / "training"
runner = CliRunner()


def test_the_table_has_every_task_with_a_complete_row():
    assert [task.name for task in TABLE] == ["cyclegan", "pix2pix", "text2image", "textcycle", "cut", "fastcut"]
    assert set(task_names()) >= {task.name for task in TABLE}
    for task in TABLE:
        assert get_task(task.name) is task
        config = make_config(task.name)  # its reference defaults pass its own checks
        assert config.netG in task.generators and config.netD in task.discriminators
        assert issubclass(task.step, TaskStep)
        assert callable(task.build_dataset) and callable(task.save_weights)
        # evaluation during training is offered exactly where the row can load held-out sets
        assert task.uses("eval_every") == (task.eval_sets is not None)
        for name, value in task.defaults.items():
            assert getattr(config, name) == value


def test_options_belong_to_the_tasks_that_use_them():
    cyclegan, text2image = get_task("cyclegan"), get_task("text2image")
    assert cyclegan.uses("lambda_B") and not cyclegan.uses("text_encoder")
    assert text2image.uses("text_encoder") and not text2image.uses("lambda_B")
    assert all(task.uses("lr") and task.uses("crop_size") for task in TABLE)


def test_training_code_does_not_branch_on_a_task_name():
    hits = []
    for path in TRAINING.rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"task ==|task in \(|task != |\.task in ", line):
                hits.append(f"{path.relative_to(TRAINING)}:{number}: {line.strip()}")
    assert not hits, hits


def test_task_modules_import_only_base_and_lower_layers():
    tasks = TRAINING / "tasks"
    names = [p.stem for p in tasks.glob("*.py") if p.stem not in ("__init__", "base")]
    for name in names:
        text = (tasks / f"{name}.py").read_text()
        others = [other for other in names if other != name and f"translate.training.tasks.{other}" in text]
        assert not others, f"{name} imports {others}"


# --- a fake task, registered by a test, trains through the loop and the CLI ---------------------

class TinyStep(TaskStep):
    """A 1x1 convolution fitted to map A to B with L1: the smallest step the loop can run."""

    task = "tiny"

    def __init__(self, config, device, wrap=None) -> None:
        super().__init__(config, device, wrap)
        self.g = self._build(lambda _: nn.Conv2d(config.input_nc, config.output_nc, 1), None)
        self.models = {"g": self.g}
        self.optimizers = {"g": self._adam([self.g])}
        self._visuals: list[torch.Tensor] = []

    def batch_inputs(self, batch, preprocess, generator):
        a = augment_batch(batch["a"].to(self.device), preprocess, generator)
        b = augment_batch(batch["b"].to(self.device), preprocess, generator)
        return a, b

    def train_step(self, real_a, real_b):
        self.optimizers["g"].zero_grad(set_to_none=True)
        fake_b = self.g(real_a)
        loss = F.l1_loss(fake_b, real_b)
        self._backward_and_step(loss, self.optimizers["g"])
        self._visuals = [real_a, fake_b.detach(), real_b]
        return {"L1": loss.detach()}

    def generator_specs(self):
        return {}

    def visuals(self):
        return self._visuals


def _save_tiny(step, config, run_dir: Path) -> dict[str, Path]:
    folder = run_dir / "weights" / "tiny"
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(step.plain_models()["g"].state_dict(), folder / "g.pt")
    return {"tiny": folder}


TINY_TASK = Task(
    name="tiny", summary="a test task", step=TinyStep, defaults={"netG": "conv1x1", "netD": "none", "batch_size": 2},
    generators=("conv1x1",), discriminators=("none",), size_multiple=lambda net_g: 1,
    option_groups=frozenset({"image_input"}),
    build_dataset=lambda c: UnpairedDataset(c.data, phase="train", preprocess=preprocess_config(c), seed=c.seed),
    save_weights=_save_tiny,
)


@pytest.fixture
def tiny_task(monkeypatch) -> Task:
    monkeypatch.setitem(config_module._TASKS, "tiny", TINY_TASK)
    return TINY_TASK


@pytest.fixture(scope="module")
def unpaired(tmp_path_factory) -> Path:
    return make_unpaired_dataset(tmp_path_factory.mktemp("unpaired"), n=4, size=36)


def tiny_config(data: Path, out: Path, **overrides):
    values = {"data": str(data), "out": str(out), "load_size": 36, "crop_size": 32, "workers": 0, "device": "cpu",
              "n_epochs": 1, "n_epochs_decay": 1, "log_every": 1, "sample_every": 100, **overrides}
    return make_config("tiny", overrides=values)


def test_a_registered_task_trains_resumes_and_saves_through_the_loop(tiny_task, unpaired, tmp_path):
    config = tiny_config(unpaired, tmp_path / "run", max_steps=2)
    assert isinstance(build_step(config, torch.device("cpu")), TinyStep)
    result = train(config)
    assert result.step == 2 and result.weights == {"tiny": tmp_path / "run" / "weights" / "tiny"}
    assert (tmp_path / "run" / "weights" / "tiny" / "g.pt").is_file()
    state = read_checkpoint(tmp_path / "run")
    assert state["task"] == "tiny" and state["step"] == 2
    events = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [e["L1"] > 0 for e in events if e["event"] == "losses"] == [True, True]

    resumed = train(tiny_config(unpaired, tmp_path / "run", max_steps=4), resume_state=state)
    assert resumed.step == 4 and resumed.epoch == 2


def test_a_registered_task_is_a_cli_command_with_its_own_options(tiny_task, unpaired, tmp_path):
    result = runner.invoke(app, ["train", "tiny", "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "a test task" in result.output and "--load-size" in result.output
    assert "--lambda-A" not in result.output and "--text-encoder" not in result.output
    result = runner.invoke(app, ["train", "tiny", "--data", str(unpaired), "--out", str(tmp_path / "run"),
                                 "--crop-size", "32", "--load-size", "36", "--workers", "0", "--device", "cpu",
                                 "--max-steps", "1", "--n-epochs", "1", "--n-epochs-decay", "0"])
    assert result.exit_code == 0, result.output
    assert "done: 1 steps" in result.output and "weights tiny" in result.output

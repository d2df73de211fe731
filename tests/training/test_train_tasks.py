"""The task table: every task has a complete row, the loop knows no task by name, and a new task is
one row (a fake one trains, resumes and is listed by `translate train` without other changes)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from typer.testing import CliRunner

import translate.training.config as config_module
from tests.helpers.training import tiny_config, tiny_flags
from translate.cli import app
from translate.data import UnpairedDataset, augment_batch
from translate.training import TABLE, Task, get_task, make_config, read_checkpoint, task_names, train
from translate.training.tasks import TaskStep, build_step
from translate.training.tasks.base import preprocess_config

TRAINING = Path(__file__).resolve().parents[2] / "translate" / "training"
runner = CliRunner()
pytestmark = pytest.mark.usefixtures("single_thread")


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


# --- no code path picks a task by its name ------------------------------------------------------

def _task_name_constants(trees: list[ast.Module], names: set[str]) -> tuple[set[str], set[tuple[str, str]]]:
    """Module-level names bound to a task name (or a collection of them, or a row `Task(name=...)`, whose
    `.name` is one), and (class, attribute) pairs of class attributes bound to one."""
    def holds(value: ast.expr) -> bool:
        if isinstance(value, ast.Call) and any(k.arg == "name" and _holds_name(k.value, names, set(), set())
                                               for k in value.keywords):
            return True
        return _holds_name(value, names, set(), set())

    module, classes = set(), set()
    for tree in trees:
        for node in tree.body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None and holds(node.value):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                module |= {t.id for t in targets if isinstance(t, ast.Name)}
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, (ast.Assign, ast.AnnAssign)) and item.value is not None and holds(item.value):
                        targets = item.targets if isinstance(item, ast.Assign) else [item.target]
                        classes |= {(node.name, t.id) for t in targets if isinstance(t, ast.Name)}
    return module, classes


def _holds_name(node: ast.expr, names: set[str], module: set[str], classes: set[tuple[str, str]]) -> bool:
    """Whether `node` spells a task name: a string, a tuple / list / set (or frozenset(...)) holding one,
    a constant bound to one, or a row's `.name`."""
    if isinstance(node, ast.Constant):
        return node.value in names
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(_holds_name(e, names, module, classes) for e in node.elts)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("frozenset", "set", "tuple"):
        return any(_holds_name(a, names, module, classes) for a in node.args)
    if isinstance(node, ast.Name):
        return node.id in module
    if isinstance(node, ast.Attribute):
        owner = node.value.id if isinstance(node.value, ast.Name) else None
        return (owner, node.attr) in classes or node.attr in module or (owner in module and node.attr == "name")
    return False


def task_name_branches(sources: dict[str, str], names: set[str]) -> list[str]:
    """`file:line: code` of every comparison (==, !=, in, not in, is), match case, str.startswith/endswith or
    dict literal keyed (a lookup table is a branch too) on a task name in `sources` (file -> code)."""
    trees = {file: ast.parse(code) for file, code in sources.items()}
    module, classes = _task_name_constants(list(trees.values()), names)

    def spelt(node: ast.expr) -> bool:
        return _holds_name(node, names, module, classes)

    hits = []
    for file, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                found = any(spelt(n) for n in (node.left, *node.comparators))
            elif isinstance(node, ast.MatchValue):
                found = spelt(node.value)
            elif isinstance(node, ast.Dict):
                found = any(key is not None and spelt(key) for key in node.keys)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                found = node.func.attr in ("startswith", "endswith") and any(spelt(a) for a in node.args)
            else:
                continue
            if found:
                hits.append(f"{file}:{node.lineno}: {ast.get_source_segment(sources[file], node)}")
    return hits


def test_training_code_does_not_branch_on_a_task_name():
    """What differs between tasks lives in their rows and step classes; the code never asks which task it runs."""
    sources = {str(path.relative_to(TRAINING)): path.read_text() for path in sorted(TRAINING.rglob("*.py"))}
    assert len(sources) > 10
    hits = task_name_branches(sources, set(task_names()))
    assert not hits, "\n".join(hits)


@pytest.mark.parametrize("code", [
    'if config.task == "cut":\n    pass',
    'if "fastcut" != config.task:\n    pass',
    'if self.name in ("cut", "fastcut"):\n    pass',
    'x = config.task not in {"pix2pix"}',
    'x = config["task"] in frozenset(["textcycle"])',
    'PAIRED = "pix2pix"\nif config.task == PAIRED:\n    pass',
    'TEXT_TASKS = ("text2image", "textcycle")\nx = task in TEXT_TASKS',
    'class Step:\n    task = "cut"\n\nx = config.task == Step.task',
    'ROW = Task(name="cyclegan", summary="")\nx = config.task == ROW.name',
    'match config.task:\n    case "cut" | "fastcut":\n        pass',
    'lambda_nce = {"cut": 1.0, "fastcut": 10.0}[config.task]',
    'x = config.task.startswith("text2image")',
])
def test_the_task_name_check_catches_each_spelling(code):
    names = {"cyclegan", "pix2pix", "text2image", "textcycle", "cut", "fastcut"}
    assert task_name_branches({"planted.py": code}, names)


def test_the_task_name_check_leaves_task_free_code_alone():
    code = ('class CUTStep:\n    task = "cut"\n\n'  # a step naming its own row is no branch
            'if state["task"] != config.task:\n    pass\n'  # two runs' tasks compared: no name involved
            'x = config.netD in ("basic", "pixel")\n'
            'ROW = Task(name="cut", defaults={"netG": "resnet_9blocks"})\n')
    assert task_name_branches({"free.py": code}, {"cut", "fastcut"}) == []


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


def test_a_registered_task_trains_resumes_and_saves_through_the_loop(tiny_task, unpaired_data, tmp_path):
    config = tiny_config("tiny", data=unpaired_data, out=tmp_path / "run", max_steps=2)
    assert isinstance(build_step(config, torch.device("cpu")), TinyStep)
    result = train(config)
    assert result.step == 2 and result.weights == {"tiny": tmp_path / "run" / "weights" / "tiny"}
    assert (tmp_path / "run" / "weights" / "tiny" / "g.pt").is_file()
    state = read_checkpoint(tmp_path / "run")
    assert state["task"] == "tiny" and state["step"] == 2
    events = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [e["L1"] > 0 for e in events if e["event"] == "losses"] == [True, True]

    resumed = train(tiny_config("tiny", data=unpaired_data, out=tmp_path / "run", max_steps=4), resume_state=state)
    assert resumed.step == 4 and resumed.epoch == 2


def test_a_registered_task_is_a_cli_command_with_its_own_options(tiny_task, unpaired_data, tmp_path):
    result = runner.invoke(app, ["train", "tiny", "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "a test task" in result.output and "--load-size" in result.output
    assert "--lambda-A" not in result.output and "--text-encoder" not in result.output
    result = runner.invoke(app, ["train", "tiny", "--data", str(unpaired_data), "--out", str(tmp_path / "run"),
                                 *tiny_flags("tiny", max_steps=1, n_epochs_decay=0)])
    assert result.exit_code == 0, result.output
    assert "done: 1 steps" in result.output and "weights tiny" in result.output

"""`translate train`: train a model, or resume a run.

The command's options are generated from TrainConfig's fields (help text, option group, type;
by translate.cli.options, as convert's and serve's are) and the task table, so every option is
declared once, in translate.training.config, and `translate train TASK --help` lists the options
TASK uses. Options that do not apply to the task still parse (a YAML file or an old command line
may set them) and are reported as ignored.

Building the options imports translate.training (and torch), so `TrainCommand` builds them when
`translate train ...` runs, not when `translate --help` lists the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from typer.core import TyperCommand

from translate.cli.common import error_message, fail, progress_printer
from translate.cli.options import click_parameters, flag_fields, flag_parameter, flags_of, help_of, shown_default
from translate.core.options import choices_of

_TASK_KEY = "translate.train.task"  # ctx.meta: the task named on the command line (or by --resume's run)
_OPTIONS_KEY = "translate.train.options"  # ctx.meta: the TrainConfig options given (None: not given)


def _config_fields() -> list[tuple[Any, Any]]:
    """(field, the type its flag converts to) of each TrainConfig field that is a flag."""
    # Imported here, not at the top: translate.training imports torch, which `translate --help` must not pay for.
    from translate.training import TrainConfig

    return flag_fields(TrainConfig)


def _flags() -> dict[str, str]:
    """TrainConfig's Python names -> the command's flags (the task is the command's argument)."""
    from translate.training import TrainConfig  # see _config_fields: torch loads only here

    return {**flags_of(TrainConfig), "task": "TASK"}


def _shown_default(field: Any, tasks: list[Any]) -> str:
    """The default `--help` shows: the tasks' reference default, when they agree on one."""
    values = {repr(task.defaults.get(field.name, field.default)) for task in tasks}
    if len(values) != 1 and not field.metadata.get("default_help"):
        return "depends on the task"
    return shown_default(field, tasks[0].defaults.get(field.name, field.default))


def _help_of(field: Any, task: Any | None, tasks: list[Any]) -> str:
    text = help_of(field, choices_of(field, task))
    if task is None and field.metadata.get("group") is not None:
        text += " Used by " + ", ".join(t.name for t in tasks if t.uses(field)) + "."
    return text


def build_config_options(task_name: str | None) -> list[Any]:
    """The command's TrainConfig options (click parameters), described for `task_name` (None: for
    every task): options the task does not use are hidden from `--help` but still parse."""
    from translate.training import get_task, task_names  # see _config_fields: torch loads only here

    task = get_task(task_name) if task_name is not None else None
    tasks = [get_task(name) for name in task_names()]
    parameters = []
    for field, value_type in _config_fields():
        used = task.uses(field) if task is not None else field.metadata.get("group") is None
        # The value is None (not given) until make_config resolves it; show the task's default instead.
        parameters.append(flag_parameter(field, value_type, help=_help_of(field, task, tasks), hidden=not used,
                                         default=_shown_default(field, [task] if task is not None else tasks)))
    return click_parameters(parameters)


def _run_task(run_dir: str) -> str | None:
    """The task of the run in `run_dir` (its config.yaml), or None when that cannot be read."""
    import yaml  # here, not at the top: only `translate train --resume` reads a run's config


    try:
        return str(yaml.safe_load((Path(run_dir) / "config.yaml").read_text())["task"])
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None


def task_named_by(args: list[str], value_flags: set[str]) -> str | None:
    """The task an argument list names: its first positional argument, else the task of the run
    `--resume` names. `value_flags`: the options that take a value (the next argument)."""
    tokens = iter(args)
    resume = None
    for token in tokens:
        if token == "--":
            return next(tokens, None)
        if not token.startswith("-"):
            return token
        name, has_value = token.split("=", 1)[0], "=" in token
        if name == "--resume":
            resume = token.split("=", 1)[1] if has_value else next(tokens, None)
        elif name in value_flags and not has_value:
            next(tokens, None)
    return _run_task(resume) if resume else None


class TrainCommand(TyperCommand):
    """`translate train`: its TrainConfig options come from `build_config_options`, described for
    the task the arguments name, so `--help` shows that task's options."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._config_options: list[Any] | None = None
        self._summary = self.help or ""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        from translate.training import get_task, task_names  # see _config_fields: torch loads only here

        flags = _flags()
        value_flags = {"--resume", "--config"} | {flags[f.name] for f, kind in _config_fields() if kind is not bool}
        task = task_named_by(args, value_flags)
        ctx.meta[_TASK_KEY] = task if task in task_names() else None
        if ctx.meta[_TASK_KEY] is None:
            listing = "\n\n".join(f"{name}: {get_task(name).summary}" for name in task_names())
            self.help = f"{self._summary}\n\nTasks (translate train TASK --help lists its options):\n\n{listing}"
        else:
            self.help = f"{self._summary}\n\n{task}: {get_task(task).summary}."
        return super().parse_args(ctx, args)

    def get_params(self, ctx: Any) -> list[Any]:
        if self._config_options is None:
            self._config_options = build_config_options(ctx.meta.get(_TASK_KEY))
        params = [*self.params, *self._config_options]
        help_option = self.get_help_option(ctx)
        return [*params, help_option] if help_option is not None else params

    def invoke(self, ctx: Any) -> Any:
        # The callback takes the declared parameters only; the generated ones travel in ctx.meta.
        names = {f.name for f, _ in _config_fields()}
        ctx.meta[_OPTIONS_KEY] = {name: ctx.params.pop(name) for name in list(ctx.params) if name in names}
        return super().invoke(ctx)


def _resolve(task: str | None, resume: Path | None, config: Path | None, options: dict[str, Any]) -> tuple[Any, Any]:
    """(TrainConfig, checkpoint or None) from the command line; exits 2 on a bad one."""
    from translate.training import load_yaml_config, make_config, read_checkpoint, task_names

    overrides = {k: (str(v) if isinstance(v, Path) else v) for k, v in options.items()}
    if resume is not None:
        resume_state = read_checkpoint(resume)
        base = dict(resume_state["config"])
        if task is not None and task != base["task"]:
            fail(f"the run in {resume} trains {base['task']!r}, not {task!r}")
        overrides["out"] = str(resume)
        return make_config(base["task"], base=base, overrides=overrides), resume_state
    if task is None:
        fail(f"name a task ({', '.join(task_names())}), or pass --resume RUN_DIR")
    base = load_yaml_config(config) if config is not None else None
    cfg = make_config(task, base=base, overrides=overrides)
    if not cfg.data or not cfg.out:
        fail("--data DIR and --out RUN_DIR are required")
    if (Path(cfg.out) / "checkpoints" / "latest.pt").exists():
        fail(f"{cfg.out} already holds a run; continue it with --resume {cfg.out} or pick another --out")
    return cfg, None


def _warn_unused(cfg: Any, options: dict[str, Any]) -> None:
    from translate.training import get_task

    task = get_task(cfg.task)
    flags = _flags()
    unused = [flags[name] for name, value in options.items() if value is not None and not task.uses(name)]
    if unused:
        typer.secho(f"warning: {', '.join(unused)} {'does' if len(unused) == 1 else 'do'} not apply to {cfg.task}; "
                    "ignored", fg=typer.colors.YELLOW, err=True)


def _print_result(result: Any) -> None:
    typer.echo(f"done: {result.step} steps, epoch {result.epoch}, {result.seconds:.1f} s; run in {result.run_dir}")
    if result.skipped_files:
        typer.echo(f"skipped {len(result.skipped_files)} unreadable file(s); see {result.run_dir / 'log.jsonl'}")
    for direction, path in result.weights.items():
        typer.echo(f"weights {direction}: {path}")
    if result.evaluations:
        key = next((k for k in result.evaluations[-1] if k.endswith("/fid")), None) or next(
            k for k in result.evaluations[-1] if k.endswith("/l1"))
        best = min(result.evaluations, key=lambda e: e[key])
        typer.echo(f"eval: best {key} {best[key]:.4g} at epoch {best['epoch']} (final {result.evaluations[-1][key]:.4g});"
                   f" every score in {result.run_dir / 'log.jsonl'} (event 'eval')")


def train(
    ctx: typer.Context,
    task: Optional[str] = typer.Argument(None, help="The task to train (omit with --resume)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this directory; "
                                          "options given extend or override its config."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file of options; flags override it."),
) -> None:
    """Train a model, or --resume a run."""
    import os

    from translate.training import NonFiniteLossError
    from translate.training import train as run_training

    options = ctx.meta.get(_OPTIONS_KEY, {})
    try:
        cfg, resume_state = _resolve(task, resume, config, options)
    except (ValueError, FileNotFoundError) as error:
        fail(error_message(error, _flags()))
    _warn_unused(cfg, options)
    main_process = os.environ.get("RANK", "0") == "0"
    update, close = progress_printer() if main_process else (None, lambda: None)
    try:
        result = run_training(cfg, resume_state=resume_state, on_progress=update)
    except NonFiniteLossError as error:
        close()
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=3) from None
    except (ValueError, FileNotFoundError) as error:
        close()
        fail(error_message(error, _flags()))
    close()
    if main_process:
        _print_result(result)

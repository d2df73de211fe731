"""The `translate` application: the global options and the table of commands (one module each).

Only this module prints; the library reports through `logging`.
"""

from __future__ import annotations

import logging

import typer

app = typer.Typer(
    name="translate",
    help="Image-to-image translation: train CycleGAN / pix2pix, import reference checkpoints, convert folders.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages.")) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )


# --- the command groups, one module each ---------------------------------------------------------
# A new command is a new module here plus a row in COMMANDS. The command modules import the
# library inside their functions, so that `translate --help` does not import torch.
from translate.cli import convert, demo, evaluate, export, generate, models_cmd, pretrained, train  # noqa: E402
from translate.cli.data import data_app  # noqa: E402

COMMANDS = (
    ("train", train.train),
    ("convert", convert.convert),
    ("export", export.export_command),
    ("info", export.info_command),
    ("eval", evaluate.eval_command),
    ("generate", generate.generate),
    ("demo", demo.demo),
    ("models", models_cmd.models_command),
    ("import-reference", models_cmd.import_reference_command),
    ("pretrained", pretrained.pretrained_command),
)
for _name, _function in COMMANDS:
    app.command(_name)(_function)
app.add_typer(data_app, name="data")

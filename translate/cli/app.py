"""The `translate` application: the global options and the table of commands (one module each).

Only this package prints; the library reports through `logging`.

The command modules import the library (torch, numpy, PIL, onnx) and rich's progress bars inside
their functions: `translate --help` takes 0.17 s, against 2.2 s with `translate.deploy.convert`
imported at the top of one module and 5.5 s with every module the commands use (best of 3-7 runs
on 2 CPU cores; `python -X importtime -c "import translate.cli"` totals 0.06 s), and a mistyped
flag is refused as fast. That is the only reason for an import inside a function in this package;
light modules (`translate.core.errors`, `translate.core.paths`, `translate.formats.locator`) are
imported at the top.
"""

from __future__ import annotations

import logging

import typer

from translate.cli import (
    bundle,
    convert,
    demo,
    evaluate,
    export,
    generate,
    models_cmd,
    pretrained,
    refit_matcher,
    serve,
    train,
)
from translate.cli.data import data_app

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


# A new command is a new module in this package plus a row here.
# (name, function, click command class: None for typer's own; train builds its options from TrainConfig)
COMMANDS = (
    ("train", train.train, train.TrainCommand),
    ("convert", convert.convert, None),
    ("export", export.export_command, None),
    ("info", export.info_command, None),
    ("eval", evaluate.eval_command, None),
    ("generate", generate.generate, None),
    ("demo", demo.demo, None),
    ("models", models_cmd.models_command, None),
    ("import-reference", models_cmd.import_reference_command, None),
    ("pretrained", pretrained.pretrained_command, None),
    ("serve", serve.serve_command, None),
    ("bundle", bundle.bundle_command, None),
    ("refit-matcher", refit_matcher.refit_matcher_command, None),
)
for _name, _function, _command_class in COMMANDS:
    app.command(_name, cls=_command_class)(_function)
app.add_typer(data_app, name="data")

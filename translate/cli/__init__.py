"""The `translate` command line: the only package that prints; thin over the library's functions.

It owns the flags, their help and defaults, the exit codes (2 bad arguments, 1 some files or a
download failed, 3 a non-finite training loss) and the terminal output. It decides nothing about
models (that is `translate.formats.locator`) and leaves value checks to the library, whose typed
errors name its parameters; `common.library_errors` turns them into the flags' terms.

- `app`: the typer application and its COMMANDS table.
- `common`: `fail`, `library_errors` / `error_message` (the one rewrite of the library's errors
  into flags), the progress displays.
- `options`: the flags of train, convert and serve, generated from the library's option fields.
- one module per command group: `train`, `convert`, `export` (export, info), `evaluate` (eval),
  `generate`, `demo`, `models_cmd` (models, import-reference), `pretrained`, `data` (data list,
  data download).
"""

from translate.cli.app import app

__all__ = ["app"]

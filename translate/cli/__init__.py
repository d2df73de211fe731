"""The `translate` command line: one module per command group, thin over the library's functions.

`translate.cli.app` assembles the typer application from the command modules; only this package
prints, the library reports through `logging`.
"""

from translate.cli.app import app

__all__ = ["app"]

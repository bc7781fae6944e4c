"""The `fpprov` command line: argument parsing only; the work lives in the library modules."""

from __future__ import annotations

import importlib
import warnings

import typer

from .. import __version__
from .common import App

app = App(
    name="fpprov",
    help="Find the fixed points of pretrained LLMs and trace them back to training data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts show [t] and [bos, t] literally
)



def _version(asked: bool) -> None:
    if asked:
        typer.echo(f"fpprov {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: bool = typer.Option(False, "--version", is_eager=True, callback=_version,
                                      help="Print fpprov's version and exit.")) -> None:
    """Find the fixed points of pretrained LLMs and trace them back to training data."""


# Each module defines register(app) and owns its commands.
COMMAND_MODULES = ("scan", "vectors", "provenance", "report", "status", "validate")

for _name in COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_name}").register(app)


def run() -> None:
    """Run the command line from sys.argv; ends in SystemExit (fpprov.entry adds the Ctrl-C guard around it)."""
    warnings.filterwarnings("ignore", category=FutureWarning)
    app()

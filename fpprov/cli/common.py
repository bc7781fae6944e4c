"""Pieces every command shares: the console, the --db option and one-line errors."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import typer
import typing
from typer.core import TyperCommand
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from ..runtime import interrupts
from ..errors import FpprovError

console = Console(stderr=False, highlight=False)
err_console = Console(stderr=True, highlight=False)

DbOption = typer.Option(None, "--db", envvar="FPPROV_DB", help="DuckDB file (default ./fpprov.duckdb).",
                        show_default=False)


_PLACEHOLDERS = {int: "N", float: "X", str: "TEXT", Path: "PATH"}


def placeholder(param: Any) -> str:
    """What an option's value or an argument is called in help: its metavar, else N (integers), X (numbers),
    TEXT or PATH, never typer's Python types (<int>, <list[str]>, <int range>)."""
    if param.metavar is not None:
        return param.metavar
    kind = param.type_descriptor.annotation
    if typing.get_origin(kind) in (list, tuple):
        kind = typing.get_args(kind)[0]
    return _PLACEHOLDERS.get(kind, (param.name or "value").upper())


class ReadableCommand(TyperCommand):
    """A command whose help names values by placeholder (``--limit N``, ``MODEL...``)."""

    def format_options(self, ctx: Any, formatter: Any) -> None:
        args, opts = [], []
        for param in self.get_params(ctx):
            if param.param_type_name == "option" and not param.is_flag:
                param.metavar = placeholder(param)   # typer shows an option's metavar in place of its type
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":   # typer adds the type to an argument's name: leave it out
                name = param.metavar or (param.name or "value").upper()
                args.append((name + ("..." if param.nargs != 1 else ""), record[1]))
            else:
                opts.append(record)
        for title, rows in (("Arguments", args), ("Options", opts)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


class App(typer.Typer):
    """typer.Typer whose commands are ReadableCommands."""

    def command(self, *args: Any, cls: Any = None, **kwargs: Any) -> Any:
        return super().command(*args, cls=cls or ReadableCommand, **kwargs)


def db_path(db: Optional[Path]) -> Path:
    from ..db.store import default_db_path  # duckdb loads with a command's work, not at CLI start

    return Path(db) if db else default_db_path()


def esc(value: Any) -> str:
    """Data (token texts, names, paths, messages) for a markup string: brackets shown literally."""
    return escape(str(value))


def cell(value: Any) -> Text:
    """A table cell holding data: never parsed as markup."""
    return Text(str(value))


def fail(message: str, code: int = 2) -> None:
    """Print one line and exit: the CLI's only way of reporting bad input."""
    err_console.print(f"[bold red]error:[/] {esc(message)}", markup=True, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _interrupted() -> None:
    sys.exit(interrupts.report())


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn FpprovError into one line with exit code 2, and Ctrl-C into exit 130 (work stays committed)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FpprovError as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            _interrupted()
        except RuntimeError as exc:
            # DuckDB turns Ctrl-C during a statement into RuntimeError('Query interrupted').
            if "interrupted" not in str(exc).lower():
                raise
            _interrupted()

    return wrapper

"""Pieces every command shares: the console, the --db option and one-line errors."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from ..runtime import interrupts
from ..errors import FpprovError
from ..db.store import default_db_path

console = Console(stderr=False, highlight=False)
err_console = Console(stderr=True, highlight=False)

DbOption = typer.Option(None, "--db", envvar="FPPROV_DB", help="DuckDB file (default ./fpprov.duckdb).",
                        show_default=False)


def db_path(db: Optional[Path]) -> Path:
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

"""`fpprov report`, `fpprov sql` and `fpprov export`: argument parsing only (see fpprov.report, fpprov.db.sql,
imported inside the commands: duckdb loads with a command's work, not at CLI start)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, List, Optional

import typer

from ..errors import FpprovError
from .common import DbOption, console, db_path, err_console, user_errors

# fpprov.report's DEFAULT_PAGE_SIZE and fpprov.db.sql's FORMATS, stated here for the help texts without
# importing duckdb at CLI start (tests/test_cli_startup.py checks that they agree)
PAGE_SIZE = 100
FORMATS = ("table", "csv", "json")
SNAPSHOT_NOTE = "note: another process is writing the database; read a snapshot taken just now"


def parse_thresholds(items: List[str]) -> dict[str, float]:
    """['rule=value', ...] -> {rule: value}, one-line errors for anything else."""
    out = {}
    for item in items:
        rule, sep, value = item.partition("=")
        try:
            if not sep or not rule.strip():
                raise ValueError
            out[rule.strip()] = float(value)
        except ValueError:
            raise FpprovError(f"--threshold wants RULE=NUMBER, e.g. repetition_enriched=0.01; got {item!r}") from None
    return out


@user_errors
def report(
    db: Optional[Path] = DbOption,
    out: Path = typer.Option(Path("reports"), "--out", "-o", metavar="DIR", help="Folder for the HTML files."),
    model: Optional[List[str]] = typer.Option(None, "--model", "-m", metavar="MODEL", help="Only this model's page (repeatable)."),
    threshold: Optional[List[str]] = typer.Option(
        None, "--threshold", "-t", metavar="RULE=VALUE", help="RULE=VALUE: override a suspicion threshold for this report only (repeatable)."),
    page_size: Optional[int] = typer.Option(None, min=10, metavar="N", show_default=str(PAGE_SIZE),
                                            help="Rows per table page."),
) -> None:
    """Write HTML reports: index.html, one page per model, shared.html."""
    from ..report import build_reports

    outcome = build_reports(db_path(db), out, threshold_overrides=parse_thresholds(threshold or []),
                            models=model or None, page_size=page_size or PAGE_SIZE)
    if outcome.snapshot:
        err_console.print(SNAPSHOT_NOTE)
    err_console.print(outcome.summary, markup=False, highlight=False)
    console.print(str(outcome.index), soft_wrap=True, markup=False)


def sql_cell(value: Any) -> Optional[str]:
    """A cell of `fpprov sql`'s table as the HTML reports write it (fpprov.report.text): a float in the reports'
    compact form, a text whose spaces would not show (all spaces, or leading or trailing ones: a token's text)
    with each space as an open box; None: the plain form."""
    from ..report.text import flat, number  # imported with the command's work, not at CLI start

    if isinstance(value, float):
        return number(value)
    if isinstance(value, list) and any(isinstance(v, float) for v in value):
        return "[" + ", ".join("NULL" if v is None else number(v) for v in value) + "]"
    if isinstance(value, str) and value != value.strip(" "):
        return flat(value, show_spaces=True)
    return None


@user_errors
def sql(
    query: Optional[str] = typer.Argument(
        None, metavar="QUERY", help="SQL text, a .sql file, a canned query name (see `fpprov sql` with no "
                                    "argument), or a table or view name (all of it)."),
    db: Optional[Path] = DbOption,
    fmt: str = typer.Option("table", "--format", "-f", metavar="FORMAT", help=f"Output: {' | '.join(FORMATS)}."),
) -> None:
    """Run read-only SQL on the results (works while a scan writes). Lists canned queries without QUERY.

    The table format rounds floats and shows the spaces of a token's text as the reports do (an open box);
    --format csv and json carry every value exactly.

    Allowed: SELECT and other queries over this database (temporary tables included). Refused: writes to
    it, ATTACH, COPY ... TO, EXPORT, INSTALL/LOAD, SET of locked settings, and reading or writing any other
    file (read_csv, read_parquet, ...); use `fpprov export` for parquet files.
    """
    from ..db import sql as library  # its FORMATS decide; FORMATS here only word the help
    from ..db.sql import canned_queries, format_result, query_database, query_summary

    if query is None:
        for name, text in canned_queries().items():
            console.print(f"{name:24} {query_summary(text)}", markup=False, highlight=False, soft_wrap=True)
        return
    if fmt not in library.FORMATS:
        raise FpprovError(f"unknown format {fmt!r}; use one of: {', '.join(library.FORMATS)}")
    result, opened = query_database(db_path(db), query)
    if opened.snapshot:
        err_console.print(SNAPSHOT_NOTE)
    if opened.schema:
        current, latest = opened.schema
        what = (f"lacks migrations of this fpprov (it is at version {current}, this fpprov at {latest})"
                if current < latest else "has views that differ from this fpprov's")
        err_console.print(f"note: the database {what}: read as it is until a writing command (e.g. `fpprov "
                          "report`) upgrades it", markup=False, highlight=False)
    # plain write, not rich or click.echo (which strips ANSI escapes off a pipe): csv and json must carry
    # the data exactly; the table format escapes control characters itself and rounds floats
    sys.stdout.write(format_result(result, fmt, sql_cell) + "\n")
    sys.stdout.flush()


@user_errors
def export(
    parquet: Path = typer.Option(..., "--parquet", metavar="DIR", help="Folder to write one <name>.parquet per table and view."),
    db: Optional[Path] = DbOption,
) -> None:
    """Export every table and view to parquet files."""
    from ..db.sql import export_parquet
    from ..report import first_missing_folder, remove_folder

    created = first_missing_folder(parquet.expanduser())
    try:
        written = export_parquet(db_path(db), parquet)
    except BaseException:
        remove_folder(created)   # a bad --db or a failed table leaves no folder this command made
        raise
    for name, kind, rows, path in written:
        console.print(f"{kind:5} {name:28} {rows:>10,} rows  {path}", markup=False, highlight=False, soft_wrap=True)
    err_console.print(f"{len(written)} files in {parquet}", markup=False, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("report")(report)
    app.command("sql")(sql)
    app.command("export")(export)

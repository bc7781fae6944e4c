"""Read-only SQL over the results: run a query (text, .sql file or canned query), format it, export parquet.

DuckDB lets several processes read a file, but not beside a writer. So that `fpprov sql` and `fpprov
report` work while a scan writes, a locked database is read from a snapshot: the file and its WAL copied
to a temporary folder (retried until the copy is not torn by a concurrent checkpoint) and opened read-only,
which replays the WAL in memory. The snapshot shows every committed chunk up to the moment of the copy.

Every connection opened here is locked down (store.lock_down): it reads its own database and nothing
else, so a query can neither write other files (COPY TO, ATTACH ... READ_WRITE) nor read them (read_csv),
nor change that configuration. Export alone may also write (and read back) its output folder.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import decimal
import difflib
import io
import json
import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import duckdb

from ..errors import DatabaseLockedError, FpprovError
from .store import Store, connect, list_migrations, lock_down, migrate, open_store, views_current

FORMATS = ("table", "csv", "json")
_SNAPSHOT_TRIES = 5
_CANNED_NAME = re.compile(r"^[a-z0-9_]+$")
_TABLE_CELL_MAX = 60          # characters per cell in the terminal table; csv and json carry full values


# -- opening ------------------------------------------------------------------------------------------
@dataclass
class ReadOnlyStore:
    store: Store
    snapshot: bool                          # True when reading a copy because a writer holds the file
    schema: tuple[int, int] | None = None   # (database's, this fpprov's) schema version when the file is older


def latest_schema_version() -> int:
    return max(m.version for m in list_migrations())


def _applied_versions(con: duckdb.DuckDBPyConnection) -> set[int]:
    try:
        return {v for (v,) in con.execute("SELECT version FROM schema_version").fetchall()}
    except duckdb.CatalogException:
        return set()


def _file_state(path: Path) -> tuple:
    return tuple((p.stat().st_size, p.stat().st_mtime_ns) if p.exists() else None
                 for p in (path, Path(f"{path}.wal")))


def _copy_snapshot(path: Path, folder: Path) -> Path:
    """Copy the database and its WAL, retrying while a concurrent write changes them mid-copy."""
    target = folder / path.name
    for _ in range(_SNAPSHOT_TRIES):
        before = _file_state(path)
        shutil.copyfile(path, target)
        wal, wal_target = Path(f"{path}.wal"), Path(f"{target}.wal")
        if wal.exists():
            shutil.copyfile(wal, wal_target)
        elif wal_target.exists():
            wal_target.unlink()
        if _file_state(path) == before:
            return target
    raise FpprovError(f"database {path} kept changing while it was copied for reading; try again")


@contextlib.contextmanager
def _snapshot(db: Path, allowed_directories: Sequence[Path] = ()) -> Iterator[ReadOnlyStore]:
    with tempfile.TemporaryDirectory(prefix="fpprov-snapshot-") as folder:
        copy = _copy_snapshot(db, Path(folder))
        try:
            # The copy is ours: bring its schema up to date (migrations, then views.sql) before reading.
            with connect(copy) as con:
                migrate(con)
            con = connect(copy, read_only=True)
            try:
                lock_down(con, allowed_directories)
            except BaseException:
                con.close()
                raise
            store = Store(con, db, read_only=True)
        except duckdb.Error as exc:
            raise FpprovError(f"cannot read a snapshot of {db} (locked by a writer): "
                              f"{str(exc).splitlines()[0]}") from None
        try:
            yield ReadOnlyStore(store, snapshot=True)
        finally:
            store.close()


@contextlib.contextmanager
def open_read_only(path: str | os.PathLike, *, upgrade: bool = False,
                   allowed_directories: Sequence[Path] = ()) -> Iterator[ReadOnlyStore]:
    """Open the database read-only and locked down, from a snapshot copy when another process holds the
    write lock. The connection reaches no file but the database (and the folders in allowed_directories).

    A file written by an older fpprov lacks migrations, or has views that differ from this fpprov's
    views.sql: with upgrade=True (report, export) it is migrated first (which applies views.sql), as every
    writing command does; otherwise (sql) it is read as it is and `schema` says so.
    """
    db = Path(path).expanduser()
    locked = {"read_only": True, "locked": True, "allowed_directories": allowed_directories}
    try:
        store = open_store(db, **locked)
    except DatabaseLockedError:
        with _snapshot(db, allowed_directories) as ro:
            yield ro
        return
    # migrate() applies every missing version, so a gap (not only an older maximum) means "outdated"; so do
    # views that are not views.sql's (an older fpprov's, or missing after an interrupted first open)
    applied = _applied_versions(store.con)
    outdated = bool({m.version for m in list_migrations()} - applied) or not views_current(store.con)
    latest, current = latest_schema_version(), max(applied, default=0)
    if outdated and upgrade:
        store.close()
        try:
            open_store(db).close()          # migrates
        except FpprovError:
            # a writer appeared meanwhile, or the file is not ours to write: upgrade a copy instead
            with _snapshot(db, allowed_directories) as ro:
                yield ro
            return
        store, outdated = open_store(db, **locked), False
    try:
        yield ReadOnlyStore(store, snapshot=False, schema=(current, latest) if outdated else None)
    finally:
        store.close()


# -- queries --------------------------------------------------------------------------------------------
def query_summary(sql: str) -> str:
    """The ``--`` lines a SQL file (a canned query, a migration) starts with, as one line."""
    lines = []
    for line in sql.splitlines():
        if not line.startswith("--"):
            break
        lines.append(line[2:].strip())
    return " ".join(line for line in lines if line)


def canned_queries() -> dict[str, str]:
    """Name -> SQL text of the queries shipped in ``queries/`` (package ``fpprov.queries``)."""
    found = {}
    for entry in resources.files("fpprov.queries").iterdir():
        if entry.name.endswith(".sql"):
            found[entry.name[:-4]] = entry.read_text("utf-8")
    return dict(sorted(found.items()))


def resolve_query(text_or_file: str) -> str:
    """SQL from a .sql file path, a canned query name ('top_suspicious' or 'queries/top_suspicious.sql'
    from any folder), or the SQL text itself."""
    candidate = text_or_file.strip()
    if not candidate:
        raise FpprovError("empty query")
    if candidate.endswith(".sql") and "\n" not in candidate:
        path = Path(candidate).expanduser()
        if path.is_file():
            return path.read_text("utf-8")
        name = path.name[:-4]
        canned = canned_queries()
        if name in canned:
            return canned[name]
        raise FpprovError(f"no such query file: {candidate} (canned queries: {', '.join(canned) or 'none'})")
    if _CANNED_NAME.match(candidate) and candidate in canned_queries():
        return canned_queries()[candidate]
    return text_or_file


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple]


def run_query(store: Store, sql: str, params: list[Any] | None = None) -> QueryResult:
    """Run SQL (several statements allowed; the last one's result is returned) as one-line errors."""
    try:
        cursor = store.con.execute(sql, params)
        if cursor.description is None:
            return QueryResult([], [])
        return QueryResult([d[0] for d in cursor.description], cursor.fetchall())
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, duckdb.PermissionException) or "configuration has been locked" in first:
            raise FpprovError(f"refused: {first} (queries may only read this database)") from None
        raise FpprovError(f"SQL error: {first}") from None


def query_database(db: str | os.PathLike, text_or_file: str) -> tuple[QueryResult, ReadOnlyStore]:
    """Resolve and run a query read-only; also return how the file was opened (snapshot, old schema)."""
    sql = resolve_query(text_or_file)
    with open_read_only(db) as ro:
        return run_query(ro.store, lone_name(ro.store, sql)), ro


_LONE_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def lone_name(store: Store, sql: str) -> str:
    """A lone word naming a table or view is that relation, whole (``FROM name``): one name, one meaning, as a
    canned query never takes a relation's name for something else (tests/test_sql_cli.py). A lone word close to
    a canned query's or a relation's name is a typo of it, said as such; anything else is SQL."""
    word = sql.strip()
    if not _LONE_WORD.fullmatch(word):
        return sql
    relations = [name for name, _ in relation_names(store)]
    if word in relations:
        return f'FROM "{word}"'
    close = difflib.get_close_matches(word, [*canned_queries(), *relations], n=1, cutoff=0.75)
    if close:
        raise FpprovError(f"no canned query, table or view {word!r}; did you mean {close[0]!r}? "
                          "(`fpprov sql` lists the canned queries, docs/schema.md the tables and views)")
    return sql


# -- formatting -----------------------------------------------------------------------------------------
def _json_default(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    return str(value)


def _terminal_cell(value: Any, show: Callable[[Any], str | None] | None = None) -> str:
    """One line a terminal shows safely: control characters (ANSI escapes included) and bidi overrides
    written as escapes, long values cut. ``show`` may give a value's text first (None: the plain form)."""
    text = show(value) if show is not None else None
    if text is None:
        if value is None:
            return "NULL"
        if isinstance(value, bool):
            return "true" if value else "false"          # as DuckDB and SQL write them
        if isinstance(value, (list, tuple)):
            text = "[" + ", ".join("NULL" if v is None else str(v) for v in value) + "]"
        else:
            text = value if isinstance(value, str) else str(value)
    text = "".join(ch if ch.isprintable() or ch == " " else ascii(ch)[1:-1] for ch in text)
    if len(text) > _TABLE_CELL_MAX:
        text = text[: _TABLE_CELL_MAX - 1] + "…"
    return text


def _cell_width(text: str) -> int:
    from rich.cells import cell_len  # rich counts wide (CJK) characters as two columns

    return cell_len(text)


def format_table(result: QueryResult, show: Callable[[Any], str | None] | None = None) -> str:
    """An aligned text table. ``show(value)`` may write a cell's value its own way (the CLI: floats rounded,
    spaces made visible as in the HTML reports); it returns None for the plain form."""
    if not result.columns:
        return "(no result)"
    cells = [[_terminal_cell(c) for c in result.columns]]
    cells += [[_terminal_cell(v, show) for v in row] for row in result.rows]
    widths = [max(_cell_width(row[i]) for row in cells) for i in range(len(result.columns))]

    def line(row: list[str]) -> str:
        return " | ".join(cell + " " * (w - _cell_width(cell)) for cell, w in zip(row, widths)).rstrip()

    out = [line(cells[0]), "-+-".join("-" * w for w in widths)]
    out += [line(row) for row in cells[1:]]
    out.append(f"({len(result.rows)} row{'s' if len(result.rows) != 1 else ''})")
    return "\n".join(out)


def format_csv(result: QueryResult) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(result.columns)
    for row in result.rows:
        writer.writerow(["" if v is None else json.dumps(v, default=_json_default, ensure_ascii=False)
                         if isinstance(v, (list, dict)) else v for v in row])
    return buffer.getvalue().rstrip("\n")


def format_json(result: QueryResult) -> str:
    records = [dict(zip(result.columns, row)) for row in result.rows]
    return json.dumps(records, default=_json_default, ensure_ascii=False, indent=1)


def format_result(result: QueryResult, fmt: str, show: Callable[[Any], str | None] | None = None) -> str:
    """The result as text; ``show`` applies to the table format alone (csv and json carry exact values)."""
    if fmt not in FORMATS:
        raise FpprovError(f"unknown format {fmt!r}; use one of: {', '.join(FORMATS)}")
    if fmt == "table":
        return format_table(result, show)
    return {"csv": format_csv, "json": format_json}[fmt](result)


# -- export ---------------------------------------------------------------------------------------------
def relation_names(store: Store) -> list[tuple[str, str]]:
    """(name, 'table' | 'view') of every relation of the main schema, tables first."""
    rows = store.query(
        "SELECT table_name, CASE WHEN table_type = 'VIEW' THEN 'view' ELSE 'table' END "
        "FROM information_schema.tables WHERE table_schema = 'main' AND table_catalog = current_database() "
        "ORDER BY table_type, table_name")
    return [(name, kind) for name, kind in rows]


def export_parquet(db: str | os.PathLike, out_dir: str | os.PathLike) -> list[tuple[str, str, int, Path]]:
    """Write every table and view to ``out_dir/<name>.parquet``; return (name, kind, rows, path)."""
    out = Path(out_dir).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FpprovError(f"cannot create {out}: {exc.strerror}") from None
    written = []
    with open_read_only(db, upgrade=True, allowed_directories=[out]) as ro:
        con = ro.store.con
        for name, kind in relation_names(ro.store):
            target = out / f"{name}.parquet"
            # write under a temporary name, then rename: a reader never sees half a file
            partial = out / f".{name}.{uuid.uuid4().hex}.parquet"
            quoted = '"' + name.replace('"', '""') + '"'
            try:
                literal = "'" + str(partial).replace("'", "''") + "'"    # COPY takes no parameters
                con.execute(f"COPY (SELECT * FROM {quoted}) TO {literal} (FORMAT parquet)")
            except duckdb.Error as exc:
                partial.unlink(missing_ok=True)
                raise FpprovError(f"cannot export {name}: {str(exc).splitlines()[0]}") from None
            os.replace(partial, target)
            rows = con.execute("SELECT count(*) FROM read_parquet(?)", [str(target)]).fetchone()[0]
            written.append((name, kind, rows, target))
    return written

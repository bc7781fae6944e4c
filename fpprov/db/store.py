"""The DuckDB store: opening the file, ordered schema migrations, the views, bulk writes.

Migrations are the files ``fpprov/db/migrations/NNN_name.sql``, applied in order of NNN and recorded in
``schema_version``; they hold tables (and their ``COMMENT ON`` descriptions) only, and a released one never
changes its statements (add a new file instead). The views are defined once, in ``fpprov/db/views.sql``
(``CREATE OR REPLACE VIEW`` in dependency order, each with its comments), applied after the migrations
whenever a database is migrated, so every database ends up with exactly those views whatever version made it.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import re
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

import duckdb
import pyarrow as pa

from ..errors import DatabaseLockedError, FpprovError

if TYPE_CHECKING:  # the annotation only: the store stays importable without torch
    from ..models import LoadedModel

DEFAULT_DB = "fpprov.duckdb"
DUCKDB_MAGIC = b"DUCK"          # bytes 8..11 of every DuckDB database file
# fpprov needs only DuckDB's built-in extensions (parquet, json): a query or a foreign file (SQLite, ...)
# must never make DuckDB download or load one
BASE_CONFIG = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
_MIGRATION_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
_INSERT_VERBS = {None: "INSERT", "ignore": "INSERT OR IGNORE", "replace": "INSERT OR REPLACE"}
_INSERT_NAMES = itertools.count()   # a fresh name for each registered batch


def default_db_path() -> Path:
    """``FPPROV_DB`` when set, else ``./fpprov.duckdb``."""
    return Path(os.environ.get("FPPROV_DB") or DEFAULT_DB)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def list_migrations() -> list[Migration]:
    migrations = []
    for entry in resources.files("fpprov.db.migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            migrations.append(Migration(int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    migrations.sort(key=lambda m: m.version)
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate schema migration versions: {versions}")
    return migrations


def views_sql() -> str:
    """The text of ``fpprov/db/views.sql``: every view, once, in dependency order, with its comments."""
    return resources.files("fpprov.db").joinpath("views.sql").read_text("utf-8")


def _connect_error(path: Path, exc: Exception) -> FpprovError:
    text = str(exc)
    if "lock" in text.lower() or "Conflicting lock" in text:
        return DatabaseLockedError(f"database {path} is locked by another process; "
                                   "wait for it or use --db OTHER.duckdb")
    return FpprovError(f"cannot open database {path}: {text.splitlines()[0]}")


def check_duckdb_file(path: str | os.PathLike) -> None:
    """Refuse an existing, non-empty file that is not a DuckDB database (before DuckDB opens it).

    A missing or empty file is left to the caller (created, or reported as missing)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
    except (FileNotFoundError, IsADirectoryError):
        return
    except OSError as exc:
        raise FpprovError(f"cannot open database {path}: {exc.strerror}") from None
    if head and head[8:12] != DUCKDB_MAGIC:
        raise FpprovError(f"{path} is not a DuckDB database")


def connect(path: str | os.PathLike, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """duckdb.connect for fpprov: only DuckDB files, no extension auto-install or auto-load, one-line errors."""
    db_path = Path(path)
    check_duckdb_file(db_path)
    try:
        con = duckdb.connect(str(db_path), read_only=read_only)
    except duckdb.Error as exc:
        raise _connect_error(db_path, exc) from None
    # SET, not connect(config=...): DuckDB refuses a second connection to a file whose open instance has a
    # different config, and a caller (a test, a script) may hold a plain one. A locked instance has them.
    try:
        if not con.execute("SELECT current_setting('lock_configuration')").fetchone()[0]:
            for name, value in BASE_CONFIG.items():
                con.execute(f"SET {name} = {'true' if value else 'false'}")
    except BaseException:
        con.close()
        raise
    return con


def lock_down(con: duckdb.DuckDBPyConnection, allowed_directories: Sequence[str | os.PathLike] = ()) -> None:
    """Confine a connection to its own database: no other file read or written (COPY, ATTACH, read_csv,
    EXPORT, INSTALL/LOAD), no Python variables as tables, and the configuration locked so that no query can
    SET or RESET its way out. Only the folders in allowed_directories (export's output) stay reachable."""
    setting = "SELECT current_setting('lock_configuration'), current_setting('enable_external_access')"
    locked, external = con.execute(setting).fetchone()
    if locked:      # another connection of this process to the same file (one DuckDB instance) locked it
        if external:
            raise FpprovError(f"cannot lock down the connection to {con.execute('PRAGMA database_list').fetchone()[2]}")
        return
    if allowed_directories:
        folders = [os.path.join(os.path.abspath(d), "") for d in allowed_directories]
        con.execute("SET allowed_directories = ?", [folders])
    con.execute("SET enable_external_access = false")
    con.execute("SET python_enable_replacements = false")
    con.execute("SET lock_configuration = true")


class Store:
    """One open DuckDB database with the fpprov schema applied."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path, read_only: bool):
        self.con = con
        self.path = path
        self.read_only = read_only

    # -- writes ---------------------------------------------------------------------------------
    def insert_rows(self, table: str, rows: Sequence[dict[str, Any]], *, or_ignore: bool = False) -> int:
        """Insert a batch of dict rows in one statement (by column name, via Arrow)."""
        if not rows:
            return 0
        return self.insert_arrow(table, pa.Table.from_pylist(list(rows)), on_conflict="ignore" if or_ignore else None)

    def insert_arrow(self, table: str, rows: pa.Table, *, on_conflict: str | None = None) -> int:
        """Insert an Arrow table by column name in one statement: the one way fpprov writes a batch.

        The table is registered under a fresh name for the statement and unregistered after it (never read
        from a Python variable by DuckDB's replacement scan). on_conflict: None (a duplicate key fails),
        'ignore' (INSERT OR IGNORE) or 'replace' (INSERT OR REPLACE)."""
        verb = _INSERT_VERBS[on_conflict]
        name = f"_fpprov_rows_{next(_INSERT_NAMES)}"
        with self.registered(name, rows):
            self.con.execute(f"{verb} INTO {table} BY NAME SELECT * FROM {name}")
        return rows.num_rows

    @contextlib.contextmanager
    def registered(self, name: str, table: pa.Table) -> Iterator[None]:
        """Make an Arrow table readable by SQL as ``name`` for the block (bulk joins, updates, inserts)."""
        # DuckDB 2 streams results: a statement read with fetchone() is still open and would refuse the
        # registration. Its remaining rows are not wanted by then; finishing it is what the caller meant.
        finish = getattr(self.con, "complete", None)
        if finish is not None:
            finish()
        try:
            self.con.register(name, table)
            try:
                yield
            except BaseException:
                # an aborted transaction refuses even the unregister; its rollback drops the name anyway
                with contextlib.suppress(duckdb.Error):
                    self.con.unregister(name)
                raise
            self.con.unregister(name)
        except duckdb.Error as exc:
            # Ctrl-C while DuckDB reads the Arrow table comes back as DuckDB's error: give it back as the
            # interrupt it is, so the one-line Ctrl-C handling (and the transaction's rollback) apply.
            if "KeyboardInterrupt" in str(exc):
                raise KeyboardInterrupt from exc
            raise

    def transaction(self) -> "_Transaction":
        return _Transaction(self.con)

    # -- reads ----------------------------------------------------------------------------------
    def query(self, sql: str, params: Iterable[Any] | None = None) -> list[tuple]:
        return self.con.execute(sql, list(params) if params is not None else None).fetchall()

    def query_dicts(self, sql: str, params: Iterable[Any] | None = None) -> list[dict[str, Any]]:
        cur = self.con.execute(sql, list(params) if params is not None else None)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]

    def schema_version(self) -> int:
        return self.con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Transaction:
    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con

    def __enter__(self) -> duckdb.DuckDBPyConnection:
        self.con.execute("BEGIN TRANSACTION")
        return self.con

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.con.execute("COMMIT")
            return
        try:  # after Ctrl-C DuckDB may refuse the rollback too; the open transaction dies with the connection
            self.con.execute("ROLLBACK")
        except (duckdb.Error, RuntimeError):
            pass


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Apply every migration not yet recorded in schema_version, in order, then the views (apply_views);
    return the newest version."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
        " applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)"
    )
    applied = {row[0] for row in con.execute("SELECT version FROM schema_version").fetchall()}
    for migration in list_migrations():
        if migration.version in applied:  # every missing migration runs, not only those above the newest
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(migration.sql)
            con.execute("INSERT INTO schema_version (version, name) VALUES (?, ?)", [migration.version, migration.name])
            con.execute("COMMIT")
        except BaseException:  # Ctrl-C included: the migration is all or nothing
            try:
                con.execute("ROLLBACK")
            except duckdb.Error:
                pass
            raise
        applied.add(migration.version)
    apply_views(con)
    return max(applied, default=0)


def apply_views(con: duckdb.DuckDBPyConnection) -> None:
    """(Re)create every view of views.sql with its comments, all or nothing. Views of older fpprov versions
    (made by the migrations that used to hold them) are replaced; views a user made are left alone."""
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(views_sql())
        con.execute("COMMIT")
    except BaseException:  # Ctrl-C included
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:
            pass
        raise


def view_state(con: duckdb.DuckDBPyConnection) -> dict[str, tuple]:
    """Each view of the database: its SQL as DuckDB stores it, its comment, its columns (name, type, comment)."""
    main = "database_name = current_database() AND schema_name = 'main'"
    views = {name: (sql, comment, []) for name, sql, comment in con.execute(
        f"SELECT view_name, sql, comment FROM duckdb_views() WHERE NOT internal AND {main}").fetchall()}
    for view, *column in con.execute("SELECT table_name, column_name, data_type, comment FROM duckdb_columns() "
                                     f"WHERE {main} ORDER BY column_index").fetchall():
        if view in views:
            views[view][2].append(tuple(column))
    return {name: (sql, comment, tuple(columns)) for name, (sql, comment, columns) in views.items()}


@functools.lru_cache(maxsize=1)
def expected_view_state() -> dict[str, tuple]:
    """view_state() of a freshly migrated in-memory database: what every database's views should be."""
    con = duckdb.connect(":memory:", config=BASE_CONFIG)
    try:
        migrate(con)
        return view_state(con)
    finally:
        con.close()


def views_current(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the database has every view of views.sql exactly as this fpprov defines it."""
    current = view_state(con)
    return all(current.get(name) == state for name, state in expected_view_state().items())


def check_writable(path: str | os.PathLike | None = None) -> Path:
    """Fail early (before slow work) if the database cannot be written; creates nothing."""
    db_path = (Path(path) if path is not None else default_db_path()).expanduser()
    parent = db_path.parent if str(db_path.parent) else Path(".")
    if db_path.is_dir():
        raise FpprovError(f"cannot use {db_path} as the database: it is a folder")
    if not parent.exists():
        raise FpprovError(f"cannot create database {db_path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK) or (db_path.exists() and not os.access(db_path, os.W_OK)):
        raise FpprovError(f"cannot write database {db_path}: permission denied")
    if db_path.exists():
        connect(db_path).close()
    return db_path


def open_store(path: str | os.PathLike | None = None, *, read_only: bool = False,
               locked: bool = False, allowed_directories: Sequence[str | os.PathLike] = ()) -> Store:
    """Open (creating if needed) the database and bring its schema up to date.

    Read-only opens do not migrate (nor make the views); they work while another process writes only if DuckDB
    allows it (it allows several read-only processes, not a reader beside a writer), so callers show the error.
    locked=True (read-only only) confines the connection to this file, see lock_down().
    """
    db_path = Path(path) if path is not None else default_db_path()
    db_path = db_path.expanduser()
    if read_only and not db_path.exists():
        raise FpprovError(f"database {db_path} does not exist; run `fpprov scan` first or pass --db")
    if locked and not read_only:
        raise ValueError("only a read-only store can be locked down")
    if not read_only:
        check_writable(db_path)
    con = connect(db_path, read_only=read_only)
    if locked:
        try:
            lock_down(con, allowed_directories)
        except BaseException:
            con.close()
            raise
    if not read_only:
        try:
            migrate(con)
        except BaseException:
            con.close()
            raise
    return Store(con, db_path, read_only)


def upsert_model(store: Store, loaded: LoadedModel) -> None:
    """Insert or refresh the `models` row of a loaded model (keyed by name)."""
    row = {
        "name": loaded.name, "source_kind": loaded.source_kind, "location": loaded.location, "hub_id": loaded.hub_id,
        "family": loaded.family, "variant": loaded.variant, "tokenizer_family": loaded.tokenizer_family,
        "quantization": loaded.quantization, "architecture": loaded.architecture, "vocab_size": loaded.vocab_size,
        "embedding_rows": loaded.embedding_rows, "hidden_size": loaded.hidden_size, "num_layers": loaded.num_layers,
        "tied_head": loaded.tied_head, "rotary": loaded.rotary,
    }
    with store.transaction():   # all or nothing: a failed insert leaves the old row
        store.con.execute("DELETE FROM models WHERE name = ?", [row["name"]])
        store.insert_rows("models", [row])


class BatchWriter:
    """Buffers rows and commits them with one INSERT OR REPLACE per batch (never row by row)."""

    def __init__(self, store: Store, table: str, flush_seconds: float, max_rows: int = 5000):
        self.store, self.table = store, table
        self.flush_seconds, self.max_rows = flush_seconds, max_rows
        self.rows: list[dict[str, Any]] = []
        self.last_flush = time.monotonic()

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.max_rows or time.monotonic() - self.last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        self.last_flush = time.monotonic()
        if not self.rows:
            return
        batch, self.rows = pa.Table.from_pylist(self.rows), []
        self.store.insert_arrow(self.table, batch, on_conflict="replace")

"""The DuckDB store: ordered migrations with a version table, bulk inserts, early write checks."""

from __future__ import annotations

import duckdb
import pytest

from fpprov.errors import FpprovError
from fpprov.db.store import check_writable, list_migrations, open_store


def test_migrations_are_ordered_and_recorded(tmp_path):
    versions = [m.version for m in list_migrations()]
    assert versions == sorted(versions) and versions[0] == 1 and len(set(versions)) == len(versions)
    with open_store(tmp_path / "s.duckdb") as store:
        recorded = [r[0] for r in store.query("SELECT version FROM schema_version ORDER BY version")]
        assert recorded == versions and store.schema_version() == versions[-1]
        tables = {r[0] for r in store.query("SELECT table_name FROM information_schema.tables")}
        assert {"models", "scans", "scan_chunks", "token_fps", "scan_rechecks"} <= tables
    with open_store(tmp_path / "s.duckdb") as store:  # reopening applies nothing twice
        assert store.query("SELECT count(*) FROM schema_version")[0][0] == len(versions)


def test_a_missing_middle_migration_is_applied(tmp_path):
    """A database made when 001 and 003 existed but 002 did not still gets 002 (and the rest)."""
    db = tmp_path / "old.duckdb"
    migrations = {m.version: m for m in list_migrations()}
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
                " applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)")
    for version in (1, 3):
        con.execute(migrations[version].sql)
        con.execute("INSERT INTO schema_version (version, name) VALUES (?, ?)", [version, migrations[version].name])
    con.close()
    with open_store(db) as store:
        assert [r[0] for r in store.query("SELECT version FROM schema_version ORDER BY 1")] == sorted(migrations)
        assert store.query("SELECT count(*) FROM vector_runs")[0][0] == 0


def test_bulk_insert_by_name_and_or_ignore(tmp_path):
    with open_store(tmp_path / "b.duckdb") as store:
        rows = [{"scan_id": 1, "chunk_start": s, "chunk_stop": s + 10, "tokens_scanned": 10, "tokens_skipped": 0,
                 "fp_count": s % 3} for s in range(0, 1000, 10)]
        assert store.insert_rows("scan_chunks", rows) == 100
        store.insert_rows("scan_chunks", rows[:5], or_ignore=True)
        assert store.query("SELECT count(*), sum(fp_count) FROM scan_chunks")[0] == (100, sum(r["fp_count"] for r in rows))


def test_check_writable_refuses_bad_paths_and_creates_nothing(tmp_path):
    with pytest.raises(FpprovError, match="does not exist"):
        check_writable(tmp_path / "missing" / "x.duckdb")
    with pytest.raises(FpprovError, match="folder"):
        check_writable(tmp_path)
    assert check_writable(tmp_path / "new.duckdb") == tmp_path / "new.duckdb"
    assert not (tmp_path / "new.duckdb").exists()


def _sqlite_file(path):
    import sqlite3

    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (a INTEGER)")
    con.commit()
    con.close()
    return path


def test_a_non_duckdb_file_is_refused_before_duckdb_opens_it(tmp_path):
    path = _sqlite_file(tmp_path / "results.sqlite")
    before = path.read_bytes()
    for read_only in (True, False):
        with pytest.raises(FpprovError, match="is not a DuckDB database"):
            open_store(path, read_only=read_only)
    with pytest.raises(FpprovError, match="is not a DuckDB database"):
        check_writable(path)
    short = tmp_path / "short.duckdb"
    short.write_bytes(b"DUCK")                       # too short to hold the magic at offset 8
    with pytest.raises(FpprovError, match="is not a DuckDB database"):
        open_store(short, read_only=True)
    assert path.read_bytes() == before and not list(tmp_path.glob("*.wal"))


def test_duckdb_files_have_the_magic_and_empty_or_missing_paths_behave_as_before(tmp_path):
    with open_store(tmp_path / "new.duckdb") as store:   # missing: created
        assert store.schema_version() > 0
    assert (tmp_path / "new.duckdb").read_bytes()[8:12] == b"DUCK"
    empty = tmp_path / "empty.duckdb"
    empty.touch()
    with pytest.raises(FpprovError, match="cannot open database"):   # empty: DuckDB's own one-line refusal, as before
        open_store(empty)
    assert empty.read_bytes() == b""


def test_connections_never_install_or_load_extensions_by_themselves(tmp_path):
    with open_store(tmp_path / "e.duckdb") as store:
        settings = dict(store.query("SELECT name, value FROM duckdb_settings() WHERE name IN "
                                    "('autoinstall_known_extensions', 'autoload_known_extensions')"))
        assert settings == {"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"}
    with open_store(tmp_path / "e.duckdb", read_only=True, locked=True) as store:
        locked = dict(store.query("SELECT name, value FROM duckdb_settings() WHERE name IN "
                                  "('enable_external_access', 'lock_configuration')"))
        assert locked == {"enable_external_access": "false", "lock_configuration": "true"}
    with pytest.raises(ValueError):
        open_store(tmp_path / "e.duckdb", locked=True)


def test_a_plain_connection_held_open_does_not_block_open_store(tmp_path):
    # DuckDB refuses a connection whose config differs from the file's open instance: fpprov SETs instead
    path = tmp_path / "shared.duckdb"
    plain = duckdb.connect(str(path))
    try:
        with open_store(path) as store:
            assert store.schema_version() > 0
    finally:
        plain.close()


def _temporary_views(store):
    return store.query("SELECT view_name FROM duckdb_views() WHERE temporary AND NOT internal")


def test_rows_are_inserted_through_a_registered_arrow_table_not_a_python_variable(tmp_path, monkeypatch):
    """insert_rows and BatchWriter share one helper (insert_arrow), which registers the batch for the statement:
    it works with DuckDB's replacement scans of Python variables turned off, and leaves nothing registered."""
    from fpprov.db.store import BatchWriter, Store

    with open_store(tmp_path / "i.duckdb") as store:
        store.con.execute("SET python_enable_replacements = false")   # a replacement scan would not find the rows
        row = {"scan_id": 1, "chunk_start": 0, "chunk_stop": 10, "tokens_scanned": 10, "tokens_skipped": 0,
               "fp_count": 1}
        assert store.insert_rows("scan_chunks", [row]) == 1
        assert store.insert_rows("scan_chunks", [{**row, "fp_count": 9}], or_ignore=True) == 1   # ignored
        with pytest.raises(duckdb.ConstraintException):
            store.insert_rows("scan_chunks", [row])
        calls = []
        original = Store.insert_arrow

        def spy(self, table, rows, **kwargs):
            calls.append((table, rows.num_rows, kwargs))
            return original(self, table, rows, **kwargs)

        monkeypatch.setattr(Store, "insert_arrow", spy)
        writer = BatchWriter(store, "scan_chunks", flush_seconds=3600)
        writer.add({**row, "fp_count": 5})                            # replaces the stored row
        writer.add({**row, "chunk_start": 10, "chunk_stop": 20})
        writer.flush()
        store.insert_rows("scan_chunks", [{**row, "chunk_start": 20, "chunk_stop": 30}])
        assert calls == [("scan_chunks", 2, {"on_conflict": "replace"}), ("scan_chunks", 1, {"on_conflict": None})]
        assert store.query("SELECT chunk_start, fp_count FROM scan_chunks ORDER BY 1") == [(0, 5), (10, 1), (20, 1)]
        assert _temporary_views(store) == []


def _loaded_model(name, **facts):
    from types import SimpleNamespace

    base = dict(name=name, source_kind="directory", location="/m", hub_id=None, family="llama", variant="base",
                tokenizer_family=None, quantization=None, architecture="LlamaForCausalLM", vocab_size=10,
                embedding_rows=10, hidden_size=8, num_layers=2, tied_head=True, rotary=True)
    return SimpleNamespace(**{**base, **facts})


def test_upsert_model_is_one_transaction_a_failed_insert_keeps_the_old_row(tmp_path, monkeypatch):
    from fpprov.db.store import Store, upsert_model

    with open_store(tmp_path / "u.duckdb") as store:
        upsert_model(store, _loaded_model("m", vocab_size=10))
        upsert_model(store, _loaded_model("m", vocab_size=11))        # refreshed, not doubled
        assert store.query("SELECT name, vocab_size FROM models") == [("m", 11)]

        def failing(self, table, rows, **kwargs):                      # after the DELETE, before the row is back
            raise KeyboardInterrupt

        monkeypatch.setattr(Store, "insert_rows", failing)
        with pytest.raises(KeyboardInterrupt):
            upsert_model(store, _loaded_model("m", vocab_size=12))
        assert store.query("SELECT name, vocab_size FROM models") == [("m", 11)]
        store.con.execute("BEGIN TRANSACTION")                         # no transaction was left open
        store.con.execute("ROLLBACK")


def test_a_write_after_a_partly_read_result_goes_through(tmp_path):
    # DuckDB 2 keeps a result open until it is read to the end; a bulk insert must not fail on it.
    with open_store(tmp_path / "open.duckdb") as store:
        with store.transaction() as con:
            assert con.execute("SELECT * FROM range(5)").fetchone() == (0,)
            store.insert_rows("models", [{"name": "m", "source_kind": "directory"}])
        assert store.query("SELECT name FROM models") == [("m",)]


def test_ctrl_c_while_duckdb_reads_a_batch_is_an_interrupt_and_rolls_back(tmp_path):
    with open_store(tmp_path / "ctrl_c.duckdb") as store:
        def register(name, table):   # DuckDB wraps a KeyboardInterrupt raised while it reads the object
            raise duckdb.InvalidInputException(f"reading the object registered as '{name}' as Arrow data "
                                               "failed: KeyboardInterrupt: ")

        store.con = _ConnectionWithRegister(store.con, register)
        with pytest.raises(KeyboardInterrupt):
            with store.transaction():
                store.insert_rows("models", [{"name": "m", "source_kind": "directory"}])
        store.con = store.con._con
        assert store.query("SELECT count(*) FROM models") == [(0,)]


class _ConnectionWithRegister:
    """A DuckDB connection whose register() is replaced (the real one is a C method that cannot be patched)."""

    def __init__(self, con, register):
        self._con, self.register = con, register

    def __getattr__(self, name):
        return getattr(self._con, name)


def test_ctrl_c_during_the_insert_is_an_interrupt_even_when_the_transaction_is_aborted(tmp_path):
    with open_store(tmp_path / "ctrl_c2.duckdb") as store:
        con = store.con

        class Aborting(_ConnectionWithRegister):
            def execute(self, sql, *args):
                if sql.startswith("INSERT"):
                    raise duckdb.InvalidInputException("reading the object as Arrow data failed: KeyboardInterrupt: ")
                return con.execute(sql, *args)

            def unregister(self, name):   # what DuckDB says in an aborted transaction
                raise duckdb.TransactionException("Current transaction is aborted (please ROLLBACK)")

        store.con = Aborting(con, con.register)
        with pytest.raises(KeyboardInterrupt):
            with store.transaction():
                store.insert_rows("models", [{"name": "m", "source_kind": "directory"}])
        store.con = con
        assert store.query("SELECT count(*) FROM models") == [(0,)]

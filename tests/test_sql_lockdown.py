"""`fpprov sql` is confined to its own database (no other file read or written, configuration locked), also
when it reads a snapshot; a non-DuckDB file (SQLite) given as --db is refused before DuckDB opens it."""

from __future__ import annotations

import json
import sqlite3

import duckdb
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from fpprov.cli import app
from fpprov.errors import FpprovError
from fpprov.db.sql import canned_queries, open_read_only, run_query
from report_db import build_report_db

runner = CliRunner()
SENTINEL = b"sentinel bytes: not to be overwritten\n"


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    return build_report_db(tmp_path_factory.mktemp("lockdown") / "results.duckdb")


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_refused(result):
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr       # one line, no traceback
    assert result.exception is None or isinstance(result.exception, SystemExit)


def other_duckdb(path):
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE precious AS SELECT 42 AS answer")
    return path


def precious_rows(path):
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("SELECT answer FROM precious").fetchall()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_copy_to_another_file_is_refused_and_the_file_untouched(db, tmp_path, fmt):
    victim = tmp_path / "other.duckdb"
    victim.write_bytes(SENTINEL)
    result = invoke("sql", "--db", db, f"COPY (SELECT 1) TO '{victim}' (FORMAT {fmt})")
    assert_refused(result)
    assert "refused" in result.stderr
    assert victim.read_bytes() == SENTINEL
    fresh = tmp_path / "new.csv"
    assert_refused(invoke("sql", "--db", db, f"COPY token_fps TO '{fresh}'"))
    assert not fresh.exists()


def test_attach_another_database_read_write_and_drop_is_refused(db, tmp_path):
    other = other_duckdb(tmp_path / "other.duckdb")
    before = other.read_bytes()
    result = invoke("sql", "--db", db, f"ATTACH '{other}' AS o (READ_WRITE); DROP TABLE o.precious")
    assert_refused(result)
    assert precious_rows(other) == [(42,)]
    assert other.read_bytes() == before
    assert_refused(invoke("sql", "--db", db, f"ATTACH '{other}' AS o (READ_ONLY); SELECT * FROM o.precious"))


@pytest.mark.parametrize("statement", [
    "SET enable_external_access = true",
    "RESET enable_external_access",
    "SET lock_configuration = false",
    "SET allowed_directories = ['/']",
    "SET autoinstall_known_extensions = true",
    "SET python_enable_replacements = true",
])
def test_the_configuration_cannot_be_unlocked(db, tmp_path, statement):
    victim = tmp_path / "victim.csv"
    victim.write_bytes(SENTINEL)
    result = invoke("sql", "--db", db, f"{statement}; COPY (SELECT 1) TO '{victim}' (FORMAT csv)")
    assert_refused(result)
    assert "locked" in result.stderr
    assert victim.read_bytes() == SENTINEL


@pytest.mark.parametrize("query", [
    "SELECT * FROM read_csv('{csv}')",
    "SELECT * FROM '{csv}'",
    "SELECT * FROM read_text('{csv}')",
    "SELECT * FROM glob('{folder}/*')",
    "SELECT * FROM read_parquet('{folder}/*.parquet')",
])
def test_reading_other_files_is_refused(db, tmp_path, query):
    csv_file = tmp_path / "secret.csv"
    csv_file.write_text("password\nhunter2\n")
    with duckdb.connect() as con:
        con.execute(f"COPY (SELECT 'hunter2' AS password) TO '{tmp_path / 'secret.parquet'}' (FORMAT parquet)")
    result = invoke("sql", "--db", db, query.format(csv=csv_file, folder=tmp_path))
    assert_refused(result)
    assert "hunter2" not in result.output


def test_install_load_and_export_database_are_refused(db, tmp_path):
    for statement in ("INSTALL sqlite", "LOAD sqlite", f"EXPORT DATABASE '{tmp_path / 'dump'}'"):
        assert_refused(invoke("sql", "--db", db, statement))
    assert not (tmp_path / "dump").exists()


def test_python_variables_are_not_tables(db):
    secret_table = [1, 2, 3]  # noqa: F841  (a replacement scan would find it in this frame)
    with open_read_only(db) as ro:
        with pytest.raises(duckdb.CatalogException):
            ro.store.con.execute("SELECT * FROM secret_table")


def test_plain_queries_and_every_canned_query_still_work(db):
    result = invoke("sql", "--db", db, "-f", "csv", "SELECT count(*) AS n FROM token_fps")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "n" and int(result.stdout.splitlines()[1]) > 0
    temp = invoke("sql", "--db", db, "CREATE TEMP TABLE t AS SELECT 1 AS x; SELECT x FROM t")   # in memory only
    assert temp.exit_code == 0, temp.output
    for name in canned_queries():
        result = invoke("sql", "--db", db, "-f", "json", name)
        assert result.exit_code == 0, (name, result.output)
        assert json.loads(result.stdout), name              # rows, as on the unlocked connection


def test_writes_to_the_database_itself_are_refused(db):
    before = db.read_bytes()
    assert_refused(invoke("sql", "--db", db, "DELETE FROM token_fps"))
    assert_refused(invoke("sql", "--db", db, "CREATE TABLE x (a INT)"))
    assert db.read_bytes() == before


def test_export_still_writes_parquet_but_nothing_outside_its_folder(db, tmp_path):
    out = tmp_path / "out"
    result = invoke("export", "--db", db, "--parquet", out)
    assert result.exit_code == 0, result.output
    assert pq.read_table(out / "token_fps.parquet").num_rows > 0
    assert (out / "shared_fps.parquet").exists()


def test_help_says_what_sql_allows():
    text = " ".join(invoke("sql", "--help").output.split())
    assert "read-only" in text and "ATTACH" in text and "COPY ... TO" in text and "other file" in text


def test_the_snapshot_read_beside_a_writer_is_locked_down_too(tmp_path, hold_db_lock):
    path = build_report_db(tmp_path / "busy.duckdb")
    victim = tmp_path / "victim.csv"
    victim.write_bytes(SENTINEL)
    other = other_duckdb(tmp_path / "other.duckdb")
    with hold_db_lock(path, "INSERT INTO models (name, source_kind) VALUES ('written-meanwhile', 'hub')"):
        ok = invoke("sql", "--db", path, "-f", "csv", "SELECT name FROM models WHERE name = 'written-meanwhile'")
        assert ok.exit_code == 0 and "snapshot" in ok.stderr, ok.output
        for statement in (f"COPY (SELECT 1) TO '{victim}' (FORMAT csv)",
                          f"ATTACH '{other}' AS o (READ_WRITE); DROP TABLE o.precious",
                          "SET enable_external_access = true",
                          f"SELECT * FROM read_csv('{victim}')"):
            assert_refused(invoke("sql", "--db", path, statement))
        with open_read_only(path) as ro:
            assert ro.snapshot
            with pytest.raises(FpprovError, match="refused"):
                run_query(ro.store, f"COPY (SELECT 1) TO '{victim}' (FORMAT csv)")
        out = tmp_path / "out"
        exported = invoke("export", "--db", path, "--parquet", out)
        assert exported.exit_code == 0, exported.output
        assert "written-meanwhile" in {r["name"] for r in pq.read_table(out / "models.parquet").to_pylist()}
    assert victim.read_bytes() == SENTINEL
    assert precious_rows(other) == [(42,)]


def sqlite_file(path):
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE t (a INTEGER)")
        con.execute("INSERT INTO t VALUES (1)")
    con.close()
    return path


@pytest.mark.parametrize("command", [["sql", "SELECT 1"], ["report"], ["export", "--parquet", "OUT"]])
def test_a_sqlite_file_as_db_is_refused_and_left_alone(tmp_path, command):
    path = sqlite_file(tmp_path / "results.sqlite")
    before = path.read_bytes()
    args = [str(tmp_path / "out") if a == "OUT" else a for a in command]
    if command == ["report"]:
        args += ["--out", str(tmp_path / "reports")]
    result = invoke(args[0], "--db", path, *args[1:])
    assert_refused(result)
    assert f"{path} is not a DuckDB database" in " ".join(result.stderr.split())
    assert path.read_bytes() == before
    assert not (tmp_path / "reports").exists() and not list(tmp_path.glob("*.wal"))

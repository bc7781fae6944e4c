"""`fpprov sql` and `fpprov export`: the library functions and the CLI (CliRunner), on a hand-built database."""

from __future__ import annotations

import csv
import io
import json

import duckdb
import pyarrow.parquet as pq
import pytest
from rich.cells import cell_len
from typer.testing import CliRunner

from fpprov.cli import app
from fpprov.errors import FpprovError
from fpprov.db.store import list_migrations
from fpprov.db.sql import (QueryResult, canned_queries, format_table, open_read_only, relation_names, resolve_query,
                           run_query)
from report_db import HOSTILE_TEXTS, build_report_db

runner = CliRunner()


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    return build_report_db(tmp_path_factory.mktemp("sql") / "results.duckdb")


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_help_of_each_command():
    for command in ("sql", "export", "report"):
        result = invoke(command, "--help")
        assert result.exit_code == 0, result.output
        assert "--db" in result.output
    assert "--format" in invoke("sql", "--help").output
    assert "--parquet" in invoke("export", "--help").output
    assert "--threshold" in invoke("report", "--help").output


def test_resolve_query_reads_files_canned_names_and_text(tmp_path, monkeypatch):
    own = tmp_path / "mine.sql"
    own.write_text("SELECT 42 AS answer")
    assert resolve_query(str(own)) == "SELECT 42 AS answer"
    canned = canned_queries()
    assert {"shared_across_families", "top_suspicious", "counts_by_source", "base_vs_inst", "seed_table"} <= set(canned)
    monkeypatch.chdir(tmp_path)              # the canned queries are found from any folder (package data)
    assert resolve_query("queries/top_suspicious.sql") == canned["top_suspicious"]
    assert resolve_query("seed_table") == canned["seed_table"]
    assert resolve_query("SELECT 1") == "SELECT 1"
    with pytest.raises(FpprovError, match="no such query file"):
        resolve_query("queries/nope.sql")


def test_every_canned_query_runs_and_answers(db):
    with open_read_only(db) as ro:
        for name, sql in canned_queries().items():
            result = run_query(ro.store, sql)
            assert result.columns, name
            assert result.rows, f"{name} returned nothing on a database that has data for it"


def test_sql_prints_a_table_with_invisible_characters_escaped(db):
    result = invoke("sql", "--db", db, "SELECT token_id, text FROM token_fps WHERE scan_id = 1 ORDER BY token_id")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "nul\\x00byte" in out or "nul\\0byte" in out
    assert "\x00" not in out and "\x1b" not in out and "\u202e" not in out     # nothing raw reaches the terminal
    assert "\\u202e" in out and "\\x1b" in out
    assert out.strip().endswith("(14 rows)")


def test_sql_csv_and_json_carry_exact_values(db):
    sql = "SELECT token_id, text, prob FROM token_fps WHERE scan_id = 1 ORDER BY token_id"
    with duckdb.connect(str(db), read_only=True) as con:
        expected = con.execute(sql).fetchall()
    as_csv = invoke("sql", "--db", db, "--format", "csv", sql)
    assert as_csv.exit_code == 0, as_csv.output
    rows = list(csv.reader(io.StringIO(as_csv.stdout)))
    assert rows[0] == ["token_id", "text", "prob"]
    assert [(int(a), b, float(c)) for a, b, c in rows[1:]] == expected
    as_json = invoke("sql", "--db", db, "-f", "json", sql)
    assert as_json.exit_code == 0, as_json.output
    records = json.loads(as_json.stdout)
    assert [(r["token_id"], r["text"], r["prob"]) for r in records] == expected
    assert {r["text"] for r in records} >= set(HOSTILE_TEXTS)


def test_sql_runs_a_canned_query_file(db):
    result = invoke("sql", "--db", db, "queries/top_suspicious.sql", "--format", "json")
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert records and records == sorted(records, key=lambda r: -r["score"])
    assert {"model", "text", "score", "rule", "reason", "fp_flagged", "control_flagged"} <= set(records[0])


def test_a_name_means_one_thing_canned_query_or_view(db):
    with open_read_only(db) as ro:
        relations = {name for name, _ in relation_names(ro.store)}
        for name, sql in canned_queries().items():
            if name in relations:        # a canned query named as a view selects exactly that view's columns
                columns = [r[0] for r in ro.store.query(f'DESCRIBE "{name}"')]
                assert run_query(ro.store, sql).columns == columns, name
        expected = run_query(ro.store, "SELECT * FROM suspicious_tokens")
    assert "suspicious_tokens" not in canned_queries() and "suspicious_tokens" in relations
    # a lone view name is the view, whole
    result = invoke("sql", "--db", db, "suspicious_tokens", "-f", "json")
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert len(records) == len(expected.rows) > 0 and list(records[0]) == expected.columns


@pytest.mark.parametrize("typo, meant", [("top_suspicios", "top_suspicious"), ("suspicous_tokens", "suspicious_tokens"),
                                         ("primary_fp", "primary_fps")])
def test_a_typo_of_a_canned_query_or_view_names_the_closest(db, typo, meant):
    result = invoke("sql", "--db", db, typo)
    assert result.exit_code == 2, result.output
    assert f"did you mean {meant!r}" in result.stderr


def test_sql_table_shows_spaces_of_token_texts_and_rounds_floats(db):
    sql = ("SELECT id, text, x::DOUBLE AS x, xs::DOUBLE[] AS xs FROM (VALUES (1, ' ', 0.123456789012345, [0.5, 1e-9]), "
           "(2, ' the', 12345.678901, NULL), (3, 'a b', 2.0, NULL)) t(id, text, x, xs) ORDER BY id")
    table = invoke("sql", "--db", db, sql)
    assert table.exit_code == 0, table.output
    rows = [[c.strip() for c in line.split("|")] for line in table.stdout.splitlines()[2:5]]
    # whitespace of a token text as the HTML shows it (an open box a space); spaces inside a text stay
    assert [r[1] for r in rows] == ["\u2423", "\u2423the", "a b"]
    assert [r[2] for r in rows] == ["0.1235", "12,345.6789", "2"]
    assert rows[0][3] == "[0.5, 1.00e-9]"
    as_json = json.loads(invoke("sql", "--db", db, "-f", "json", sql).stdout)
    assert [r["x"] for r in as_json] == [0.123456789012345, 12345.678901, 2.0]   # json keeps full precision
    assert [r["text"] for r in as_json] == [" ", " the", "a b"]


def test_sql_without_query_lists_the_canned_queries(db):
    result = invoke("sql", "--db", db)
    assert result.exit_code == 0
    for name in canned_queries():
        assert name in result.stdout


@pytest.mark.parametrize("args, message", [
    (["SELEC oops"], "SQL error: Parser Error"),
    (["SELECT * FROM no_such_table"], "SQL error: Catalog Error"),
    (["CREATE TABLE sneaky (x INTEGER)"], "read-only"),
    (["SELECT 1", "--format", "xml"], "unknown format"),
    (["queries/missing.sql"], "no such query file"),
    (["  "], "empty query"),
])
def test_sql_errors_are_one_line_with_exit_2(db, args, message):
    result = invoke("sql", "--db", db, *args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.output


def test_sql_on_a_missing_database_is_one_line(tmp_path):
    result = invoke("sql", "--db", tmp_path / "none.duckdb", "SELECT 1")
    assert result.exit_code == 2 and "does not exist" in result.stderr
    assert not (tmp_path / "none.duckdb").exists()            # read-only: nothing created


def test_sql_leaves_the_file_untouched(db):
    before = (db.stat().st_mtime_ns, db.read_bytes())
    assert invoke("sql", "--db", db, "SELECT count(*) FROM token_fps").exit_code == 0
    assert (db.stat().st_mtime_ns, db.read_bytes()) == before


def test_sql_reads_a_snapshot_while_another_process_writes(tmp_path, hold_db_lock):
    path = build_report_db(tmp_path / "busy.duckdb")
    with hold_db_lock(path, "INSERT INTO models (name, source_kind) VALUES ('written-meanwhile', 'hub')"):
        with pytest.raises(duckdb.IOException):          # DuckDB alone refuses a reader beside a writer
            duckdb.connect(str(path), read_only=True)
        result = invoke("sql", "--db", path, "-f", "json", "SELECT name FROM models ORDER BY name")
        assert result.exit_code == 0, result.output
        assert "snapshot" in result.stderr
        names = [r["name"] for r in json.loads(result.stdout)]
        assert "written-meanwhile" in names and "gemma3-270m" in names    # committed rows, WAL included


def test_format_table_aligns_wide_characters_and_cuts_long_cells():
    table = format_table(QueryResult(["a", "b"], [("漢字", "x" * 100), (None, [1, None]), (True, False)]))
    lines = table.splitlines()
    # the separator sits in the same terminal column whether the cell holds wide (CJK) characters or not
    assert {cell_len(line.split("|")[0]) for line in (lines[0], lines[2], lines[3])} == {cell_len("漢字 ")}
    assert "…" in lines[2] and len(lines[2].split(" | ")[1]) == 60
    assert lines[3].startswith("NULL") and "[1, NULL]" in lines[3]
    assert lines[4].split() == ["true", "|", "false"]
    assert lines[-1] == "(3 rows)"


def test_export_writes_every_table_and_view_to_parquet(db, tmp_path):
    out = tmp_path / "out"
    result = invoke("export", "--db", db, "--parquet", out)
    assert result.exit_code == 0, result.output
    with duckdb.connect(str(db), read_only=True) as con:
        relations = con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()
        expected = {name: con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for (name,) in relations}
    written = {p.stem: pq.read_table(p).num_rows for p in out.glob("*.parquet")}
    assert written == expected
    assert {"shared_fps", "model_overlap", "base_vs_inst", "seed_counts", "suspicious_tokens", "token_fps",
            "documents", "vector_fps"} <= set(written)
    assert not list(out.glob(".*"))                          # no half-written temporary files left
    shared = pq.read_table(out / "shared_fps.parquet").to_pylist()
    assert {r["norm_text"] for r in shared} >= {"BLAH", "Á"}


def test_export_into_an_unwritable_place_is_one_line(db, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = invoke("export", "--db", db, "--parquet", blocker / "sub")
    assert result.exit_code == 2 and "cannot create" in result.stderr


def test_a_slow_query_does_not_need_a_writer_lock(db):
    # Two read-only users at once (e.g. `fpprov sql` while `fpprov report` runs) both work.
    with open_read_only(db) as first, open_read_only(db) as second:
        assert not first.snapshot and not second.snapshot
        assert run_query(first.store, "SELECT count(*) FROM shared_fps").rows == run_query(
            second.store, "SELECT count(*) FROM shared_fps").rows


def _downgrade_to_version_3(path):
    """Make the file look written by an fpprov of schema version 3 (before the cross-model views): every view
    and every table or column a later migration made goes. (Its views of migration 3 are left out: views live in
    views.sql now, and tests/test_db_upgrade.py upgrades a real old database, views included.)"""
    old = duckdb.connect()
    v3 = [m for m in list_migrations() if m.version <= 3]
    for m in v3:
        old.execute(m.sql)
    columns = {(t, c) for t, c in old.execute("SELECT table_name, column_name FROM duckdb_columns() "
                                              "WHERE table_name IN (SELECT table_name FROM duckdb_tables())").fetchall()}
    tables = {t for t, _ in columns}
    with duckdb.connect(str(path)) as con:
        for (view,) in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall():
            con.execute(f'DROP VIEW "{view}"')
        for (table,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall():
            if table not in tables and table != "schema_version":
                con.execute(f'DROP TABLE "{table}"')
        for table, column in con.execute("SELECT table_name, column_name FROM duckdb_columns() "
                                         "WHERE table_name IN (SELECT table_name FROM duckdb_tables())").fetchall():
            if table in tables and (table, column) not in columns:
                con.execute(f'ALTER TABLE "{table}" DROP COLUMN "{column}"')
        con.execute("DELETE FROM schema_version WHERE version >= 4")


def test_an_older_database_is_read_as_is_by_sql_and_upgraded_by_report(tmp_path):
    path = build_report_db(tmp_path / "old.duckdb")
    _downgrade_to_version_3(path)
    result = invoke("sql", "--db", path, "SELECT count(*) AS n FROM token_fps")
    assert result.exit_code == 0 and result.stdout.splitlines()[2].strip() == "22"    # all token FPs, base tables work
    assert "at version 3" in result.stderr
    missing = invoke("sql", "--db", path, "FROM shared_fps")
    assert missing.exit_code == 2 and "shared_fps does not exist" in missing.stderr
    report = runner.invoke(app, ["report", "--db", str(path), "--out", str(tmp_path / "r")])
    assert report.exit_code == 0, report.output
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT max(version) FROM schema_version").fetchone()[0] >= 5
    assert invoke("sql", "--db", path, "FROM shared_fps").exit_code == 0


def test_a_snapshot_of_an_older_database_gets_the_new_views(tmp_path, hold_db_lock):
    path = build_report_db(tmp_path / "old-busy.duckdb")
    _downgrade_to_version_3(path)
    with hold_db_lock(path):
        result = invoke("sql", "--db", path, "-f", "json", "SELECT norm_text FROM shared_fps ORDER BY norm_text")
        assert result.exit_code == 0, result.output
        assert "BLAH" in [r["norm_text"] for r in json.loads(result.stdout)]
    with duckdb.connect(str(path), read_only=True) as con:      # the file itself was not touched
        assert con.execute("SELECT max(version) FROM schema_version").fetchone()[0] == 3


def test_snapshot_copy_retries_while_the_file_changes(tmp_path, monkeypatch):
    from fpprov.db import sql as sql_module

    source = tmp_path / "live.duckdb"
    source.write_bytes(b"x" * 10)
    states = iter([1, 2, 3, 3])               # changed during the first copy, stable during the second
    monkeypatch.setattr(sql_module, "_file_state", lambda path: next(states))
    target_dir = tmp_path / "snap"
    target_dir.mkdir()
    assert sql_module._copy_snapshot(source, target_dir).read_bytes() == b"x" * 10
    always_new = iter(range(100))             # a file that never holds still
    monkeypatch.setattr(sql_module, "_file_state", lambda path: next(always_new))
    with pytest.raises(FpprovError, match="kept changing"):
        sql_module._copy_snapshot(source, target_dir)


def test_a_gap_in_the_applied_migrations_counts_as_outdated(tmp_path):
    from fpprov.db.sql import open_read_only

    path = build_report_db(tmp_path / "gap.duckdb")
    with duckdb.connect(str(path)) as con:                  # version 5 recorded, 4 missing
        for view in ("seed_counts", "base_vs_inst", "base_vs_inst_tokens", "base_inst_pairs", "model_overlap", "shared_fps",
                     "primary_fps", "primary_scans", "model_pairs"):
            con.execute(f"DROP VIEW {view}")
        con.execute("DELETE FROM schema_version WHERE version = 4")
    with open_read_only(path) as ro:
        assert ro.schema is not None
    report = runner.invoke(app, ["report", "--db", str(path), "--out", str(tmp_path / "r")])
    assert report.exit_code == 0, report.output
    with open_read_only(path) as ro:
        assert ro.schema is None and ro.store.query("SELECT count(*) FROM seed_counts")[0][0] == 3

"""Views are defined once (fpprov/db/views.sql) and made again after the migrations: a database made by an older
fpprov, whose migrations still held the views, opens, upgrades and ends up with exactly the tables, views and
comments of a fresh one, its rows and its views' answers unchanged."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from fpprov.db import store as store_module
from fpprov.db.sql import open_read_only
from fpprov.db.store import expected_view_state, list_migrations, open_store, view_state
from report_db import build_report_db

ROOT = Path(__file__).resolve().parent.parent
# DuckDB's own dump of a database made by fpprov 6a448c8 (schema version 10, views made by its migrations)
OLD_DATABASE = Path(__file__).with_name("test_db_upgrade_v010.sql")


def _old_database(path: Path) -> Path:
    with duckdb.connect(str(path)) as con:
        con.execute(OLD_DATABASE.read_text("utf-8"))
    return path


def _schema(con: duckdb.DuckDBPyConnection) -> dict:
    """Everything a user sees of the schema: tables (DuckDB's DDL and comment), every column with its type and
    comment, views (stored SQL, comment, columns), sequences, applied migrations, the suspicion rules."""
    main = "database_name = current_database() AND schema_name = 'main'"
    return {
        "tables": con.execute(f"SELECT table_name, sql, comment FROM duckdb_tables() WHERE {main} "
                              "ORDER BY 1").fetchall(),
        "columns": con.execute(f"SELECT table_name, column_name, data_type, comment FROM duckdb_columns() "
                               f"WHERE {main} ORDER BY 1, column_index").fetchall(),
        "views": view_state(con),
        "sequences": con.execute(f"SELECT sequence_name FROM duckdb_sequences() WHERE {main} ORDER BY 1").fetchall(),
        "versions": con.execute("SELECT version, name FROM schema_version ORDER BY 1").fetchall(),
        "thresholds": con.execute("FROM suspicion_thresholds ORDER BY rule").fetchall(),
    }


def _view_answers(con: duckdb.DuckDBPyConnection) -> dict[str, tuple]:
    names = [n for (n,) in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal "
                                       "AND schema_name = 'main' ORDER BY 1").fetchall()]
    answers = {}
    for name in names:
        cursor = con.execute(f'SELECT * FROM "{name}" ORDER BY ALL')
        answers[name] = ([d[0] for d in cursor.description], cursor.fetchall())
    return answers


def test_the_old_database_fixture_is_what_the_old_migrations_made():
    con = duckdb.connect()
    con.execute(OLD_DATABASE.read_text("utf-8"))
    assert [v for (v,) in con.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()] == list(range(1, 11))
    views = con.execute("SELECT view_name, comment FROM duckdb_views() WHERE NOT internal").fetchall()
    assert {v for v, _ in views} <= set(expected_view_state()) and all(comment is None for _, comment in views)


def test_an_old_database_upgrades_to_exactly_the_schema_of_a_fresh_one(tmp_path):
    with open_store(tmp_path / "fresh.duckdb") as fresh:
        expected = _schema(fresh.con)
    assert len(expected["versions"]) == len(list_migrations()) and expected["views"] == expected_view_state()
    old = _old_database(tmp_path / "old.duckdb")
    with duckdb.connect(str(old)) as con:
        before = _schema(con)
    assert before["views"].keys() <= expected["views"].keys() and before != expected
    with open_store(old) as upgraded:
        assert _schema(upgraded.con) == expected
    with open_store(old) as again:            # a second open changes nothing
        assert _schema(again.con) == expected


def test_an_old_databases_rows_and_view_answers_survive_the_upgrade(tmp_path):
    data = build_report_db(tmp_path / "data.duckdb", evidence=True)
    old = _old_database(tmp_path / "old.duckdb")
    with duckdb.connect(str(old)) as con:
        con.execute(f"ATTACH '{data}' AS data (READ_ONLY)")
        tables = [t for (t,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = 'old' "
            "AND table_name NOT IN ('schema_version', 'suspicion_thresholds')").fetchall()]
        for table in tables:   # the columns the old schema has (later migrations add some)
            cols = ", ".join(f'"{c}"' for (c,) in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE database_name = 'old' AND table_name = ?",
                [table]).fetchall())
            con.execute(f'INSERT INTO "{table}" BY NAME SELECT {cols} FROM data."{table}"')
        con.execute("DETACH data")
        rows = {t: con.execute(f'SELECT * FROM "{t}" ORDER BY ALL').fetchall() for t in tables}
        old_columns = {t: [d[0] for d in con.execute(f'SELECT * FROM "{t}" LIMIT 0').description] for t in tables}
        answers = _view_answers(con)                       # the old views' answers
    assert sum(len(r) for r in rows.values()) > 100 and sum(bool(a[1]) for a in answers.values()) >= 10
    with open_store(old) as upgraded:
        for t, cols in old_columns.items():   # columns added since are new: the old ones keep their values
            listed = ", ".join(f'"{c}"' for c in cols)
            assert upgraded.query(f'SELECT {listed} FROM "{t}" ORDER BY ALL') == rows[t]
        upgraded_answers = _view_answers(upgraded.con)
        # The flag rule changed on purpose since (flags judged against the FPs' controls, scores uncapped):
        # those two views answer the new rule; every other old view answers as before.
        changed = {"suspicious_tokens", "token_suspicion"}
        # A view may gain columns (provenance_counts: the spelling columns of migration 014); its old columns
        # answer as before.
        kept = {}
        for k, (cols, _) in answers.items():
            if k in changed or k not in upgraded_answers:
                continue
            listed = ", ".join(f'"{c}"' for c in cols)
            cursor = upgraded.con.execute(f'SELECT {listed} FROM "{k}" ORDER BY ALL')
            kept[k] = ([d[0] for d in cursor.description], cursor.fetchall())
        assert kept == {k: v for k, v in answers.items() if k not in changed}


def test_each_view_is_defined_once_in_views_sql_and_the_migrations_hold_tables_only():
    package = ROOT / "fpprov"
    views_sql = (package / "db" / "views.sql").read_text("utf-8")
    defined = re.findall(r"^CREATE OR REPLACE VIEW (\w+) AS", views_sql, re.M)
    assert len(defined) == len(set(defined)) and set(defined) == set(expected_view_state())
    for path in sorted(package.rglob("*.sql")):
        if path.name == "views.sql":
            continue
        code = re.sub(r"--.*$", "", path.read_text("utf-8"), flags=re.M)
        assert not re.search(r"\b(CREATE|DROP|ALTER)\s+(OR\s+REPLACE\s+)?(TEMP\w*\s+)?VIEW\b", code, re.I), path
        assert not re.search(r"\bCOMMENT\s+ON\s+VIEW\b", code, re.I), path
    for name in defined:   # its description follows it: a CREATE OR REPLACE VIEW drops the comments
        block = views_sql.split(f"CREATE OR REPLACE VIEW {name} AS", 1)[1].split("CREATE OR REPLACE VIEW", 1)[0]
        assert f"COMMENT ON VIEW {name} IS" in block


def test_changed_or_missing_views_are_noticed_read_only_and_made_again_by_an_upgrade(tmp_path):
    db = tmp_path / "v.duckdb"
    open_store(db).close()
    with duckdb.connect(str(db)) as con:
        con.execute("DROP VIEW seed_counts")
        con.execute("CREATE OR REPLACE VIEW model_pairs AS SELECT name FROM models")   # an older definition
        con.execute("CREATE VIEW my_own_view AS SELECT 42 AS answer")                    # a user's view
    with open_read_only(db) as ro:
        assert ro.schema is not None                        # `fpprov sql` notes the outdated schema
    with open_read_only(db, upgrade=True) as ro:            # report, export
        assert ro.schema is None
        state = view_state(ro.store.con)
        assert state == {**expected_view_state(), "my_own_view": state["my_own_view"]}
        assert ro.store.query("FROM my_own_view") == [(42,)]


def test_views_are_made_all_or_nothing(tmp_path, monkeypatch):
    db = tmp_path / "a.duckdb"
    open_store(db).close()
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE OR REPLACE VIEW model_pairs AS SELECT name FROM models")
        before = view_state(con)
    broken = store_module.views_sql() + "\nCREATE OR REPLACE VIEW broken AS SELECT * FROM no_such_table;\n"
    monkeypatch.setattr(store_module, "views_sql", lambda: broken)
    with pytest.raises(duckdb.CatalogException):
        open_store(db)
    with duckdb.connect(str(db)) as con:
        assert view_state(con) == before                    # not half of views.sql

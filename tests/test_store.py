"""The DuckDB store: ordered migrations with a version table, bulk inserts, early write checks."""

from __future__ import annotations

import duckdb
import pytest

from fpprov.errors import FpprovError
from fpprov.store import check_writable, list_migrations, open_store


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

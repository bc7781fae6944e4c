"""The DuckDB schema is a user interface: README documents every table, view and column, and its SQL runs."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from fpprov.store import open_store
from report_db import build_report_db

README = Path(__file__).resolve().parent.parent / "README.md"


def _schema_objects() -> list[str]:
    names = []
    for entry in sorted(resources.files("fpprov.schema").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".sql"):
            names += re.findall(r"^CREATE (?:OR REPLACE )?(?:VIEW|TABLE) (\w+)", entry.read_text("utf-8"), re.M)
    return names


def _statements(sql: str) -> list[str]:
    """The statements of one ```sql block (each ends with ';' at the end of a line)."""
    return [s for s in re.split(r";\s*$", sql, flags=re.M) if re.sub(r"--.*$", "", s, flags=re.M).strip()]


def _sources_have_rows(store, statement: str) -> bool:
    """Whether every table/view the statement reads (FROM, JOIN) has rows in the docs database, counting only
    the rows that match the statement's equality filters on string literals (WHERE model = '...', p.text = '...')
    for the columns the relation has."""
    sources = set(re.findall(r"\b(?:FROM|JOIN)\s+([A-Za-z_]\w*)", statement, re.I))
    if not sources:
        return False
    filters = re.findall(r"\b(?:\w+\.)?(\w+)\s*=\s*'([^']*)'", statement)
    for source in sources:
        columns = {row[0] for row in store.query(f"DESCRIBE {source}")}
        kept = [(column, value) for column, value in filters if column in columns]
        where = " WHERE " + " AND ".join(f'"{column}" = ?' for column, _ in kept) if kept else ""
        if not store.query(f"SELECT count(*) FROM {source}{where}", [v for _, v in kept] or None)[0][0]:
            return False
    return True


def test_readme_opens_with_the_demo_and_test_commands():
    head = README.read_text("utf-8").splitlines()[:6]
    assert any(line.startswith("bash scripts/demo") for line in head)
    assert any(line.startswith("bash scripts/test") for line in head)
    ci = (README.parent / ".ci" / "run").read_text("utf-8")
    assert "bash scripts/test" in ci


def test_every_table_view_and_column_is_documented_with_working_examples(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples may COPY ... TO a file
    docs = README.read_text("utf-8")
    names = _schema_objects()
    assert {"models", "scans", "token_fps", "vector_fps", "ngram_counts", "shared_fps", "suspicious_tokens"} <= set(names)
    with open_store(build_report_db(tmp_path / "docs.duckdb")) as store:
        for name in names:
            section = re.search(rf"^###+ (?:View )?`{name}`.*?$(.*?)(?=^#+ )", docs, re.M | re.S)
            assert section, f"README has no section for {name}"
            prose = re.sub(r"```.*?```", "", section.group(1), flags=re.S)
            cells = " ".join(line.split("|")[1] for line in prose.splitlines() if line.startswith("| "))
            listed = " ".join(re.findall(r"Columns: `([^`]*)`", prose))  # prose lists: "Columns: `a, b, c`"
            documented = set(re.findall(r"\b\w+\b", cells + " " + listed))
            columns = {row[0] for row in store.query(f"DESCRIBE {name}")}
            assert columns <= documented, f"{name}: undocumented columns {sorted(columns - documented)}"
        examples = re.findall(r"```sql\n(.*?)```", docs, re.S)
        assert len(examples) >= 10
        must_find = 0
        for sql in examples:
            for statement in _statements(sql):
                rows = store.query(statement)
                assert isinstance(rows, list), statement
                if _sources_have_rows(store, statement):   # over relations with (matching) rows: finds some
                    must_find += 1
                    assert rows, f"example returned no rows although its tables have some:\n{statement}"
        assert must_find >= 10   # most examples run on populated relations of the docs database
        assert store.query("FROM base_vs_inst WHERE family = 'gemma3'")  # the examples find real rows

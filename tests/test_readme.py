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
        for sql in examples:
            assert store.query(sql) is not None
        assert store.query("FROM base_vs_inst WHERE family = 'gemma3'")  # the examples find real rows

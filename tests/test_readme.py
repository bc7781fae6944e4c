"""The README is the first page a user reads: it opens with the two commands for a fresh machine, stays short,
and points to docs/ for the rest (the per-table, per-column and SQL-example checks live in tests/test_docs.py,
beside the pages they now check)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_opens_with_the_demo_and_test_commands():
    head = README.read_text("utf-8").splitlines()[:6]
    assert any(line.startswith("bash scripts/demo") for line in head)
    assert any(line.startswith("bash scripts/test") for line in head)
    ci = (README.parent / ".ci" / "run").read_text("utf-8")
    assert "bash scripts/test" in ci
    for script in ("demo", "test"):
        assert (README.parent / "scripts" / script).is_file()


def test_readme_is_short_and_names_every_command_and_where_results_go():
    text = README.read_text("utf-8")
    assert len(text.splitlines()) <= 200
    commands = re.search(r"^## Commands\n(.*?)(?=^## )", text, re.M | re.S).group(1)
    for command in ("models", "scan", "vectors", "index build", "provenance", "report", "sql", "export"):
        assert f"fpprov {command}" in commands, command
    results = re.search(r"^## Where results go\n(.*?)(?=^## )", text, re.M | re.S).group(1)
    assert "fpprov.duckdb" in results and "reports/" in results and "docs/python-api.md" in results

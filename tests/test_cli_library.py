"""The CLI is a thin layer (issue 22 item 2): a Python caller of the library stores what `fpprov scan` stores,
and the commands state each option once, leaving the models' selection and the one-vs-many dispatch to
fpprov/cli/many.py."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import fpprov
from fpprov.cli import app
from fpprov.cli import scan as scan_cli
from fpprov.cli import vectors as vectors_cli
from fpprov.cli.many import command_options
from fpprov.db.store import open_store

runner = CliRunner()
CLI = Path(fpprov.__file__).parent / "cli"


def _rows(db: Path, query: str) -> list[tuple]:
    """Rows with NaN as None (NaN != NaN would hide equal rows)."""
    with open_store(db) as store:
        rows = store.query(query)
    return [tuple(None if isinstance(v, float) and math.isnan(v) else v for v in row) for row in rows]


@pytest.mark.parametrize("family, tied", [("llama", True), ("qwen3", False)])
def test_a_python_scan_stores_the_under_trained_rows_the_cli_stores(tiny_model_dir, tmp_path, family, tied):
    from fpprov.models import load_model
    from fpprov.scan import ScanOptions, scan_vocabulary

    model = tiny_model_dir(family, tied)
    by_cli, by_python = tmp_path / "cli.duckdb", tmp_path / "python.duckdb"
    result = runner.invoke(app, ["scan", str(model), "--limit", "64", "--device", "cpu", "--db", str(by_cli)])
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())   # rich wraps at the terminal width
    assert f"fpprov sql --db {by_cli}" in flat and not re.search(r"(^|\s)duckdb\s", flat)  # no duckdb CLI needed
    with open_store(by_python) as store:
        scan = scan_vocabulary(load_model(str(model), device="cpu"), store, ScanOptions(limit=64, device="cpu"))
    assert scan.complete
    tokens = "SELECT * FROM undertrained_tokens ORDER BY model, token_id"
    runs = "SELECT * EXCLUDE (computed_at) FROM undertrained_runs ORDER BY model"
    fps = "SELECT * EXCLUDE (scan_id) FROM token_fps ORDER BY token_id"
    assert _rows(by_python, tokens) and _rows(by_python, runs)
    for query in (tokens, runs, fps):
        assert _rows(by_python, query) == _rows(by_cli, query), query


def test_each_option_is_stated_once_and_the_models_selection_once():
    for module, command in ((scan_cli, scan_cli.scan), (vectors_cli, vectors_cli.vectors)):
        source = Path(module.__file__).read_text()
        for name in command_options(command):
            assert len(re.findall(rf"^\s+{name}\s*:", source, re.M)) == 1, (module.__name__, name)
            assert not re.search(rf"\b{name}={name}\b", source), (module.__name__, name)  # no settings dict
    sources = {path.name: path.read_text() for path in CLI.glob("*.py")}
    for flag in ('"--all"', '"--family"', '"--manifest"'):
        assert [name for name, text in sources.items() if flag in text] == ["many.py"], flag
    assert "undertrained" not in sources["scan.py"]   # the library stores the under-trained table
    assert "jobs_from" not in sources["scan.py"] + sources["vectors.py"]


def test_manifest_options_are_the_commands_options():
    assert set(command_options(scan_cli.scan)) == {
        "dtype", "device", "device_map", "bos", "start", "limit", "batch_size", "tolerance", "check_length",
        "verify", "commit_every", "force"}
    assert {"method", "seeds", "seed_start", "embedding", "dedup", "dtype", "force"} <= set(
        command_options(vectors_cli.vectors))

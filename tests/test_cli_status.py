"""`fpprov status`: the library's per-model account of a database (fpprov.status.database_status) against the
database's own rows, and the command's table and one-line messages."""

from __future__ import annotations

import os
import time

import pytest
from typer.testing import CliRunner

from fpprov.cli import app
from fpprov.db.store import open_store
from fpprov.status import database_status
from report_db import HOSTILE_MODEL, build_report_db

runner = CliRunner()


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    return build_report_db(tmp_path_factory.mktemp("status") / "results.duckdb", evidence=True)


def test_status_gives_each_models_scans_vectors_and_traced_indexes(db, tmp_path):
    held = database_status(db, tmp_path / "no-reports")
    with open_store(db, read_only=True) as store:
        scans = store.query("SELECT model, scan_id, id_start, id_stop, complete, fp_count FROM scans")
        traced = store.query("SELECT model, index_name, coalesce(bool_or(index_is_proxy), true), "
                             "count(DISTINCT token_id) FILTER (WHERE role = 'fp'), "
                             "count(DISTINCT token_id) FILTER (WHERE role = 'control') FROM provenance GROUP BY ALL")
        compared = store.query("SELECT model, index_name, n FROM evidence_runs")
        enrichment = store.query("SELECT model, index_name, n_fp, n_control FROM fp_enrichment")
        vector_runs = store.query("SELECT model, embedding, method, count(*) FROM vector_runs GROUP BY ALL")
    by_name = {m.model: m for m in held.models}
    assert set(by_name) == {m for m, *_ in scans} | {m for m, *_ in traced} | {m for m, *_ in vector_runs}
    assert sorted((m.model, s.scan_id, s.id_start, s.id_stop, s.complete, s.fp_count)
                  for m in held.models for s in m.scans) == sorted(scans)
    assert not by_name[HOSTILE_MODEL].scans[0].complete
    shown = {(m.model, i.index_name): (i.index_is_proxy, i.fps, i.controls) for m in held.models for i in m.indexes}
    assert traced and all(shown[m, i] == (p, f, c) for m, i, p, f, c in traced)
    assert {(m.model, i.index_name, i.evidence_n) for m in held.models for i in m.indexes
            if i.evidence_n is not None} == set(compared) and compared
    # the FPs actually compared (loose runs and FPs without a control left out), not only those taken
    assert {(m.model, i.index_name, i.evidence_fp_compared, i.evidence_control_compared) for m in held.models
            for i in m.indexes if i.evidence_fp_compared is not None} == set(enrichment) and enrichment
    vectors = sorted((m.model, v.embedding, v.method, v.runs) for m in held.models for v in m.vectors)
    assert vectors == sorted(vector_runs) and vectors
    assert held.report_index is None and all(m.report is None and m.report_stale is None for m in held.models)


def test_status_finds_report_pages_and_says_when_one_is_older_than_its_data(db, tmp_path):
    from fpprov.report import build_reports

    out = tmp_path / "reports"
    build_reports(db, out, models=["gemma3-270m"])
    held = database_status(db, out)
    by_name = {m.model: m for m in held.models}
    assert held.report_index == out / "index.html"
    page = by_name["gemma3-270m"].report
    assert page is not None and page.parent == out and by_name["gemma3-270m"].report_stale is False
    old = time.time() - 10 * 365 * 86400                       # a page written long before the data
    os.utime(page, (old, old))
    assert database_status(db, out).models[[m.model for m in held.models].index("gemma3-270m")].report_stale


def test_status_command_prints_the_table_and_one_line_for_missing_or_empty(db, tmp_path, monkeypatch):
    from fpprov.cli import common

    monkeypatch.setattr(common.console, "width", 250)      # one line per row: the checks below read whole lines
    result = runner.invoke(app, ["status", "--db", str(db), "--reports", str(tmp_path)], terminal_width=250)
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "gemma3-270m" in flat and "ids [0, 4,096)" in flat and "14 FPs" in flat
    assert "proxy: not this model's training data" in flat and "no reports in" in flat
    missing = runner.invoke(app, ["status", "--db", str(tmp_path / "none.duckdb")])
    assert missing.exit_code == 2 and "does not exist" in missing.output and len(missing.output.splitlines()) == 1
    assert not (tmp_path / "none.duckdb").exists()
    open_store(tmp_path / "empty.duckdb").close()
    empty = runner.invoke(app, ["status", "--db", str(tmp_path / "empty.duckdb")], terminal_width=250)
    assert empty.exit_code == 0 and "holds no results yet" in empty.output and len(empty.output.splitlines()) == 1

"""Data shown in the terminal is shown literally: token texts, model names, paths, index labels, sources and
error messages that hold square brackets are never read as rich markup (no MarkupError, no lost brackets)."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner

import tiny
from fpprov.cli import app
from infinigram_server import add_fp_scan, make_records, write_corpus

runner = CliRunner()
HOSTILE = ["[/INST]", "[/]", "[bold]boo"]


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    from fpprov.cli import common

    monkeypatch.setattr(common.console, "width", 250)
    monkeypatch.setattr(common.err_console, "width", 250)


@pytest.fixture(scope="module")
def hostile_model(tmp_path_factory):
    """A tiny llama named '[bold]tiny' whose vocabulary holds HOSTILE; their embedding rows are scaled up so
    that they are the most certain token FPs (the top of the scan summary)."""
    from transformers import AutoModelForCausalLM

    tok = tiny.build_tokenizer()
    tok.add_tokens(HOSTILE)
    config = tiny._config("llama", len(tok) + 4, True, 0.03, tok)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        for text in HOSTILE:
            emb[tok.convert_tokens_to_ids(text)] *= 20
    out = tmp_path_factory.mktemp("hostile") / "[bold]tiny"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _ok(result) -> str:
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "MarkupError" not in result.output
    return result.output


def _error_line(result) -> str:
    text = result.output.strip()
    assert result.exit_code == 2, text
    assert "Traceback" not in text and "MarkupError" not in text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def test_hostile_tokens_model_and_db_path_through_scan_vectors_report_sql(hostile_model, tmp_path):
    (tmp_path / "a[").mkdir()
    db = tmp_path / "a[" / "]x.duckdb"
    assert str(db).endswith("a[/]x.duckdb")
    out = _ok(runner.invoke(app, ["scan", str(hostile_model), "--db", str(db)]))
    assert "'[bold]boo'" in out and "'[/INST]'" in out and "'[/]'" in out
    assert "[bold]tiny: " in out and "a[/]x.duckdb" in out
    out = _ok(runner.invoke(app, ["vectors", str(hostile_model), "--db", str(db), "--method", "iterate",
                                  "--seeds", "1", "--max-steps", "200", "--rollout-steps", "5"]))
    assert "[bold]tiny: " in out and "a[/]x.duckdb" in out
    out = _ok(runner.invoke(app, ["report", "--db", str(db), "--out", str(tmp_path / "r[")]))
    assert "index.html" in out
    query = "SELECT text FROM token_fps WHERE text LIKE '[%' ORDER BY 1"
    out = _ok(runner.invoke(app, ["sql", "--db", str(db), query]))
    assert "[/INST]" in out and "[bold]boo" in out


def test_scan_summary_and_vector_summary_print_hostile_rows_literally(monkeypatch, tmp_path):
    from fpprov.cli import scan as scan_cli
    from fpprov.cli import vectors as vectors_cli

    buf = io.StringIO()
    plain = Console(file=buf, width=250, highlight=False)
    monkeypatch.setattr(scan_cli, "console", plain)
    monkeypatch.setattr(vectors_cli, "console", plain)
    top = [dict(token_id=i, raw_token=text, text=text, prob=0.9, margin=1.0) for i, text in enumerate(HOSTILE)]
    result = SimpleNamespace(already_complete=True, scan_id=1, model="[/]m", fp_count=3, tokens_scanned=3,
                             tokens_skipped=0, rechecked=0, flipped=0, top=top)
    scan_cli.print_summary(result, tmp_path / "a[/]x.duckdb", 1.0)
    fp = dict(vector_id=1, methods=["iterate"], seeds=[0], residual=0.0, rollout_dist_max=0.0, stable=True,
              entropy=0.0)
    run = dict(stop_reason="precision_floor", converged=False, seed=0, stop_detail="floor [/] reached")
    summary = SimpleNamespace(runs={"iterate": [run]}, fps=[fp], model="[/]m",
                              tokens={1: [dict(text="[/INST]", weight=1.0, is_token_fp=True)]})
    vectors_cli.print_summary(summary, SimpleNamespace(embedding="effective"), tmp_path / "v[/].duckdb", 1.0)
    text = buf.getvalue()
    for piece in ("'[bold]boo'", "'[/INST]'", "'[/]'", "scan 1 of [/]m", "[/]m: 3 token FPs", "a[/]x.duckdb",
                  "floor [/] reached", "[/]m: 1 vector FPs", "'[/INST]' 1.000 (FP)", "v[/].duckdb"):
        assert piece in text, piece


def test_a_model_name_with_brackets_is_one_literal_line():
    line = _error_line(runner.invoke(app, ["scan", "x[/]y"]))
    assert "x[/]y" in line


def test_fail_prints_its_message_literally():
    import typer

    from fpprov.cli import common

    buf = io.StringIO()
    common_err = common.err_console
    try:
        common.err_console = Console(file=buf, width=250)
        with pytest.raises(typer.Exit):
            common.fail("bad [/] and [bold]x")
    finally:
        common.err_console = common_err
    assert buf.getvalue().strip() == "error: bad [/] and [bold]x"


def test_a_corpus_source_and_index_label_with_brackets_through_index_build_and_provenance(tmp_path):
    records = make_records(seed=3, docs=40)
    for record in records:
        record["source"] = "[/]src" if record["source"] == "forum" else record["source"]
    write_corpus(tmp_path / "corpus", records)
    out = _ok(runner.invoke(app, ["index", "build", str(tmp_path / "corpus"), "--out", str(tmp_path / "idx")]))
    assert "documents per source: " in out and "[/]src" in out
    from fpprov.db.store import open_store

    db = tmp_path / "p[/].duckdb"
    (tmp_path / "p[").mkdir()
    store = open_store(db)
    add_fp_scan(store, "[/]tiny", [(1, "[/INST]", "normal"), (2, "[bold]boo", "normal"), (3, "blah", "normal")])
    store.close()
    out = _ok(runner.invoke(app, ["provenance", "--db", str(db), "--backend", "local", "--index-dir",
                                  str(tmp_path / "idx"), "--index", "[/]label", "--ngram", "1", "--docs", "2"]))
    assert "'blah'" in out and "[/]tiny" in out and "[/]label" in out  # the table shows counted texts only


def test_provenance_errors_before_any_phase_are_one_line_without_a_blank_line_first(tmp_path):
    from fpprov.db.store import open_store

    db = tmp_path / "p.duckdb"
    store = open_store(db)
    add_fp_scan(store, "tiny", [(1, "blah", "normal")])
    store.close()
    result = runner.invoke(app, ["provenance", "--db", str(db), "--backend", "local",
                                 "--index-dir", str(tmp_path / "no-such-index")])
    assert result.exit_code == 2 and not result.output.startswith("\n"), repr(result.output)
    assert _error_line(result).startswith("error: ")


def test_an_unreachable_server_is_reported_in_a_few_words():
    import socket

    from fpprov.corpus.base import QueryFailed
    from fpprov.corpus.http import HttpSettings, JsonClient

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = JsonClient(f"http://127.0.0.1:{port}/", HttpSettings(rate=0, retries=1, backoff=0.01))
    with pytest.raises(QueryFailed) as caught:
        client.post({"query": "x"})
    assert str(caught.value) == f"connection error: 127.0.0.1:{port} unreachable (NewConnectionError)"

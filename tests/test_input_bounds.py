"""Unbounded or out-of-range inputs (issue 13): each is one line and exit 2 before the database is touched,
or, for one token whose n-fold text is too long, a stored 'not queryable' row with the reason."""

from __future__ import annotations

import hashlib
import json

import pytest
from typer.testing import CliRunner

from fpprov.cli import app
from fpprov.corpus.base import CorpusBackend, MAX_REPETITIONS
from fpprov.errors import FpprovError
from fpprov.provenance import FpToken, ProvenanceOptions, plan_entries
from fpprov.db.store import open_store
from infinigram_server import add_fp_scan, make_records, write_corpus

runner = CliRunner()


def one_line_error(result, *words):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    base = tmp_path_factory.mktemp("bounds")
    write_corpus(base / "corpus", make_records(seed=3, docs=30), files=1)
    result = runner.invoke(app, ["index", "build", str(base / "corpus"), "--out", str(base / "index")])
    assert result.exit_code == 0, result.output
    return base / "index"


def make_db(path, tokens=((1, "blah", "normal"),)):
    store = open_store(path)
    add_fp_scan(store, "tiny", list(tokens))
    store.close()
    return path


# -- provenance: n ----------------------------------------------------------------------------------

@pytest.mark.parametrize("flag", [["--ladder", "1,100000000"], ["--ngram", "100000000"], ["--ladder", "1001"]])
def test_provenance_n_that_can_never_fit_is_one_line_and_the_db_is_untouched(tmp_path, index, flag):
    db = make_db(tmp_path / "a.duckdb")
    before = digest(db)
    result = runner.invoke(app, ["provenance", "--db", str(db), "--backend", "local", "--index-dir", str(index),
                                 *flag])
    one_line_error(result, str(MAX_REPETITIONS))
    assert digest(db) == before


def test_provenance_bad_n_with_a_missing_db_creates_nothing(tmp_path):
    db = tmp_path / "none.duckdb"
    result = runner.invoke(app, ["provenance", "--db", str(db), "--ladder", "1,100000000"])
    one_line_error(result, "1000")
    assert not db.exists()


def test_provenance_empty_ladder_is_an_error(tmp_path):
    db = make_db(tmp_path / "a.duckdb")
    before = digest(db)
    result = runner.invoke(app, ["provenance", "--db", str(db), "--backend", "local", "--index-dir", "x",
                                 "--ladder", ""])
    one_line_error(result, "--ladder")
    assert digest(db) == before


@pytest.mark.parametrize("ladder", [(), (0,), (-1, 2), (MAX_REPETITIONS + 1,)])
def test_provenance_options_reject_bad_ladders(ladder):
    with pytest.raises(FpprovError, match="ladder"):
        ProvenanceOptions(ladder=ladder)


@pytest.mark.parametrize("field,value", [("docs", -1), ("min_count", 0), ("context_chars", -1),
                                         ("concurrency", 0), ("concurrency", 9), ("give_up_after", -1),
                                         ("flush_seconds", 0)])
def test_provenance_options_reject_out_of_range_numbers(field, value):
    with pytest.raises(FpprovError):
        ProvenanceOptions(**{field: value})


def test_provenance_options_accept_the_bounds():
    options = ProvenanceOptions(ladder=(1, MAX_REPETITIONS), docs=0, min_count=1, context_chars=0,
                                concurrency=8, give_up_after=0)
    assert options.ladder == (1, MAX_REPETITIONS)


class _CharLimited(CorpusBackend):
    backend, index_name, max_chars = "api", "fake", 1000

    def count(self, query): raise AssertionError("not sent")

    def find(self, query): raise AssertionError("not sent")

    def get_doc(self, query, shard, rank, context_chars): raise AssertionError("not sent")


def test_a_long_token_times_n_is_not_queryable_with_the_reason():
    from fpprov.provenance.spellings import Speller
    rows = plan_entries([FpToken("tiny", 1, "abcd", "normal")], _CharLimited(), None, [10, 300],
                        Speller.concatenating("tiny"))
    short = [r for r in rows if r["n"] == 10]
    long = [r for r in rows if r["n"] == 300]
    assert all(r["queryable"] and r["query"] for r in short)
    assert long and all(not r["queryable"] and r["query"] is None for r in long)
    assert {r["reason"] for r in long} >= {"query is 1200 characters, over the api limit of 1000"}


def test_local_long_token_is_stored_not_queryable_and_the_run_succeeds(tmp_path, index):
    token = "x" * 40   # 40 bytes x 1000 is over the local limit of 16384 bytes; x 2 is fine
    db = make_db(tmp_path / "a.duckdb", tokens=((1, token, "normal"), (2, "blah", "normal")))
    result = runner.invoke(app, ["provenance", "--db", str(db), "--backend", "local", "--index-dir", str(index),
                                 "--ladder", "2,1000"])
    assert result.exit_code == 0, result.output
    store = open_store(db)
    try:
        rows = store.query("SELECT token_id, n, queryable, reason FROM provenance ORDER BY token_id, n, variant")
    finally:
        store.close()
    too_long = [r for r in rows if r[0] == 1 and r[1] == 1000]
    assert too_long and all(not r[2] and "over the local limit of 16384" in r[3] for r in too_long)
    assert all(r[2] for r in rows if r[1] == 2)


# -- vectors: numeric options ------------------------------------------------------------------------

@pytest.mark.parametrize("field,value,flag", [
    ("init_std", 0.0, "--init-std"), ("init_std", -0.5, "--init-std"), ("stall_window", -1, "--stall-window"),
    ("lr_floor", -1e-9, "--lr-floor"), ("weight_decay", -0.01, "--weight-decay"), ("tol", float("nan"), "--tol"),
    ("lr", float("inf"), "--lr"), ("max_steps", 0, "--max-steps"), ("top_k", 0, "--top-k"),
    ("dedup_distance", -1.0, "--dedup"), ("rollout_steps", 0, "--rollout-steps")])
def test_vector_option_ranges_reject(field, value, flag):
    from fpprov.vectors.study import VectorOptions
    from fpprov.vectors.study import check_option_ranges

    with pytest.raises(FpprovError, match=flag):
        check_option_ranges(VectorOptions(**{field: value}))


def test_vector_option_ranges_accept_defaults_and_bounds():
    from fpprov.vectors.study import VectorOptions
    from fpprov.vectors.study import check_option_ranges

    check_option_ranges(VectorOptions())
    check_option_ranges(VectorOptions(init_std=0.02, stall_window=0, lr_floor=0.0, weight_decay=0.0))


@pytest.mark.parametrize("flag", [["--init-std", "0"], ["--init-std", "-1"], ["--stall-window", "-1"],
                                  ["--lr-floor", "-1"], ["--weight-decay", "-0.1"]])
def test_vectors_cli_bad_option_is_one_line_and_no_db(tmp_path, flag):
    db = tmp_path / "v.duckdb"
    result = runner.invoke(app, ["vectors", "no-such-model-needed", "--db", str(db), *flag])
    one_line_error(result, flag[0])
    assert not db.exists()


# -- index build on bad files -------------------------------------------------------------------------

def _corpus(tmp_path, name: str, data: bytes):
    folder = tmp_path / "corpus"
    folder.mkdir(exist_ok=True)
    good = "".join(json.dumps({"text": f"doc {i} blah"}) + "\n" for i in range(3)).encode()
    (folder / "a.jsonl").write_bytes(good)
    (folder / name).write_bytes(data)
    return folder


def _build(folder, out):
    return runner.invoke(app, ["index", "build", str(folder), "--out", str(out)])


def _gz(text: str) -> bytes:
    import gzip
    return gzip.compress(text.encode())


@pytest.mark.parametrize("name,data,words", [
    ("b.jsonl.gz", b"\x1f\x8bnot really gzip data at all", ["b.jsonl.gz:1", "cannot read"]),
    ("b.jsonl.gz", _gz('{"text": "one"}\n' * 200)[:-30], ["b.jsonl.gz:", "truncated gzip"]),
    ("b.jsonl", '{"text": "ok"}\n{"text": "caf\u00e9"}\n'.encode("latin-1"), ["b.jsonl:2", "not UTF-8"]),
    ("b.jsonl", b'{"text": "ok"}\n{"text": \n', ["b.jsonl:2", "not a JSON line"]),
])
def test_index_build_bad_file_is_one_line_with_file_and_line(tmp_path, name, data, words):
    folder = _corpus(tmp_path, name, data)
    out = tmp_path / "index"
    one_line_error(_build(folder, out), *words)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".index")]  # no half-built folder


def test_index_build_output_path_that_is_a_file(tmp_path):
    folder = _corpus(tmp_path, "b.jsonl", b'{"text": "x"}\n')
    out = tmp_path / "taken"
    out.write_text("mine")
    one_line_error(_build(folder, out), "is a file")
    assert out.read_text() == "mine"
    one_line_error(_build(folder, out / "sub"), "is a file")


def test_index_build_skips_blank_lines_and_accepts_a_bom(tmp_path):
    import tempfile
    from pathlib import Path

    from fpprov.corpus.local import LocalBackend

    staged = set(Path(tempfile.gettempdir()).glob("fpprov-corpus-*"))
    text = '{"text": "zqx first"}\n\n   \n{"text": "zqx second"}\n'
    folder = _corpus(tmp_path, "b.jsonl", b"\xef\xbb\xbf" + text.encode())
    (folder / "c.jsonl.gz").write_bytes(_gz("\n" + text))
    out = tmp_path / "index"
    result = _build(folder, out)
    assert result.exit_code == 0, result.output
    assert "7 documents from 3 file(s)" in " ".join(result.output.split())
    backend = LocalBackend([out])
    try:
        assert backend.count("zqx").count == 4
        assert backend.count("\ufeff").count == 0
    finally:
        backend.close()
    assert set(Path(tempfile.gettempdir()).glob("fpprov-corpus-*")) <= staged  # the cleaned copy is gone


# -- report / export: no empty folder left on failure -------------------------------------------------

def test_report_with_unknown_model_or_missing_db_leaves_no_folder(tmp_path):
    db = make_db(tmp_path / "a.duckdb")
    out = tmp_path / "new" / "reports"
    one_line_error(runner.invoke(app, ["report", "--db", str(db), "--out", str(out), "-m", "nope"]), "nope")
    assert not (tmp_path / "new").exists()
    one_line_error(runner.invoke(app, ["report", "--db", str(db), "--out", str(out), "-t", "nope=1"]), "nope")
    assert not (tmp_path / "new").exists()
    one_line_error(runner.invoke(app, ["report", "--db", str(tmp_path / "missing.duckdb"), "--out", str(out)]))
    assert not (tmp_path / "new").exists() and not (tmp_path / "missing.duckdb").exists()
    ok = runner.invoke(app, ["report", "--db", str(db), "--out", str(out)])
    assert ok.exit_code == 0, ok.output
    assert (out / "index.html").exists()


def test_report_failure_keeps_a_folder_that_was_there(tmp_path):
    db = make_db(tmp_path / "a.duckdb")
    out = tmp_path / "mine"
    out.mkdir()
    one_line_error(runner.invoke(app, ["report", "--db", str(db), "--out", str(out), "-m", "nope"]), "nope")
    assert out.is_dir()


def test_export_with_missing_db_leaves_no_folder(tmp_path):
    out = tmp_path / "new" / "parquet"
    result = runner.invoke(app, ["export", "--db", str(tmp_path / "missing.duckdb"), "--parquet", str(out)])
    one_line_error(result)
    assert not (tmp_path / "new").exists() and not (tmp_path / "missing.duckdb").exists()
    db = make_db(tmp_path / "a.duckdb")
    ok = runner.invoke(app, ["export", "--db", str(db), "--parquet", str(out)])
    assert ok.exit_code == 0, ok.output
    assert (out / "provenance.parquet").exists()

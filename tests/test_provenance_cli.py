"""The CLI: `fpprov index build`, `fpprov provenance`, `fpprov indexes` (typer's CliRunner), and a real
`kill -9` in the middle of a run followed by a rerun that completes only what is missing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from fpprov.cli import app
from fpprov.corpus.http import HttpSettings
from fpprov.provenance import ProvenanceOptions, run_provenance
from fpprov.store import open_store
from infinigram_server import add_fp_scan, independent_count, make_records, serve, write_corpus

runner = CliRunner()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli")
    records = make_records(seed=6)
    write_corpus(base / "corpus", records)
    return base, records


@pytest.fixture(scope="module")
def index(corpus):
    base, _ = corpus
    result = runner.invoke(app, ["index", "build", str(base / "corpus"), "--out", str(base / "index"), "--shards", "2"])
    assert result.exit_code == 0, result.output
    assert "documents per source: " in result.output and "2 shard(s)" in result.output
    return base / "index"


def make_db(path, tokens=((1, "blah", "normal"), (2, "Á", "normal"), (3, "<0x00>", "byte_fragment"))):
    store = open_store(path)
    add_fp_scan(store, "tiny", list(tokens))
    store.close()
    return str(path)


def test_provenance_local_prints_top_rows_and_a_rerun_sends_nothing(tmp_path, index, corpus):
    db = make_db(tmp_path / "a.duckdb")
    args = ["provenance", "--db", db, "--backend", "local", "--index-dir", str(index), "--ladder", "1,10",
            "--docs", "2"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    top = independent_count(corpus[1], "Á" * 10)
    assert top > 0 and f"{top:,}" in first.output and "'Á'" in first.output and "x 10" in first.output
    flat = " ".join(first.output.split())  # rich wraps at the terminal width
    assert "10 entries (2 not queryable)" in flat  # 2 tokens x 2 n x 2 variants + the byte fragment x 2 n
    second = runner.invoke(app, args)
    flat = " ".join(second.output.split())
    assert second.exit_code == 0 and "8 cached, 0 sent" in flat and " 0 backend calls" in flat


def test_failed_queries_make_the_command_exit_non_zero(tmp_path, index):
    db = make_db(tmp_path / "f.duckdb")
    with serve([index]) as srv:
        srv.query_faults["blah"] = "500"
        result = runner.invoke(app, ["provenance", "--db", db, "--index", "test_index", "--api-url", srv.url,
                                     "--ngram", "1", "--retries", "0", "--rate", "0"])
    assert result.exit_code == 1
    assert "1 queries failed" in result.output and "HTTP 500" in result.output


@pytest.mark.parametrize("args, message", [
    (["--backend", "nope"], "unknown backend 'nope'"),
    (["--ladder", "1,x"], "--ladder takes comma-separated integers"),
    (["--backend", "local"], "needs --index-dir"),
    (["--model", "ghost", "--backend", "local", "--index-dir", "."], "no complete scan with fixed points for ghost"),
])
def test_bad_input_is_one_line_with_exit_2(tmp_path, args, message):
    db = make_db(tmp_path / "e.duckdb")
    result = runner.invoke(app, ["provenance", "--db", db, *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_unknown_index_from_the_server_names_the_known_ones(tmp_path, index):
    db = make_db(tmp_path / "u.duckdb")
    with serve([index]) as srv:
        result = runner.invoke(app, ["provenance", "--db", db, "--index", "v4_typo", "--api-url", srv.url,
                                     "--rate", "0"])
    assert result.exit_code == 2
    assert "unknown index 'v4_typo' for backend api; known:" in result.output and "v4_pileval_llama" in result.output


def test_indexes_lists_the_server_list_or_the_data_file(index):
    with serve([index], indexes=("live_one", "live_two"), list_on_get=True) as srv:
        live = runner.invoke(app, ["indexes", "--backend", "api", "--api-url", srv.url])
    assert live.exit_code == 0 and "from the server" in live.output and "live_two" in live.output
    with serve([index]) as srv:  # GET / answers 404: fall back to the data file
        fallback = runner.invoke(app, ["indexes", "--backend", "api", "--api-url", srv.url])
    assert fallback.exit_code == 0 and "from the data file" in fallback.output
    assert "v4_olmo-mix-1124_llama" in fallback.output


def test_index_build_refuses_to_overwrite(index, corpus):
    result = runner.invoke(app, ["index", "build", str(corpus[0] / "corpus"), "--out", str(index)])
    assert result.exit_code == 2 and "--force" in result.output


def test_kill_9_mid_run_then_rerun_completes_only_what_is_missing(tmp_path, index):
    tokens = [(i, f"w{i}x", "normal") for i in range(40)]  # 40 tokens x 2 variants = 80 queries
    db = make_db(tmp_path / "k.duckdb", tokens)
    with serve([index]) as srv:
        srv.delay_seconds = 0.04
        env = {**os.environ, "FPPROV_API_URL": srv.url}
        proc = subprocess.Popen(
            [sys.executable, "-c", "from fpprov.entry import main; main()", "provenance", "--db", db,
             "--index", "test_index", "--ngram", "1", "--rate", "0", "--concurrency", "1"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while srv.posts < 45 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        store = open_store(db)
        stored = store.query("SELECT count(*) FROM ngram_counts WHERE status = 'ok'")[0][0]
        assert 0 < stored < 80  # killed mid-run, with committed batches
        srv.delay_seconds = 0.0
        before = srv.posts
        summary = run_provenance(store, backend="api", index="test_index", api_url=srv.url,
                                 http=HttpSettings(rate=0, backoff=0.01), options=ProvenanceOptions(ladder=(1,)))
        assert srv.posts - before == 80 - stored == summary.sent
        assert store.query("SELECT count(*) FROM ngram_counts WHERE status = 'ok'")[0][0] == 80
        store.close()


def test_mini_backend_end_to_end_with_documents(tmp_path, index, corpus):
    db = make_db(tmp_path / "m.duckdb")
    with serve([index], dialect="mini", indexes=("v2_test",)) as srv:
        result = runner.invoke(app, ["provenance", "--db", db, "--backend", "mini", "--index", "v2_test",
                                     "--api-url", srv.url, "--ladder", "2", "--docs", "3", "--rate", "0"])
    assert result.exit_code == 0, result.output
    store = open_store(db)
    counts = dict(store.query("SELECT query, count FROM ngram_counts WHERE backend = 'mini'"))
    assert counts["ÁÁ"] == independent_count(corpus[1], "ÁÁ") > 0
    shares = store.query("SELECT source, share FROM source_shares WHERE query = 'ÁÁ'")
    assert shares == [("flan", 1.0)]
    proxy = store.query("SELECT DISTINCT index_is_proxy FROM provenance")
    assert proxy == [(None,)]  # 'tiny' has no alias: whether the index is a proxy is unknown
    store.close()


def test_an_unreachable_server_stops_the_run_quickly_with_one_line(tmp_path):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    db = make_db(tmp_path / "off.duckdb", [(i, f"t{i}", "normal") for i in range(10)])
    started = time.monotonic()
    result = runner.invoke(app, ["provenance", "--db", db, "--index", "test_index", "--api-url",
                                 f"http://127.0.0.1:{port}/", "--ngram", "1", "--rate", "0", "--retries", "1",
                                 "--give-up-after", "3"])
    assert result.exit_code == 2 and time.monotonic() - started < 20
    flat = " ".join(result.output.split())
    assert "stopped after 3 failed queries in a row (last: connection error" in flat
    store = open_store(db)
    assert store.query("SELECT count(*), min(status) FROM ngram_counts") == [(3, "failed")]
    store.close()


def test_provenance_on_a_missing_database_creates_nothing(tmp_path):
    from typer.testing import CliRunner

    from fpprov.cli import app

    db = tmp_path / "typo.duckdb"
    result = CliRunner().invoke(app, ["provenance", "--db", str(db)])
    assert result.exit_code == 2 and "does not exist" in result.output
    assert not db.exists()

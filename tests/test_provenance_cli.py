"""The CLI: `fpprov index build`, `fpprov provenance`, `fpprov indexes` (typer's CliRunner), and a real
`kill -9` in the middle of a run followed by a rerun that completes only what is missing."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time

import pytest
from rich.console import Console
from rich.progress import Progress
from typer.testing import CliRunner

from fpprov.cli import app
from fpprov.cli import provenance as cli_provenance
from fpprov.corpus.factory import open_backend
from fpprov.corpus.http import HttpSettings
from fpprov.provenance import FpToken, ProvenanceOptions, run_provenance
from fpprov.provenance.budget import estimate_run, select_fps
from fpprov.db.store import open_store
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
    db = make_db(tmp_path / "a.duckdb", ((1, " blah", "normal"), (2, "Á", "normal"), (3, "<0x00>", "byte_fragment")))
    # No controls or baseline: the entry and query counts below are the FPs' own.
    args = ["provenance", "--db", db, "--backend", "local", "--index-dir", str(index), "--ladder", "1,10",
            "--docs", "2", "--controls", "0", "--baseline-positions", "0"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    # the top rows show the emitted run (' blah' x 10); 'Á' x 10 is one character repeated: loose, not shown
    top = independent_count(corpus[1], " blah" * 10)
    assert top > 0 and f"{top:,}" in first.output and "' blah'" in first.output and "x 10" in first.output
    assert "'Á'" not in first.output
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
                                     "--ngram", "1", "--retries", "0", "--rate", "0", "--docs", "0",
                                     "--controls", "0", "--baseline-positions", "0"])
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
             "--index", "test_index", "--ngram", "1", "--rate", "0", "--concurrency", "1", "--docs", "0",
             "--controls", "0", "--baseline-positions", "0"],
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
        options = ProvenanceOptions(ladder=(1,), docs=0, controls=0, baseline_positions=0)
        summary = run_provenance(store, backend="api", index="test_index", api_url=srv.url,
                                 http=HttpSettings(rate=0, backoff=0.01), options=options)
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
    assert proxy == [(True,)]  # 'tiny' has no alias: nothing names the index as its training data, so a proxy
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


def plan_output(estimate) -> str:
    buffer = io.StringIO()
    cli_provenance.RichProgress(Progress(console=Console(file=buffer, width=60))).planned(estimate)
    return buffer.getvalue()


def plan_lines_but_power(estimate):
    """The plan's lines but the power line (what the controls can show: a statement of its own)."""
    return [line for line in plan_output(estimate).splitlines() if not line.startswith("  power:")]


def test_the_plan_says_what_will_be_sent_and_warns_past_the_hour(index):
    api = open_backend("api", "v4_dclm-baseline_llama", settings=HttpSettings(rate=2.0))
    tokens = [FpToken("m", i, f"w{i}", "normal", i / 1000) for i in range(1000)]
    options = ProvenanceOptions()
    try:
        sample = select_fps(tokens, 60, seed=0)
        fits = estimate_run(api, sample, options, cached_queries=12)
        assert fits.seconds < 3600
        assert plan_lines_but_power(fits) == [  # one line however narrow the terminal
            f"v4_dclm-baseline_llama: 60 of 1,000 FPs ({sample.rule}), up to 60 controls; "
            f"{fits.count_queries:,} count queries (12 cached), up to {fits.doc_requests:,} document requests, "
            f"1,000 baseline lookups: about {round(fits.seconds / 60)} min at 2.0 requests/s"]
        everything = estimate_run(api, select_fps(tokens, None, seed=0), options)
        lines = plan_lines_but_power(everything)
        assert len(lines) == 2 and lines[0].startswith("v4_dclm-baseline_llama: all 1,000 FPs, up to 1,000 controls")
        assert f"about {everything.seconds / 3600:.1f} h at 2.0 requests/s" in lines[0]
        assert "more than an hour" in lines[1] and "--max-tokens N (now 1,000)" in lines[1] and "--docs 0" in lines[1]
        cached = estimate_run(api, sample, options, cached_queries=500, pending_queries=0, pool_pending=0,
                              controls_pending=0, pending_docs=0, baseline_missing=0)
        assert plan_lines_but_power(cached)[-1].endswith("; nothing to send (all cached)")
    finally:
        api.close()
    local = open_backend("local", "here", index_dirs=[index])
    try:
        text = "\n".join(plan_lines_but_power(estimate_run(local, select_fps(tokens, None, seed=0),
                                                            ProvenanceOptions(docs=0))))
    finally:
        local.close()
    assert text.strip().endswith(": no rate limit") and "more than an hour" not in text
    assert "error" not in text.lower()


def test_budget_options_out_of_range_are_one_line_with_exit_2(tmp_path):
    db = make_db(tmp_path / "o.duckdb")
    for args in (["--max-tokens", "0"], ["--controls", "21"], ["--baseline-positions", "-1"], ["--docs", "-1"]):
        result = runner.invoke(app, ["provenance", "--db", db, "--backend", "local", "--index-dir", ".", *args])
        assert result.exit_code == 2 and args[0] in result.output and "Traceback" not in result.output


# The next three need run.py to call ProvenanceProgress.planned (and, for the last, to pass the cache state of
# the controls, documents and baseline to estimate_run): they fail until then.

def test_the_plan_is_printed_before_anything_is_sent(tmp_path, index, monkeypatch):
    db = make_db(tmp_path / "p.duckdb")
    seen = []
    shown = cli_provenance.RichProgress.planned

    def planned(self, estimate):
        seen.append((estimate, srv.posts))
        shown(self, estimate)

    monkeypatch.setattr(cli_provenance.RichProgress, "planned", planned)
    with serve([index]) as srv:
        result = runner.invoke(app, ["provenance", "--db", db, "--index", "test_index", "--api-url", srv.url,
                                     "--ngram", "10", "--docs", "1", "--controls", "0", "--baseline-positions", "0",
                                     "--rate", "50"])
    assert result.exit_code == 0, result.output
    assert [posts for _, posts in seen] == [0]   # one index, planned before the first request
    estimate = seen[0][0]
    assert (estimate.fps, estimate.fp_total, estimate.sample_rule, estimate.rate) == (3, 3, "all", 50.0)
    assert estimate.count_queries == 4          # 'blah' and 'Á', each emitted and after a space, x 10
    flat = " ".join(result.output.split())
    line = "test_index: all 3 FPs; 4 count queries (0 cached)"
    assert line in flat and "at 50.0 requests/s" in flat
    assert flat.index(line) < flat.index("top FP tokens by count")


def test_max_tokens_takes_the_documented_sample(tmp_path, index):
    db = make_db(tmp_path / "s.duckdb", [(i, f"w{i}x", "normal") for i in range(10)])
    result = runner.invoke(app, ["provenance", "--db", db, "--backend", "local", "--index-dir", str(index),
                                 "--ngram", "1", "--max-tokens", "4", "--docs", "0", "--controls", "0",
                                 "--baseline-positions", "0"])
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "4 of 10 FPs (top 2 by p(t | t) + 2 drawn uniformly from the other 8)" in flat
    store = open_store(db)
    taken = [r[0] for r in store.query("SELECT DISTINCT token_id FROM provenance ORDER BY 1")]
    store.close()
    assert len(taken) == 4 and {0, 1} <= set(taken)   # equal p(t | t): the top two by the lower id


def test_a_second_run_of_the_same_command_has_nothing_to_send(tmp_path, index):
    db = make_db(tmp_path / "c.duckdb")
    args = ["provenance", "--db", db, "--backend", "local", "--index-dir", str(index), "--docs", "2"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "nothing to send" not in first.output
    second = runner.invoke(app, args)
    flat = " ".join(second.output.split())
    assert second.exit_code == 0 and "nothing to send (all cached)" in flat and " 0 backend calls" in flat


def test_index_is_repeatable_and_every_index_is_traced(tmp_path, index):
    db = make_db(tmp_path / "two.duckdb")
    with serve([index], indexes=("index_a", "index_b")) as srv:
        result = runner.invoke(app, ["provenance", "--db", db, "--index", "index_a", "--index", "index_b",
                                     "--api-url", srv.url, "--ngram", "2", "--docs", "0", "--controls", "0",
                                     "--baseline-positions", "0", "--rate", "0"])
    assert result.exit_code == 0, result.output
    with open_store(db, read_only=True) as store:
        traced = {r[0] for r in store.query("SELECT DISTINCT index_name FROM provenance")}
    assert traced == {"index_a", "index_b"}
    flat = " ".join(result.output.split())
    assert "index_a:" in flat and "index_b:" in flat          # one plan line per index


def _proxy_flags(db):
    with open_store(db, read_only=True) as store:
        rows = set(store.query("SELECT DISTINCT model, index_is_proxy FROM provenance"))
        traced = set(store.query("SELECT model, index_is_proxy FROM traced_indexes"))
    assert rows == traced, (rows, traced)
    return dict(rows)


def test_training_data_and_proxy_flags_decide_index_is_proxy(tmp_path, index):
    quick = ["--ngram", "2", "--docs", "0", "--controls", "0", "--baseline-positions", "0"]
    local = ["--backend", "local", "--index-dir", str(index), *quick]
    # a local index with no manifest is a proxy, unless the user says it is the training data
    db = make_db(tmp_path / "local.duckdb")
    first = runner.invoke(app, ["provenance", "--db", db, *local])
    assert first.exit_code == 0 and "proxy: not the training data of tiny" in " ".join(first.output.split())
    assert _proxy_flags(db) == {"tiny": True}
    said = runner.invoke(app, ["provenance", "--db", db, *local, "--training-data"])
    assert said.exit_code == 0 and ": the training data of tiny" in " ".join(said.output.split())
    assert _proxy_flags(db) == {"tiny": False}
    # olmo2-1b's alias names its default index as its training data; --proxy overrules the alias
    db = str(tmp_path / "olmo.duckdb")
    with open_store(db) as store:
        add_fp_scan(store, "olmo2-1b", [(1, "blah", "normal")])
    with serve([index], indexes=("v4_olmo-mix-1124_llama",)) as srv:
        api = ["provenance", "--db", db, "--api-url", srv.url, "--rate", "0", *quick]
        assert runner.invoke(app, api).exit_code == 0
        assert _proxy_flags(db) == {"olmo2-1b": False}
        assert runner.invoke(app, [*api, "--proxy"]).exit_code == 0
        assert _proxy_flags(db) == {"olmo2-1b": True}


def test_training_data_and_proxy_together_are_refused(tmp_path, index):
    db = make_db(tmp_path / "both.duckdb")
    result = runner.invoke(app, ["provenance", "--db", db, "--backend", "local", "--index-dir", str(index),
                                 "--training-data", "--proxy"])
    assert result.exit_code == 2 and "--training-data and --proxy" in result.output
    with open_store(db, read_only=True) as store:
        assert store.query("SELECT count(*) FROM provenance")[0][0] == 0


def test_the_library_says_a_complete_scan_found_no_fixed_points(tmp_path):
    from fpprov.errors import FpprovError
    from fpprov.provenance.plan import load_fp_tokens

    with open_store(tmp_path / "none.duckdb") as store:
        with pytest.raises(FpprovError, match="no complete scans"):
            load_fp_tokens(store)
        add_fp_scan(store, "tiny", [])                       # complete, nothing found
        add_fp_scan(store, "other", [(1, "x", "normal")], complete=False)
        with pytest.raises(FpprovError) as caught:
            load_fp_tokens(store)
    assert "tiny found no fixed points" in str(caught.value) and "no complete scans" not in str(caught.value)

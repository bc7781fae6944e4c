"""A scan killed with SIGKILL (or interrupted with Ctrl-C) resumes and ends with an uninterrupted run's rows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb

from fpprov.models import load_model
from fpprov.scan.run import ScanOptions, scan_vocabulary
from fpprov.db.store import open_store
from helpers import scan_rows as _rows, uninterrupted_scan as _uninterrupted

# A real scan process that SIGKILLs itself right after its third chunk commits: a kill -9 mid-run at a
# known point (between transactions is the only place a kill can land that matters: a kill inside one is
# rolled back by DuckDB's WAL replay, which the timing-based Ctrl-C test below also exercises).
KILLER = textwrap.dedent("""
    import os, signal, sys
    from fpprov.models import load_model
    from fpprov.scan.run import ScanOptions, scan_vocabulary
    from fpprov.db.store import open_store
    model_dir, db = sys.argv[1], sys.argv[2]
    done = []
    def progress(n, n_fp):
        done.append(n)
        if len(done) == 3:
            os.kill(os.getpid(), signal.SIGKILL)
    store = open_store(db)
    scan_vocabulary(load_model(model_dir), store, ScanOptions(commit_every=40, batch_size=16), progress=progress)
""")


def test_kill_9_then_rerun_gives_the_uninterrupted_rows(tiny_model_dir, tmp_path):
    model_dir = tiny_model_dir("gemma3", True)
    db = tmp_path / "killed.duckdb"
    proc = subprocess.run([sys.executable, "-c", KILLER, str(model_dir), str(db)], capture_output=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    con = duckdb.connect(str(db), read_only=True)
    committed = con.execute("SELECT count(*), sum(tokens_scanned) FROM scan_chunks").fetchone()
    complete = con.execute("SELECT complete FROM scans").fetchone()[0]
    con.close()
    assert committed == (3, 120) and complete is False

    with open_store(db) as store:
        result = scan_vocabulary(load_model(str(model_dir)), store, ScanOptions(commit_every=40, batch_size=16))
    assert result.resumed_from == 120 and result.complete
    assert _rows(db) == _uninterrupted(model_dir, tmp_path / "clean.duckdb")


def test_finished_scan_is_not_redone_unless_forced(tiny_model_dir, tmp_path):
    loaded = load_model(str(tiny_model_dir("olmo2", True)))
    with open_store(tmp_path / "f.duckdb") as store:
        first = scan_vocabulary(loaded, store, ScanOptions())
        again = scan_vocabulary(loaded, store, ScanOptions())
        assert again.already_complete and again.scan_id == first.scan_id
        forced = scan_vocabulary(loaded, store, ScanOptions(force=True))
        assert not forced.already_complete and forced.fp_count == first.fp_count
        assert store.query("SELECT count(*) FROM scans")[0][0] == 1
        assert store.query("SELECT count(*) FROM token_fps")[0][0] == first.fp_count


def test_ctrl_c_on_the_cli_keeps_committed_chunks_and_resumes(tiny_model_dir, tmp_path):
    model_dir = tiny_model_dir("llama", True)
    db = tmp_path / "cli.duckdb"
    cmd = [sys.executable, "-m", "fpprov", "scan", str(model_dir), "--db", str(db), "--commit-every", "1",
           "--batch-size", "1"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    # Wait until the scan starts (its first line on stderr), let some chunks commit, then interrupt.
    first_line = proc.stderr.readline().decode()
    assert "scanning" in first_line, first_line
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert "Traceback" not in err.decode()
    assert proc.returncode in (0, 130), err.decode()[-2000:]
    con = duckdb.connect(str(db), read_only=True)
    complete = con.execute("SELECT complete FROM scans").fetchone()[0]
    con.close()
    if proc.returncode == 130:
        assert "interrupted" in err.decode()
    if not complete:  # the signal landed mid-scan (a fast machine may finish first): the rerun resumes
        rerun = subprocess.run(cmd, capture_output=True, env=env, timeout=300)
        assert rerun.returncode == 0, rerun.stderr.decode()[-2000:]
        assert "resuming" in rerun.stderr.decode()
    assert _rows(db) == _uninterrupted(model_dir, tmp_path / "clean.duckdb", commit_every=1, batch_size=1)


def test_resume_with_other_chunk_and_batch_sizes_keeps_the_first_runs_settings(tiny_model_dir, tiny_model_sizes,
                                                                                tmp_path):
    model_dir = tiny_model_dir("gemma3", True)
    vocab_size, _ = tiny_model_sizes(model_dir)
    db = tmp_path / "killed.duckdb"
    proc = subprocess.run([sys.executable, "-c", KILLER, str(model_dir), str(db)], capture_output=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    with open_store(db) as store:  # the first run used commit_every=40, batch_size=16
        result = scan_vocabulary(load_model(str(model_dir)), store, ScanOptions(commit_every=64, batch_size=100))
        scan = store.query_dicts("SELECT batch_size, commit_every, tokens_scanned, complete FROM scans")[0]
        chunks = store.query("SELECT chunk_start, chunk_stop FROM scan_chunks ORDER BY 1")
    assert result.complete and scan == {"batch_size": 16, "commit_every": 40, "tokens_scanned": vocab_size,
                                    "complete": True}
    assert chunks == [(s, min(s + 40, vocab_size)) for s in range(0, vocab_size, 40)]
    assert _rows(db) == _uninterrupted(model_dir, tmp_path / "clean.duckdb")


def test_a_scan_stopped_after_one_committed_chunk_resumes_from_the_next(tiny_model_dir, tmp_path):
    from fpprov.scan.run import commit_chunk, judge_chunk, open_scan, plan_scan
    from fpprov.tokens import TokenDescriber

    model_dir = tiny_model_dir("gemma3", True)
    loaded = load_model(str(model_dir))
    db = tmp_path / "steps.duckdb"
    opts = ScanOptions(commit_every=40, batch_size=16)
    with open_store(db) as store:
        scan = open_scan(plan_scan(loaded, opts), store)
        assert scan.resumed_from == 0 and not scan.already_complete and scan.todo[0] == (0, 40)
        chunk = judge_chunk(scan, *scan.todo[0], TokenDescriber(loaded.tokenizer))
        assert store.query("SELECT count(*) FROM token_fps") == [(0,)]   # judged, not yet written
        commit_chunk(store, scan, chunk)
        again = open_scan(plan_scan(loaded, opts), store)
        assert (again.scan_id, again.todo, again.resumed_from) == (scan.scan_id, scan.todo[1:], 40)
        result = scan_vocabulary(loaded, store, opts)
    assert result.resumed_from == 40 and result.complete
    assert _rows(db) == _uninterrupted(model_dir, tmp_path / "clean.duckdb")

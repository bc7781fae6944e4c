"""Sharded scans under torchrun (2 CPU ranks on gloo): the rows equal a single-process scan's, and a job killed
mid-scan resumes on rerun to the same rows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from fpprov.runtime.distributed import Ranks
from fpprov.errors import FpprovError
from fpprov.models import load_model
from fpprov.scan.run import ScanOptions, scan_vocabulary
from fpprov.db.store import open_store

COMMIT_EVERY, BATCH = 40, 16
TABLES = ("scans", "scan_chunks", "token_fps", "scan_rechecks", "vocabulary")
# What may differ between two runs of one scan: when, how long, and on which device.
VOLATILE = {"seconds", "device"}

# One rank of a sharded scan, as a user's script would write it: each rank loads the model on its device;
# only rank 0 opens the database. Each rank leaves its pid in DB.rankR; with PAUSE_AFTER=k, rank 0 stops for
# good after its k-th committed chunk (and says so in DB.paused), so the test can SIGKILL it at a known point.
DRIVER = textwrap.dedent(f"""
    import os, sys, time
    from pathlib import Path
    import torch
    from fpprov.runtime.distributed import Ranks
    from fpprov.models import load_model
    from fpprov.scan.run import ScanOptions, scan_vocabulary
    from fpprov.db.store import open_store
    torch.set_num_threads(1)
    model_dir, db = sys.argv[1], sys.argv[2]
    pause_after = int(os.environ.get("PAUSE_AFTER", "0"))
    ranks = Ranks.from_env()
    Path(f"{{db}}.rank{{ranks.rank}}").write_text(str(os.getpid()))
    loaded = load_model(model_dir, device=str(ranks.device("auto")))
    done = []
    def progress(n, n_fp):
        done.append(n)
        if len(done) == pause_after:
            Path(db + ".paused").write_text(str(len(done)))
            time.sleep(600)
    store = open_store(db) if ranks.writer else None
    limit = os.environ.get("LIMIT")
    opts = ScanOptions(commit_every={COMMIT_EVERY}, batch_size={BATCH}, start=int(os.environ.get("START", "0")),
                       limit=int(limit) if limit else None, safety_factor=float(os.environ.get("SAFETY", "10")))
    result = scan_vocabulary(loaded, store, opts, progress=progress)
    # one file per rank: two ranks printing to one pipe interleave their characters
    Path(f"{{db}}.result{{ranks.rank}}").write_text(
        f"rank {{ranks.rank}} complete {{result.complete}} resumed_from {{result.resumed_from}}")
""")


def _results(db: Path) -> list[str]:
    return [Path(f"{db}.result{rank}").read_text() for rank in (0, 1)]


def _torchrun(model_dir: Path, db: Path, nproc: int = 2, **env: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "--no-python", sys.executable, "-c", DRIVER, str(model_dir), str(db)]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **env}
    # A session of its own: the test kills torchrun and every rank at once, as a scheduler would.
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env,
                            start_new_session=True)


def _finish(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, (out + err)[-3000:]
    return out


def _table_rows(db: Path) -> dict[str, list[tuple]]:
    """Every row of the scan's tables, without timestamps and wall times, in a fixed order."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = {}
        for table in TABLES:
            cols = [name for name, kind in con.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ?"
                " ORDER BY ordinal_position", [table]).fetchall() if kind != "TIMESTAMP" and name not in VOLATILE]
            listed = ", ".join(cols)
            rows[table] = con.execute(f"SELECT {listed} FROM {table} ORDER BY ALL").fetchall()
        return rows
    finally:
        con.close()


@pytest.fixture(scope="module")
def model_and_single(tiny_model_dir, tmp_path_factory, one_torch_thread):
    """The tiny model and the rows of its single-process scan (several chunks)."""
    model_dir = tiny_model_dir("gemma3", True)
    db = tmp_path_factory.mktemp("single") / "single.duckdb"
    with open_store(db) as store:
        result = scan_vocabulary(load_model(str(model_dir)), store, ScanOptions(commit_every=COMMIT_EVERY,
                                                                                batch_size=BATCH))
    assert result.complete and result.fp_count > 0
    rows = _table_rows(db)
    assert len(rows["scan_chunks"]) >= 5
    return model_dir, rows


def test_two_gloo_ranks_write_the_single_process_rows(model_and_single, tmp_path):
    model_dir, single = model_and_single
    db = tmp_path / "two.duckdb"
    _finish(_torchrun(model_dir, db))
    # Every rank gets rank 0's result; only rank 0 ever opened the database.
    assert _results(db) == ["rank 0 complete True resumed_from 0", "rank 1 complete True resumed_from 0"]
    assert _table_rows(db) == single


def test_a_partial_range_on_two_ranks_shares_rank_0s_calibration(model_and_single, tiny_model_dir, tmp_path):
    # Not aligned with the chunks; a large safety factor puts many margins near the threshold, so a rank
    # trusting a threshold of its own (measured on another sample) re-checks other rows than one process does.
    model_dir = model_and_single[0]
    partial = {"START": "7", "LIMIT": "93", "SAFETY": "230000"}
    one, two = tmp_path / "one.duckdb", tmp_path / "two.duckdb"
    _finish(_torchrun(model_dir, one, nproc=1, **partial))
    _finish(_torchrun(model_dir, two, **partial))
    single, sharded = _table_rows(one), _table_rows(two)
    assert single["scans"][0] and len(single["scan_chunks"]) == 3
    assert 0 < len(single["scan_rechecks"]) < 93, "the threshold must split the rows for the test to see it"
    assert sharded == single


def _kill_ranks(db: Path, proc: subprocess.Popen) -> None:
    """torchrun starts each rank in a session of its own: a test that fails mid-job kills them one by one."""
    for pid_file in db.parent.glob(db.name + ".rank*"):
        try:
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)


def test_a_killed_rank_fails_the_job_and_the_rerun_resumes_to_the_same_rows(model_and_single, tmp_path):
    model_dir, single = model_and_single
    db = tmp_path / "killed.duckdb"
    marker = Path(str(db) + ".paused")
    proc = _torchrun(model_dir, db, PAUSE_AFTER="3")
    try:
        deadline = time.monotonic() + 300
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert marker.exists(), "rank 0 never committed its third chunk"
        # kill -9 the writer between two commits: torchrun stops the other rank and fails the job.
        os.kill(int(Path(f"{db}.rank0").read_text()), signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode != 0, (out + err)[-3000:]
    finally:
        _kill_ranks(db, proc)
    con = duckdb.connect(str(db), read_only=True)
    committed = con.execute("SELECT count(*), sum(tokens_scanned) FROM scan_chunks").fetchone()
    complete = con.execute("SELECT complete FROM scans").fetchone()[0]
    con.close()
    assert committed == (3, 3 * COMMIT_EVERY) and complete is False

    _finish(_torchrun(model_dir, db))
    assert _results(db)[1] == f"rank 1 complete True resumed_from {3 * COMMIT_EVERY}"
    assert _table_rows(db) == single


def test_ranks_from_the_torchrun_environment():
    assert Ranks.from_env({}) == Ranks(0, 0, 1) and not Ranks.from_env({}).distributed
    ranks = Ranks.from_env({"RANK": "5", "LOCAL_RANK": "1", "WORLD_SIZE": "8"})
    assert (ranks.rank, ranks.local_rank, ranks.world, ranks.distributed, ranks.writer) == (5, 1, 8, True, False)
    assert str(ranks.device("cpu")) == "cpu"
    with pytest.raises(FpprovError, match="WORLD_SIZE"):
        Ranks.from_env({"RANK": "2", "LOCAL_RANK": "0", "WORLD_SIZE": "2"})
    with pytest.raises(FpprovError, match="integers"):
        Ranks.from_env({"WORLD_SIZE": "two"})


@pytest.mark.parametrize("command", [["vectors", "no-such-model-needed"], ["provenance"]])
def test_commands_that_run_in_one_process_refuse_several_ranks_in_one_line(command, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from fpprov.cli import app

    for name, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "2")):
        monkeypatch.setenv(name, value)
    db = tmp_path / "untouched.duckdb"
    result = CliRunner().invoke(app, [*command, "--db", str(db)])
    assert result.exit_code == 2, result.output
    assert f"`fpprov {command[0]}` runs in one process" in result.output and "torchrun started 2 ranks" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not db.exists()

"""Ctrl-C at each phase of a CLI run (imports, loading, scanning, committing, shutdown) ends with one line and
exit 130 (0 once everything is committed), never a traceback, and a rerun ends with an uninterrupted run's rows.

The signal is sent by the process to itself at a fixed point of each phase, so every phase is covered on every
run, whatever the machine's speed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from helpers import scan_rows, uninterrupted_scan

DRIVER = textwrap.dedent("""
    import atexit, os, signal, sys
    point, argv = sys.argv[1], sys.argv[2:]

    def hit():
        os.kill(os.getpid(), signal.SIGINT)

    class Trip:  # sends SIGINT while the import system looks for the first module named like `prefix`
        def __init__(self, prefix):
            self.prefix, self.done = prefix, False
        def find_spec(self, name, path=None, target=None):
            if not self.done and name.startswith(self.prefix):
                self.done = True
                hit()
            return None

    def on_call(owner, attr, nth, when=lambda *a, **k: True):
        original, calls = getattr(owner, attr), []
        def wrapper(*args, **kwargs):
            if when(*args, **kwargs):
                calls.append(1)
                if len(calls) == nth:
                    hit()
            return original(*args, **kwargs)
        setattr(owner, attr, wrapper)

    if point == "import":        # the CLI's own imports
        sys.meta_path.insert(0, Trip("fpprov.cli.scan"))
    elif point == "load":        # transformers' lazy imports while the model loads
        sys.meta_path.insert(0, Trip("transformers.models."))
    elif point == "scan":        # computing the second chunk
        from fpprov.scan.run import TokenJudge
        on_call(TokenJudge, "judge", 2)
    elif point == "commit":      # inside the second chunk's transaction
        from fpprov.db.store import Store
        on_call(Store, "insert_rows", 2, when=lambda self, table, *a, **k: table == "scan_chunks")
    elif point == "shutdown":    # after the command returned
        atexit.register(hit)
    sys.argv = ["fpprov", *argv]
    from fpprov.entry import main
    main()
""")


@pytest.mark.slow
@pytest.mark.parametrize("point", ["import", "load", "scan", "commit", "shutdown"])
def test_ctrl_c_at_each_phase_gives_one_line_and_resumes(point, tiny_model_dir, tmp_path):
    model_dir = tiny_model_dir("llama", True)
    db = tmp_path / "cli.duckdb"
    args = ["scan", str(model_dir), "--db", str(db), "--commit-every", "40", "--batch-size", "16"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "-c", DRIVER, point, *args], capture_output=True, env=env, timeout=300)
    err = proc.stderr.decode()
    assert "Traceback" not in err and "Exception ignored" not in err, err[-3000:]
    if point == "shutdown":
        assert proc.returncode == 0, err[-2000:]
        assert "interrupted" not in err
    else:
        assert proc.returncode == 130, err[-2000:]
        assert err.strip().splitlines()[-1].startswith("interrupted: committed work is kept")
        assert err.count("interrupted") == 1
    rerun = subprocess.run([sys.executable, "-m", "fpprov", *args], capture_output=True, env=env, timeout=300)
    assert rerun.returncode == 0, rerun.stderr.decode()[-2000:]
    if point in ("scan", "commit"):  # the first chunk was committed before the signal, the second was not
        assert "resuming" in rerun.stderr.decode()
    assert scan_rows(db) == uninterrupted_scan(model_dir, tmp_path / "clean.duckdb")

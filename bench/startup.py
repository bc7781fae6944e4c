"""How long the CLI takes to start: `fpprov --help`, `python -c "import fpprov.cli"`, a scan refused for a bad
option (`fpprov scan MODEL --limit 0`, which needs no model), and `fpprov sql` and `fpprov status` on an empty
database, median of several runs each.

    python bench/startup.py                    # this checkout
    python bench/startup.py --baseline HEAD    # also a git revision, in the same run (before / after)

A revision is measured from `git archive REV` in a temporary folder put first on PYTHONPATH, so both trees run
with the same interpreter and packages, one after the other, on the same machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FPPROV = Path(sys.executable).with_name("fpprov")
# name -> (argv, the exit code it ends with); a tree where it ends otherwise (a command it lacks) shows "-"
COMMANDS = {
    "fpprov --help": ([str(FPPROV), "--help"], 0),
    "import fpprov.cli": ([sys.executable, "-c", "import fpprov.cli"], 0),
    "fpprov scan x --limit 0": ([str(FPPROV), "scan", "no-such-model", "--limit", "0", "--db", "unused.duckdb"], 2),
    "fpprov sql 'SELECT 1.5'": ([str(FPPROV), "sql", "--db", "bench.duckdb", "SELECT 1.5 AS x"], 0),
    "fpprov status": ([str(FPPROV), "status", "--db", "bench.duckdb"], 0),
}


def timed(argv: list[str], tree: Path, cwd: Path) -> tuple[float, int]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True)
    seconds = time.perf_counter() - t0
    if argv[-1] == "--help" and done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed in {tree}: {done.stderr.decode()[-500:]}")
    return seconds, done.returncode


def extract(rev: str, into: Path) -> Path:
    archive = into / "tree.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "archive", rev], cwd=ROOT, stdout=out, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "tree", filter="data")
    return into / "tree"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per command and tree (the median is shown)")
    parser.add_argument("--baseline", metavar="REV", help="also measure this git revision (e.g. HEAD)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"this checkout": ROOT}
        if args.baseline:
            trees = {args.baseline: extract(args.baseline, Path(tmp)), **trees}
        print(f"{'command':28} " + " ".join(f"{label:>22}" for label in trees) + "   (median / min of "
              f"{args.runs} runs, seconds)")
        # an empty database of the oldest tree's schema (a newer tree upgrades its copy when it reads it)
        make = "from fpprov.db.store import open_store; open_store('bench.duckdb').close()"
        subprocess.run([sys.executable, "-c", make], env={**os.environ, "PYTHONPATH": str(next(iter(trees.values())))},
                       cwd=tmp, check=True)
        for name, (argv, code) in COMMANDS.items():
            cells = []
            for tree in trees.values():
                if timed(argv, tree, Path(tmp))[1] != code:   # also warms the file cache
                    cells.append("-")
                    continue
                times = [timed(argv, tree, Path(tmp))[0] for _ in range(args.runs)]
                cells.append(f"{statistics.median(times):>12.3f} / {min(times):.3f}")
            print(f"{name:28} " + " ".join(f"{c:>22}" for c in cells), flush=True)


if __name__ == "__main__":
    main()

"""How long the CLI takes to start: `fpprov --help`, `python -c "import fpprov.cli"`, and a scan refused for a
bad option (`fpprov scan MODEL --limit 0`, which needs no model), median of several runs each.

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
COMMANDS = {
    "fpprov --help": [str(FPPROV), "--help"],
    "import fpprov.cli": [sys.executable, "-c", "import fpprov.cli"],
    "fpprov scan x --limit 0": [str(FPPROV), "scan", "no-such-model", "--limit", "0", "--db", "unused.duckdb"],
}


def timed(argv: list[str], tree: Path, cwd: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True)
    seconds = time.perf_counter() - t0
    if argv[-1] == "--help" and done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed in {tree}: {done.stderr.decode()[-500:]}")
    return seconds


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
        for name, argv in COMMANDS.items():
            cells = []
            for tree in trees.values():
                timed(argv, tree, Path(tmp))   # warm the file cache
                times = [timed(argv, tree, Path(tmp)) for _ in range(args.runs)]
                cells.append(f"{statistics.median(times):>12.3f} / {min(times):.3f}")
            print(f"{name:28} " + " ".join(f"{c:>22}" for c in cells), flush=True)


if __name__ == "__main__":
    main()

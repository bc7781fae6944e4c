"""A table of generated command lines for every command (`indexes` aside: it asks a server): each ends with exit 0 or 2, never a traceback, and a
run that exits 2 leaves the database byte for byte as it was (or not created at all).

Cases: for each command a valid, cheap baseline; then every option set in turn to each value of its kind's
table (boundaries, negatives, NaN, huge, empty, markup-like text, wrong types); then seeded random pairs of
such mutations. The baseline of each command must itself succeed, so the table tests something.
"""

from __future__ import annotations

import hashlib
import random
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fpprov.cli import app
from fpprov.models import load_model
from fpprov.scan.run import ScanOptions, scan_vocabulary
from fpprov.db.store import open_store
from infinigram_server import make_records, write_corpus

runner = CliRunner()

INTS = ["0", "-1", "1", "3", "1000000", "abc", "", "1.5"]
FLOATS = ["0", "-1", "nan", "inf", "-inf", "1e-300", "1e308", "abc", ""]
WORDS = ["", "bogus", "[/]x", "[bold]x", "meta", "mps", "xpu", "cuda:99"]
# Options whose large values are legitimate long work (hours of steps), not bad input: big values left out.
LONG_WORK = {"--mem", "--max-steps", "--seeds", "--rollout-steps", "--stall-window", "--seed-start", "--top-k", "--docs",
             "--context", "--page-size"}


def _kind_values(option: str, kind: str) -> list[str]:
    values = {"int": INTS, "float": FLOATS, "word": WORDS}[kind]
    if option in LONG_WORK:
        values = [v for v in values if v not in ("1000000", "1e308", "inf")]
    return values


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_model_dir):
    base = tmp_path_factory.mktemp("fuzz")
    model_dir = tiny_model_dir("llama", True)
    db = base / "base.duckdb"
    with open_store(db) as store:
        scan_vocabulary(load_model(str(model_dir)), store, ScanOptions(limit=64))
    write_corpus(base / "corpus", make_records(seed=3, docs=20))
    built = runner.invoke(app, ["index", "build", str(base / "corpus"), "--out", str(base / "index")])
    assert built.exit_code == 0, built.output
    (base / "notdb.txt").write_text("not a database\n")
    (base / "somedir").mkdir()
    return {"base": base, "model": str(model_dir), "db": db, "index": str(base / "index")}


def _commands(w: dict) -> dict[str, tuple[list[str], dict[str, str]]]:
    """command -> (baseline args, {option: kind}); DB stands for the case's database path."""
    return {
        "scan": ([w["model"], "--db", "DB", "--limit", "8", "--batch-size", "4", "--commit-every", "4"],
                 {"--dtype": "word", "--device": "word", "--start": "int", "--limit": "int", "--batch-size": "int",
                  "--tolerance": "float", "--check-length": "int", "--verify": "word", "--commit-every": "int"}),
        "vectors": ([w["model"], "--db", "DB", "--method", "iterate", "--seeds", "1", "--max-steps", "3",
                     "--rollout-steps", "2"],
                    {"--method": "word", "--seeds": "int", "--seed-start": "int", "--embedding": "word", "--tol": "float",
                     "--max-steps": "int", "--stall-window": "int", "--lr": "float", "--lr-floor": "float",
                     "--weight-decay": "float", "--init-std": "float", "--dedup": "float", "--rollout-steps": "int",
                     "--rollout-feed": "word", "--stable-threshold": "float", "--top-k": "int", "--dtype": "word",
                     "--device": "word"}),
        "provenance": (["--db", "DB", "--backend", "local", "--index-dir", w["index"], "--ladder", "1,2"],
                       {"--backend": "word", "--ngram": "int", "--ladder": "word", "--docs": "int", "--min-count": "int",
                        "--seed": "int", "--source-field": "word", "--context": "int", "--concurrency": "int"}),
        "report": (["--db", "DB", "--out", "OUT"], {"--model": "word", "--threshold": "word", "--page-size": "int"}),
        "sql": (["SELECT count(*) FROM token_fps", "--db", "DB"], {"--format": "word"}),
        "export": (["--parquet", "OUT", "--db", "DB"], {}),
        "index build": ([str(w["base"] / "corpus"), "--out", "OUT"],
                        {"--shards": "int", "--mem": "int", "--source-field": "word"}),
        "models": ([], {}),
    }


def _cases(w: dict) -> list[tuple[str, list[str]]]:
    rng = random.Random(13)
    cases: list[tuple[str, list[str]]] = []
    pool: dict[str, list[tuple[str, str]]] = {}
    for command, (baseline, options) in _commands(w).items():
        cases.append((command, baseline))
        mutations = [(opt, value) for opt, kind in options.items() for value in _kind_values(opt, kind)]
        if "--db" in baseline:
            mutations += [("--db", p) for p in ("", str(w["base"] / "notdb.txt"), str(w["base"] / "somedir"),
                                                 str(w["base"] / "missing" / "a[/]x.duckdb"))]
        pool[command] = mutations
        cases += [(command, _set(baseline, [m])) for m in mutations]
    for command, mutations in pool.items():
        for _ in range(12 if len(mutations) >= 2 else 0):
            cases.append((command, _set(_commands(w)[command][0], rng.sample(mutations, 2))))
    return cases


def _set(args: list[str], mutations: list[tuple[str, str]]) -> list[str]:
    out = list(args)
    for option, value in mutations:
        if option in out:
            out[out.index(option) + 1] = value
        else:
            out += [option, value]
    return out


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


@pytest.mark.slow
def test_every_generated_command_line_exits_0_or_2_without_a_traceback(world, tmp_path, one_torch_thread):
    cases = _cases(world)
    assert len(cases) >= 250
    baselines = {i for i, (command, args) in enumerate(cases) if args == _commands(world)[command][0]}
    assert len(baselines) >= len(_commands(world))
    failures = []
    for i, (command, args) in enumerate(cases):
        db = tmp_path / f"case{i}.duckdb"
        shutil.copy(world["db"], db)
        out = tmp_path / f"out{i}"
        args = [str(db) if a == "DB" else str(out) if a == "OUT" else a for a in args]
        given_db = Path(args[args.index("--db") + 1]) if "--db" in args else db
        before = _digest(given_db) if given_db.is_file() or not given_db.exists() else "dir"
        result = runner.invoke(app, [*command.split(), *args])
        problem = None
        if result.exit_code not in (0, 2):
            problem = f"exit {result.exit_code}"
        elif "Traceback" in result.output or (result.exception and not isinstance(result.exception, SystemExit)):
            problem = f"exception {result.exception!r}"
        elif result.exit_code == 2 and before != "dir" and _digest(given_db) != before:
            problem = "database changed by a failed run"
        if problem:
            failures.append(f"{problem}: fpprov {command} {' '.join(args)}\n    {result.output.strip()[-300:]}")
        if i in baselines and result.exit_code != 0:
            failures.append(f"baseline failed: fpprov {command} {' '.join(args)}\n    {result.output.strip()[-300:]}")
    assert not failures, f"{len(failures)} of {len(cases)} cases failed:\n" + "\n".join(failures[:40])

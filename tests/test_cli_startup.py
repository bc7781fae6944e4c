"""The CLI starts fast and says what it means (issue 23 item 7): nothing heavy imported at start, option checks
before any model work, --version, readable placeholders in help, `fpprov sql` in hints, "did you mean" for
typos, and a plain word for a scan that found nothing. Timings are bench/startup.py's, not a test's."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest
from typer.testing import CliRunner

import fpprov
from fpprov.cli import app

runner = CliRunner()
HEAVY = ("torch", "transformers", "scipy", "duckdb", "numpy")
PYTHON_TYPES = re.compile(r"<(int|float|str|bool|path|file|directory|text|list\[[^\]]*\]|\w+ range)>")


def _one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def _loaded_after(code: str) -> set[str]:
    probe = textwrap.dedent(f"""
        import atexit, sys
        atexit.register(lambda: print("LOADED", *sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr))
    """) + textwrap.dedent(code)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    line = [line for line in done.stderr.splitlines() if line.startswith("LOADED")][-1]
    return set(line.split()[1:]), done


def test_importing_the_cli_imports_nothing_heavy():
    loaded, done = _loaded_after("import fpprov.cli")
    assert done.returncode == 0 and not loaded, loaded


def test_help_and_version_import_nothing_heavy():
    for argv in (["--help"], ["--version"], ["scan", "--help"], ["provenance", "--help"]):
        loaded, done = _loaded_after(f"import sys\nsys.argv = ['fpprov', *{argv!r}]\n"
                                     "from fpprov.entry import main\nmain()")
        assert done.returncode == 0 and not loaded, (argv, loaded)


@pytest.mark.parametrize("option, message", [
    (["--limit", "0"], "--limit must be a positive"), (["--start", "-1"], "--start must be at least 0"),
    (["--dtype", "int8"], "unknown dtype 'int8'"), (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--verify", "bogus"], "unknown --verify"), (["--check-length", "1"], "--check-length must be at least 2")])
def test_a_scan_option_typo_fails_before_the_model_is_looked_at(tmp_path, option, message):
    db = tmp_path / "x.duckdb"
    argv = ["fpprov", "scan", "no-such-model", *option, "--db", str(db)]
    loaded, done = _loaded_after(f"import sys\nsys.argv = {argv!r}\nfrom fpprov.entry import main\nmain()")
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert not loaded & {"torch", "transformers", "duckdb"}, loaded   # no model, no torch, no database
    assert not db.exists()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"fpprov {fpprov.__version__}"


@pytest.mark.parametrize("command", [["scan"], ["vectors"], ["provenance"], ["indexes"], ["report"], ["sql"],
                                     ["export"], ["models"], ["status"], ["index", "build"]])
def test_help_shows_placeholders_not_python_types(command):
    result = runner.invoke(app, [*command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert not PYTHON_TYPES.search(result.output), PYTHON_TYPES.search(result.output).group(0)
    if command == ["scan"]:
        assert re.search(r"--limit N\b", result.output) and "MODEL..." in result.output
    if command == ["report"]:
        assert "--threshold RULE=VALUE" in result.output


def test_help_constants_agree_with_the_library():
    from fpprov.cli import report as report_cli
    from fpprov.db.sql import FORMATS
    from fpprov.report import DEFAULT_PAGE_SIZE

    assert report_cli.PAGE_SIZE == DEFAULT_PAGE_SIZE and report_cli.FORMATS == FORMATS
    from fpprov.models.loading import DTYPES
    from fpprov.scan.options import DTYPE_NAMES

    assert DTYPE_NAMES == tuple(DTYPES)


def _db(tmp_path, model="gemma3-270m", tokens=()):
    from infinigram_server import add_fp_scan

    from fpprov.db.store import open_store

    path = tmp_path / "p.duckdb"
    with open_store(path) as store:
        add_fp_scan(store, model, list(tokens))
    return str(path)


def test_sql_canned_query_typo_suggests_the_name(tmp_path):
    line = _one_line_error(runner.invoke(app, ["sql", "--db", _db(tmp_path), "top_suspicous"]))
    assert "'top_suspicious'" in line and "did you mean" in line


def test_provenance_unknown_model_suggests_a_scanned_one(tmp_path):
    db = _db(tmp_path, tokens=[(1, "blah", "normal")])
    line = _one_line_error(runner.invoke(app, ["provenance", "--db", db, "-m", "gemma3-27m", "--backend", "local",
                                               "--index-dir", str(tmp_path)]))
    assert "'gemma3-270m'" in line and "did you mean" in line


def test_provenance_on_a_complete_scan_without_fps_says_so(tmp_path):
    db = _db(tmp_path)
    for extra in ([], ["-m", "gemma3-270m"]):
        line = _one_line_error(runner.invoke(app, ["provenance", "--db", db, "--backend", "local", "--index-dir",
                                                   str(tmp_path), *extra]))
        assert "no fixed points" in line and "no complete scans" not in line

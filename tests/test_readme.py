"""What the README tells a user to run exists: its first commands are real scripts (the test one the one CI
runs), and every `fpprov ...` line of its command list is a real command whose options are that command's own
(the per-table, per-column and SQL-example checks live in tests/test_docs.py, beside the pages they check)."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from fpprov.cli import app

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def _code_blocks(text: str) -> list[str]:
    return re.findall(r"^```[^\n]*\n(.*?)^```", text, re.M | re.S)


def _lines(block: str) -> list[list[str]]:
    """The block's commands as argument lists, comments dropped."""
    return [shlex.split(line, comments=True) for line in block.splitlines() if shlex.split(line, comments=True)]


def _first_commands() -> list[list[str]]:
    return _lines(_code_blocks(README.read_text("utf-8"))[0])


def _fpprov_commands() -> list[list[str]]:
    return [argv[1:] for block in _code_blocks(README.read_text("utf-8")) for argv in _lines(block)
            if argv[0] == "fpprov"]


def test_the_first_commands_are_scripts_that_exist_and_parse():
    commands = _first_commands()
    assert commands and all(argv[0] == "bash" for argv in commands)
    for argv in commands:
        script = ROOT / argv[1]
        assert script.is_file(), argv
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0, argv


def test_ci_runs_the_test_command_the_readme_gives():
    ci = [shlex.split(line, comments=True) for line in (ROOT / ".ci" / "run").read_text("utf-8").splitlines()]
    tests = [argv for argv in _first_commands() if argv[1] == "scripts/test"]
    assert tests and all(argv in ci for argv in tests)


def _resolve(words: list[str]):
    """The click command the words name (subcommands followed as far as they go) and the words it took."""
    command, path = typer.main.get_command(app), []
    for word in words:
        sub = getattr(command, "commands", {}).get(word)
        if sub is None:
            break
        command, path = sub, [*path, word]
    return command, path


@pytest.mark.parametrize("argv", _fpprov_commands(), ids=lambda argv: " ".join(argv))
def test_every_documented_command_is_a_real_command_with_those_options(argv):
    command, path = _resolve(argv)
    assert path, f"fpprov {argv[0]} is no command"
    assert not hasattr(command, "commands"), f"fpprov {' '.join(path)} needs a subcommand"
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    options = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    for word in argv[len(path):]:
        if word.startswith("--"):
            assert word.split("=")[0] in options, f"fpprov {' '.join(path)} has no {word}"

"""Many models in one command: which models a run covers, one failure that does not stop the others, skipped
finished work, per-model manifest options, and exit code 1 when any model failed."""

from __future__ import annotations

import sys
import time

import duckdb
import pytest
from typer.testing import CliRunner

from fpprov.runtime.batch import DONE, FAILED, SKIPPED, ModelJob, Outcome, jobs_from, run_jobs
from fpprov.cli import app
from fpprov.cli import scan as scan_cli
from fpprov.cli.many import command_options
from fpprov.errors import FpprovError
from fpprov.models import load_aliases

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    from fpprov.cli import common

    monkeypatch.setattr(common.console, "width", 250)
    monkeypatch.setattr(common.err_console, "width", 250)


def _summary_row(output: str, model: str) -> str:
    rows = [line for line in output.splitlines() if line.startswith("│") and f" {model} " in line]
    assert len(rows) == 1, output
    return rows[0]


def test_family_picks_its_aliases_without_loading_them():
    jobs = jobs_from(family="olmo2")
    expected = [name for name, entry in load_aliases().items() if entry["family"] == "olmo2"]
    assert [j.spec for j in jobs] == expected and len(expected) == 6
    assert all(j.origin == "--family olmo2" for j in jobs)
    assert [j.spec for j in jobs_from(all_models=True)] == list(load_aliases())


def test_bad_family_and_no_model_are_one_line_errors():
    with pytest.raises(FpprovError, match=r"unknown family 'llama2': the aliases' families are gemma3, olmo2, qwen3"):
        jobs_from(family="llama2")
    with pytest.raises(FpprovError, match="no model given"):
        jobs_from()


def test_names_then_manifest_then_family_and_duplicates_run_once(tmp_path):
    manifest = tmp_path / "m.toml"
    manifest.write_text('[[model]]\nname = "qwen3-0.6b"\nlimit = 5\n[[model]]\nname = "olmo2-1b"\n')
    jobs = jobs_from(["olmo2-1b", "qwen3-0.6b"], family="olmo2", manifest=manifest,
                     options=command_options(scan_cli.scan))
    specs = [(j.spec, dict(j.overrides)) for j in jobs]
    assert specs[:3] == [("olmo2-1b", {}), ("qwen3-0.6b", {}), ("qwen3-0.6b", {"limit": 5})]
    assert [s for s, _ in specs].count("olmo2-1b") == 1 and len(specs) == 3 + 5


@pytest.mark.parametrize("text, message", [
    ("[[model]\nname = 'x'", "is not valid TOML"),
    ("title = 'x'", "unknown top-level key 'title'"),
    ("", "lists no models"),
    ("[[model]]\nlimit = 3", "model #1: needs name"),
    ("[[model]]\nname = 'x'\nlimt = 3", "model #1 (x): unknown option 'limt'; known: "),
    ("[[model]]\nname = 'x'\n[[model]]\nname = 'y'\nlimit = 'ten'", "model #2 (y): limit must be int, got 'ten'"),
    ("[[model]]\nname = 'x'\nbos = 1", "bos must be bool, got 1"),
    ("[[model]]\nname = 'x'\nstart = true", "start must be int, got True"),
])
def test_bad_manifests_are_one_line_errors(tmp_path, text, message):
    manifest = tmp_path / "m.toml"
    manifest.write_text(text)
    with pytest.raises(FpprovError, match=None) as caught:
        jobs_from(manifest=manifest, options=command_options(scan_cli.scan))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_manifest_reads_dashed_options_floats_from_ints_and_paths_beside_it(tmp_path, tiny_model_dir):
    model = tiny_model_dir("llama", True)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "mine").symlink_to(model)
    manifest = tmp_path / "m.toml"
    manifest.write_text('[[model]]\nname = "models/mine"\nbatch-size = 8\ntolerance = 0\ndtype = "float64"\n')
    [job] = jobs_from(manifest=manifest, options=command_options(scan_cli.scan))
    assert job.spec == str((tmp_path / "models" / "mine").resolve())
    assert job.overrides == {"batch_size": 8, "tolerance": 0.0, "dtype": "float64"}
    assert isinstance(job.overrides["tolerance"], float)


def test_run_jobs_records_failures_and_goes_on_but_ctrl_c_and_bugs_stop_it():
    seen = []

    def run_one(job: ModelJob) -> Outcome:
        seen.append(job.spec)
        if job.spec == "missing":
            raise FpprovError("cannot load missing")
        if job.spec == "huge":
            raise RuntimeError("CUDA out of memory. Tried to allocate 40 GiB")
        return Outcome(job.spec, DONE, 3)

    jobs = [ModelJob(s, "command line") for s in ("a", "missing", "huge", "b")]
    summary = run_jobs(jobs, run_one)
    assert seen == ["a", "missing", "huge", "b"]
    assert [(o.model, o.status) for o in summary.outcomes] == [("a", DONE), ("missing", FAILED), ("huge", FAILED),
                                                                ("b", DONE)]
    assert summary.outcomes[1].reason == "cannot load missing"
    assert summary.outcomes[2].reason.startswith("does not fit in memory: CUDA out of memory")

    def interrupted(job: ModelJob) -> Outcome:
        raise KeyboardInterrupt

    def buggy(job: ModelJob) -> Outcome:
        raise RuntimeError("index out of range")

    for stop, kind in ((interrupted, KeyboardInterrupt), (buggy, RuntimeError)):
        with pytest.raises(kind):
            run_jobs(jobs, stop)


def test_scan_two_models_and_a_missing_one(tiny_model_dir, tmp_path, one_torch_thread):
    db = tmp_path / "many.duckdb"
    qwen, olmo = tiny_model_dir("qwen3", True), tiny_model_dir("olmo2", True)
    missing = tmp_path / "no-such-model"
    args = ["scan", str(qwen), str(missing), str(olmo), "--db", str(db), "--limit", "40"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    con = duckdb.connect(str(db), read_only=True)
    scans = con.execute("SELECT model, tokens_scanned, fp_count, complete FROM scans ORDER BY scan_id").fetchall()
    con.close()
    assert [(m, n, c) for m, n, _, c in scans] == [(qwen.name, 40, True), (olmo.name, 40, True)]
    for model, _, fps, _ in scans:
        row = _summary_row(result.output, model)
        assert " done " in row and f" {fps} " in row
    assert f"model path {missing} does not exist" in _summary_row(result.output, str(missing))
    assert "scan: 2 done, 0 skipped, 1 failed" in result.output

    again = runner.invoke(app, args[:2] + args[3:])  # without the missing model
    assert again.exit_code == 0, again.output
    for model, _, fps, _ in scans:
        row = _summary_row(again.output, model)
        assert " skipped " in row and "already complete" in row and f" {fps} " in row
    assert "scan: 0 done, 2 skipped, 0 failed" in again.output


def test_scan_manifest_applies_per_model_options(tiny_model_dir, tmp_path, one_torch_thread):
    db = tmp_path / "manifest.duckdb"
    manifest = tmp_path / "models.toml"
    manifest.write_text(f'[[model]]\nname = "{tiny_model_dir("llama", True)}"\nlimit = 12\nstart = 3\n\n'
                        f'[[model]]\nname = "{tiny_model_dir("gemma3", True)}"\nbos = true\n')
    result = runner.invoke(app, ["scan", "--manifest", str(manifest), "--db", str(db), "--limit", "20"])
    assert result.exit_code == 0, result.output
    con = duckdb.connect(str(db), read_only=True)
    scans = con.execute("SELECT id_start, id_stop, bos FROM scans ORDER BY scan_id").fetchall()
    con.close()
    assert scans == [(3, 15, False), (0, 20, True)]   # the command line's --limit 20 where the manifest is silent


def test_bad_manifest_option_fails_the_command_before_any_model_loads(tiny_model_dir, tmp_path):
    db = tmp_path / "untouched.duckdb"
    manifest = tmp_path / "models.toml"
    manifest.write_text(f'[[model]]\nname = "{tiny_model_dir("llama", True)}"\n\n'
                        f'[[model]]\nname = "olmo2-1b"\nlimit = 0\n')
    result = runner.invoke(app, ["scan", "--manifest", str(manifest), "--db", str(db)])
    assert result.exit_code == 2, result.output
    assert "olmo2-1b (manifest" in result.output and "--limit must be a positive number" in result.output
    assert not db.exists()


def test_scan_all_offline_reports_every_alias_failed_in_seconds(tmp_path, monkeypatch):
    # As on a machine without the packages that embed GGUFs (gemma3-270m's, SmolLM2's): no alias can load
    # offline, and none may wait on a network. (With them installed, --all would really scan those two.)
    for entry in load_aliases().values():
        if entry.get("gguf_package"):
            monkeypatch.setitem(sys.modules, entry["gguf_package"], None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    result = runner.invoke(app, ["scan", "--all", "--db", str(tmp_path / "all.duckdb")])
    elapsed = time.perf_counter() - t0
    assert result.exit_code == 1, result.output
    for name in load_aliases():
        assert " failed " in _summary_row(result.output, name)
    assert f"scan: 0 done, 0 skipped, {len(load_aliases())} failed" in result.output
    assert "HF_HUB_OFFLINE" in result.output
    assert elapsed < 60, f"--all took {elapsed:.0f} s offline"


def test_vectors_two_models_and_a_missing_one_then_skipped(tiny_model_dir, tmp_path, one_torch_thread):
    db = tmp_path / "vectors.duckdb"
    qwen, llama = tiny_model_dir("qwen3", True), tiny_model_dir("llama", True)
    options = ["--method", "iterate", "--seeds", "2", "--max-steps", "20", "--rollout-steps", "2", "--db", str(db)]
    gone = str(tmp_path / "gone")
    result = runner.invoke(app, ["vectors", str(qwen), gone, str(llama), *options])
    assert result.exit_code == 1, result.output
    con = duckdb.connect(str(db), read_only=True)
    runs = con.execute("SELECT model, count(*) FROM vector_runs GROUP BY model ORDER BY model").fetchall()
    con.close()
    assert runs == sorted([(qwen.name, 2), (llama.name, 2)])
    assert "does not exist" in _summary_row(result.output, gone)
    assert "vectors: 2 done, 0 skipped, 1 failed" in result.output

    again = runner.invoke(app, ["vectors", str(qwen), str(llama), *options])
    assert again.exit_code == 0, again.output
    assert " skipped " in _summary_row(again.output, qwen.name) and "vectors: 0 done, 2 skipped" in again.output

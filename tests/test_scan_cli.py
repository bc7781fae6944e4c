"""The scan CLI: aliases, summaries, and one-line errors (exit 2, no traceback, database untouched)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import torch
from typer.testing import CliRunner

import fpprov
from fpprov.cli import app
from fpprov.errors import DatabaseLockedError
from fpprov.models import load_aliases
from fpprov.db.store import open_store

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    """Rich wraps at 80 columns off a terminal; tests read whole table rows."""
    from fpprov.cli import common

    monkeypatch.setattr(common.console, "width", 250)
    monkeypatch.setattr(common.err_console, "width", 250)


def _error_line(result) -> str:
    text = result.output.strip()
    assert result.exit_code == 2, text
    assert "Traceback" not in text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def test_models_lists_every_alias_of_the_seed_tables():
    result = runner.invoke(app, ["models"], terminal_width=250)
    assert result.exit_code == 0
    aliases = load_aliases()
    for size in ("1b", "7b", "13b"):
        assert f"olmo2-{size}" in aliases and f"olmo2-{size}-inst" in aliases
    for size in ("0.6b", "1.7b", "4b", "8b", "14b"):
        assert f"qwen3-{size}" in aliases and f"qwen3-{size}-inst" in aliases
    for name in ("gemma3-270m", "gemma3-270m-inst", "gemma3-1b", "gemma3-1b-inst"):
        assert name in aliases
    toml_text = (Path(fpprov.__file__).parent / "data" / "models.toml").read_text()
    assert len(aliases) == len(re.findall(r'^\[models\."[^"]+"\]', toml_text, re.M))
    for name, entry in aliases.items():
        assert name in result.output and entry["hub_id"] in result.output
        assert {"hub_id", "family", "variant", "tokenizer_family", "default_index"} <= set(entry)


def test_help_everywhere():
    for args in (["--help"], ["scan", "--help"], ["models", "--help"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0 and "Usage" in result.output


def test_scan_cli_end_to_end_with_summary(tiny_model_dir, tiny_model_sizes, tmp_path, monkeypatch):
    db = tmp_path / "env.duckdb"
    monkeypatch.setenv("FPPROV_DB", str(db))
    vocab_size, embedding_rows = tiny_model_sizes(tiny_model_dir("qwen3", True))
    result = runner.invoke(app, ["scan", str(tiny_model_dir("qwen3", True)), "--limit", "120", "--start", "10"],
                           terminal_width=200)
    assert result.exit_code == 0, result.output
    con = duckdb.connect(str(db), read_only=True)
    scan = con.execute("SELECT id_start, id_stop, tokens_scanned, fp_count, complete FROM scans").fetchone()
    n_rows = con.execute("SELECT count(*) FROM token_fps").fetchone()[0]
    model = con.execute("SELECT source_kind, family, rotary, tied_head, vocab_size, embedding_rows FROM models").fetchone()
    con.close()
    assert scan[:3] == (10, 130, 120) and scan[4] and scan[3] == n_rows
    assert model == ("directory", "qwen3", True, True, vocab_size, embedding_rows)
    assert embedding_rows > vocab_size   # the tiny model pads its embedding past len(tokenizer)
    assert f"{n_rows} token FPs among 120 ids" in result.output and "top FPs by probability" in result.output
    # the closing hint is a command this install has (`fpprov sql`, not the duckdb CLI), and it answers
    hint = shlex.split(result.output.split("e.g. ", 1)[1].strip())
    assert hint[:2] == ["fpprov", "sql"]
    answer = runner.invoke(app, [*hint[1:], "--format", "json"])
    assert answer.exit_code == 0, answer.output
    assert len(json.loads(answer.stdout)) == min(n_rows, 20)


@pytest.mark.parametrize("args, expected", [
    (["scan", "gemma3-27m"], "did you mean gemma3-270m"),
    (["scan", "./no/such/model"], "does not exist"),
    (["scan", "no-such-alias"], "unknown model"),
])
def test_bad_model_names_are_one_line(args, expected, tmp_path):
    db = tmp_path / "untouched.duckdb"
    line = _error_line(runner.invoke(app, args + ["--db", str(db)], terminal_width=80))
    assert expected in line
    assert not db.exists()


def test_limit_zero_is_refused(tiny_model_dir, tmp_path):
    db = tmp_path / "x.duckdb"
    assert "--limit" in _error_line(runner.invoke(app, ["scan", str(tiny_model_dir("llama")), "--limit", "0", "--db", str(db)]))
    assert not db.exists()


def test_start_outside_vocabulary_is_refused_before_the_db_is_touched(tiny_model_dir, tmp_path):
    db = tmp_path / "x.duckdb"
    line = _error_line(runner.invoke(app, ["scan", str(tiny_model_dir("llama")), "--start", "99999", "--db", str(db)]))
    assert "outside the vocabulary" in line and not db.exists()


def test_corrupt_gguf_is_one_line(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x00garbage" * 100)
    db = tmp_path / "x.duckdb"
    line = _error_line(runner.invoke(app, ["scan", str(bad), "--db", str(db)]))
    assert "broken.gguf" in line and not db.exists()


def test_non_causal_model_is_refused(tmp_path):
    from transformers import BertConfig, BertModel

    out = tmp_path / "bert"
    BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(out)
    line = _error_line(runner.invoke(app, ["scan", str(out), "--db", str(tmp_path / "x.duckdb")]))
    assert "not a causal" in line


def test_unwritable_database_paths(tiny_model_dir, tmp_path):
    model = str(tiny_model_dir("llama"))
    assert "does not exist" in _error_line(runner.invoke(app, ["scan", model, "--db", str(tmp_path / "nope" / "x.duckdb")]))
    assert "folder" in _error_line(runner.invoke(app, ["scan", model, "--db", str(tmp_path)]))


def test_database_locked_by_another_process(tiny_model_dir, tmp_path, hold_db_lock):
    db = tmp_path / "locked.duckdb"
    duckdb.connect(str(db)).close()
    before = db.read_bytes()
    with hold_db_lock(db):
        line = _error_line(runner.invoke(app, ["scan", str(tiny_model_dir("llama")), "--db", str(db)]))
        assert "locked by another process" in line
        with pytest.raises(DatabaseLockedError):
            open_store(db)
    assert db.read_bytes() == before


def test_model_without_rope_warns_and_check_length_is_recorded(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from tiny import build_tokenizer

    tokenizer = build_tokenizer()
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2, n_positions=64,
                        initializer_range=0.2)
    out = tmp_path / "gpt2"
    GPT2LMHeadModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    db = tmp_path / "g.duckdb"
    result = runner.invoke(app, ["scan", str(out), "--db", str(db), "--check-length", "6"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "no rotary position embeddings" in result.output
    assert "[t] -> t no longer implies [t, ..., t] -> t" in " ".join(result.output.split())  # brackets kept
    con = duckdb.connect(str(db), read_only=True)
    rotary, method, length = con.execute(
        "SELECT rotary, method, check_length FROM models JOIN scans ON scans.model = models.name").fetchone()
    checks = con.execute("SELECT count(*), count(length_check) FROM token_fps").fetchone()
    con.close()
    assert rotary is False and method == "forward-pruned" and length == 6
    assert checks[0] > 0 and checks[0] == checks[1]


def test_low_precision_dtype_warns_once_and_the_scan_records_it(tiny_model_dir, tmp_path):
    db = tmp_path / "b.duckdb"
    result = runner.invoke(app, ["scan", str(tiny_model_dir("gemma3")), "--dtype", "bfloat16", "--limit", "20",
                                 "--db", str(db)], terminal_width=200)
    assert result.exit_code == 0, result.output
    warned = [line for line in result.output.splitlines() if line.startswith("warning:") and "bfloat16" in line]
    assert len(warned) == 1
    con = duckdb.connect(str(db), read_only=True)
    dtype = con.execute("SELECT dtype FROM scans").fetchone()[0]
    undecided = con.execute("SELECT count(*) FROM token_fps WHERE decided_in IS NULL").fetchone()[0]
    con.close()
    assert dtype == "bfloat16" and undecided == 0


def test_offline_alias_with_nothing_cached_says_what_was_tried(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf-home" / "hub"))
    line = _error_line(runner.invoke(app, ["scan", "olmo2-1b", "--db", str(tmp_path / "x.duckdb")]))
    assert "tried" in line and "allenai/OLMo-2-0425-1B" in line and "download" in line
    assert not (tmp_path / "x.duckdb").exists()


def test_cuda_without_cuda_is_one_line(tiny_model_dir, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    line = _error_line(runner.invoke(app, ["scan", str(tiny_model_dir("llama")), "--device", "cuda",
                                           "--db", str(tmp_path / "x.duckdb")]))
    assert "CUDA is not available" in line


def test_alias_prefers_the_local_hub_cache(tiny_model_dir, tiny_model_sizes, tmp_path):
    """gemma3-270m loads from the Hugging Face cache when the hub model is there (not the embedded GGUF)."""
    import shutil

    snapshot = tmp_path / "hub" / "models--google--gemma-3-270m" / "snapshots" / "0123abc"
    shutil.copytree(tiny_model_dir("gemma3"), snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0123abc")
    env = {**__import__("os").environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    code = ("from fpprov.models import load_model; m = load_model('gemma3-270m');"
            "print(m.source_kind, m.quantization, m.vocab_size, m.hub_id)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    vocab_size, _ = tiny_model_sizes(tiny_model_dir("gemma3"))
    assert out.stdout.split() == ["hub-cache", "None", str(vocab_size), "google/gemma-3-270m"]


def test_summary_shows_how_far_a_near_certain_probability_is_from_1():
    from fpprov.cli.scan import format_prob

    assert format_prob(1 - 1.1354e-07) == "1 - 1.1e-07"
    assert format_prob(0.5) == "0.5000" and format_prob(1.0) == "1.0000"


def _unusable_devices() -> list[str]:
    names = ["meta", "bogus", "cuda:99"] + ([] if torch.cuda.is_available() else ["cuda"])
    if not torch.backends.mps.is_available():
        names.append("mps")
    if not (hasattr(torch, "xpu") and torch.xpu.is_available()):
        names.append("xpu")
    return names


@pytest.mark.parametrize("command", ["scan", "vectors"])
@pytest.mark.parametrize("device", _unusable_devices())
def test_devices_this_torch_cannot_use_are_one_line_and_create_nothing(command, device, tiny_model_dir, tmp_path):
    db = tmp_path / "x.duckdb"
    line = _error_line(runner.invoke(app, [command, str(tiny_model_dir("llama")), "--device", device, "--db", str(db)]))
    assert "device" in line and "cpu" in line
    assert not db.exists()


def test_resolve_device_accepts_what_this_torch_can_use():
    from fpprov.models.devices import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if torch.cuda.is_available():
        assert resolve_device(f"cuda:{torch.cuda.device_count() - 1}").type == "cuda"


def _bert(tmp_path):
    from transformers import BertConfig, BertModel

    out = tmp_path / "bert"
    BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(out)
    return out


def test_vectors_on_a_model_it_cannot_use_leaves_no_database(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x00garbage" * 100)
    for model, expected in ((_bert(tmp_path), "not a causal"), (bad, "truncated or corrupt")):
        db = tmp_path / "v.duckdb"
        assert expected in _error_line(runner.invoke(app, ["vectors", str(model), "--db", str(db)]))
        assert not db.exists()


def test_scan_bos_without_a_bos_token_leaves_no_database(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from tiny import build_tokenizer

    tokenizer = build_tokenizer()
    tokenizer.bos_token = None
    out = tmp_path / "nobos"
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, num_key_value_heads=1)).save_pretrained(out)
    tokenizer.save_pretrained(out)
    db = tmp_path / "b.duckdb"
    assert "no BOS token" in _error_line(runner.invoke(app, ["scan", str(out), "--bos", "--db", str(db)]))
    assert not db.exists()


def test_truncated_gguf_says_so(tmp_path):
    import numpy as np
    from gguf import GGUFWriter

    whole = tmp_path / "whole.gguf"
    writer = GGUFWriter(str(whole), "llama")
    writer.add_tensor("token_embd.weight", np.zeros((64, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(whole.read_bytes()[:-3000])
    line = _error_line(runner.invoke(app, ["scan", str(cut), "--db", str(tmp_path / "x.duckdb")]))
    assert "cut.gguf" in line and "looks truncated or corrupt" in line


def test_a_missing_org_name_folder_with_the_hub_off_says_both(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    line = _error_line(runner.invoke(app, ["scan", "models/nope", "--db", str(tmp_path / "x.duckdb")]))
    assert "no directory models/nope" in line and "HF_HUB_OFFLINE" in line
    assert not (tmp_path / "x.duckdb").exists()


def test_a_missing_org_name_folder_with_the_hub_unreachable_fails_fast(tmp_path, monkeypatch):
    import time

    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    started = time.monotonic()
    line = _error_line(runner.invoke(app, ["scan", "models/nope", "--db", str(tmp_path / "x.duckdb")]))
    assert "no directory models/nope" in line and "unreachable" in line
    assert time.monotonic() - started < 10


def test_check_length_past_the_models_context_is_one_line_and_creates_nothing(tiny_model_dir, tmp_path):
    db = tmp_path / "ctx.duckdb"
    result = runner.invoke(app, ["scan", str(tiny_model_dir("llama", True)), "--db", str(db), "--check-length",
                                 "1000000"])
    assert result.exit_code == 2, result.output
    assert "--check-length must be between 2 and the model's context (256)" in result.output
    assert not db.exists()


# -- options check themselves once; the CLI only maps the error ---------------------------------------

@pytest.mark.parametrize("fields, flags, flag", [
    ({"limit": 0}, ["--limit", "0"], "--limit"), ({"limit": -3}, ["--limit", "-3"], "--limit"),
    ({"verify": "some"}, ["--verify", "some"], "--verify"), ({"batch_size": 0}, ["--batch-size", "0"], "--batch-size"),
    ({"commit_every": -1}, ["--commit-every", "-1"], "--commit-every"),
    ({"tolerance": -1e-3}, ["--tolerance", "-0.001"], "--tolerance"),
    ({"check_length": 1}, ["--check-length", "1"], "--check-length")])
def test_scan_options_check_gives_the_clis_one_line_message(tiny_model_dir, tmp_path, fields, flags, flag):
    from fpprov.errors import FpprovError
    from fpprov.scan.run import ScanOptions

    with pytest.raises(FpprovError, match=flag) as raised:
        ScanOptions(**fields)
    db = tmp_path / "x.duckdb"
    line = _error_line(runner.invoke(app, ["scan", str(tiny_model_dir("llama")), "--db", str(db), *flags]))
    assert line == f"error: {raised.value}" and not db.exists()


def test_scan_options_check_runs_once_per_object_and_accepts_the_bounds(monkeypatch):
    from fpprov.scan.run import ScanOptions
    from fpprov.scan.options import ScanOptions as Defined

    assert ScanOptions is Defined
    bounds = dict(limit=1, batch_size=1, commit_every=1, tolerance=0.0, check_length=2, verify="near")
    ScanOptions(**bounds)
    calls = []
    monkeypatch.setattr(Defined, "check", lambda self: calls.append(self))
    opts = ScanOptions(**bounds)
    assert calls == [opts]


def test_scan_cli_has_no_check_of_its_own(tiny_model_dir, tmp_path, monkeypatch):
    """The CLI shows whatever the library's check raises, and its source holds no copy of a check."""
    from fpprov.errors import FpprovError
    from fpprov.scan.options import ScanOptions

    def refuse(self):
        raise FpprovError(f"library says no to batch_size={self.batch_size}")

    monkeypatch.setattr(ScanOptions, "check", refuse)
    db = tmp_path / "x.duckdb"
    line = _error_line(runner.invoke(app, ["scan", str(tiny_model_dir("llama")), "--batch-size", "7", "--db", str(db)]))
    assert line == "error: library says no to batch_size=7" and not db.exists()
    source = Path(fpprov.__file__).parent.joinpath("cli", "scan.py").read_text()
    for copy in ("must be a positive number", "unknown --verify", "unknown dtype", "no BOS token", "min="):
        assert copy not in source

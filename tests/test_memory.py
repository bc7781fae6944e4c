"""The memory estimate before loading, the one-line refusal, and device-map loading giving the same verdicts."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig
from typer.testing import CliRunner

from fpprov.models import memory
from fpprov.cli import app
from fpprov.models.devices import check_device_map, map_devices
from fpprov.errors import FpprovError
from fpprov.models.memory import MemoryEstimate, MemoryRefusal, count_parameters, estimate_memory
from fpprov.models import load_model
from fpprov.scan.run import ScanOptions, scan_vocabulary
from fpprov.db.store import open_store
from tiny import FAMILIES

pytestmark = pytest.mark.usefixtures("one_torch_thread")
runner = CliRunner()


def _param_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


@pytest.mark.filterwarnings("ignore::fpprov.errors.LowPrecisionWarning")
@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
@pytest.mark.parametrize("family", FAMILIES)
def test_weights_bytes_equal_the_loaded_parameters(family, tied, tiny_model_dir):
    model_dir = tiny_model_dir(family, tied=tied)
    config = AutoConfig.from_pretrained(model_dir)
    for dtype in (torch.float32, torch.bfloat16):
        loaded = load_model(str(model_dir), dtype=str(dtype).removeprefix("torch."), device="cpu")
        estimate = estimate_memory(config, dtype, torch.device("cpu"))
        assert estimate.weights_bytes == _param_bytes(loaded.model)
        assert estimate.params == sum(p.numel() for p in loaded.model.parameters())


def test_working_set_counts_activations_logits_and_the_float64_layer(tiny_model_dir):
    config = AutoConfig.from_pretrained(tiny_model_dir("llama"))
    _total, layer = count_parameters(config)
    small = estimate_memory(config, torch.float32, torch.device("cpu"), batch=8, head_chunk=16)
    big = estimate_memory(config, torch.float32, torch.device("cpu"), batch=2048, head_chunk=16)
    d, n_layers = config.hidden_size, config.num_hidden_layers
    assert small.recheck_bytes == 8 * (layer + 16 * d)
    # past the head's row block, each extra batch row adds its hidden state per layer, its MLP and its logits
    rows = 2048 - 1024
    assert big.working_elems - small.working_elems >= rows * (d * n_layers + config.intermediate_size + 16)
    assert small.total_bytes == small.weights_bytes + small.working_bytes
    assert small.total_at("bfloat16") < small.total_bytes


def test_estimate_is_reported_before_the_weights_load(tiny_model_dir, monkeypatch):
    seen: list[MemoryEstimate] = []
    reads: list[str] = []
    from transformers import AutoModelForCausalLM

    original = AutoModelForCausalLM.from_pretrained.__func__

    def spy(cls, *args, **kwargs):
        reads.append(f"weights after {len(seen)} estimate(s)")
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", classmethod(spy))
    loaded = load_model(str(tiny_model_dir("qwen3")), device="cpu", on_estimate=seen.append)
    assert reads == ["weights after 1 estimate(s)"]
    assert seen[0].weights_bytes == _param_bytes(loaded.model)
    line = seen[0].line()
    assert line.startswith("memory: ") and "(float32)" in line and line.endswith("free on cpu")


def test_refuses_in_one_line_when_free_memory_is_tiny(tiny_model_dir, monkeypatch):
    model_dir = tiny_model_dir("gemma3")
    config = AutoConfig.from_pretrained(model_dir)
    need = estimate_memory(config, torch.float32, torch.device("cpu"))
    # room for the bfloat16 scan but not the float32 one
    monkeypatch.setattr(memory, "free_memory", lambda device: need.total_at("bfloat16") + 1)
    loaded_weights = []
    monkeypatch.setattr("transformers.AutoModelForCausalLM.from_pretrained",
                        lambda *a, **k: loaded_weights.append(a))
    with pytest.raises(MemoryRefusal) as info:
        load_model(str(model_dir), device="cpu")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{model_dir.name} needs ~") and " MB in float32 but cpu has " in message
    assert "use --dtype bfloat16" in message and "a machine with ~" in message
    assert loaded_weights == []                           # refused before any weight was read


def test_gpu_refusal_says_how_many_gpus_would_fit():
    estimate = MemoryEstimate(model="olmo2-13b", dtype="float32", params=13_700_000_000, working_elems=10**8,
                              recheck_bytes=10**9, free_bytes=40 * 10**9, where="cuda:0", device_free=40 * 10**9,
                              gpu=True)
    with pytest.raises(MemoryRefusal) as info:
        estimate.check()
    message = str(info.value)
    assert message.startswith("olmo2-13b needs ~56 GB in float32 but cuda:0 has 40 GB free: use ")
    assert "--dtype bfloat16 (~29 GB)" in message and message.endswith("--device-map auto over 2 GPUs")


def test_a_fitting_estimate_passes_and_free_memory_reads_the_host():
    assert memory.free_memory("cpu") > 0
    assert 0 < memory._meminfo() <= memory._meminfo("MemTotal")
    assert memory.free_memory("cpu") <= memory.total_ram()
    MemoryEstimate(model="m", dtype="float32", params=10, working_elems=10, recheck_bytes=8, free_bytes=10**6,
                   where="cpu", device_free=10**6, gpu=False).check()


def test_device_map_names_its_devices():
    cpu = torch.device("cpu")
    assert map_devices(cpu, None) == [cpu]
    assert map_devices(cpu, {"model.embed_tokens": "cpu", "model.layers.0": "cpu", "lm_head": "cpu"}) == [cpu]
    if not torch.cuda.is_available():
        assert map_devices(cpu, "auto") == [cpu]


def _verdicts(loaded, tmp_path, name):
    with open_store(tmp_path / f"{name}.duckdb") as store:
        result = scan_vocabulary(loaded, store, ScanOptions(start=0, limit=120, head_chunk=32, commit_every=64))
        rows = store.query_dicts("SELECT token_id, prob, logit FROM token_fps WHERE scan_id = ? "
                                 "ORDER BY token_id", [result.scan_id])
    return result.fp_count, rows


@pytest.mark.parametrize("family", ["llama", "olmo2"])
def test_device_map_load_gives_the_same_verdicts(family, tiny_model_dir, tmp_path):
    model_dir = str(tiny_model_dir(family, tied=False))
    plain = load_model(model_dir, device="cpu")
    layers = {f"model.layers.{i}": "cpu" for i in range(plain.num_layers)}
    mapped = load_model(model_dir, device_map={"model.embed_tokens": "cpu", **layers, "model.norm": "cpu",
                                               "model.rotary_emb": "cpu", "lm_head": "cpu"})
    assert set(mapped.device_map) >= set(layers) and not mapped.spread
    assert plain.device_map == {"": "cpu"}
    assert mapped.device == torch.device("cpu")
    fp_plain, rows_plain = _verdicts(plain, tmp_path, "plain")
    fp_mapped, rows_mapped = _verdicts(mapped, tmp_path, "mapped")
    assert fp_plain > 0
    assert (fp_mapped, rows_mapped) == (fp_plain, rows_plain)
    if not torch.cuda.is_available():  # accelerate's "auto" on a CPU-only machine: everything on the CPU
        auto = load_model(model_dir, device_map="auto")
        assert set(auto.device_map.values()) == {"cpu"}
        assert _verdicts(auto, tmp_path, "auto") == (fp_plain, rows_plain)


# -- the --device-map option: checked before any work, the same rows as a plain load ---------------------

def test_device_map_values_are_checked_before_any_work():
    assert check_device_map(None) is None and check_device_map("none") is None
    assert check_device_map("auto") == "auto" and check_device_map("balanced") == "balanced"
    with pytest.raises(FpprovError, match="unknown --device-map 'everywhere'"):
        check_device_map("everywhere")
    with pytest.raises(FpprovError, match="torchrun started 2 ranks"):
        check_device_map("auto", world=2)


def test_scan_cli_device_map_auto_gives_the_plain_scans_rows(tiny_model_dir, tmp_path):
    model = str(tiny_model_dir("llama", tied=False))
    rows = {}
    for name, extra in (("plain", []), ("mapped", ["--device-map", "auto"])):
        db = tmp_path / f"{name}.duckdb"
        result = runner.invoke(app, ["scan", model, "--limit", "120", "--db", str(db), *extra])
        assert result.exit_code == 0, result.output
        with open_store(db) as store:
            rows[name] = store.query("SELECT token_id, prob, logit FROM token_fps ORDER BY token_id")
    assert rows["plain"] and rows["mapped"] == rows["plain"]


@pytest.mark.parametrize("command", ["scan", "vectors"])
def test_bad_device_map_is_one_line_and_leaves_no_database(command, tmp_path):
    db = tmp_path / "untouched.duckdb"
    result = runner.invoke(app, [command, "no-such-model-needed", "--device-map", "everywhere", "--db", str(db)])
    assert result.exit_code == 2 and result.output.strip().startswith("error: unknown --device-map 'everywhere'")
    assert len(result.output.strip().splitlines()) == 1 and not db.exists()

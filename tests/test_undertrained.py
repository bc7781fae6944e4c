"""Under-trained token candidates (magikarp's weight-based indicators) on tiny models with planted rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fpprov.models import load_model
from fpprov.report import build_reports
from fpprov.scan.run import ScanOptions, scan_vocabulary
from fpprov.db.store import open_store
from transformers.convert_slow_tokenizer import bytes_to_unicode

from fpprov.scan.undertrained import INVALID_UTF8_BYTES, compute_indicators, find_undertrained, reference_set

UNUSED = [f"<unused{i}>" for i in range(6)]


def _plant(loaded, ids, seed=0):
    """Give ``ids`` the output rows an untrained token ends with: one shared vector plus a little noise."""
    gen = torch.Generator().manual_seed(seed)
    weight = loaded.model.get_output_embeddings().weight          # (V, D)
    shared = torch.randn(weight.shape[1], generator=gen) * weight.std()
    with torch.no_grad():
        for i in ids:
            weight[i] = shared + 0.02 * weight.std() * torch.randn(weight.shape[1], generator=gen)


@pytest.fixture
def planted(tiny_model_dir):
    loaded = load_model(str(tiny_model_dir("llama")))
    loaded.tokenizer.add_special_tokens({"additional_special_tokens": UNUSED})  # land on padded rows
    reference = loaded.tokenizer.convert_tokens_to_ids(UNUSED)
    hidden = [40, 77, 123, 201, 250]                                 # ordinary tokens left untrained
    _plant(loaded, reference + hidden)
    return loaded, reference, hidden


def test_reference_set_prefers_unused_names(planted):
    loaded, reference, _ = planted
    found = reference_set(loaded.tokenizer, loaded.model.get_output_embeddings().weight.shape[0])
    assert found.rule == "unused_names" and found.ids == reference


def test_planted_untrained_rows_are_the_candidates(planted, tmp_path):
    loaded, reference, hidden = planted
    with open_store(tmp_path / "u.duckdb") as store:
        summary = find_undertrained(loaded, store)
        flagged = {r[0] for r in store.query(
            "SELECT token_id FROM undertrained_tokens WHERE undertrained AND NOT is_reference")}
        run = store.query_dicts("FROM undertrained_runs")[0]
    assert summary.indicator == "cosine_distance_no_pc1" and summary.tied_head
    assert set(hidden) <= flagged
    # 2% of the ordinary ids are candidates by construction; the planted ones take those places.
    assert len(flagged) <= len(hidden) + 2
    assert run["reference_count"] == len(reference) and run["n_undertrained"] == summary.n_undertrained


def test_indicators_match_magikarp_formula():
    gen = torch.Generator().manual_seed(1)
    weight = torch.randn(200, 16, generator=gen, dtype=torch.float64)
    ref = [3, 5, 7]
    ind = compute_indicators(weight, weight, ref)
    # Independent computation with numpy's SVD (sklearn PCA's first component is the top right-singular vector
    # of the centred matrix).
    mat = weight.numpy()
    _, _, vt = np.linalg.svd(mat - mat.mean(0), full_matrices=False)
    pc1 = vt[0]
    wo = mat - np.outer(mat @ pc1, pc1)
    mean = wo[ref].mean(0)
    expected = 1 - wo @ mean / (np.linalg.norm(wo, axis=1) * np.linalg.norm(mean))
    np.testing.assert_allclose(ind.cosine_distance_no_pc1, expected, atol=1e-10)
    np.testing.assert_allclose(ind.input_norm, np.linalg.norm(mat, axis=1))


def test_untied_model_without_reference_uses_input_norm(tiny_model_dir, tmp_path):
    loaded = load_model(str(tiny_model_dir("qwen3", False)))
    with torch.no_grad():
        loaded.model.get_input_embeddings().weight[[10, 11]] *= 1e-3  # never-updated input rows stay small
    with open_store(tmp_path / "u.duckdb") as store:
        summary = find_undertrained(loaded, store)
        flagged = {r[0] for r in store.query("SELECT token_id FROM undertrained_tokens WHERE undertrained")}
    # Untied: magikarp's default indicator, the input norm, whatever the reference set (here the invalid bytes).
    assert summary.reference_rule == "invalid_utf8_bytes" and summary.indicator == "input_norm"
    assert {10, 11} <= flagged


class _RoundTripTokenizer:
    """Ids 0-9 are letters; ids 7 and 8 decode to text that re-encodes to other ids (unreachable)."""

    all_special_ids: list[int] = []
    added_tokens_decoder: dict = {}

    def __len__(self):
        return 10

    def convert_ids_to_tokens(self, ids):
        return [chr(97 + i) for i in ids] if isinstance(ids, list) else chr(97 + ids)

    def decode(self, ids, **_):
        return "".join("ab" if i in (7, 8) else chr(97 + i) for i in ids)

    def encode(self, text, **_):
        return [ord(c) - 97 for c in text]


def test_reference_set_falls_back_to_unreachable_ids():
    found = reference_set(_RoundTripTokenizer(), 10)
    assert found.rule == "unreachable" and found.ids == [7, 8]


def test_fp_undertrained_view_joins_the_primary_scan(planted, tmp_path):
    loaded, _, hidden = planted
    with open_store(tmp_path / "u.duckdb") as store:
        result = scan_vocabulary(loaded, store, ScanOptions())
        find_undertrained(loaded, store)
        view = store.query_dicts("FROM fp_undertrained")[0]
        fps = {r[0] for r in store.query("SELECT token_id FROM token_fps WHERE scan_id = ?", [result.scan_id])}
        under = {r[0] for r in store.query("SELECT token_id FROM undertrained_tokens WHERE undertrained")}
        scan = store.query_dicts("SELECT id_start, id_stop FROM scans WHERE scan_id = ?", [result.scan_id])[0]
    ids = set(range(scan["id_start"], scan["id_stop"]))
    assert view["ids"] == len(ids)
    assert view["fp_undertrained"] == len(fps & under & ids)
    assert view["fp_trained"] == len((fps - under) & ids)
    assert view["nonfp_undertrained"] == len((under - fps) & ids)
    assert view["fp_undertrained"] + view["fp_trained"] == result.fp_count


def test_model_page_shows_the_undertrained_section(planted, tmp_path):
    loaded, _, hidden = planted
    db = tmp_path / "u.duckdb"
    with open_store(db) as store:
        scan_vocabulary(loaded, store, ScanOptions())
        summary = find_undertrained(loaded, store)
        view = store.query_dicts("FROM fp_undertrained")[0]
    outcome = build_reports(db, tmp_path / "reports")
    page = next(p for p in outcome.pages if p.name != "shared.html").read_text()
    assert 'id="undertrained"' in page and "magikarp" in page
    assert f"({summary.n_undertrained} of {summary.n_tokens})" in page
    # The counts table's JSON carries the view's numbers.
    assert f'["FP",{view["fp_undertrained"]},{view["fp_trained"]},' in page


def test_byte_level_vocabulary_falls_back_to_its_invalid_utf8_bytes(tiny_model_dir, tmp_path):
    """No unused slot: the tokens of the 13 bytes UTF-8 never uses are the reference (magikarp's GPT-2 list)."""
    loaded = load_model(str(tiny_model_dir("llama")))
    chars = bytes_to_unicode()
    invalid = sorted(loaded.tokenizer.convert_tokens_to_ids([chars[b] for b in INVALID_UTF8_BYTES]))
    found = reference_set(loaded.tokenizer, loaded.model.get_output_embeddings().weight.shape[0])
    assert found.rule == "invalid_utf8_bytes" and found.ids == invalid and len(invalid) == 13
    hidden = [60, 140, 222]
    _plant(loaded, invalid + hidden, seed=3)
    with open_store(tmp_path / "u.duckdb") as store:
        summary = find_undertrained(loaded, store)
        flagged = {r[0] for r in store.query(
            "SELECT token_id FROM undertrained_tokens WHERE undertrained AND NOT is_reference")}
    assert summary.reference_rule == "invalid_utf8_bytes" and summary.reference_count == 13
    assert set(hidden) <= flagged


class _PieceTokenizer(_RoundTripTokenizer):
    """A sentencepiece-like vocabulary: id 0 is the byte token <0xF5>, id 1 <0x41>, id 2 the letter 'õ'."""

    PIECES = ["<0xF5>", "<0x41>", "õ", "a", "b"]

    def __len__(self):
        return len(self.PIECES)

    def convert_ids_to_tokens(self, ids):
        return [self.PIECES[i] for i in ids] if isinstance(ids, list) else self.PIECES[ids]

    def decode(self, ids, **_):
        return "".join({0: "\ufffd", 1: "A"}.get(i, self.PIECES[i]) for i in ids)

    def encode(self, text, **_):
        return [self.PIECES.index(c) if c in self.PIECES else 1 for c in text]


def test_byte_fallback_tokens_of_invalid_bytes_are_the_reference_and_real_letters_are_not():
    found = reference_set(_PieceTokenizer(), 5)
    assert found.rule == "invalid_utf8_bytes" and found.ids == [0]   # not 'õ' (a letter), not <0x41> (valid)


class _CompleteTokenizer(_RoundTripTokenizer):
    """Every id round-trips and none is a byte token: no reference set can be found."""

    def decode(self, ids, **_):
        return "".join(chr(97 + i) for i in ids)


def test_tied_model_without_any_reference_has_no_candidates(tiny_model_dir, tmp_path, monkeypatch):
    assert reference_set(_CompleteTokenizer(), 10).rule == "none"
    loaded = load_model(str(tiny_model_dir("llama")))
    monkeypatch.setattr("fpprov.scan.undertrained.reference_set", lambda tokenizer, n: reference_set(_CompleteTokenizer(), 10))
    db = tmp_path / "u.duckdb"
    with open_store(db) as store:
        scan_vocabulary(loaded, store, ScanOptions())
        summary = find_undertrained(loaded, store)
        values = store.query("SELECT count(*), count(indicator_value), count(*) FILTER (WHERE undertrained) "
                             "FROM undertrained_tokens")[0]
    # magikarp raises for a tied model without known unused tokens; fpprov stores NULL indicators instead
    assert summary.reference_rule == "none" and summary.n_undertrained == 0 and summary.threshold is None
    assert values[0] > 0 and values[1:] == (0, 0)
    page = next(p for p in build_reports(db, tmp_path / "reports").pages if p.name != "shared.html").read_text()
    assert "No reference set" in page and "magikarp refuses the case" in page

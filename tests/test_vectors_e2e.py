"""End to end on the embedded gemma3-270m (marked e2e: loads ~3 GiB, a few minutes on 2 CPU cores)."""

from __future__ import annotations

import math

import pytest
import torch

from fpprov.db.store import open_store
from fpprov.vectors.study import VectorOptions, run_study
from fpprov.vectors import EmbeddingMap
from fpprov.vectors import kernels

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def gemma(gemma_270m):
    """The session's one load of gemma3-270m (conftest), shared with the scan e2e tests."""
    return gemma_270m


def test_gemma_effective_space_and_iteration_fp(gemma, tmp_path):
    # The convention: the effective E is the scaled weight, and feeding E[t] equals feeding input_ids=[t].
    fmap = EmbeddingMap(gemma, "effective")
    weight = gemma.input_embeddings().weight
    scale = math.sqrt(gemma.hidden_size)
    torch.testing.assert_close(fmap.matrix[:100], weight[:100] * scale, rtol=1e-6, atol=0)
    with torch.no_grad():
        by_ids = gemma.model(input_ids=torch.tensor([[1000]])).logits[0, -1]
    torch.testing.assert_close(fmap.logits(fmap.matrix[1000][None])[0], by_ids, rtol=1e-4, atol=1e-3)

    # In this space ||x|| ~ 25, so float32 rounding of T(x) - x is ~3e-6: the seed's 1e-6 is out of reach, and
    # the default tolerance is the seed's scaled by the space's coordinate size, 25.3e-6 (docs/vectors.md).
    assert fmap.default_tolerance == pytest.approx(1e-6 * scale, rel=1e-3)
    with open_store(tmp_path / "g.duckdb") as store:
        summary = run_study(store, gemma, VectorOptions(methods=("iterate",), seeds=(0, 1), max_steps=80,
                                                        rollout_steps=4, top_k=5))
        runs = summary.runs["iterate"]
        assert {r["tolerance"] for r in runs} == {fmap.default_tolerance}           # stored with each run
        assert any(r["converged"] for r in runs), [r["stop_detail"] for r in runs]
        assert summary.fps and all(fp["residual"] < fmap.default_tolerance for fp in summary.fps)
        fp = summary.fps[0]
        (vector,) = store.query("SELECT vector FROM vector_fps WHERE vector_id = ?", [fp["vector_id"]])[0]
        x = torch.tensor(vector)[None]                                      # (1, D)
        with torch.no_grad():
            # The stored vector is an FP of the real model evaluated alone too. With oneDNN's products T of a
            # vector is the same bit for bit in any batch (no cross-batch drift: the residual is the stored
            # one); the public forms differ between batch compositions by up to ~1.2e-4 in this space
            # (bench/few_rows.py), the tolerance must then allow for that.
            alone = float((fmap(x) - x).norm())
        if kernels.onednn_works():
            assert alone == pytest.approx(fp["residual"], rel=1e-6, abs=1e-12) and alone < fmap.default_tolerance
        else:
            assert alone < fmap.default_tolerance + 2e-4
        assert len(fp["rollout_dist_by_l"]) == 4 and fp["rollout_dist_by_l"][0] < 2 * fmap.default_tolerance
        tokens = summary.tokens[fp["vector_id"]]
        assert len(tokens) == 5 and 0 < sum(t["weight"] for t in tokens) <= 1.0 + 1e-9
        assert tokens[0]["token_id"] == fp["top_token_id"] and tokens[0]["text"] is not None

"""Gradient descent's default protocol finds a known vector FP from a distant start (issue 11)."""

from __future__ import annotations

import pytest
import torch
from tiny import TOKEN_K, hand_built_dir  # noqa: F401  (a fixture)

from fpprov.models import load_model
from fpprov.vectors import (DEFAULT_PROTOCOL, SEED_PROTOCOL, EmbeddingMap, coordinate_scale, gradient_descent,
                           protocol_settings, settings_for)


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    """Tiny models gain nothing from threads."""


@pytest.fixture(scope="module")
def constant_model(hand_built_dir):
    return load_model(str(hand_built_dir("constant")), device="cpu")


def test_default_protocol_finds_the_fp_from_a_distant_start(constant_model):
    fmap = EmbeddingMap(constant_model)
    e_k = constant_model.input_embeddings().weight[TOKEN_K]                 # (D,)
    x0 = fmap.initial_vectors([0, 1], 3.0)                                  # (2, D): ||x0 - E_k|| ~ 24
    assert float((x0 - e_k).norm(dim=-1).min()) > 10
    settings = settings_for(fmap)
    assert settings.protocol == "default" and settings.max_steps == DEFAULT_PROTOCOL.max_steps
    for outcome in gradient_descent(fmap, [0, 1], x0, settings, tol=1e-6):
        assert outcome.converged, outcome.stop_detail
        assert float((outcome.vector - e_k).norm()) < 1e-4


def test_protocols_scale_and_record():
    # The seed's protocol is absolute (the same numbers in every space); the default scales with the space.
    assert SEED_PROTOCOL.lr == 1e-2 and SEED_PROTOCOL.weight_decay == 0 and SEED_PROTOCOL.patience == 1000
    assert SEED_PROTOCOL.lr_floor == 3e-9 and SEED_PROTOCOL.max_steps == 100_000
    small, big = protocol_settings("default", 0.04), protocol_settings("default", 1.0)
    assert big.lr == pytest.approx(25 * small.lr) and protocol_settings("seed", 25.0) == SEED_PROTOCOL
    custom = protocol_settings("seed", 1.0, lr=0.5)
    assert custom.protocol == "seed+custom" and "lr=0.5" in custom.text() and "patience=1000" in custom.text()
    assert coordinate_scale(torch.full((4, 3), 2.0)) == pytest.approx(2.0)
    # Chunked float64 sums equal the one-shot RMS, whatever the chunk size.
    rows = torch.randn(37, 5)
    assert coordinate_scale(rows, chunk=4) == pytest.approx(float(rows.double().pow(2).mean().sqrt()), rel=1e-12)

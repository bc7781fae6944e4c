"""The query budget: the --max-tokens sample (top by p(t | t) plus a uniform draw), the default that fits a run
against a rate-limited backend in about an hour, and the estimate a run prints before it sends anything."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from scipy import stats

from fpprov.corpus.base import CorpusBackend
from fpprov.corpus.factory import open_backend
from fpprov.corpus.http import HttpSettings
from fpprov.provenance.budget import (BUDGET_SECONDS, FpSelection, backend_rate, default_max_tokens, estimate_run,
                                      fp_cost, over_budget, select_fps)
from fpprov.provenance.options import ProvenanceOptions
from fpprov.provenance.plan import FpToken, plan_entries
from fpprov.provenance.spellings import Speller


class Engine(CorpusBackend):
    """A local engine as far as the budget is concerned: no HTTP client, so no rate limit."""

    backend, index_name = "local", "engine"

    def count(self, query):
        raise AssertionError("the budget sends nothing")

    find = get_doc = count


def fps(n: int, model: str = "m", seed: int = 1) -> list[FpToken]:
    rng = random.Random(seed)
    return [FpToken(model, i, f"w{i}", "normal", round(rng.random(), 2)) for i in range(n)]  # rounded: ties


@pytest.fixture
def api():
    corpus = open_backend("api", "v4_test", settings=HttpSettings(rate=2.0))
    yield corpus
    corpus.close()


def test_all_are_taken_without_a_budget_or_when_few():
    tokens = fps(30)
    for budget in (None, 30, 1000):
        picked = select_fps(list(reversed(tokens)), budget, seed=0)
        assert [t.token_id for t in picked.tokens] == list(range(30))
        assert picked.total == 30 and picked.rule == "all" and not picked.sampled


def test_sample_is_the_top_by_probability_plus_a_uniform_draw_of_the_rest():
    tokens = fps(1000)
    picked = select_fps(tokens, 61, seed=3)
    assert len(picked.tokens) == 61 and picked.total == 1000 and picked.sampled
    assert (picked.top, picked.drawn) == (31, 30)
    top = sorted(tokens, key=lambda t: (-t.prob, t.token_id))[:31]   # ties broken by the lower id
    chosen = {t.token_id for t in picked.tokens}
    assert {t.token_id for t in top} <= chosen
    assert [t.token_id for t in picked.tokens] == sorted(chosen)
    assert picked.rule == "top 31 by p(t | t) + 30 drawn uniformly from the other 969"


def test_sample_is_reproducible_order_free_and_depends_on_seed_and_model():
    tokens = fps(500)
    ids = lambda s: [t.token_id for t in s.tokens]  # noqa: E731
    first = select_fps(tokens, 40, seed=7)
    shuffled = tokens[:]
    random.Random(0).shuffle(shuffled)
    assert ids(select_fps(shuffled, 40, seed=7)) == ids(first)
    assert ids(select_fps(tokens, 40, seed=8)) != ids(first)
    other_model = [FpToken("other", t.token_id, t.text, t.category, t.prob) for t in tokens]
    assert ids(select_fps(other_model, 40, seed=7)) != ids(first)


def test_a_larger_budget_extends_the_sample():
    tokens = fps(400)
    for small, large in ((10, 20), (21, 60), (60, 61)):
        a = {t.token_id for t in select_fps(tokens, small, seed=2).tokens}
        b = {t.token_id for t in select_fps(tokens, large, seed=2).tokens}
        assert a < b


def test_the_draw_is_uniform_over_the_rest():
    tokens = [FpToken("m", i, f"w{i}", "normal", 1.0 - i / 100) for i in range(50)]   # top 5: ids 0-4
    hits = np.zeros(50)
    for seed in range(2000):
        for t in select_fps(tokens, 10, seed=seed).tokens:
            hits[t.token_id] += 1
    assert (hits[:5] == 2000).all()
    assert hits[5:].sum() == 5 * 2000
    assert stats.chisquare(hits[5:]).pvalue > 1e-3


def test_one_model_at_a_time():
    with pytest.raises(ValueError, match="one model"):
        select_fps(fps(5, "a") + fps(5, "b"), 3, seed=0)


def test_no_default_budget_without_a_rate_limit():
    assert default_max_tokens(Engine()) is None and backend_rate(Engine()) is None
    unlimited = open_backend("api", "v4_test", settings=HttpSettings(rate=0))
    try:
        assert default_max_tokens(unlimited) is None
    finally:
        unlimited.close()


def test_the_cost_of_one_fp_follows_the_options():
    # L n values (n = 1 added with controls) x 2 spellings, for the FP and K controls; 4 pool queries per
    # control; a find and D documents per largest-n query of the FP and its controls.
    for ladder, k, d in (((10,), 1, 20), ((1, 2, 5, 10), 3, 0), ((5,), 0, 4)):
        options = ProvenanceOptions(ladder=ladder, controls=k, docs=d)
        levels = len(set(ladder) | ({1} if k else set()))
        cost = fp_cost(options)
        assert cost.count_queries == (1 + k) * levels * 2 + 4 * k
        assert cost.doc_requests == ((1 + k) * 2 * (1 + d) if d else 0)
        assert cost.requests == cost.count_queries + cost.doc_requests


def test_the_cost_bounds_the_queries_the_plan_builds(api):
    options = ProvenanceOptions(ladder=(2, 10), controls=1)
    texts = ["blah", " blah", "\n", "Á", " ", "x" * 300, "a AND b"]
    tokens = [FpToken("m", i, t, "normal", 0.5) for i, t in enumerate(texts)]
    entries = plan_entries(tokens, api, None, (1, 2, 10), Speller.concatenating("m"))
    queries = {e["query"] for e in entries if e["query"] is not None}
    assert 0 < len(queries) <= len(tokens) * fp_cost(options).fp_queries


def test_the_default_fills_about_an_hour_at_two_requests_a_second(api):
    options = ProvenanceOptions()
    budget = default_max_tokens(api, options)
    per_fp = fp_cost(options).requests
    hour = 2.0 * BUDGET_SECONDS
    assert budget * per_fp + options.baseline_positions <= hour < (budget + 1) * per_fp + options.baseline_positions
    estimate = estimate_run(api, select_fps(fps(5000), budget, seed=0), options)
    assert estimate.fps == budget and estimate.seconds <= BUDGET_SECONDS and not over_budget(estimate)
    assert estimate.seconds > 0.9 * BUDGET_SECONDS


def test_the_default_follows_docs_controls_rate_and_models(api):
    base = default_max_tokens(api, ProvenanceOptions())
    no_docs = default_max_tokens(api, ProvenanceOptions(docs=0))
    assert no_docs > base
    assert no_docs == (2.0 * BUDGET_SECONDS - 1000) // fp_cost(ProvenanceOptions(docs=0)).requests
    assert default_max_tokens(api, ProvenanceOptions(controls=3)) < base
    assert default_max_tokens(api, ProvenanceOptions(), models=2) == math.floor((2.0 * BUDGET_SECONDS - 1000) / 2
                                                                               / fp_cost(ProvenanceOptions()).requests)
    slow = open_backend("api", "v4_test", settings=HttpSettings(rate=1.0))
    try:
        assert default_max_tokens(slow, ProvenanceOptions()) < base
    finally:
        slow.close()
    # A baseline larger than the hour still leaves one FP (and the plan warns about the time).
    assert default_max_tokens(api, ProvenanceOptions(baseline_positions=100_000)) == 1


def test_estimate_uses_upper_bounds_until_the_caller_knows(api):
    options = ProvenanceOptions(ladder=(10,), controls=2, docs=5, baseline_positions=300)
    selection = select_fps(fps(1000), 60, seed=0)
    cost = fp_cost(options)
    estimate = estimate_run(api, selection, options, cached_queries=12)
    assert (estimate.index_name, estimate.fp_total, estimate.fps) == ("v4_test", 1000, 60)
    assert estimate.sample_rule == selection.rule and estimate.controls == 120 and estimate.rate == 2.0
    assert estimate.count_queries == 60 * cost.count_queries - 12 and estimate.cached_queries == 12
    assert estimate.doc_requests == 60 * cost.doc_requests and estimate.baseline_requests == 300
    assert estimate.seconds == pytest.approx(estimate.requests / 2.0)
    known = estimate_run(api, selection, options, cached_queries=200, pending_queries=40, baseline_missing=10)
    assert known.count_queries == 40 + 60 * (cost.control_queries + cost.pool_queries)
    assert known.baseline_requests == 10
    pool_known = estimate_run(api, selection, options, pending_queries=40, pool_pending=7)
    assert pool_known.count_queries == 40 + 7 + 60 * cost.control_queries
    drawn = estimate_run(api, selection, options, pending_queries=40, pool_pending=7, controls_pending=3,
                         pending_docs=11)
    assert (drawn.count_queries, drawn.doc_requests) == (50, 11)


def test_a_fully_cached_run_has_nothing_to_send(api):
    options = ProvenanceOptions()
    selection = select_fps(fps(10), None, seed=0)
    estimate = estimate_run(api, selection, options, cached_queries=120, pending_queries=0, pool_pending=0,
                            controls_pending=0, pending_docs=0, baseline_missing=0)
    assert estimate.requests == 0 and estimate.seconds == 0 and not over_budget(estimate)
    assert estimate.cached_queries == 120 and estimate.sample_rule == "all"


def test_estimate_for_several_models_and_a_local_engine():
    options = ProvenanceOptions(docs=0)
    a, b = select_fps(fps(100, "a"), 10, seed=0), select_fps(fps(5, "b"), 10, seed=0)
    estimate = estimate_run(Engine(), [a, b], options)
    assert (estimate.fp_total, estimate.fps, estimate.rate, estimate.seconds) == (105, 15, None, None)
    assert estimate.sample_rule == f"a: {a.rule}; b: all" and estimate.doc_requests == 0
    assert not over_budget(estimate)


def test_over_budget_past_the_hour(api):
    huge = estimate_run(api, FpSelection("m", tuple(fps(5000)), 5000, "all"), ProvenanceOptions())
    assert huge.seconds > BUDGET_SECONDS and over_budget(huge)

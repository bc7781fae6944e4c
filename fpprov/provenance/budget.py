"""The query budget of a provenance run: which FPs a run takes (``select_fps``: all, or the top by p(t | t)
plus a uniform draw of the rest), how many it takes by default (``default_max_tokens``: what fits in about an
hour at the backend's rate limit), and what a run will send before it sends anything (``estimate_run``).

What one FP costs at most, in requests (``fp_cost``; L = the ladder's distinct n, with n = 1 added when there
are controls; S = 2 spellings at most: the emitted run and the same run after a space, or stripped of its
leading space; K = --controls, or its default for the backend; D = --docs):

* count queries: L x S for the FP, the same for each of its K controls, and ``POOL_QUERIES_PER_CONTROL`` = 4
  unigram queries per control for the candidate pool the controls are matched from: (1 + K) L S + 4 K;
* document requests: for each largest-n query of the FP and of its controls with a nonzero count, one
  ``find`` and D ``get_doc``: (1 + K) S (1 + D), none when D = 0;
* once per index, not per FP: the baseline's random positions (one request each).

Spellings, controls and documents are upper bounds: a token with one spelling or none, an FP without a control
in its bin, or a query that never occurs costs less, so a run takes at most the estimated time.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..corpus.api import HttpBackend
from ..corpus.base import CorpusBackend
from .options import HTTP_CONTROLS, ProvenanceOptions, RunEstimate
from .plan import FpToken

BUDGET_SECONDS = 3600.0        # what a default run against a rate-limited backend is sized to take
SPELLINGS = 2                  # spellings queried per token at most (emitted, and emitted_spaced or space_stripped)
POOL_QUERIES_PER_CONTROL = 4   # unigram queries of candidate controls per control drawn
PROB_LABEL = "p(t | t)"        # what the top of the sample is ranked by


@dataclass(frozen=True)
class FpSelection:
    """The FPs a run takes for one model: ``tokens`` out of ``total``, taken by ``rule`` (a sentence stored
    in ``evidence_runs.sample_rule``)."""

    model: str
    tokens: tuple[FpToken, ...]
    total: int
    rule: str
    top: int = 0               # taken by probability (0: all were taken)
    drawn: int = 0             # drawn uniformly from the rest

    @property
    def sampled(self) -> bool:
        return len(self.tokens) < self.total


def select_fps(tokens: Sequence[FpToken], max_tokens: int | None, seed: int) -> FpSelection:
    """All tokens when ``max_tokens`` is None or at least their number; else the top ceil(max_tokens / 2) by
    p(t | t) (ties by token id) plus a uniform draw of max_tokens minus that from the others.

    The draw is reproducible from (seed, model) and independent of the input order: every token gets a random
    key from a generator seeded by both, in token-id order, and the draw takes the lowest keys among those
    not at the top. So a larger --max-tokens mostly extends a smaller one's sample, and its cached answers
    stay useful. The tokens must all be of one model."""
    models = {t.model for t in tokens}
    if len(models) > 1:
        raise ValueError(f"select_fps takes the FPs of one model (got {', '.join(sorted(models))})")
    model = next(iter(models), "")
    by_id = sorted(tokens, key=lambda t: t.token_id)
    total = len(by_id)
    if max_tokens is None or max_tokens >= total:
        return FpSelection(model, tuple(by_id), total, "all")
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1 (got {max_tokens})")
    n_top = math.ceil(max_tokens / 2)
    ranked = sorted(range(total), key=lambda i: (-by_id[i].prob, by_id[i].token_id))
    top = ranked[:n_top]
    rng = np.random.default_rng([seed % 2**64, zlib.crc32(model.encode("utf-8"))])
    keys = rng.random(total)                                       # (total,) one key per token, token-id order
    rest = np.array(sorted(set(range(total)) - set(top)), dtype=np.int64)
    drawn = rest[np.argsort(keys[rest], kind="stable")[:max_tokens - n_top]]
    chosen = sorted([*top, *drawn.tolist()])
    rule = f"top {n_top:,} by {PROB_LABEL} of {total:,}"
    if len(drawn):
        rule = f"top {n_top:,} by {PROB_LABEL} + {len(drawn):,} drawn uniformly from the other {total - n_top:,}"
    return FpSelection(model, tuple(by_id[i] for i in chosen), total, rule, top=n_top, drawn=len(drawn))


@dataclass(frozen=True)
class FpCost:
    """Requests one FP costs at most, by kind (see the module docstring for the formula)."""

    fp_queries: int            # L x S: the FP's ladder queries
    control_queries: int       # K x L x S: its controls' ladder queries
    pool_queries: int          # POOL_QUERIES_PER_CONTROL x K: candidate controls' unigram queries
    doc_requests: int          # (1 + K) x S x (1 + D): find and documents of the largest-n queries (0: D = 0)

    @property
    def count_queries(self) -> int:
        return self.fp_queries + self.control_queries + self.pool_queries

    @property
    def requests(self) -> int:
        return self.count_queries + self.doc_requests


def fp_cost(options: ProvenanceOptions) -> FpCost:
    """What one FP costs at most under these options (see the module docstring); K left to the backend counts
    as an HTTP backend's (the ones a budget is for)."""
    k = options.controls if options.controls is not None else HTTP_CONTROLS
    ladder = len(set(options.ladder) | ({1} if k else set()))
    per_token = ladder * SPELLINGS
    return FpCost(fp_queries=per_token, control_queries=k * per_token,
                  pool_queries=POOL_QUERIES_PER_CONTROL * k,
                  doc_requests=(1 + k) * SPELLINGS * (1 + options.docs) if options.docs > 0 else 0)


def backend_rate(corpus: CorpusBackend) -> float | None:
    """The backend's requests per second (its HTTP client's ``HttpSettings.rate``); None when nothing limits
    it: a local engine, or an HTTP backend run with --rate 0."""
    if isinstance(corpus, HttpBackend):
        rate = corpus.client.settings.rate
        return float(rate) if rate > 0 else None
    return None


def default_max_tokens(corpus: CorpusBackend, options: ProvenanceOptions | None = None, *,
                       models: int = 1) -> int | None:
    """FPs per model a run takes when --max-tokens is not given: None (all) without a rate limit; else as many
    as fit in ``BUDGET_SECONDS`` at the backend's rate, after the baseline's positions, with ``models`` models
    sharing the index (and so the hour), at the cost ``fp_cost(options)`` per FP; at least 1.

    At the defaults (ladder 10, so L = 2; K = 1; D = 20; 1,000 baseline positions; 2 requests/s) one FP costs
    4 + 4 + 4 + 84 = 96 requests and the hour holds 7,200, so (7,200 - 1,000) / 96 = 64 FPs; with --docs 0,
    12 requests and 516 FPs. The number does not depend on the cache, so a rerun takes the same sample."""
    rate = backend_rate(corpus)
    if rate is None:
        return None
    options = (options or ProvenanceOptions()).for_backend(corpus.backend)
    budget = rate * BUDGET_SECONDS - options.baseline_positions
    return max(1, int(budget / max(1, models) // fp_cost(options).requests))


def estimate_run(corpus: CorpusBackend, selection: FpSelection | Sequence[FpSelection],
                 options: ProvenanceOptions, *, cached_queries: int = 0, pending_queries: int | None = None,
                 pool_pending: int | None = None, controls_pending: int | None = None,
                 pending_docs: int | None = None, baseline_missing: int | None = None,
                 pool_candidates: int | None = None) -> RunEstimate:
    """What a run will send to the corpus's index for these selections (one per model), from the options and
    the cache state the caller read; pure: nothing is read or sent (the corpus gives its index name and rate).

    Each part is what the caller says the cache lacks, or, left None, its upper bound from ``fp_cost``:

    * ``pending_queries``: the FPs' ladder queries (exact from the plan); bound fps x L x S less
      ``cached_queries``, at least 0;
    * ``pool_pending``: the candidate controls' unigram queries (exact once the pool is chosen, which needs no
      request); bound fps x 4 K;
    * ``controls_pending``: the controls' ladder queries (exact once drawn: from cached pool counts the draw
      needs no request); bound fps x K x L x S;
    * ``pending_docs``: finds and documents (exact for counted queries: the missing ones); bound fps x (1 + K)
      x S x (1 + D);
    * ``baseline_missing``: baseline positions (None: all ``options.baseline_positions``).

    So only a caller that passes every part can report 0 to send. Controls: K per FP at most, and never more
    than the ``pool_candidates`` they are drawn from (controls are distinct until the pool is used up: with a
    large K on a local index the pool, not K, bounds them and their queries and documents); the rate:
    ``backend_rate(corpus)``.
    """
    selections = [selection] if isinstance(selection, FpSelection) else list(selection)
    options = options.for_backend(corpus.backend)
    fps = sum(len(s.tokens) for s in selections)
    cost = fp_cost(options)
    if len(selections) == 1:
        rule = selections[0].rule
    else:
        rule = "; ".join(f"{s.model}: {s.rule}" for s in selections)
    fp_part = pending_queries if pending_queries is not None else max(0, fps * cost.fp_queries - cached_queries)
    pool_part = pool_pending if pool_pending is not None else fps * cost.pool_queries
    controls = fps * options.controls if pool_candidates is None else min(fps * options.controls, pool_candidates)
    per_control = cost.control_queries // options.controls if options.controls else 0   # L x S
    control_part = controls_pending if controls_pending is not None else controls * per_control
    docs_each = cost.doc_requests // (1 + options.controls)                             # S x (1 + D)
    docs = pending_docs if pending_docs is not None else (fps + controls) * docs_each
    baseline = options.baseline_positions if baseline_missing is None else baseline_missing
    return RunEstimate(index_name=corpus.index_name, fp_total=sum(s.total for s in selections), fps=fps,
                       sample_rule=rule, controls=controls,
                       count_queries=fp_part + pool_part + control_part, cached_queries=cached_queries,
                       doc_requests=docs, baseline_requests=baseline, rate=backend_rate(corpus),
                       controls_per_fp=options.controls or 0)


def power_line(estimate: RunEstimate) -> str | None:
    """What the run's K lets the per-token repetition rule do, said with the plan; None without controls."""
    p, fire = estimate.smallest_p, estimate.bin_fps_to_fire
    if p is None or fire is None:
        return None
    can = ("can fire in every bin" if fire == 1 else
           f"can fire only in frequency bins of {fire}+ FPs (--controls "
           f"{math.ceil(round(1 / estimate.q_threshold - 1, 9))} for every bin)")
    return (f"power: {estimate.controls_per_fp} control(s) per FP; smallest attainable p per FP alone in its bin "
            f"1/(1+K) = {p:.3g}; repetition_enriched (q <= {estimate.q_threshold:g}) {can}")


def over_budget(estimate: RunEstimate) -> bool:
    """Whether the estimate takes longer than the hour a default run is sized for."""
    return estimate.seconds is not None and estimate.seconds > BUDGET_SECONDS

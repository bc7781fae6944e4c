"""Matched controls for one model's FPs in one index: the candidate pool (non-FP ids of the model's primary
scan, from the ``vocabulary`` table), the unigram counts that match them (count queries, cached like every
other), and the draw itself (``fpprov.evidence.controls``: same frequency bin and category, K per FP, seeded).

A candidate is any scanned id that is no FP of any complete scan of the model, has a text form and a known,
tight emitted run (``spellings``: a loose run is out of the statistics for FPs and controls alike); on a
rate-limited backend the pool is a seeded uniform sample of ``POOL_PER_CONTROL`` candidates per control
wanted, so it pays for a few unigram counts per FP instead of the whole vocabulary's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..corpus.base import CorpusBackend
from ..evidence.controls import ControlCandidate, MatchResult, draw_matched_controls
from ..db.store import Store
from .options import ProvenanceOptions
from .plan import FpToken, no_text_reason
from .spellings import Speller

POOL_PER_CONTROL = 4
NOT_QUERYABLE = "not_queryable"
LOOSE_SPELLING = "loose_spelling"
COUNT_FAILED = "count_failed"


@dataclass(frozen=True)
class Exclusion:
    token_id: int
    role: str          # 'fp' | 'control'
    reason: str


@dataclass
class ControlDraw:
    """The draw for one (model, index): its matches, the control tokens and what was kept out."""

    match: MatchResult | None
    controls: list[FpToken] = field(default_factory=list)
    exclusions: list[Exclusion] = field(default_factory=list)
    unigram_counts: dict[int, int] = field(default_factory=dict)   # token id -> count(text once), FPs and controls


def unit_query(token: FpToken, corpus: CorpusBackend) -> str | None:
    """The token's text once, as the backend would be sent it; None when it has no queryable text."""
    if no_text_reason(token) is not None:
        return None
    assert token.text is not None
    if corpus.repeated_reason(token.text, 1) or corpus.unqueryable_reason(token.text):
        return None
    return token.text


def candidate_pool(store: Store, model: str, size: int | None, seed: int,
                   speller: Speller | None = None) -> list[FpToken]:
    """Non-FP ids of the model's primary scan with a text form and, given a speller, a known tight emitted run
    (all, or a seeded uniform sample of ``size``)."""
    rows = store.query(
        "SELECT v.token_id, v.text, v.category FROM vocabulary v "
        "JOIN primary_scans p ON p.model = v.model JOIN scans s ON s.scan_id = p.scan_id "
        "WHERE v.model = ? AND v.token_id >= s.id_start AND v.token_id < s.id_stop "
        "AND v.token_id NOT IN (SELECT f.token_id FROM token_fps f JOIN scans c ON c.scan_id = f.scan_id "
        "                       WHERE f.model = ? AND c.complete) "
        "ORDER BY v.token_id", [model, model])
    pool = [FpToken(model, int(i), text, category) for i, text, category in rows]
    pool = [t for t in pool if no_text_reason(t) is None]
    if speller is not None:
        pool = [t for t in pool if speller.usable(t.token_id, t.text or "")]
    if size is not None and size < len(pool):
        rng = np.random.default_rng([seed, 0xC0, len(model)])
        keep = np.sort(rng.choice(len(pool), size=size, replace=False))
        pool = [pool[i] for i in keep]
    return pool


def ok_counts(store: Store, corpus: CorpusBackend, queries: list[str]) -> dict[str, int]:
    """The cached 'ok' count of each query that has one."""
    if not queries:
        return {}
    rows = store.query(
        "SELECT query, count FROM ngram_counts WHERE backend = ? AND index_name = ? AND status = 'ok' "
        "AND query IN (SELECT unnest(?::VARCHAR[]))", [corpus.backend, corpus.index_name, list(set(queries))])
    return {q: int(c) for q, c in rows}


@dataclass
class PoolPlan:
    """The unigram queries a draw needs: the FPs' texts once and the candidate pool's (chosen without a request)."""

    fps: list[FpToken]
    fp_units: dict[int, str | None]
    pool: list[FpToken]
    pool_units: dict[int, str | None]
    kept_out: dict[int, str] = field(default_factory=dict)   # FP id -> why its emitted run is not compared

    @property
    def queries(self) -> list[str]:
        return list(dict.fromkeys(q for q in [*self.fp_units.values(), *self.pool_units.values()] if q is not None))


def plan_pool(store: Store, corpus: CorpusBackend, fps: list[FpToken], capped: bool,
              options: ProvenanceOptions, speller: Speller | None = None) -> PoolPlan:
    """The FPs' and the candidates' unigram queries; ``capped``: a pool of ``POOL_PER_CONTROL`` per control
    wanted (a rate-limited backend), else every candidate."""
    if not fps or options.controls == 0:
        return PoolPlan(fps, {}, [], {})
    pool_size = POOL_PER_CONTROL * options.controls * len(fps) if capped else None
    pool = candidate_pool(store, fps[0].model, pool_size, options.seed, speller)
    kept_out = {}
    for t in fps if speller is not None else []:
        if unit_query(t, corpus) is not None and not speller.usable(t.token_id, t.text or ""):
            unknown = speller.run(t.token_id, t.text or "", 2)[0] is None
            kept_out[t.token_id] = NOT_QUERYABLE if unknown else LOOSE_SPELLING
    return PoolPlan(fps, {t.token_id: unit_query(t, corpus) for t in fps}, pool,
                    {t.token_id: unit_query(t, corpus) for t in pool}, kept_out)


def draw_from_counts(plan: PoolPlan, counts: dict[str, int], options: ProvenanceOptions) -> ControlDraw:
    """K matched controls per FP from the pool's stored unigram counts; sends nothing."""
    draw = ControlDraw(match=None)
    if options.controls == 0 or not plan.fps:
        return draw
    fp_candidates = []
    for t in plan.fps:
        unit = plan.fp_units[t.token_id]
        if unit is None:
            draw.exclusions.append(Exclusion(t.token_id, "fp", NOT_QUERYABLE))
        elif t.token_id in plan.kept_out:
            draw.exclusions.append(Exclusion(t.token_id, "fp", plan.kept_out[t.token_id]))
        elif unit not in counts:   # a failed count is never a 0: the FP waits for the next run
            draw.exclusions.append(Exclusion(t.token_id, "fp", COUNT_FAILED))
        else:
            fp_candidates.append(ControlCandidate(t.token_id, t.category, counts[unit], t.text))
    by_id = {t.token_id: t for t in plan.pool}
    candidates = [ControlCandidate(t.token_id, t.category, counts[u], t.text)
                  for t in plan.pool if (u := plan.pool_units[t.token_id]) is not None and u in counts]
    draw.match = draw_matched_controls(fp_candidates, candidates, k=options.controls, seed=options.seed,
                                       bin_width=options.bin_width)
    draw.exclusions += [Exclusion(u.token_id, "fp", u.reason) for u in draw.match.unmatched]
    chosen = sorted({m.control_token_id for m in draw.match.matches})
    draw.controls = [by_id[i] for i in chosen]
    draw.unigram_counts = {c.token_id: c.unigram_count for c in fp_candidates}
    chosen_ids = set(chosen)
    draw.unigram_counts.update({c.token_id: c.unigram_count for c in candidates if c.token_id in chosen_ids})
    return draw

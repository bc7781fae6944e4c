"""Where a token's matching documents come from, against where the corpus's text comes from.

* Share of a source among the k sampled matching documents: ``k_s / k`` with the Wilson 95% interval
  (``scipy.stats.binomtest(k_s, k).proportion_ci(method="wilson")``), defined for k_s = 0 and k_s = k.
* Corpus baseline share: the same share among the documents found at N uniformly random token positions of the
  index. ``sample_baseline_positions`` draws those positions: a global position uniform over all tokens of all
  shards (so each shard is weighted by its size), returned as (shard, rank within the shard); resolving a
  position to its document and source is the backend's job. A random position lands in a document with
  chance proportional to the document's length, so the baseline is the share of corpus *text* by source, which
  is what occurrence-sampled matching documents are compared with: a source holding much text will hold many
  matches by size alone. Positions are drawn with replacement.
* Enrichment = share / baseline share. Its CI is the interval of the ratio itself: ``scipy.stats.bootstrap``
  resampling the matching documents and the baseline positions independently, percentile method, seeded -- not
  the ratio of the two Wilson intervals. One bootstrap gives every source's interval (same resamples). When
  the source never appears at a baseline position the enrichment is NaN with a reason; when it appears but
  some resamples miss it, those resamples count as +inf, so the upper bound may be +inf (see ``intervals``).
* A document with no source field is counted under ``UNKNOWN_SOURCE``.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from .effect import share_ratio_interval
from .intervals import CONFIDENCE, N_RESAMPLES, bootstrap_cis, wilson_interval

UNKNOWN_SOURCE = "(unknown)"


@dataclass(frozen=True)
class SourceShare:
    source: str
    k: int                 # documents (or positions) from this source
    n: int                 # all documents (or positions)
    share: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class BaselinePosition:
    shard: int
    rank: int              # token position inside the shard, 0 <= rank < shard size


@dataclass(frozen=True)
class SourceEnrichment:
    source: str
    k_docs: int
    n_docs: int
    share: float
    k_baseline: int
    n_baseline: int
    baseline_share: float
    enrichment: float
    ci_low: float
    ci_high: float
    reason: str | None = None


def _labels(sources: Sequence[str | None]) -> list[str]:
    return [UNKNOWN_SOURCE if s is None or s == "" else str(s) for s in sources]


def wilson_share(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """``(k / n, low, high)``: the share and its Wilson interval; all NaN when n is 0."""
    if n == 0:
        return math.nan, math.nan, math.nan
    return (k / n, *wilson_interval(k, n, confidence))


def source_shares(sources: Sequence[str | None], confidence: float = CONFIDENCE) -> list[SourceShare]:
    """Each source's share among the given documents with its Wilson interval; most frequent first."""
    labels = _labels(sources)
    n = len(labels)
    counts = Counter(labels)
    return [SourceShare(s, k, n, *wilson_share(k, n, confidence))
            for s, k in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def sample_baseline_positions(shard_sizes: Sequence[int], n: int, seed: int = 0) -> list[BaselinePosition]:
    """N positions uniform over all tokens of all shards (with replacement), as (shard, rank)."""
    sizes = np.asarray(list(shard_sizes), dtype=np.int64)
    if n < 0:
        raise ValueError(f"the number of baseline positions cannot be negative (got {n})")
    if (sizes < 0).any():
        raise ValueError("shard sizes cannot be negative")
    if n == 0:
        return []
    total = int(sizes.sum())
    if total == 0:
        raise ValueError("the index has no tokens to draw baseline positions from")
    ends = np.cumsum(sizes)                                        # (S,)
    u = np.random.default_rng(seed).integers(0, total, size=n)    # (N,) global positions
    shard = np.searchsorted(ends, u, side="right")                 # (N,) empty shards are never chosen
    rank = u - (ends[shard] - sizes[shard])                        # (N,)
    return [BaselinePosition(int(s), int(r)) for s, r in zip(shard, rank)]


def _shares(codes: np.ndarray, n_codes: int) -> np.ndarray:
    """Share of each code along the last axis: (..., n) integer codes -> (n_codes, ...) shares."""
    lead = codes.shape[:-1]
    rows = codes.reshape(-1, codes.shape[-1])                                   # (R, n)
    offsets = np.arange(rows.shape[0])[:, None] * n_codes                       # (R, 1)
    counts = np.bincount((rows + offsets).ravel(), minlength=rows.shape[0] * n_codes)
    shares = counts.reshape(rows.shape[0], n_codes) / rows.shape[1]             # (R, n_codes)
    return np.moveaxis(shares.reshape(*lead, n_codes), -1, 0)                   # (n_codes, ...)


def _enrichments(n_codes: int) -> Callable[..., np.ndarray]:
    def statistic(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        x, y = np.moveaxis(x, axis, -1).astype(np.int64), np.moveaxis(y, axis, -1).astype(np.int64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return _shares(x, n_codes) / _shares(y, n_codes)                   # (n_codes, ...)
    return statistic


def source_enrichment(doc_sources: Sequence[str | None], baseline_sources: Sequence[str | None], seed: int = 0,
                      n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE) -> list[SourceEnrichment]:
    """Per source seen in either sample: share among the documents over the baseline share, with a bootstrap CI.

    All sources' intervals come from one bootstrap (the same resamples), so they are consistent with each other.
    """
    docs, base = _labels(doc_sources), _labels(baseline_sources)
    dc, bc = Counter(docs), Counter(base)
    order = sorted(set(dc) | set(bc), key=lambda s: (-dc[s], s))
    cis: list[tuple[float, float]] = [(math.nan, math.nan)] * len(order)
    few = len(docs) < 2 or len(base) < 2
    if not few:
        code = {s: i for i, s in enumerate(order)}
        x = np.array([code[s] for s in docs], dtype=np.int64)      # (n_docs,)
        y = np.array([code[s] for s in base], dtype=np.int64)      # (n_baseline,)
        cis = bootstrap_cis(x, y, _enrichments(len(order)), seed, n_resamples, confidence)
    out = []
    for s, (lo, hi) in zip(order, cis):
        k, kb = dc[s], bc[s]
        share = k / len(docs) if docs else math.nan
        bshare = kb / len(base) if base else math.nan
        reason = None
        if not docs:
            reason = "no matching document"
        elif not base:
            reason = "no baseline position"
        elif kb == 0:
            reason = "source not seen at any baseline position: enrichment undefined"
        if reason is not None:
            out.append(SourceEnrichment(s, k, len(docs), share, kb, len(base), bshare, math.nan, math.nan,
                                        math.nan, reason))
            continue
        if few:
            reason = "fewer than 2 documents or baseline positions: no bootstrap CI"
        out.append(SourceEnrichment(s, k, len(docs), share, kb, len(base), bshare, share / bshare, lo, hi, reason))
    return out


def token_source_enrichment(doc_sources: Sequence[str | None], baseline_sources: Sequence[str | None],
                            confidence: float = CONFIDENCE) -> list[SourceEnrichment]:
    """Per source among one token's documents: enrichment over the baseline with the joint Wilson interval of the
    ratio of two shares (``effect.share_ratio_interval``: valid when every sampled document has one source, its
    upper end at most 1 / the baseline share's lower end).

    The cheap interval for one token's handful of documents (thousands of tokens per run, where a bootstrap
    each would cost seconds); the pooled comparison keeps ``source_enrichment``'s bootstrap. Sources absent from
    the token's documents are not listed. (It replaces the Katz log interval of
    ``scipy.stats.contingency.relative_risk``, which collapses at a share of 100%.)
    """
    docs, base = _labels(doc_sources), _labels(baseline_sources)
    dc, bc = Counter(docs), Counter(base)
    out = []
    for s, k in sorted(dc.items(), key=lambda kv: (-kv[1], kv[0])):
        kb = bc[s]
        bshare = kb / len(base) if base else math.nan
        if not base:
            out.append(SourceEnrichment(s, k, len(docs), k / len(docs), 0, 0, bshare, math.nan, math.nan, math.nan,
                                        "no baseline position"))
            continue
        if kb == 0:
            out.append(SourceEnrichment(s, k, len(docs), k / len(docs), 0, len(base), 0.0, math.nan, math.nan,
                                        math.nan, "source not seen at any baseline position: enrichment undefined"))
            continue
        ratio, low, high = share_ratio_interval(k, len(docs), kb, len(base), confidence)
        out.append(SourceEnrichment(s, k, len(docs), k / len(docs), kb, len(base), bshare, ratio, low, high, None))
    return out

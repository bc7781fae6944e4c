"""Effect sizes before significance, and intervals that stay valid at 0% and 100%.

* **When a difference is claimed** (``effect_verdict``): with thousands of tokens, most rates exactly 0, an AUC
  of 0.503 can have a CI that excludes 0.5. fpprov claims that FPs repeat more (or less) than their matched
  controls only when the effect is *meaningful*, |AUC - 0.5| >= ``MEANINGFUL_AUC`` (0.05: one FP-control pair in
  ten ordered the other way than a coin would), *and* its 95% CI excludes 0.5, over at least ``MIN_TOKENS`` (20)
  tokens on each side. Fewer tokens, or no CI, is "too few to say"; otherwise "no meaningful difference".
* **Share of tokens with any n-fold run** (``share_difference``): FPs with count(t x n) > 0 out of n_fp against
  the same share of controls, the difference with Newcombe's hybrid score interval (Wilson intervals of each
  share combined; valid at 0 and 1), the measure that reads directly when almost every rate is 0.
* **A source's share over the corpus share** (``share_ratio_interval``): the share k / n among a token's sampled
  documents over the source's share kb / nb of the baseline positions. Each share gets a Wilson interval at
  confidence sqrt(0.95) (the two are independent, so both hold together with probability >= 0.95) and the ratio's
  interval is [share low / baseline high, share high / baseline low]. It stays defined at k = 0 and k = n (where
  the Katz log interval collapses) and its upper end is at most 1 / baseline low, the largest ratio any share can
  give with a baseline inside its interval.
* **Sources specific to FPs** (``source_contrast``): per source, FP documents from it vs control documents from
  it (the same sampling: the run samples the controls' documents like the FPs'), Fisher's exact test (one-sided,
  FPs more) and the conditional odds ratio with its exact 95% CI (``scipy.stats.contingency.odds_ratio``),
  Benjamini-Hochberg over the sources. When no control's run was sampled at all (no control repeats) there is
  nothing to contrast: the statistics are NaN and a token's source flag rests on the corpus baseline alone, since
  its FP evidence already exceeds what the controls show (nothing).

scipy is imported inside the functions (a fast CLI start).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from collections import Counter
from typing import Sequence

from .intervals import CONFIDENCE, wilson_interval

MEANINGFUL_AUC = 0.05      # |AUC - 0.5| below this is no meaningful difference, whatever the CI
MIN_TOKENS = 20            # tokens per side below which a comparison is "too few to say"
CONTRAST_Q = 0.05          # BH q at which a source counts as FP-specific (FP documents vs control documents)

MORE, LESS, NONE, TOO_FEW = "more", "less", "no meaningful difference", "too few to say"


def _missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def effect_verdict(auc: float | None, low: float | None, high: float | None, n_fp: int | None,
                   n_control: int | None) -> str:
    """'more' | 'less' | 'no meaningful difference' | 'too few to say' (the rule in the module docstring)."""
    if (_missing(auc) or _missing(low) or _missing(high) or (n_fp or 0) < MIN_TOKENS
            or (n_control or 0) < MIN_TOKENS):
        return TOO_FEW
    if auc - 0.5 >= MEANINGFUL_AUC and low > 0.5:
        return MORE
    if 0.5 - auc >= MEANINGFUL_AUC and high < 0.5:
        return LESS
    return NONE


def too_few(n_fp: int | None, n_control: int | None, low: float | None = 0.0, high: float | None = 0.0) -> bool:
    """A statistic from fewer than MIN_TOKENS tokens on a side, or without a CI: shown greyed, 'too few to say'."""
    return (n_fp or 0) < MIN_TOKENS or (n_control or 0) < MIN_TOKENS or _missing(low) or _missing(high)


@dataclass(frozen=True)
class ShareDifference:
    k_fp: int
    n_fp: int
    k_control: int
    n_control: int
    difference: float          # k_fp / n_fp - k_control / n_control
    low: float
    high: float


def share_difference(k_fp: int, n_fp: int, k_control: int, n_control: int,
                     confidence: float = CONFIDENCE) -> ShareDifference:
    """Difference of two shares with Newcombe's hybrid score (Wilson) interval; NaN when a side is empty."""
    if n_fp == 0 or n_control == 0:
        return ShareDifference(k_fp, n_fp, k_control, n_control, math.nan, math.nan, math.nan)
    p1, p2 = k_fp / n_fp, k_control / n_control
    l1, u1 = wilson_interval(k_fp, n_fp, confidence)
    l2, u2 = wilson_interval(k_control, n_control, confidence)
    d = p1 - p2
    return ShareDifference(k_fp, n_fp, k_control, n_control, d,
                           d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
                           d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


def share_ratio_interval(k: int, n: int, kb: int, nb: int,
                         confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """``(ratio, low, high)`` of (k / n) / (kb / nb): joint Wilson intervals (each at sqrt(confidence)) divided
    crosswise; NaN when n, nb or kb is 0."""
    if n == 0 or nb == 0 or kb == 0:
        return math.nan, math.nan, math.nan
    each = math.sqrt(confidence)
    sl, sh = wilson_interval(k, n, each)
    bl, bh = wilson_interval(kb, nb, each)
    return (k / n) / (kb / nb), sl / bh, sh / bl


@dataclass(frozen=True)
class SourceContrast:
    source: str
    fp_docs: int
    fp_sampled: int
    control_docs: int
    control_sampled: int
    odds_ratio: float          # conditional MLE; inf when no control document comes from the source
    or_low: float
    or_high: float
    p_value: float             # Fisher's exact test, one-sided (FPs' documents more often from the source)
    q_value: float             # Benjamini-Hochberg over the sources of the (model, index)


def source_contrast(fp_sources: Sequence[str], control_sources: Sequence[str],
                    confidence: float = CONFIDENCE) -> list[SourceContrast]:
    """Per source seen in either sample: FP documents vs control documents, Fisher's exact test and the exact
    conditional odds-ratio CI, BH over the sources; most FP documents first. Empty without FP documents; without
    control documents (no control repeats) every statistic is NaN: there is nothing to contrast."""
    from scipy import stats
    from scipy.stats.contingency import odds_ratio

    n1, n2 = len(fp_sources), len(control_sources)
    if n1 == 0:
        return []
    c1, c2 = Counter(fp_sources), Counter(control_sources)
    order = sorted(set(c1) | set(c2), key=lambda s: (-c1[s], s))
    if n2 == 0:
        # no control repeats: nothing to contrast, and nothing the controls show for the FPs to exceed
        nan = math.nan
        return [SourceContrast(s, c1[s], n1, 0, 0, nan, nan, nan, nan, nan) for s in order]
    rows = []
    for s in order:
        table = [[c1[s], n1 - c1[s]], [c2[s], n2 - c2[s]]]
        res = odds_ratio(table, kind="conditional")
        ci = res.confidence_interval(confidence_level=confidence)
        p = float(stats.fisher_exact(table, alternative="greater").pvalue)
        rows.append((s, c1[s], c2[s], float(res.statistic), float(ci.low), float(ci.high), p))
    qs = stats.false_discovery_control([r[-1] for r in rows], method="bh") if rows else []
    return [SourceContrast(s, k1, n1, k2, n2, o, lo, hi, p, float(q))
            for (s, k1, k2, o, lo, hi, p), q in zip(rows, qs)]

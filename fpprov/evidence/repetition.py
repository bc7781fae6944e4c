"""Self-repetition of a token's text in a corpus, and FP tokens compared with their matched controls.

The measure (the corpus analogue of the model's p(t | t)): for a token with text t, unigram count
``c1 = count(t)`` and ``cn = count(t x n)`` (t repeated n times, n >= 2),

    rate = (cn / c1) ** (1 / (n - 1))

Because every occurrence of t x (m+1) starts an occurrence of t x m, ``cn / c1`` is the product of the n - 1
continuation ratios ``count(t x (m+1)) / count(t x m)``, m = 1..n-1, so ``rate`` is their geometric mean: the
typical chance, in the corpus, that one more copy of t follows a run of copies. It lies in [0, 1], is 0 when
t x n never occurs, and is comparable across ladders with different n. It is undefined (NaN) when c1 = 0.

Per (model, index), FP vs control:

* AUC = U / (n_fp * n_control), U the Mann-Whitney statistic of the FP values (``scipy.stats.mannwhitneyu``).
  Ties count one half in U, the correction that matters here (many rates are exactly 0): AUC is the chance
  that a random FP's rate exceeds a random control's, ties counted one half; 0.5 is no difference. The
  one-sided p-value (FP greater) comes from the same call (``method="auto"``: exact for small samples without
  ties, otherwise the normal approximation with the tie-corrected variance).
* The AUC's 95% CI: ``scipy.stats.bootstrap`` resampling the FP and the control values independently
  (unpaired), percentile method, seeded (see ``intervals``).
* Median ratio = median(FP rates) / median(control rates), with a bootstrap CI the same way; NaN with a reason
  when the control median is 0 (common when most runs never occur).
* Controls are the distinct control tokens of the match (a control reused by two FPs counts once).

Per FP token: its values against the distinct controls of its frequency bin (all categories of that bin):

* ``percentile`` = 100 * (#controls with value < x + #controls tied with x / 2) / n, the mid-rank
  (``scipy.stats.percentileofscore(kind="mean")``): an FP tied with every control reads 50, not 0 (most
  rates are exactly 0, so ties are the rule), with the Wilson 95% CI of that share (the half-count of ties
  enters the interval as a fractional number of successes);
* one-sided p-value ``p = (1 + #controls with value >= x) / (1 + n)``: the empirical (rank) p-value of x
  among the bin's controls, valid when the FP's rate is exchangeable with theirs (no enrichment); ties count
  against the FP, so it is conservative, and its smallest value is 1 / (1 + n): a token can reach
  q <= q_max only if its bin holds at least 1 / q_max - 1 controls (19 at q_max = 0.05), so with k = 1 the
  per-token test has power only in bins with many FPs;
* the Benjamini-Hochberg q-value over the model's FPs with a defined p (``scipy.stats.false_discovery_control``).
NaN values (no unigram count), and FPs whose bin has no control, get NaN p and q with a reason and are not
counted in the BH family.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy import stats

from .intervals import CONFIDENCE, N_RESAMPLES, bootstrap_ci
from .controls import MatchResult


@dataclass(frozen=True)
class TokenValue:
    """One token's repetition rate with its frequency bin (the stratum it is compared within)."""
    token_id: int
    value: float
    bin: int


@dataclass(frozen=True)
class MatchedValues:
    fps: list[TokenValue]
    controls: list[TokenValue]


@dataclass(frozen=True)
class RepetitionComparison:
    auc: float
    auc_ci: tuple[float, float]
    p_value: float                  # one-sided Mann-Whitney, FP rates greater
    median_fp: float
    median_control: float
    median_ratio: float
    median_ratio_ci: tuple[float, float]
    n_fp: int
    n_control: int
    n_dropped: int                  # NaN values left out (both groups)
    reason: str | None = None       # why a field is NaN, when one is


@dataclass(frozen=True)
class TokenPercentile:
    token_id: int
    value: float
    bin: int
    n_controls: int                 # distinct controls in the token's bin
    percentile: float               # 100 * (controls below + half the controls tied) / bin controls
    percentile_ci: tuple[float, float]
    p_value: float
    q_value: float
    reason: str | None = None


@dataclass(frozen=True)
class RepetitionEvidence:
    """Everything item 2 gives for one (model, index): the group comparison, the per-FP rows, the kept-out FPs."""
    comparison: RepetitionComparison
    tokens: list[TokenPercentile]
    unmatched: dict[str, int]       # reason -> number of FPs kept out of the comparison


_NAN_CI = (math.nan, math.nan)


def self_repetition_rate(unigram_count: int, repeat_count: int, n: int) -> float:
    """``(count(t x n) / count(t)) ** (1 / (n - 1))``; NaN when count(t) is 0."""
    if n < 2:
        raise ValueError(f"the repetition rate needs n >= 2 (got {n})")
    if unigram_count < 0 or repeat_count < 0:
        raise ValueError("counts cannot be negative")
    if unigram_count == 0:
        return math.nan
    # A backend can count overlapping runs oddly on short texts; the rate is a probability, so cap it.
    return min(1.0, (repeat_count / unigram_count) ** (1.0 / (n - 1)))


def values_from_matches(match: MatchResult, rates: Mapping[int, float]) -> MatchedValues:
    """The matched FPs and the distinct controls with their rates (missing rates are NaN) and bins."""
    fps = [TokenValue(t, float(rates.get(t, math.nan)), b) for t, b in sorted(match.fp_bins.items())]
    controls = [TokenValue(t, float(rates.get(t, math.nan)), b) for t, b in sorted(match.control_bins().items())]
    return MatchedValues(fps, controls)


def _finite(values: Sequence[float]) -> np.ndarray:
    arr = np.asarray(values, dtype=float).ravel()
    return arr[np.isfinite(arr)]


def _auc(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    u = stats.mannwhitneyu(x, y, alternative="greater", axis=axis).statistic
    return u / (x.shape[axis] * y.shape[axis])


def _median_ratio(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.median(x, axis=axis) / np.median(y, axis=axis)


def compare_repetition(fp_values: Sequence[float], control_values: Sequence[float], seed: int = 0,
                       n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE) -> RepetitionComparison:
    """AUC of FP vs control rates with a bootstrap CI, and the median ratio with a bootstrap CI."""
    x, y = _finite(fp_values), _finite(control_values)
    dropped = len(np.ravel(fp_values)) + len(np.ravel(control_values)) - len(x) - len(y)
    med_x = float(np.median(x)) if len(x) else math.nan
    med_y = float(np.median(y)) if len(y) else math.nan
    if len(x) == 0 or len(y) == 0:
        which = "FP" if len(x) == 0 else "control"
        return RepetitionComparison(math.nan, _NAN_CI, math.nan, med_x, med_y, math.nan, _NAN_CI, len(x), len(y),
                                    dropped, f"no {which} value to compare")
    auc = float(_auc(x, y))
    p_value = float(stats.mannwhitneyu(x, y, alternative="greater").pvalue)
    reasons = []
    if med_y == 0:
        reasons.append("control median is 0: median ratio undefined")
        ratio = math.nan
    else:
        ratio = med_x / med_y
    if len(x) < 2 or len(y) < 2:
        reasons.append("fewer than 2 values in a group: no bootstrap CI")
        auc_ci, ratio_ci = _NAN_CI, _NAN_CI
    else:
        auc_ci = bootstrap_ci(x, y, _auc, seed, n_resamples, confidence)
        ratio_ci = _NAN_CI if math.isnan(ratio) else bootstrap_ci(x, y, _median_ratio, seed, n_resamples,
                                                                   confidence)
    return RepetitionComparison(auc, auc_ci, p_value, med_x, med_y, ratio, ratio_ci, len(x), len(y), dropped,
                                "; ".join(reasons) or None)


def token_percentiles(fps: Sequence[TokenValue], controls: Sequence[TokenValue],
                      confidence: float = CONFIDENCE) -> list[TokenPercentile]:
    """Each FP's percentile among its bin's controls, its one-sided p-value and its BH q-value (in FP order)."""
    by_bin: dict[int, list[float]] = defaultdict(list)
    for c in controls:
        if math.isfinite(c.value):
            by_bin[c.bin].append(c.value)
    rows: list[tuple[TokenValue, int, float, tuple[float, float], float, str | None]] = []
    for f in fps:
        pool = np.asarray(by_bin.get(f.bin, []), dtype=float)
        n = len(pool)
        if not math.isfinite(f.value):
            rows.append((f, n, math.nan, _NAN_CI, math.nan, "no repetition rate (unigram count 0 or missing)"))
            continue
        if n == 0:
            rows.append((f, 0, math.nan, _NAN_CI, math.nan, "no control with a rate in this frequency bin"))
            continue
        below = int((pool < f.value).sum())
        ties = int((pool == f.value).sum())
        low, high = wilson_share_interval(below + ties / 2, n, confidence)
        pct = float(stats.percentileofscore(pool, f.value, kind="mean"))
        p = (1 + n - below) / (1 + n)
        rows.append((f, n, pct, (100 * low, 100 * high), p, None))
    ps = np.array([r[4] for r in rows], dtype=float)
    qs = np.full(len(rows), math.nan)
    tested = np.isfinite(ps)
    if tested.any():
        qs[tested] = stats.false_discovery_control(ps[tested], method="bh")
    return [TokenPercentile(f.token_id, f.value, f.bin, n, pct, ci, p, float(q), reason)
            for (f, n, pct, ci, p, reason), q in zip(rows, qs)]


def wilson_share_interval(successes: float, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of the share successes / n, for a count that may be a half-integer (a mid-rank
    counts ties one half); the closed form, equal to ``wilson_interval`` at whole counts."""
    if n == 0:
        return math.nan, math.nan
    z = float(stats.norm.ppf(1 - (1 - confidence) / 2))
    share = successes / n
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def repetition_evidence(match: MatchResult, rates: Mapping[int, float], seed: int = 0,
                        n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE) -> RepetitionEvidence:
    """``compare_repetition`` and ``token_percentiles`` on the matched FPs and their distinct controls."""
    mv = values_from_matches(match, rates)
    comparison = compare_repetition([v.value for v in mv.fps], [v.value for v in mv.controls], seed,
                                    n_resamples, confidence)
    return RepetitionEvidence(comparison, token_percentiles(mv.fps, mv.controls, confidence),
                              match.unmatched_counts())

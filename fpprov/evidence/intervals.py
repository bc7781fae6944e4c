"""The interval helpers of the evidence package: Wilson for a share, a seeded percentile bootstrap otherwise.

Wilson: ``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``, defined at k = 0 and k = n; cached per
(k, n, confidence) because per-token percentiles ask for the same few (k, n) many times.

Bootstrap: ``scipy.stats.bootstrap`` resamples each of the two samples independently (unpaired),
``n_resamples`` times (default 2000), and takes the percentile interval: it stays inside the statistic's range
(an AUC interval inside [0, 1]) and is defined when the bootstrap distribution is degenerate (every value tied),
where BCa is not. A statistic may return several values at once (one per source); each gets its interval from
the same resamples. A ratio can divide by zero in some resamples; those count as +inf (0/0 ones are left out),
so an interval may be unbounded above but is never NaN while any resample is defined.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache
from typing import Callable

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
N_RESAMPLES = 2000
_BATCH = 250          # resamples held in memory at once: (250, n) arrays, whatever n_resamples is


def bootstrap_cis(x: np.ndarray, y: np.ndarray, statistic: Callable[..., np.ndarray], seed: int,
                  n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE) -> list[tuple[float, float]]:
    """Percentile bootstrap intervals of each output of ``statistic(x, y, axis=-1)`` (vectorized), seeded."""
    with warnings.catch_warnings():
        # A degenerate bootstrap distribution (all ties) is a defined answer here, not a problem to report.
        warnings.simplefilter("ignore")
        res = stats.bootstrap((x, y), statistic, vectorized=True, paired=False, n_resamples=n_resamples,
                              batch=_BATCH, method="percentile", confidence_level=confidence,
                              rng=np.random.default_rng(seed))
    lows = np.atleast_1d(np.asarray(res.confidence_interval.low, dtype=float))             # (K,)
    highs = np.atleast_1d(np.asarray(res.confidence_interval.high, dtype=float))           # (K,)
    dists = np.asarray(res.bootstrap_distribution, dtype=float).reshape(len(lows), -1)    # (K, n_resamples)
    alpha = (1 - confidence) / 2
    out = []
    for low, high, dist in zip(lows, highs, dists):
        if (math.isfinite(low) and math.isfinite(high)) or not np.isinf(dist).any():
            out.append((float(low), float(high)))
            continue
        # numpy's interpolation between inf and inf is NaN: take order statistics of the defined resamples.
        defined = dist[~np.isnan(dist)]
        if len(defined) == 0:
            out.append((math.nan, math.nan))
            continue
        out.append((float(np.quantile(defined, alpha, method="lower")),
                    float(np.quantile(defined, 1 - alpha, method="higher"))))
    return out


def bootstrap_ci(x: np.ndarray, y: np.ndarray, statistic: Callable[..., np.ndarray], seed: int,
                 n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile bootstrap interval of a one-valued ``statistic(x, y, axis=-1)`` (vectorized), seeded."""
    return bootstrap_cis(x, y, statistic, seed, n_resamples, confidence)[0]


@lru_cache(maxsize=65536)
def wilson_interval(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson interval of the share k / n; NaN when n is 0."""
    if n == 0:
        return math.nan, math.nan
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)

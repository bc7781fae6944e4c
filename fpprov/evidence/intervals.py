"""The interval helpers of the evidence package: Wilson for a share, a seeded percentile bootstrap otherwise.

Wilson: ``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``, defined at k = 0 and k = n; cached per
(k, n, confidence) because per-token percentiles ask for the same few (k, n) many times.

Bootstrap: ``scipy.stats.bootstrap`` resamples each sample independently (unpaired), ``n_resamples`` times, and takes the
percentile interval: it stays inside the statistic's range (an AUC interval inside [0, 1]) and is defined when
the bootstrap distribution is degenerate (every value tied), where BCa is not. A ratio statistic can divide by
zero in some resamples; those resamples count as +inf (0/0 ones are left out), so the interval may be
unbounded above but is never NaN while any resample is defined.
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


def bootstrap_ci(x: np.ndarray, y: np.ndarray, statistic: Callable[..., np.ndarray], seed: int,
                 n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(x, y, axis=-1)`` (vectorized), seeded."""
    with warnings.catch_warnings():
        # A degenerate bootstrap distribution (all ties) is a defined answer here, not a problem to report.
        warnings.simplefilter("ignore")
        res = stats.bootstrap((x, y), statistic, vectorized=True, paired=False, n_resamples=n_resamples,
                              method="percentile", confidence_level=confidence,
                              rng=np.random.default_rng(seed))
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    dist = np.asarray(res.bootstrap_distribution, dtype=float)    # (n_resamples,)
    if np.isfinite(low) and np.isfinite(high) or not np.isinf(dist).any():
        return low, high
    # numpy's interpolation between inf and inf is NaN: take order statistics of the defined resamples instead.
    defined = dist[~np.isnan(dist)]
    if len(defined) == 0:
        return math.nan, math.nan
    alpha = (1 - confidence) / 2
    return (float(np.quantile(defined, alpha, method="lower")),
            float(np.quantile(defined, 1 - alpha, method="higher")))


@lru_cache(maxsize=65536)
def wilson_interval(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson interval of the share k / n; NaN when n is 0."""
    if n == 0:
        return math.nan, math.nan
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)

"""Flags: the FP tokens whose corpus evidence stands out, each with a reason that states the numbers.

A token is flagged

* ``repetition``: when its self-repetition rate is enriched over the matched controls of its frequency bin at
  BH q <= ``q_max`` (default 0.05). Effect = its percentile among those controls (100 * share of controls
  strictly below it), CI = the Wilson interval of that share, n = the number of bin controls.
* ``source``: when one source's enrichment (share among the token's matching documents / corpus baseline share)
  has a CI lower bound >= ``enrichment_ci_low_min`` (default 2) and that source holds at least
  ``min_source_docs`` (default 5) of the token's sampled matching documents. Effect = the enrichment, CI = its
  bootstrap interval, n = the number of matching documents.

Nothing here reads or writes storage; ``Flag`` rows are what the coordinator stores and reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from .repetition import TokenPercentile
from .sources import SourceEnrichment

REPETITION = "repetition"
SOURCE = "source"


@dataclass(frozen=True)
class FlagThresholds:
    q_max: float = 0.05
    enrichment_ci_low_min: float = 2.0
    min_source_docs: int = 5

    def __post_init__(self) -> None:
        if not 0 < self.q_max <= 1:
            raise ValueError(f"q_max must be in (0, 1] (got {self.q_max})")
        if not self.enrichment_ci_low_min > 0:
            raise ValueError(f"enrichment_ci_low_min must be positive (got {self.enrichment_ci_low_min})")
        if self.min_source_docs < 1:
            raise ValueError(f"min_source_docs must be at least 1 (got {self.min_source_docs})")


@dataclass(frozen=True)
class Flag:
    token_id: int
    kind: str                  # REPETITION or SOURCE
    effect: float
    ci_low: float
    ci_high: float
    n: int
    reason: str
    q_value: float | None = None
    source: str | None = None


def _num(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.3g}"


def repetition_flag(tp: TokenPercentile, thresholds: FlagThresholds = FlagThresholds()) -> Flag | None:
    """A ``repetition`` flag for one FP token, or None when its q-value is missing or over the threshold."""
    if not math.isfinite(tp.q_value) or tp.q_value > thresholds.q_max:
        return None
    low, high = tp.percentile_ci
    reason = (f"repetition rate {_num(tp.value)} is above {tp.percentile:.1f}% of the {tp.n_controls} matched "
              f"controls in frequency bin {tp.bin} (95% CI {low:.1f}-{high:.1f}%), p = {tp.p_value:.3g}, "
              f"BH q = {tp.q_value:.3g} <= {thresholds.q_max:g}")
    return Flag(tp.token_id, REPETITION, tp.percentile, low, high, tp.n_controls, reason, q_value=tp.q_value)


def source_flags(token_id: int, enrichments: Iterable[SourceEnrichment],
                 thresholds: FlagThresholds = FlagThresholds()) -> list[Flag]:
    """One ``source`` flag per source enriched for this token past the thresholds."""
    out = []
    for e in enrichments:
        if not math.isfinite(e.ci_low) or e.ci_low < thresholds.enrichment_ci_low_min:
            continue
        if e.k_docs < thresholds.min_source_docs:
            continue
        reason = (f"source {e.source!r} holds {e.k_docs} of {e.n_docs} matching documents "
                  f"({100 * e.share:.1f}%) against {100 * e.baseline_share:.2f}% of {e.n_baseline} baseline "
                  f"positions: enrichment {_num(e.enrichment)}x (95% CI {_num(e.ci_low)}-{_num(e.ci_high)}), "
                  f"lower bound >= {thresholds.enrichment_ci_low_min:g}")
        out.append(Flag(token_id, SOURCE, e.enrichment, e.ci_low, e.ci_high, e.n_docs, reason, source=e.source))
    return out


def collect_flags(percentiles: Sequence[TokenPercentile],
                  enrichments: Mapping[int, Sequence[SourceEnrichment]] | None = None,
                  thresholds: FlagThresholds = FlagThresholds()) -> list[Flag]:
    """All flags of one (model, index): repetition flags in FP order, then source flags by token id."""
    flags = [f for f in (repetition_flag(tp, thresholds) for tp in percentiles) if f is not None]
    for token_id in sorted(enrichments or {}):
        flags.extend(source_flags(token_id, enrichments[token_id], thresholds))
    return flags

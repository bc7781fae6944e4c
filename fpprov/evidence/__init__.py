"""Statistical evidence for FP tokens, storage-free: matched controls, repetition statistics against them,
source shares and enrichment over a corpus baseline. The flags that follow have one definition, the
`suspicious_tokens` view (it reads `suspicion_thresholds`, so `--threshold` changes them without a rerun).
Every function is deterministic given its seed; edge cases give NaN plus a reason, never an exception.
"""

from .intervals import CONFIDENCE, N_RESAMPLES, bootstrap_ci, bootstrap_cis, wilson_interval
from .controls import (DEFAULT_BIN_WIDTH, NO_CONTROL_IN_BIN, ZERO_UNIGRAM_COUNT, ControlCandidate, ControlMatch,
                       MatchResult, UnmatchedFp, draw_matched_controls, frequency_bin)
from .repetition import (MatchedValues, RepetitionComparison, RepetitionEvidence, TokenPercentile, TokenValue,
                         compare_repetition, repetition_evidence, self_repetition_rate, token_percentiles,
                         values_from_matches)
from .sources import (UNKNOWN_SOURCE, BaselinePosition, SourceEnrichment, SourceShare, sample_baseline_positions,
                      source_enrichment, source_shares, token_source_enrichment, wilson_share)

__all__ = [
    "CONFIDENCE", "N_RESAMPLES", "bootstrap_ci", "bootstrap_cis", "wilson_interval",
    "DEFAULT_BIN_WIDTH", "NO_CONTROL_IN_BIN", "ZERO_UNIGRAM_COUNT", "ControlCandidate", "ControlMatch",
    "MatchResult", "UnmatchedFp", "draw_matched_controls", "frequency_bin",
    "MatchedValues", "RepetitionComparison", "RepetitionEvidence", "TokenPercentile", "TokenValue",
    "compare_repetition", "repetition_evidence", "self_repetition_rate", "token_percentiles", "values_from_matches",
    "UNKNOWN_SOURCE", "BaselinePosition", "SourceEnrichment", "SourceShare", "sample_baseline_positions",
    "source_enrichment", "source_shares", "token_source_enrichment", "wilson_share",
]

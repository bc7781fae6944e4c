"""Statistical evidence for FP tokens, storage-free: matched controls, repetition statistics against them,
source shares and enrichment over a corpus baseline, and the flags that follow. Every function is
deterministic given its seed; edge cases give NaN plus a reason, never an exception from the statistics.
"""

from .intervals import CONFIDENCE, N_RESAMPLES, bootstrap_ci, bootstrap_cis, wilson_interval
from .controls import (DEFAULT_BIN_WIDTH, NO_CONTROL_IN_BIN, ZERO_UNIGRAM_COUNT, ControlCandidate, ControlMatch,
                       MatchResult, UnmatchedFp, draw_matched_controls, frequency_bin)
from .flags import REPETITION, SOURCE, Flag, FlagThresholds, collect_flags, repetition_flag, source_flags
from .repetition import (MatchedValues, RepetitionComparison, RepetitionEvidence, TokenPercentile, TokenValue,
                         compare_repetition, repetition_evidence, self_repetition_rate, token_percentiles,
                         values_from_matches)
from .sources import (UNKNOWN_SOURCE, BaselinePosition, SourceEnrichment, SourceShare, sample_baseline_positions,
                      source_enrichment, source_shares, token_source_enrichment, wilson_share)

__all__ = [
    "CONFIDENCE", "N_RESAMPLES", "bootstrap_ci", "bootstrap_cis", "wilson_interval",
    "DEFAULT_BIN_WIDTH", "NO_CONTROL_IN_BIN", "ZERO_UNIGRAM_COUNT", "ControlCandidate", "ControlMatch",
    "MatchResult", "UnmatchedFp", "draw_matched_controls", "frequency_bin",
    "REPETITION", "SOURCE", "Flag", "FlagThresholds", "collect_flags", "repetition_flag", "source_flags",
    "MatchedValues", "RepetitionComparison", "RepetitionEvidence", "TokenPercentile", "TokenValue",
    "compare_repetition", "repetition_evidence", "self_repetition_rate", "token_percentiles", "values_from_matches",
    "UNKNOWN_SOURCE", "BaselinePosition", "SourceEnrichment", "SourceShare", "sample_baseline_positions",
    "source_enrichment", "source_shares", "token_source_enrichment", "wilson_share",
]

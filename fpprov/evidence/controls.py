"""Matched control tokens for the fixed-point (FP) tokens of one model in one corpus index.

An FP token's repetition counts are only evidence when compared with tokens that occur about as often: the
count of a token's text repeated n times is driven first by how often the text occurs at all. So each FP is
matched to non-FP tokens of the same scan (same model, same vocabulary) on

* its unigram count in the index (the token's text once), in bins of width ``bin_width`` (default 0.5) on
  ``log10(count + 1)``: ``bin = floor(log10(count + 1) / bin_width)``, and
* its category (``normal``, ``byte_fragment``, ...), exactly.

Each FP gets ``k`` controls (default 1) from its stratum (bin, category). Assumptions and rules:

* An FP whose unigram count is 0 is kept out (reason ``zero_unigram_count``): a text that never occurs has no
  repetition rate. Candidates with count 0 are never used as controls for the same reason.
* An FP whose stratum has no candidate is kept out (reason ``no_control_in_bin``).
* A candidate whose token id is one of the FPs is never a control.
* Reproducible from the seed and independent of input order: FPs and candidates are sorted by token id; each
  stratum's candidates are shuffled by a generator seeded from ``(seed, bin, crc32(category))``, so adding a
  stratum does not change the draws of another. The shuffled pool is dealt out round-robin, FP after FP in
  token-id order, ``k`` at a time: controls are distinct within one FP and across FPs until the stratum's pool is
  used up, and only then reused. An FP whose stratum holds fewer than ``k`` candidates gets them all (its
  ``ControlMatch`` rows say how many).
"""

from __future__ import annotations

import math
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

DEFAULT_BIN_WIDTH = 0.5
ZERO_UNIGRAM_COUNT = "zero_unigram_count"
NO_CONTROL_IN_BIN = "no_control_in_bin"


@dataclass(frozen=True)
class ControlCandidate:
    """One token of a scan with its unigram count in one index (used for FPs and for candidate controls)."""
    token_id: int
    category: str
    unigram_count: int
    text: str | None = None


@dataclass(frozen=True)
class ControlMatch:
    """One (FP, control) pair; ``draw`` is the control's place (0..k-1) among the FP's controls."""
    fp_token_id: int
    control_token_id: int
    bin: int
    category: str
    fp_count: int
    control_count: int
    draw: int


@dataclass(frozen=True)
class UnmatchedFp:
    """An FP kept out of the comparison, with the reason (``zero_unigram_count`` or ``no_control_in_bin``)."""
    token_id: int
    category: str
    unigram_count: int
    bin: int | None
    reason: str


@dataclass
class MatchResult:
    matches: list[ControlMatch]
    unmatched: list[UnmatchedFp]
    k: int
    seed: int
    bin_width: float
    fp_bins: dict[int, int] = field(default_factory=dict)   # FP token id -> bin, for every matched FP

    @property
    def matched_fp_ids(self) -> list[int]:
        return sorted(self.fp_bins)

    @property
    def control_ids(self) -> list[int]:
        """Distinct control token ids, sorted."""
        return sorted({m.control_token_id for m in self.matches})

    def controls_for(self, fp_token_id: int) -> list[int]:
        return [m.control_token_id for m in self.matches if m.fp_token_id == fp_token_id]

    def control_bins(self) -> dict[int, int]:
        """Control token id -> bin (a control belongs to one stratum, so one bin)."""
        return {m.control_token_id: m.bin for m in self.matches}

    def unmatched_counts(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for u in self.unmatched:
            counts[u.reason] += 1
        return dict(counts)


def frequency_bin(count: int, bin_width: float = DEFAULT_BIN_WIDTH) -> int:
    """``floor(log10(count + 1) / bin_width)``; count 0 is bin 0."""
    if count < 0:
        raise ValueError(f"a unigram count cannot be negative (got {count})")
    if not bin_width > 0:
        raise ValueError(f"bin_width must be positive (got {bin_width})")
    # The small epsilon keeps exact powers of ten (count + 1 = 10, 100, ...) in their own bin despite rounding.
    return int(math.floor(math.log10(count + 1) / bin_width + 1e-9))


def _stratum_rng(seed: int, bin_: int, category: str) -> np.random.Generator:
    return np.random.default_rng([int(seed) % 2**64, bin_, zlib.crc32(category.encode("utf-8"))])


def draw_matched_controls(fps: Iterable[ControlCandidate], candidates: Iterable[ControlCandidate], k: int = 1,
                          seed: int = 0, bin_width: float = DEFAULT_BIN_WIDTH) -> MatchResult:
    """Draw ``k`` controls per FP from the candidates of the FP's (frequency bin, category) stratum."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer (got {k!r})")
    fp_list = sorted({f.token_id: f for f in fps}.values(), key=lambda f: f.token_id)
    fp_ids = {f.token_id for f in fp_list}
    pools: dict[tuple[int, str], list[ControlCandidate]] = defaultdict(list)
    for c in sorted({c.token_id: c for c in candidates}.values(), key=lambda c: c.token_id):
        if c.token_id in fp_ids or c.unigram_count <= 0:
            continue
        pools[(frequency_bin(c.unigram_count, bin_width), c.category)].append(c)

    matches: list[ControlMatch] = []
    unmatched: list[UnmatchedFp] = []
    fp_bins: dict[int, int] = {}
    by_stratum: dict[tuple[int, str], list[ControlCandidate]] = defaultdict(list)
    for f in fp_list:
        if f.unigram_count <= 0:
            unmatched.append(UnmatchedFp(f.token_id, f.category, f.unigram_count, None, ZERO_UNIGRAM_COUNT))
            continue
        stratum = (frequency_bin(f.unigram_count, bin_width), f.category)
        if not pools.get(stratum):
            unmatched.append(UnmatchedFp(f.token_id, f.category, f.unigram_count, stratum[0], NO_CONTROL_IN_BIN))
            continue
        by_stratum[stratum].append(f)

    for stratum in sorted(by_stratum):
        bin_, category = stratum
        pool = pools[stratum]
        order = _stratum_rng(seed, bin_, category).permutation(len(pool))
        shuffled: Sequence[ControlCandidate] = [pool[i] for i in order]
        take = min(k, len(shuffled))
        for i, f in enumerate(by_stratum[stratum]):
            fp_bins[f.token_id] = bin_
            for j in range(take):
                c = shuffled[(i * take + j) % len(shuffled)]
                matches.append(ControlMatch(f.token_id, c.token_id, bin_, category, f.unigram_count,
                                            c.unigram_count, j))
    matches.sort(key=lambda m: (m.fp_token_id, m.draw))
    return MatchResult(matches, unmatched, k, seed, bin_width, fp_bins)

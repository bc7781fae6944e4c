"""What a provenance run is asked to do and what it reports: ``ProvenanceOptions`` (checked before any database
is opened or query built), the ``ProvenanceProgress`` hooks and the ``RunSummary`` every stage adds to."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from ..corpus.base import MAX_REPETITIONS
from ..errors import FpprovError

# --controls by default (None, "auto"): on a local index controls cost nothing, so enough that a bin holding a
# single FP has 19 controls, whose smallest empirical p-value 1 / (1 + 19) = 0.05 can pass repetition_enriched's
# q <= 0.05; on the rate-limited HTTP backends every control costs requests, so one per FP (the rule cannot
# fire in a bin of fewer than 19 FPs: the plan line says so).
AUTO_CONTROLS = {"local": 19}
HTTP_CONTROLS = 1
REPETITION_Q = 0.05               # repetition_enriched's default threshold (flag_thresholds)


@dataclass
class ProvenanceOptions:
    ladder: tuple[int, ...] = (10,)   # repetitions counted for every token (--ngram / --ladder); n = 1 is added
    docs: int = 20                    # documents sampled per largest-n query with count >= min_count (--docs)
    controls: int | None = None       # matched non-FP controls per FP (--controls; 0: no comparison; None: per
                                      # backend, AUTO_CONTROLS)
    max_tokens: int | None = None     # FPs per model and index (--max-tokens); None: the backend's default budget
    baseline_positions: int = 1000    # random corpus positions behind each index's source baseline
    bin_width: float = 0.5            # frequency bins on log10(unigram count + 1) that controls are matched in
    min_count: int = 1
    seed: int = 0
    source_field: str = "source"      # metadata field naming a document's source
    context_chars: int = 100          # snippet characters each side of the match
    concurrency: int = 2              # queries in flight asked for; a backend allows at most its own concurrency
    flush_seconds: float = 1.0        # commit buffered answers at least this often
    give_up_after: int = 20           # consecutive failed queries that stop the run (server down, offline)
    training_data: bool | None = None  # the index is the traced models' training data (True: --training-data),
                                       # a proxy (False: --proxy); None: the alias or the index manifest decides

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Every numeric option's range, checked before any database is opened or query string built."""
        ladder = tuple(self.ladder)
        if not ladder:
            raise FpprovError("--ngram / --ladder needs at least one n")
        if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in ladder):
            raise FpprovError(f"--ngram / --ladder values must be positive integers (got {list(ladder)})")
        if max(ladder) > MAX_REPETITIONS:
            raise FpprovError(f"--ngram / --ladder n = {max(ladder)} is over the limit of {MAX_REPETITIONS} "
                              "repetitions (the api and mini take at most 1,000 characters a query)")
        for name, low in (("docs", 0), ("min_count", 1), ("context_chars", 0), ("concurrency", 1),
                          ("give_up_after", 0), ("controls", 0), ("baseline_positions", 0)):
            if getattr(self, name) is not None and getattr(self, name) < low:
                flag = {"context_chars": "context"}.get(name, name).replace("_", "-")
                raise FpprovError(f"--{flag} must be at least {low} (got {getattr(self, name)})")
        if not 0 <= self.seed < 2 ** 31:
            raise FpprovError(f"--seed must be in 0 .. 2**31 - 1 (got {self.seed})")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise FpprovError(f"--max-tokens must be at least 1 (got {self.max_tokens})")
        if self.controls is not None and self.controls > 20:
            raise FpprovError(f"--controls must be at most 20 (got {self.controls})")
        if not 0 < self.bin_width <= 5:
            raise FpprovError(f"bin_width must be in (0, 5] (got {self.bin_width})")
        if self.concurrency > 8:
            raise FpprovError(f"--concurrency must be at most 8 (got {self.concurrency})")
        if not self.flush_seconds > 0:
            raise FpprovError(f"flush_seconds must be positive (got {self.flush_seconds})")

    def controls_for(self, backend: str) -> int:
        """K for this backend: the option when given, else ``AUTO_CONTROLS`` (local) or ``HTTP_CONTROLS``."""
        if self.controls is not None:
            return self.controls
        return AUTO_CONTROLS.get(backend, HTTP_CONTROLS)

    def for_backend(self, backend: str) -> ProvenanceOptions:
        """These options with K decided for the backend."""
        return self if self.controls is not None else replace(self, controls=self.controls_for(backend))


@dataclass(frozen=True)
class EvidenceSummary:
    """One (model, index)'s FP-vs-control headline, for the command's closing table (fp_enrichment has all)."""

    model: str
    index_name: str
    n_fp: int
    n_control: int
    auc: float
    auc_low: float
    auc_high: float
    excluded: int              # tokens kept out of the comparison (evidence_exclusions)
    reason: str | None         # why a statistic is missing, if one is


@dataclass(frozen=True)
class RunEstimate:
    """What a run will send to one index, known before anything is sent (upper bounds where counts decide)."""

    index_name: str
    fp_total: int               # FPs of the chosen models' scans
    fps: int                    # FPs taken (all, or the --max-tokens sample)
    sample_rule: str            # how they were taken
    controls: int               # control tokens at most (K per FP)
    count_queries: int          # count queries to send (not cached), candidate controls included
    cached_queries: int         # count queries answered by the cache
    doc_requests: int           # document requests at most (find + one per document)
    baseline_requests: int      # baseline positions still to look up
    rate: float | None          # the backend's requests per second; None: a local engine, no limit
    controls_per_fp: int = 0    # K
    q_threshold: float = REPETITION_Q   # repetition_enriched's threshold the power is judged against

    @property
    def requests(self) -> int:
        return self.count_queries + self.doc_requests + self.baseline_requests

    @property
    def seconds(self) -> float | None:
        return self.requests / self.rate if self.rate else None

    @property
    def smallest_p(self) -> float | None:
        """The smallest empirical p-value an FP can get in a frequency bin that holds it alone: 1 / (1 + K)
        (a bin with F FPs holds up to K F distinct controls: 1 / (1 + K F)); None without controls."""
        return 1 / (1 + self.controls_per_fp) if self.controls_per_fp else None

    @property
    def bin_fps_to_fire(self) -> int | None:
        """FPs a frequency bin must hold before repetition_enriched can fire there (their K F distinct controls
        give p = 1 / (1 + K F) <= the threshold, and BH's q can equal p when every FP reaches it)."""
        if not self.controls_per_fp:
            return None
        need = 1 / self.q_threshold - 1                 # controls the bin must hold (19 at q = 0.05)
        return max(1, math.ceil(round(need / self.controls_per_fp, 9)))   # round: 1 / 0.05 - 1 is 19.000...004


class ProvenanceProgress:
    """Hooks the CLI fills in with a rich progress bar; the library calls them, tests may ignore them."""

    def phase(self, name: str, total: int, cached: int = 0) -> None: ...

    def advance(self, n: int = 1) -> None: ...

    def planned(self, estimate: RunEstimate) -> None:
        """Called once per index before anything is sent, with what the run will send and how long that takes."""


@dataclass
class RunSummary:
    backend: str
    indexes: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    ladder: tuple[int, ...] = ()
    entries: int = 0           # provenance rows planned (token x n x variant)
    not_queryable: int = 0
    queries: int = 0           # distinct queryable strings
    cached: int = 0            # answered by ngram_counts, not sent
    sent: int = 0
    ok: int = 0
    failed: int = 0
    docs_wanted: int = 0
    docs_cached: int = 0
    docs_fetched: int = 0
    docs_failed: int = 0
    baseline_wanted: int = 0   # random corpus positions the source baselines need
    baseline_cached: int = 0
    baseline_fetched: int = 0
    baseline_failed: int = 0
    controls: int = 0          # control tokens drawn (all models and indexes)
    requests: int = 0          # calls made to the backend (HTTP requests or engine calls)
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)   # (query, reason), the first few
    evidence: list[EvidenceSummary] = field(default_factory=list)   # per (model, index) traced with controls

    @property
    def failed_total(self) -> int:
        return self.failed + self.docs_failed + self.baseline_failed

"""What a provenance run is asked to do and what it reports: ``ProvenanceOptions`` (checked before any database
is opened or query built), the ``ProvenanceProgress`` hooks and the ``RunSummary`` every stage adds to."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..corpus.base import MAX_REPETITIONS
from ..errors import FpprovError


@dataclass
class ProvenanceOptions:
    ladder: tuple[int, ...] = (10,)   # repetitions counted for every token (--ngram / --ladder)
    docs: int = 0                     # documents sampled per query with count >= min_count (--docs)
    min_count: int = 1
    seed: int = 0
    source_field: str = "source"      # metadata field naming a document's source
    context_chars: int = 100          # snippet characters each side of the match
    concurrency: int = 2              # queries in flight asked for; a backend allows at most its own concurrency
    flush_seconds: float = 1.0        # commit buffered answers at least this often
    give_up_after: int = 20           # consecutive failed queries that stop the run (server down, offline)

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
                          ("give_up_after", 0)):
            if getattr(self, name) < low:
                flag = {"context_chars": "context"}.get(name, name).replace("_", "-")
                raise FpprovError(f"--{flag} must be at least {low} (got {getattr(self, name)})")
        if self.concurrency > 8:
            raise FpprovError(f"--concurrency must be at most 8 (got {self.concurrency})")
        if not self.flush_seconds > 0:
            raise FpprovError(f"flush_seconds must be positive (got {self.flush_seconds})")


class ProvenanceProgress:
    """Hooks the CLI fills in with a rich progress bar; the library calls them, tests may ignore them."""

    def phase(self, name: str, total: int, cached: int = 0) -> None: ...

    def advance(self, n: int = 1) -> None: ...


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
    requests: int = 0          # calls made to the backend (HTTP requests or engine calls)
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)   # (query, reason), the first few

    @property
    def failed_total(self) -> int:
        return self.failed + self.docs_failed

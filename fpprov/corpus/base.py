"""The small interface every corpus backend implements: count a string, find its matches, fetch a document,
and, for the source baseline, the size of each shard and the document at any suffix-array rank.

Backends: ``api`` (public infini-gram API, tokenized indexes), ``mini`` (infini-gram-mini, character level)
and ``local`` (the infini-gram package's engine over byte-level index directories).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from ..errors import FpprovError


# The most repetitions of a token's text one query may hold, on every backend: the api and mini servers take
# at most 1,000 characters a query (and the api 500 tokens), and each copy is at least one character, so a
# larger n can never fit; the local engine gets the same bound, plus its own ``max_query_bytes``.
MAX_REPETITIONS = 1000


class QueryFailed(Exception):
    """One query could not be answered; ``reason`` is the one line stored in the database."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class UnknownIndex(FpprovError):
    """The backend does not know the index: the whole run stops with the known ones named."""


class BaselineUnavailable(FpprovError):
    """The backend cannot look up uniformly random corpus positions: the index gets no source baseline.
    Not a failed query: asking again would not help, so nothing is stored or retried."""


@dataclass
class CountResult:
    count: int
    approx: bool = False
    token_ids: list[int] | None = None      # the query as the backend tokenized it (None: byte/char level)
    tokens: list[str] | None = None
    latency_ms: float | None = None


@dataclass
class FindResult:
    count: int
    segments: list[tuple[int, int]]         # [lo, hi) match ranks per shard


@dataclass
class DocResult:
    doc_ix: int
    doc_len: int
    disp_len: int
    needle_offset: int
    snippet: str                            # text around the match
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class PositionDoc:
    """The document holding one suffix-array rank: what a source baseline position resolves to."""

    doc_ix: int
    doc_len: int
    metadata: dict[str, Any] = field(default_factory=dict)


class CorpusBackend(ABC):
    """One index of one backend. Methods raise QueryFailed for a query that failed (stored, retried later)."""

    backend: str = ""          # 'api' | 'mini' | 'local'
    index_name: str = ""
    tokenized: bool = False    # queries are tokenized server-side (word-start semantics)
    concurrency: int = 1       # queries that may be in flight at once; a run never sends more at a time
    max_chars: int | None = None         # longest query in characters (None: no limit)
    max_query_bytes: int | None = None   # longest query in UTF-8 bytes (None: no limit)
    baseline_unavailable: str | None = None   # why random positions cannot be looked up here (None: they can)

    def __init__(self) -> None:
        self.calls = 0         # queries handed to the backend (HTTP requests or engine calls), retries excluded

    def unqueryable_reason(self, query: str) -> str | None:
        """Why this query string cannot be sent to this backend, or None when it can."""
        if not query:
            return "empty query"
        return None

    def repeated_reason(self, unit: str, n: int) -> str | None:
        """Why ``unit`` x ``n`` is too long for this backend, decided from lengths alone, so an n-fold text
        that cannot be sent is never built."""
        if n > MAX_REPETITIONS:
            return f"n = {n} is over the limit of {MAX_REPETITIONS} repetitions"
        chars = len(unit) * n
        if self.max_chars and chars > self.max_chars:
            return f"query is {chars} characters, over the {self.backend} limit of {self.max_chars}"
        if self.max_query_bytes and len(unit.encode("utf-8")) * n > self.max_query_bytes:
            return (f"query is {len(unit.encode('utf-8')) * n} bytes, over the {self.backend} limit of "
                    f"{self.max_query_bytes}")
        return None

    @abstractmethod
    def count(self, query: str) -> CountResult: ...

    @abstractmethod
    def find(self, query: str) -> FindResult: ...

    @abstractmethod
    def get_doc(self, query: str, shard: int, rank: int, context_chars: int) -> DocResult: ...

    def shard_sizes(self) -> list[int]:
        """Suffix-array length of every shard (tokens, or bytes on a byte-level index): one request.

        The empty query is a prefix of every suffix, so infini-gram's ``find`` of it answers [0, size) per shard.
        """
        self.require_baseline()
        segments = self.find("").segments
        if not segments or any(lo != 0 or hi < 0 for lo, hi in segments):
            raise QueryFailed(f"find of the empty query gave {segments[:3]}, not whole shards [0, size)")
        return [hi for _, hi in segments]

    def doc_at(self, shard: int, rank: int) -> PositionDoc:
        """The document holding suffix-array rank ``rank`` of ``shard``, with its metadata: one request."""
        self.require_baseline()
        raise BaselineUnavailable(f"the {self.backend} backend cannot look up a document by rank alone")

    def require_baseline(self) -> None:
        """Raise BaselineUnavailable, before anything is sent, where this backend cannot give a baseline."""
        if self.baseline_unavailable:
            raise BaselineUnavailable(self.baseline_unavailable)

    def close(self) -> None:
        """Release sessions or engines."""


def parse_metadata(raw: Any) -> dict[str, Any]:
    """Document metadata arrives as a JSON string (api, local) or an object (mini): always return a dict."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        return {"raw": str(raw)}
    return value if isinstance(value, dict) else {"value": value}


def source_of(metadata: dict[str, Any], source_field: str) -> str | None:
    """The document's source: ``source_field`` in the corpus fields (nested under 'metadata' by the indexer),
    then at the top level, else the file path the document came from."""
    inner = metadata.get("metadata")
    for holder in (inner if isinstance(inner, dict) else {}, metadata):
        value = holder.get(source_field)
        if value not in (None, ""):
            return str(value)
    path = metadata.get("path")
    return str(path) if path else None


def window(text: str, needle_offset: int, needle_len: int, context_chars: int) -> str:
    """``context_chars`` characters each side of the match at ``needle_offset`` (characters)."""
    start = max(0, needle_offset - context_chars)
    return text[start:needle_offset + needle_len + context_chars]

"""The public infini-gram API (https://api.infini-gram.io/): tokenized indexes, JSON over POST."""

from __future__ import annotations

from typing import Any

from .base import (CorpusBackend, CountResult, DocResult, FindResult, PositionDoc, QueryFailed, parse_metadata,
                   window)
from .catalog import backend_config, known_indexes, unknown_index_error
from .http import HttpSettings, JsonClient, require

# Without the index's own tokenizer (offline) such text cannot be sent as ids: it is recorded as not queryable.
_BOOLEAN_WORDS = (" AND ", " OR ")
# Tokens of text a baseline lookup asks for: the server's minimum is 1; only the metadata is read.
_POSITION_DISP_LEN = 1


def _index_list(answer: Any) -> list[str] | None:
    """Index names from a GET / answer: a list of names, of {"index": ...} objects, or {"indexes": [...]}."""
    if isinstance(answer, dict):
        answer = answer.get("indexes")
    if not isinstance(answer, list):
        return None
    names = [a if isinstance(a, str) else a.get("index") if isinstance(a, dict) else None for a in answer]
    names = [n for n in names if isinstance(n, str)]
    return names or None


class HttpBackend(CorpusBackend):
    """What the api and mini backends share: the client, the index check, the error mapping."""

    concurrency = HttpSettings.concurrency   # the client's bound on requests in flight (set per instance)

    def __init__(self, index: str, url: str, settings: HttpSettings | None = None):
        # The index is not checked here: that would cost a request on runs that find everything cached, and
        # the data file may lag behind the server. The server's 400 on the first query is the check.
        super().__init__()
        self.index_name = index
        self.client = JsonClient(url, settings)
        # More queries in flight than the client's slots would only wait on its semaphore.
        self.concurrency = max(1, self.client.settings.concurrency)
        self.config = backend_config(self.backend)
        self.max_chars = int(self.config.get("max_query_chars", 0)) or None

    def list_indexes(self) -> list[str]:
        """The server's own list (GET /) when it gives one, else the data file's."""
        live = _index_list(self.client.get_json())
        return live if live is not None else list(known_indexes(self.backend))

    def unqueryable_reason(self, query: str) -> str | None:
        if not query:
            return "empty query"
        if self.max_chars and len(query) > self.max_chars:
            return f"query is {len(query)} characters, over the {self.backend} limit of {self.max_chars}"
        return None

    def post(self, query_type: str, query: str, **extra: Any) -> dict[str, Any]:
        self.calls += 1
        payload = {"index": self.index_name, "query_type": query_type, "query": query, **extra}
        try:
            return self.client.post(payload)
        except QueryFailed as exc:
            if exc.reason.startswith("HTTP 400") and "index" in exc.reason.lower():
                raise unknown_index_error(self.backend, self.index_name, self.list_indexes()) from None
            raise

    def close(self) -> None:
        self.client.close()


class ApiBackend(HttpBackend):
    backend = "api"
    tokenized = True

    def unqueryable_reason(self, query: str) -> str | None:
        reason = super().unqueryable_reason(query)
        if reason:
            return reason
        for word in _BOOLEAN_WORDS:
            if word in query:
                return f"contains {word.strip()!r}, which the API parses as a boolean (CNF) query"
        return None

    def count(self, query: str) -> CountResult:
        data = self.post("count", query)
        require(data, "count")
        return CountResult(
            count=int(data["count"]), approx=bool(data.get("approx", False)),
            token_ids=[int(t) for t in data["token_ids"]] if isinstance(data.get("token_ids"), list) else None,
            tokens=[str(t) for t in data["tokens"]] if isinstance(data.get("tokens"), list) else None,
            latency_ms=float(data["latency"]) if data.get("latency") is not None else None,
        )

    def find(self, query: str) -> FindResult:
        data = self.post("find", query)
        require(data, "cnt", "segment_by_shard")
        return FindResult(int(data["cnt"]), [(int(lo), int(hi)) for lo, hi in data["segment_by_shard"]])

    def get_doc(self, query: str, shard: int, rank: int, context_chars: int) -> DocResult:
        # max_disp_len counts tokens; a token is at least one character, so this window is wide enough.
        data = self.post("get_doc_by_rank", query, s=shard, rank=rank, max_disp_len=2 * context_chars + len(query))
        require(data, "doc_ix", "doc_len", "spans")
        return doc_from_spans(data, len(query), context_chars)

    def doc_at(self, shard: int, rank: int) -> PositionDoc:
        # The empty query tokenizes to no ids: the server marks no needle and returns the window at the rank.
        data = self.post("get_doc_by_rank", "", s=shard, rank=rank, max_disp_len=_POSITION_DISP_LEN)
        require(data, "doc_ix", "doc_len", "metadata")
        return PositionDoc(doc_ix=int(data["doc_ix"]), doc_len=int(data["doc_len"]),
                           metadata=parse_metadata(data["metadata"]))


def doc_from_spans(data: dict[str, Any], needle_len: int, context_chars: int) -> DocResult:
    """The document window is in ``spans`` ([text, label] pairs; the match carries a label)."""
    text, needle_at = "", None
    for span in data["spans"]:
        piece, label = (span[0], span[1]) if isinstance(span, (list, tuple)) and len(span) == 2 else (str(span), None)
        if label is not None and needle_at is None:
            needle_at = len(text)
        text += piece or ""
    if needle_at is None:
        needle_at = 0
    return DocResult(
        doc_ix=int(data["doc_ix"]), doc_len=int(data["doc_len"]), disp_len=int(data.get("disp_len", len(text))),
        needle_offset=int(data.get("needle_offset", needle_at)),
        snippet=window(text, needle_at, needle_len, context_chars),
        metadata=parse_metadata(data.get("metadata")),
    )

"""infini-gram-mini (https://api.infini-gram-mini.io/): an FM-index over raw text, character level and
case-sensitive, no tokenizer. Every query type needs ``query``; documents come with ``text`` and parsed
``metadata``; ``get_doc_by_rank`` needs ``max_ctx_len`` (characters each side)."""

from __future__ import annotations

from .api import HttpBackend, doc_from_spans
from .base import CountResult, DocResult, FindResult, parse_metadata, window
from .http import require


class MiniBackend(HttpBackend):
    backend = "mini"
    tokenized = False
    # Its engine would answer find("") with whole shards, but the API documents find for non-empty strings
    # only, and a window around a random position may cut a character (the API then answers an error).
    baseline_unavailable = ("infini-gram-mini's API takes `find` for non-empty strings only, so the shard sizes "
                            "random corpus positions are drawn from are unknown: no source baseline")

    def count(self, query: str) -> CountResult:
        data = self.post("count", query)
        require(data, "count")
        latency = data.get("latency")
        return CountResult(count=int(data["count"]), approx=bool(data.get("approx", False)),
                           latency_ms=float(latency) if latency is not None else None)

    def find(self, query: str) -> FindResult:
        data = self.post("find", query)
        require(data, "cnt", "segment_by_shard")
        return FindResult(int(data["cnt"]), [(int(lo), int(hi)) for lo, hi in data["segment_by_shard"]])

    def get_doc(self, query: str, shard: int, rank: int, context_chars: int) -> DocResult:
        data = self.post("get_doc_by_rank", query, s=shard, rank=rank, max_ctx_len=context_chars)
        require(data, "doc_ix", "doc_len")
        if isinstance(data.get("spans"), list):
            return doc_from_spans(data, len(query), context_chars)
        require(data, "text", "needle_offset")
        text, at = str(data["text"]), int(data["needle_offset"])
        return DocResult(doc_ix=int(data["doc_ix"]), doc_len=int(data["doc_len"]),
                         disp_len=int(data.get("disp_len", len(text))), needle_offset=at,
                         snippet=window(text, at, len(query), context_chars),
                         metadata=parse_metadata(data.get("metadata")))

"""Local byte-level indexes through the ``infini-gram`` package's engine (one or more index directories,
each with one or more shards). Counts are exact UTF-8 substring counts, like infini-gram-mini.

Quirks of infini-gram 2.6.0 worked around here: ``InfiniGramEngine`` refuses u8 indexes with its default
vocabulary size (uint8 overflow), so ``Engine_U8`` is built with vocab_size=255 and an EOS below it;
``get_docs_by_ranks`` is broken, so documents are fetched one by one; a corrupt index makes the engine
segfault, so file sizes are checked before it is opened.
"""

from __future__ import annotations

import hashlib
import math
import shutil
import tempfile
import time
from pathlib import Path

from ..errors import FpprovError
from .base import CorpusBackend, CountResult, DocResult, FindResult, PositionDoc, QueryFailed, parse_metadata

_SHARD_FILES = ("tokenized", "table", "offset")
_FINGERPRINT_BYTES = 1 << 20


def shard_numbers(index_dir: Path) -> list[int]:
    return sorted(int(p.name.split(".")[1]) for p in index_dir.glob("tokenized.*") if p.name.split(".")[1].isdigit())


def check_index_dir(index_dir: Path) -> list[int]:
    """The shard numbers of a valid index directory; a one-line error otherwise."""
    if not index_dir.is_dir():
        raise FpprovError(f"index directory {index_dir} does not exist; build one with `fpprov index build`")
    shards = shard_numbers(index_dir)
    if not shards:
        raise FpprovError(f"{index_dir} is not an infini-gram index (no tokenized.* files)")
    for s in shards:
        for kind in _SHARD_FILES:
            if not (index_dir / f"{kind}.{s}").is_file():
                raise FpprovError(f"index {index_dir} is incomplete: {kind}.{s} is missing")
        data_size = (index_dir / f"tokenized.{s}").stat().st_size
        table_size = (index_dir / f"table.{s}").stat().st_size
        ratio = math.ceil(math.log2(data_size) / 8) if data_size > 1 else 1
        if data_size and table_size in (data_size // 2 * ratio, data_size // 4 * ratio) and table_size != data_size * ratio:
            raise FpprovError(f"index {index_dir} holds tokenizer ids, not bytes; fpprov reads byte-level (u8) "
                              "indexes: build one with `fpprov index build`")
        if data_size == 0 or table_size != data_size * ratio:
            raise FpprovError(f"index {index_dir} shard {s} is corrupt (table {table_size} bytes for "
                              f"{data_size} bytes of text); rebuild it with `fpprov index build`")
    return shards


def fingerprint(index_dirs: list[Path]) -> str:
    """Content-based identity of the indexes: sizes plus the first and last MiB of each shard's text.

    Cached counts are keyed by it, so a rebuilt corpus under the same folder name is never served stale counts.
    """
    digest = hashlib.sha1()
    for d in index_dirs:
        for s in shard_numbers(d):
            path = d / f"tokenized.{s}"
            size = path.stat().st_size
            digest.update(f"{s}:{size};".encode())
            with path.open("rb") as f:
                digest.update(f.read(_FINGERPRINT_BYTES))
                if size > 2 * _FINGERPRINT_BYTES:
                    f.seek(size - _FINGERPRINT_BYTES)
                    digest.update(f.read())
    return digest.hexdigest()[:10]


class LocalBackend(CorpusBackend):
    backend = "local"
    tokenized = False
    # One shared engine object, called one query at a time: infini-gram does not document it as thread-safe,
    # and its answers come fast enough that a run needs no threads.
    concurrency = 1
    # The engine has no limit of its own; a query longer than this is not a sane n-gram (16 KiB: 1,000
    # copies of a 16-byte token).
    max_query_bytes = 16384

    def __init__(self, index_dirs: list[str | Path], name: str | None = None):
        super().__init__()
        from infini_gram import cpp_engine

        self.index_dirs = [Path(d).expanduser().resolve() for d in index_dirs]
        if not self.index_dirs:
            raise FpprovError("the local backend needs --index-dir (build one with `fpprov index build`)")
        self.shards = sum(len(check_index_dir(d)) for d in self.index_dirs)
        label = name or "+".join(d.name for d in self.index_dirs)
        self.index_name = f"{label}@{fingerprint(self.index_dirs)}"
        self._links: Path | None = None
        # Engine_U8(index_dirs, eos_token_id, vocab_size, version, load_to_ram, ds/sa/od prefetch depths,
        #           bow_ids, attribution_block_size, precompute_unigram_logprobs, prev_shards_by_index_dir)
        self.engine = cpp_engine.Engine_U8([str(self._engine_path(i, d)) for i, d in enumerate(self.index_dirs)],
                                           0, 255, 4, False, 1, 3, 3, set(), 512, False, {})

    def _engine_path(self, number: int, index_dir: Path) -> Path:
        """The engine finds each shard's table by replacing 'tokenized' with 'table' in the WHOLE path (and
        segfaults when that file is missing): a folder whose path contains the word is reached through a
        symlink from a temporary folder instead."""
        if "tokenized" not in str(index_dir):
            return index_dir
        if self._links is None:
            self._links = Path(tempfile.mkdtemp(prefix="fpprov-engine-"))
            if "tokenized" in str(self._links):
                raise FpprovError(f"index path {index_dir} contains 'tokenized', which the engine cannot read; "
                                  "rename the folder")
        link = self._links / f"index{number}"
        link.symlink_to(index_dir, target_is_directory=True)
        return link

    def close(self) -> None:
        if self._links is not None:
            shutil.rmtree(self._links, ignore_errors=True)
            self._links = None

    def unqueryable_reason(self, query: str) -> str | None:
        if not query:
            return "empty query"
        return None

    def count(self, query: str) -> CountResult:
        self.calls += 1
        started = time.perf_counter()
        result = self.engine.count(input_ids=list(query.encode("utf-8")))
        return CountResult(count=int(result.count), approx=bool(result.approx),
                           latency_ms=(time.perf_counter() - started) * 1000)

    def find(self, query: str) -> FindResult:
        self.calls += 1
        result = self.engine.find(input_ids=list(query.encode("utf-8")))
        return FindResult(int(result.cnt), [(int(lo), int(hi)) for lo, hi in result.segment_by_shard])

    def _check_rank(self, shard: int, rank: int) -> None:
        """The engine reads out of bounds (or asserts and aborts) on a bad shard or rank: refuse them first."""
        if not 0 <= shard < self.shards:
            raise QueryFailed(f"shard {shard} out of range [0, {self.shards})")
        size = int(self.engine.get_tok_cnt(s=shard))
        if not 0 <= rank < size:
            raise QueryFailed(f"rank {rank} out of range [0, {size}) in shard {shard}")

    def get_doc(self, query: str, shard: int, rank: int, context_chars: int) -> DocResult:
        self.calls += 1
        self._check_rank(shard, rank)
        needle = query.encode("utf-8")
        # Bytes each side: up to 4 per character, trimmed to characters after decoding.
        doc = self.engine.get_doc_by_rank_2(s=shard, rank=rank, needle_len=len(needle), max_ctx_len=4 * context_chars)
        raw = bytes(doc.token_ids)
        before = raw[:doc.needle_offset].decode("utf-8", errors="ignore")[-context_chars:]
        after = raw[doc.needle_offset + len(needle):].decode("utf-8", errors="ignore")[:context_chars]
        return DocResult(doc_ix=int(doc.doc_ix), doc_len=int(doc.doc_len), disp_len=int(doc.disp_len),
                         needle_offset=int(doc.needle_offset), snippet=before + query + after,
                         metadata=parse_metadata(doc.metadata))

    def doc_at(self, shard: int, rank: int) -> PositionDoc:
        self.calls += 1
        self._check_rank(shard, rank)
        # Only the document's number, length and metadata are wanted; a context of 0 would make the window of
        # a position on a document separator negative (the engine then fails to allocate it).
        doc = self.engine.get_doc_by_rank_2(s=shard, rank=rank, needle_len=0, max_ctx_len=1)
        return PositionDoc(doc_ix=int(doc.doc_ix), doc_len=int(doc.doc_len), metadata=parse_metadata(doc.metadata))

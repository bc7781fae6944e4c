"""A real HTTP server on 127.0.0.1 that speaks the infini-gram API's JSON (or infini-gram-mini's) for
``count``, ``find`` and ``get_doc_by_rank``, answered by the infini-gram engine over a local index.

The empty query works as on the real API: ``find`` of it answers every shard whole ([0, size)), and
``get_doc_by_rank`` of it returns the document at any rank with its metadata and no marked needle (the
source baseline's lookups).

Faults make it misbehave the way the real service can: ``server.faults`` is a queue consumed one per POST;
``server.type_faults[query_type]`` a queue consumed one per POST of that query type (e.g. only the document
lookups); ``server.query_faults`` applies a fault to every request for a query until removed. Fault names:
403, 429, 500, 502, 503 (error statuses), timeout (answers after ``hang_seconds``), reset (connection reset
mid-body), malformed (not JSON), error200 ({"error": ...} with HTTP 200), missing (well-formed answer
lacking its fields), slow (answers after ``slow_seconds``).
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections import defaultdict, deque
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

from infini_gram.engine import InfiniGramEngine

STATUS_FAULTS = {"403": 403, "429": 429, "500": 500, "502": 502, "503": 503}
_ALLOWED_FIELDS = {"index", "query_type", "query", "query_ids", "s", "rank", "max_disp_len", "max_ctx_len"}


class FakeInfiniGram(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, index_dirs: list[str], *, dialect: str = "api", indexes: tuple[str, ...] = ("test_index",),
                 list_on_get: bool = False):
        super().__init__(("127.0.0.1", 0), _Handler)
        # Independent of fpprov's own engine wrapper: the package's Python class with the u8 settings.
        self.engine = InfiniGramEngine(index_dir=index_dirs, eos_token_id=0, vocab_size=255, token_dtype="u8")
        self.dialect = dialect
        self.indexes = set(indexes)
        self.list_on_get = list_on_get
        self.faults: deque[str] = deque()
        self.type_faults: defaultdict[str, deque[str]] = defaultdict(deque)
        self.query_faults: dict[str, str] = {}
        self.fault_all: str | None = None      # a fault for every request (a server that is down)
        self.hang_seconds = 1.0
        self.slow_seconds = 0.3
        self.delay_seconds = 0.0       # added to every POST (to kill a client mid-run)
        self.lock = threading.Lock()
        self.posts = 0                 # POST requests received (every retry counts)
        self.in_flight = 0
        self.max_in_flight = 0
        self.post_times: list[float] = []
        self.queries: list[tuple[str, str]] = []   # (query_type, query) of every POST
        self.payloads: list[dict[str, Any]] = []   # every POST body as received

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"

    def next_fault(self, query: str | None, query_type: str | None = None) -> str | None:
        with self.lock:
            if self.faults:
                return self.faults.popleft()
            typed = self.type_faults.get(query_type or "")
            if typed:
                return typed.popleft()
        return self.query_faults.get(query or "", self.fault_all)

    def answer(self, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The real server's behaviour: validation errors as 200, bad requests as 400, exceptions as 500."""
        extra = set(payload) - _ALLOWED_FIELDS
        if extra:
            return 500, {"error": f"unexpected field(s): {sorted(extra)}"}
        if payload.get("index") not in self.indexes:
            return 400, {"error": f"Invalid index: {payload.get('index')}"}
        query_type = payload.get("query_type")
        if query_type not in ("count", "find", "get_doc_by_rank"):
            return 400, {"error": f"Invalid query_type: {query_type}"}
        query = payload.get("query")
        if not isinstance(query, str):
            return 400, {"error": "query is required"}
        if len(query) > 1000:
            return 200, {"error": "Please limit your input to <= 1000 characters!"}
        ids = list(query.encode("utf-8"))
        started = time.perf_counter()
        echo = {} if self.dialect == "mini" else {"token_ids": ids, "tokens": [chr(b) for b in ids]}
        if query_type == "count":
            result = self.engine.count(ids)
            body = {"count": result["count"], "approx": result["approx"]}
        elif query_type == "find":
            result = self.engine.find(ids)
            body = {"cnt": result["cnt"], "segment_by_shard": [list(s) for s in result["segment_by_shard"]]}
        else:
            body = self._doc(payload, ids)
            if "error" in body:
                return 200, body
        return 200, {**body, **echo, "latency": (time.perf_counter() - started) * 1000}

    def _doc(self, payload: dict[str, Any], ids: list[int]) -> dict[str, Any]:
        s, rank = payload.get("s"), payload.get("rank")
        if not isinstance(s, int) or not isinstance(rank, int):
            return {"error": "s and rank must be integers"}
        if self.dialect == "mini":
            ctx = payload.get("max_ctx_len")
            if not isinstance(ctx, int):
                return {"error": "max_ctx_len is required"}
        else:
            if not ids:
                return self._position_doc(s, rank, payload.get("max_disp_len", 1000))
            ctx = int(payload.get("max_disp_len", 100)) // 2
        doc = self.engine.get_doc_by_rank_2(s=s, rank=rank, needle_len=len(ids), max_ctx_len=ctx)
        if "error" in doc:
            return doc
        raw = bytes(doc["token_ids"])
        at = doc["needle_offset"]
        before = raw[:at].decode("utf-8", errors="ignore")
        needle = raw[at:at + len(ids)].decode("utf-8", errors="ignore")
        after = raw[at + len(ids):].decode("utf-8", errors="ignore")
        common = {"doc_ix": doc["doc_ix"], "doc_len": doc["doc_len"], "disp_len": doc["disp_len"],
                  "needle_offset": len(before), "blocked": False}
        if self.dialect == "mini":
            return {**common, "text": before + needle + after, "metadata": json.loads(doc["metadata"])}
        return {**common, "metadata": doc["metadata"], "spans": [[before, None], [needle, "0"], [after, None]]}

    def _position_doc(self, s: int, rank: int, max_disp_len: Any) -> dict[str, Any]:
        """The API's document at a rank for the empty query: its engine call, one unmarked span, the metadata
        as the engine's JSON string."""
        if not isinstance(max_disp_len, int) or not 0 < max_disp_len <= 10000:
            return {"error": "max_disp_len must be an integer in [1, 10000]!"}
        doc = self.engine.get_doc_by_rank(s=s, rank=rank, max_disp_len=max_disp_len)
        if "error" in doc:
            return doc
        text = bytes(doc["token_ids"]).decode("utf-8", errors="ignore")
        return {"doc_ix": doc["doc_ix"], "doc_len": doc["doc_len"], "disp_len": doc["disp_len"],
                "needle_offset": doc["needle_offset"], "blocked": doc["blocked"], "metadata": doc["metadata"],
                "spans": [[text, None]]}


class _Handler(BaseHTTPRequestHandler):
    server: FakeInfiniGram
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY: an answer's headers and body go out in two writes, and Nagle's algorithm would hold the second
    # until the client's delayed ACK (tens of ms a request, most of an API test's time).
    disable_nagle_algorithm = True

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        if self.server.list_on_get:
            self._send(200, json.dumps(sorted(self.server.indexes)).encode())
        else:
            self._send(404, b'{"error": "not found"}')

    def do_POST(self) -> None:
        srv = self.server
        with srv.lock:
            srv.posts += 1
            srv.in_flight += 1
            srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
            srv.post_times.append(time.monotonic())
        try:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                payload = json.loads(raw)
            except ValueError:
                self._send(400, b'{"error": "request body is not JSON"}')
                return
            with srv.lock:
                srv.queries.append((payload.get("query_type"), payload.get("query")))
                srv.payloads.append(payload)
            if srv.delay_seconds:
                time.sleep(srv.delay_seconds)
            fault = srv.next_fault(payload.get("query"), payload.get("query_type"))
            if fault in STATUS_FAULTS:
                self._send(STATUS_FAULTS[fault], json.dumps({"error": f"injected {fault}"}).encode())
                return
            if fault == "timeout":
                time.sleep(srv.hang_seconds)
            elif fault == "slow":
                time.sleep(srv.slow_seconds)
            elif fault == "reset":
                self._reset_mid_body()
                return
            elif fault == "malformed":
                self._send(200, b'{"count": 12, "appro')
                return
            elif fault == "error200":
                self._send(200, b'{"error": "injected validation error"}')
                return
            elif fault == "missing":
                self._send(200, b'{"latency": 0.1}')
                return
            status, body = srv.answer(payload)
            self._send(status, json.dumps(body).encode())
        finally:
            with srv.lock:
                srv.in_flight -= 1

    def _send(self, status: int, body: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)

    def _reset_mid_body(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "200")
        self.end_headers()
        self.wfile.write(b'{"count": 1')
        self.wfile.flush()
        # SO_LINGER 0: close with a TCP RST, as a crashed gateway would.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True


@contextmanager
def serve(index_dirs: list[str], **kwargs: Any) -> Iterator[FakeInfiniGram]:
    server = FakeInfiniGram([str(d) for d in index_dirs], **kwargs)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


# -- a small corpus with planted repetitions and source metadata ------------------------------------

_FILLER = ("the", "river", "model", "token", "data", "of", "and", "a", "in", "paper", "лье", "Á", "blah", "ffi",
           "Justine", "Tiber", "équation", "数据", "co", "effi", "cient")


def make_records(seed: int = 0, docs: int = 120) -> list[dict[str, Any]]:
    """Documents from four sources; some carry the seed's artefacts (blah x10, Á runs, ffi from equations)."""
    import random

    rng = random.Random(seed)
    records = []
    for i in range(docs):
        source = ("forum", "flan", "pes2o", "wiki")[i % 4]
        words = [rng.choice(_FILLER) for _ in range(rng.randint(5, 40))]
        text = " ".join(words)
        if source == "forum" and i % 8 == 0:
            text += " " + " ".join(["blah"] * rng.randint(10, 14))
        if source == "flan" and i % 3 == 1:
            text = "Answer: " + "Á" * rng.randint(10, 20) + " " + text
        if source == "pes2o":
            text += " the coe" + "ffi" * rng.randint(1, 6) + "cient"
        if source == "wiki" and i % 5 == 3:
            text += " Justine" * rng.randint(3, 12)
        records.append({"text": text, "source": source, "id": f"doc{i}"})
    return records


def write_corpus(folder, records: list[dict[str, Any]], files: int = 2) -> None:
    """Split the records over jsonl files, the last one gzipped."""
    import gzip
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    chunks = [records[i::files] for i in range(files)]
    for n, chunk in enumerate(chunks):
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in chunk)
        if n == files - 1 and files > 1:
            with gzip.open(folder / f"part{n}.jsonl.gz", "wt", encoding="utf-8") as f:
                f.write(lines)
        else:
            (folder / f"part{n}.jsonl").write_text(lines, encoding="utf-8")


def independent_count(records: list[dict[str, Any]], query: str) -> int:
    """Overlapping occurrences of the query's UTF-8 bytes in each document, summed: what the index must say."""
    needle = query.encode("utf-8")
    total = 0
    for record in records:
        hay = record["text"].encode("utf-8")
        at = hay.find(needle)
        while at != -1:
            total += 1
            at = hay.find(needle, at + 1)
    return total


def add_fp_scan(store, model: str, tokens: list[tuple[int, str | None, str]], *, complete: bool = True) -> int:
    """A scan of ``model`` whose fixed points are ``tokens`` = [(token_id, text, category)], as `fpprov scan`
    would store them (the provenance code reads nothing else)."""
    scan_id = store.query("SELECT coalesce(max(scan_id), 0) + 1 FROM scans")[0][0]
    store.insert_rows("scans", [dict(scan_id=scan_id, model=model, dtype="float32", device="cpu", bos=False,
                                     id_start=0, id_stop=1000, batch_size=256, tolerance=1e-4,
                                     method="length1-pruned", complete=complete, fp_count=len(tokens))])
    store.insert_rows("token_fps", [dict(scan_id=scan_id, model=model, token_id=t, raw_token=_raw(text, category),
                                         text=text, norm_text=text, category=category, prob=0.9, logit=10.0,
                                         margin=1.0, verified_float64=True) for t, text, category in tokens])
    # A scan stores its whole vocabulary; here the FPs' entries and, outside the scanned range (never a control
    # candidate), the space token whose byte-level form proves the decoder byte-level (fpprov.provenance.spellings).
    store.insert_rows("vocabulary", [dict(model=model, token_id=t, raw_token=_raw(text, category), text=text,
                                          norm_text=text, category=category) for t, text, category in tokens]
                      + [dict(model=model, token_id=1_000_000, raw_token="\u0120", text=" ", norm_text=" ",
                              category="normal")], or_ignore=True)
    return scan_id


def _raw(text: str | None, category: str) -> str | None:
    """The byte-level BPE vocabulary entry of a text (GPT-2's byte table), as a byte-level tokenizer stores it."""
    if text is None or category in ("special", "byte_fragment"):
        return text
    from fpprov.provenance.spellings import _byte_decoder
    table = {b: ch for ch, b in _byte_decoder().items()}
    return "".join(table[b] for b in text.encode("utf-8"))

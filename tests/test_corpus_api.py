"""The infini-gram API client against a real HTTP server on 127.0.0.1, including every fault mode."""

from __future__ import annotations

import time

import pytest

from fpprov.corpus.api import ApiBackend
from fpprov.corpus.base import QueryFailed, UnknownIndex
from fpprov.corpus.http import HttpSettings
from infinigram_server import independent_count, serve

# Fast retries: the backoff logic is urllib3's and ours; the waiting is not what is under test.
FAST = dict(rate=0, concurrency=2, backoff=0.01, backoff_max=0.05, read_timeout=2.0, retries=3, body_retries=2)


@pytest.fixture(scope="module")
def index(corpus_index):
    return corpus_index(3, shards=2)


@pytest.fixture()
def server(index):
    with serve([index[0]]) as srv:
        yield srv


def api(server, **settings) -> ApiBackend:
    return ApiBackend("test_index", server.url, HttpSettings(**{**FAST, **settings}))


def test_count_keeps_count_approx_tokens_and_latency(server, index):
    backend = api(server)
    result = backend.count("blah blah")
    assert result.count == independent_count(index[1], "blah blah") > 0
    assert result.approx is False
    assert result.token_ids == list(b"blah blah") and result.tokens[0] == "b"
    assert result.latency_ms is not None and result.latency_ms >= 0


def test_find_and_document_with_metadata(server, index):
    backend = api(server)
    found = backend.find("ffiffi")
    assert found.count == independent_count(index[1], "ffiffi") > 0
    shard = next(s for s, (lo, hi) in enumerate(found.segments) if hi > lo)
    doc = backend.get_doc("ffiffi", shard, found.segments[shard][0], context_chars=20)
    assert "ffiffi" in doc.snippet and len(doc.snippet) <= 20 * 2 + len("ffiffi")
    assert doc.metadata["metadata"]["source"] == "pes2o"


@pytest.mark.parametrize("fault", ["403", "429", "500", "502", "503", "reset", "malformed", "timeout"])
def test_transient_faults_are_retried_until_an_answer(server, index, fault):
    server.hang_seconds = 0.6
    backend = api(server, read_timeout=0.3)
    server.faults.extend([fault, fault])
    result = backend.count("blah")
    assert result.count == independent_count(index[1], "blah")
    assert server.posts == 3  # two faulty answers, then the real one


@pytest.mark.parametrize("fault, reason", [
    ("503", "HTTP 503"), ("429", "HTTP 429"), ("reset", "connection error"), ("malformed", "malformed JSON"),
    ("timeout", "timed out"),
])
def test_persistent_faults_fail_the_query_with_the_reason(server, fault, reason):
    server.hang_seconds = 0.4
    backend = api(server, read_timeout=0.2, retries=1, body_retries=1)
    server.query_faults["blah"] = fault
    with pytest.raises(QueryFailed, match=reason):
        backend.count("blah")
    assert server.posts <= 4  # bounded: urllib3 retries x body retries


def test_error_key_wins_even_with_http_200(server):
    backend = api(server)
    server.faults.append("error200")
    with pytest.raises(QueryFailed, match="HTTP 200: injected validation error"):
        backend.count("blah")
    assert server.posts == 1  # a validation error is not retried


def test_a_real_validation_error_from_the_server(server):
    backend = api(server)
    backend.max_chars = None  # let the over-long query through to the server
    with pytest.raises(QueryFailed, match="1000 characters"):
        backend.count("x" * 1001)


def test_answer_missing_fields_is_a_failure_never_a_zero(server):
    backend = api(server)
    server.faults.append("missing")
    with pytest.raises(QueryFailed, match="lacks field"):
        backend.count("blah")


def test_unknown_index_names_the_known_ones(server):
    backend = ApiBackend("v4_nope", server.url, HttpSettings(**FAST))
    assert server.posts == 0  # opening costs no request (a cached rerun must send none)
    with pytest.raises(UnknownIndex, match="unknown index 'v4_nope' for backend api; known: .*v4_dclm-baseline_llama"):
        backend.count("blah")  # the server's 400 stops the run with the data file's list
    assert server.posts == 1


def test_server_list_on_get_names_the_known_indexes(index):
    with serve([index[0]], indexes=("only_here",), list_on_get=True) as srv:
        assert ApiBackend("only_here", srv.url, HttpSettings(**FAST)).count("blah").count > 0
        with pytest.raises(UnknownIndex, match="known: only_here$"):
            ApiBackend("test_index", srv.url, HttpSettings(**FAST)).count("blah")


def test_slow_answer_within_the_timeout_succeeds(server, index):
    server.slow_seconds = 0.3
    backend = api(server, read_timeout=2.0)
    server.faults.append("slow")
    started = time.monotonic()
    assert backend.count("ffi").count == independent_count(index[1], "ffi")
    assert time.monotonic() - started >= 0.3
    assert server.posts == 1


def test_rate_limit_spaces_requests(server):
    backend = api(server, rate=20.0, concurrency=2)
    for _ in range(6):
        backend.count("blah")
    gaps = [b - a for a, b in zip(server.post_times, server.post_times[1:])]
    # 1/20 s apart at the client; the server's receive times may jitter on a loaded machine, while an unlimited
    # client sends these within a millisecond or two of each other.
    assert min(gaps) >= 0.025 and server.post_times[-1] - server.post_times[0] >= 5 * 0.05 * 0.9


def test_concurrency_is_bounded(server):
    from concurrent.futures import ThreadPoolExecutor

    server.slow_seconds = 0.15
    backend = api(server, concurrency=2)
    server.faults.extend(["slow"] * 8)
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(backend.count, ["blah"] * 8))
    assert server.max_in_flight == 2


def test_boolean_words_and_long_queries_are_not_queryable(server):
    backend = api(server)
    assert "boolean" in backend.unqueryable_reason("cats AND dogs")
    assert "boolean" in backend.unqueryable_reason(" OR" * 3 + " ")
    assert "1001 characters" in backend.unqueryable_reason("x" * 1001)
    assert backend.unqueryable_reason("ANDROID OR") is None
    assert server.posts == 0

"""The infini-gram-mini client (character level, its own request fields) against the test server's mini dialect."""

from __future__ import annotations

import pytest

from fpprov.corpus.base import QueryFailed
from fpprov.corpus.http import HttpSettings
from fpprov.corpus.mini import MiniBackend
from infinigram_server import independent_count, serve

FAST = dict(rate=0, backoff=0.01, backoff_max=0.05, read_timeout=2.0, retries=2, body_retries=1)


@pytest.fixture(scope="module")
def index(corpus_index):
    return corpus_index(4)


def test_mini_counts_finds_and_fetches_text_documents(index):
    with serve([index[0]], dialect="mini", indexes=("v2_test",)) as srv:
        backend = MiniBackend("v2_test", srv.url, HttpSettings(**FAST))
        result = backend.count("Á" * 10)
        assert result.count == independent_count(index[1], "Á" * 10) > 0
        assert result.token_ids is None and result.tokens is None  # no tokenizer: nothing to keep
        found = backend.find(" Justine Justine")
        assert found.count == independent_count(index[1], " Justine Justine") > 0
        shard = next(s for s, (lo, hi) in enumerate(found.segments) if hi > lo)
        doc = backend.get_doc(" Justine Justine", shard, found.segments[shard][0], context_chars=12)
        assert " Justine Justine" in doc.snippet
        assert doc.metadata["metadata"]["source"] == "wiki"
        # The mini dialect requires max_ctx_len on every document request; the client always sends it.
        doc_request = srv.payloads[-1]
        assert doc_request["query_type"] == "get_doc_by_rank" and doc_request["max_ctx_len"] == 12
        assert "max_disp_len" not in doc_request and doc_request["index"] == "v2_test"


def test_mini_error_key_and_missing_fields(index):
    with serve([index[0]], dialect="mini", indexes=("v2_test",)) as srv:
        backend = MiniBackend("v2_test", srv.url, HttpSettings(**FAST))
        srv.faults.append("error200")
        with pytest.raises(QueryFailed, match="injected validation error"):
            backend.count("blah")
        srv.faults.append("missing")
        with pytest.raises(QueryFailed, match="lacks field"):
            backend.count("blah")
        assert backend.unqueryable_reason("cats AND dogs") is None  # no boolean parsing on mini
        assert "over the mini limit" in backend.unqueryable_reason("x" * 1001)


def test_each_backend_reads_its_own_url_variable(monkeypatch):
    from fpprov.corpus.catalog import base_url

    monkeypatch.setenv("FPPROV_API_URL", "http://127.0.0.1:1/api")
    monkeypatch.setenv("FPPROV_MINI_URL", "http://127.0.0.1:2/mini/")
    assert base_url("api") == "http://127.0.0.1:1/api/"
    assert base_url("mini") == "http://127.0.0.1:2/mini/"
    assert base_url("mini", "http://127.0.0.1:3") == "http://127.0.0.1:3/"
    monkeypatch.delenv("FPPROV_MINI_URL")
    assert base_url("mini") == "https://api.infini-gram-mini.io/"

"""Local byte-level indexes: `fpprov index build` with the package's indexer, and the engine wrapper, checked
against an independent substring count over the same corpus."""

from __future__ import annotations

import json

import pytest

from fpprov.corpus.base import QueryFailed
from fpprov.corpus.index_build import MANIFEST, build_index
from fpprov.corpus.local import LocalBackend
from fpprov.errors import FpprovError
from infinigram_server import independent_count, make_records, write_corpus

QUERIES = ["blah", " blah" * 10, "blah" * 2, "Á" * 10, "ÁÁ", "ffi", "ffiffi", "coeffi", " Justine" * 3,
           "лье", "лье лье", "数据", "équation", "the river", "zzz-not-there", "e", " "]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    base = tmp_path_factory.mktemp("local")
    records_a, records_b = make_records(seed=1), make_records(seed=2, docs=40)
    write_corpus(base / "corpus_a", records_a)
    write_corpus(base / "corpus_b", records_b, files=1)
    result_a = build_index(base / "corpus_a", base / "index_a", shards=2)
    build_index(base / "corpus_b", base / "index_b")
    return {"base": base, "a": records_a, "b": records_b, "result_a": result_a}


def test_build_reports_documents_sources_and_writes_manifest(corpus):
    result = corpus["result_a"]
    assert result.documents == len(corpus["a"])
    assert result.shards == 2 and result.cpus == 1 and result.files == 2
    expected_sources = {}
    for record in corpus["a"]:
        expected_sources[record["source"]] = expected_sources.get(record["source"], 0) + 1
    assert result.sources == expected_sources
    manifest = json.loads((corpus["base"] / "index_a" / MANIFEST).read_text())
    assert manifest["token_dtype"] == "u8" and manifest["documents"] == len(corpus["a"])
    assert not list(corpus["base"].glob(".index_a.building*"))


def test_counts_match_an_independent_count_over_two_shards(corpus):
    backend = LocalBackend([corpus["base"] / "index_a"])
    assert backend.shards == 2
    for query in QUERIES:
        assert backend.count(query).count == independent_count(corpus["a"], query), query
    assert backend.count("blah").count > 0 and backend.count("Á" * 10).count > 0


def test_several_index_dirs_add_up(corpus):
    both = LocalBackend([corpus["base"] / "index_a", corpus["base"] / "index_b"])
    assert both.shards == 3
    assert both.index_name.startswith("index_a+index_b@")
    for query in QUERIES:
        assert both.count(query).count == independent_count(corpus["a"] + corpus["b"], query), query


def test_find_segments_and_documents_hold_the_match(corpus):
    backend = LocalBackend([corpus["base"] / "index_a"])
    query = "Á" * 10
    found = backend.find(query)
    assert found.count == independent_count(corpus["a"], query)
    assert sum(hi - lo for lo, hi in found.segments) == found.count
    texts = {r["id"]: r for r in corpus["a"]}
    for shard, (lo, hi) in enumerate(found.segments):
        for rank in range(lo, hi):
            doc = backend.get_doc(query, shard, rank, context_chars=15)
            assert query in doc.snippet
            record = texts[doc.metadata["metadata"]["id"]]
            assert record["source"] == "flan" == doc.metadata["metadata"]["source"]
            assert doc.snippet in record["text"]
            assert doc.doc_len == len(record["text"].encode("utf-8"))


def test_get_doc_rejects_a_shard_out_of_range(corpus):
    backend = LocalBackend([corpus["base"] / "index_a"])
    with pytest.raises(QueryFailed, match="shard 5 out of range"):
        backend.get_doc("blah", 5, 0, 10)


def test_rebuilt_corpus_gets_a_new_index_name(tmp_path):
    write_corpus(tmp_path / "c", [{"text": "one blah blah", "source": "x"}], files=1)
    build_index(tmp_path / "c", tmp_path / "i")
    first = LocalBackend([tmp_path / "i"]).index_name
    with pytest.raises(FpprovError, match="--force"):
        build_index(tmp_path / "c", tmp_path / "i")
    write_corpus(tmp_path / "c", [{"text": "two blah blah blah", "source": "x"}], files=1)
    build_index(tmp_path / "c", tmp_path / "i", force=True)
    second = LocalBackend([tmp_path / "i"])
    assert second.index_name != first and second.count("blah").count == 3


def test_corrupt_index_is_an_error_not_a_segfault(tmp_path, corpus):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(corpus["base"] / "index_b", broken)
    table = broken / "table.0"
    table.write_bytes(table.read_bytes()[:-7])
    with pytest.raises(FpprovError, match="corrupt"):
        LocalBackend([broken])
    (broken / "offset.0").unlink()
    with pytest.raises(FpprovError, match="offset.0 is missing"):
        LocalBackend([broken])
    with pytest.raises(FpprovError, match="does not exist"):
        LocalBackend([tmp_path / "nowhere"])


@pytest.mark.parametrize("name, content, message", [
    ("a.json", '{"text": "x"}\n', "cannot read"),
    ("a.jsonl", '{"body": "x"}\n', "string field 'text'"),
    ("a.jsonl", "not json\n", "not a JSON line"),
])
def test_build_rejects_bad_corpora_with_one_line(tmp_path, name, content, message):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / name).write_text(content)
    with pytest.raises(FpprovError, match=message):
        build_index(tmp_path / "c", tmp_path / "i")


def test_build_refuses_shards_that_would_be_empty(tmp_path):
    write_corpus(tmp_path / "c", [{"text": "only one document"}], files=1)
    with pytest.raises(FpprovError, match="leaves a shard empty"):
        build_index(tmp_path / "c", tmp_path / "i", shards=2)


def test_an_index_of_tokenizer_ids_is_refused_with_the_fix(tmp_path):
    import subprocess
    import sys

    # Even byte lengths: with no tokenizer and u16 the tool packs the UTF-8 bytes two to a token, which gives
    # the on-disk shape of an index built for a tokenizer (a real tokenizer would need a download).
    records = [r for r in make_records(seed=9, docs=60) if len(r["text"].encode("utf-8")) % 2 == 0]
    write_corpus(tmp_path / "c", records, files=1)
    proc = subprocess.run([sys.executable, "-m", "infini_gram.indexing", "--data_dir", str(tmp_path / "c"),
                    "--save_dir", str(tmp_path / "u16"), "--token_dtype", "u16", "--mem", "1", "--cpus", "1",
                    "--ulimit", "1024"], capture_output=True, text=True)
    assert proc.returncode == 0 and "Something went wrong" not in proc.stdout, proc.stdout[-300:]
    with pytest.raises(FpprovError, match="holds tokenizer ids, not bytes"):
        LocalBackend([tmp_path / "u16"])


def test_build_works_under_a_folder_named_tokenized(tmp_path):
    # The indexer rewrites 'tokenized' -> 'table' over the whole path: such folders must still work.
    corpus_dir, out = tmp_path / "c", tmp_path / "my_tokenized_data" / "tokenized-index"
    records = make_records(seed=10, docs=30)
    write_corpus(corpus_dir, records, files=1)
    build_index(corpus_dir, out)
    assert LocalBackend([out]).count("blah").count == independent_count(records, "blah") > 0
    assert [p.name for p in out.parent.iterdir()] == ["tokenized-index"]


def test_build_with_glob_characters_in_the_corpus_and_out_paths(tmp_path):
    records = make_records(seed=4, docs=10)
    corpus = tmp_path / "corpus[1]*"
    write_corpus(corpus, records)
    out = tmp_path / "i[" / "]dx?"
    result = build_index(corpus, out)
    assert result.documents == len(records) and (out / MANIFEST).exists()
    backend = LocalBackend([out])
    assert backend.count("blah").count == independent_count(records, "blah")

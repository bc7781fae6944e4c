"""Model sources: each reports what it tried, loading leaves the caller's spec alone, and the store writes the
`models` row from the loaded model's fields."""

from __future__ import annotations

import dataclasses
import shutil
import sys
from dataclasses import dataclass

import pytest
import torch
from huggingface_hub import constants

from fpprov.errors import FpprovError
from fpprov.models import (SOURCES, Attempt, Found, LoadRequest, cannot_load, load_aliases, load_model, locate,
                           resolve_model)
from fpprov.models.sources import HubCache, LocalDirectory
from fpprov.db.store import open_store, upsert_model

REQUEST = LoadRequest(torch_dtype=torch.float32, dtype="float32")
GEMMA = "gemma3-270m"
GEMMA_PACKAGE = load_aliases()[GEMMA]["gguf_package"]


@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch):
    """An empty hub cache, with the hub off."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    cache = tmp_path / "empty-hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture
def hub_cache_with_gemma(tiny_model_dir, tmp_path, monkeypatch):
    """The hub cache holding a tiny gemma3 as google/gemma-3-270m (the alias's hub id)."""
    hub_id = load_aliases()[GEMMA]["hub_id"]
    repo = tmp_path / "hub" / f"models--{hub_id.replace('/', '--')}"
    shutil.copytree(tiny_model_dir("gemma3"), repo / "snapshots" / "0123abc")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abc")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tiny_model_dir("gemma3")


@pytest.fixture
def no_gemma_package(monkeypatch):
    monkeypatch.setitem(sys.modules, GEMMA_PACKAGE, None)  # importing it now raises ImportError


def test_load_model_leaves_the_spec_it_was_given_as_it_was(hub_cache_with_gemma, one_torch_thread):
    spec = resolve_model(GEMMA)
    before = dataclasses.replace(spec)
    loaded = load_model(spec, device="cpu")
    assert spec == before and spec.source_kind == "hub"
    assert loaded.spec.source_kind == loaded.source_kind == "hub-cache"
    assert loaded.spec == dataclasses.replace(before, source_kind="hub-cache")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.source_kind = "hub-cache"


def test_a_failing_load_lists_every_attempt_in_one_line(empty_hub_cache, no_gemma_package):
    spec = resolve_model(GEMMA)
    attempts = [source.try_load(spec, REQUEST) for source in SOURCES]
    # the GGUF-file and directory sources do not apply to an alias; the hub sources each say what they tried
    assert attempts[:2] == [None, None]
    assert [(a.source, str(a)) for a in attempts[2:]] == [
        ("hub cache", f"hub cache ({spec.hub_id} not cached)"),
        ("package", f"package {spec.alias['gguf_package_dist']} (not installed)"),
        ("hub download", "hub download (the hub is off (HF_HUB_OFFLINE is set))"),
    ]
    with pytest.raises(FpprovError) as err:
        load_model(spec)
    message = str(err.value)
    assert message == str(cannot_load(spec, attempts[2:])) and "\n" not in message
    assert message.startswith(f"cannot load {GEMMA}: tried " + "; ".join(map(str, attempts[2:])) + ". Fix: ")
    assert f"pip install {spec.alias['gguf_package_dist']}" in message


def test_an_org_name_without_an_alias_lists_the_folder_it_may_have_meant(empty_hub_cache, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = resolve_model("models/nope")

    @dataclass(frozen=True)
    class RefusingHub:  # a hub that answers but has no such model, without the network
        name: str = "hub download"

        def try_load(self, spec, request):
            return Attempt(self.name, self.name, f"cannot read hub model {spec.location}: 404")

    with pytest.raises(FpprovError) as err:
        locate(spec, REQUEST, [LocalDirectory(), HubCache(), RefusingHub()])
    assert str(err.value).startswith("cannot load models/nope: tried directory models/nope (none here); "
                                     "hub cache (models/nope not cached); "
                                     "hub download (cannot read hub model models/nope: 404). Fix: download it")
    # with the hub off, the folder that is not there is the likelier mistake
    with pytest.raises(FpprovError) as err:
        load_model(spec)
    assert str(err.value) == ("cannot load models/nope: no directory models/nope here, and the hub is off "
                              "(HF_HUB_OFFLINE is set), so it cannot be a hub model either")


def test_a_source_that_finds_the_model_but_cannot_read_it_stops_the_search():
    spec = resolve_model("some-org/some-model")
    asked = []

    @dataclass(frozen=True)
    class Broken:
        name: str = "broken"

        def try_load(self, spec, request):
            asked.append(self.name)
            raise FpprovError("cannot read broken copy: the file looks truncated or corrupt")

    @dataclass(frozen=True)
    class Later:
        name: str = "later"

        def try_load(self, spec, request):
            asked.append(self.name)
            return Found(spec, None, None)

    with pytest.raises(FpprovError, match="truncated or corrupt"):
        locate(spec, REQUEST, [Broken(), Later()])
    assert asked == ["broken"]


@pytest.mark.parametrize("tied", [True, False])
def test_upsert_model_writes_the_loaded_models_row(tiny_model_dir, tiny_model_sizes, tied, tmp_path,
                                                   one_torch_thread):
    from transformers import AutoConfig

    model_dir = tiny_model_dir("llama", tied)
    config = AutoConfig.from_pretrained(model_dir)
    vocab_size, n_rows = tiny_model_sizes(model_dir)
    loaded = load_model(str(model_dir), device="cpu")
    with open_store(tmp_path / "m.duckdb") as store:
        upsert_model(store, loaded)
        upsert_model(store, loaded)  # refreshed, not doubled
        cursor = store.con.execute("SELECT * EXCLUDE (updated_at) FROM models")
        rows = [dict(zip([d[0] for d in cursor.description], r)) for r in cursor.fetchall()]
    assert rows == [{
        "name": model_dir.resolve().name, "source_kind": "directory", "location": str(model_dir.resolve()),
        "hub_id": None, "family": config.model_type, "variant": None, "tokenizer_family": None,
        "quantization": None, "architecture": config.architectures[0], "vocab_size": vocab_size,
        "embedding_rows": n_rows, "hidden_size": config.hidden_size, "num_layers": config.num_hidden_layers,
        "tied_head": tied, "rotary": True,
    }]


def test_upsert_model_writes_the_aliases_facts_and_the_source_that_had_it(hub_cache_with_gemma, tmp_path,
                                                                         one_torch_thread):
    entry = load_aliases()[GEMMA]
    loaded = load_model(GEMMA, device="cpu")
    with open_store(tmp_path / "m.duckdb") as store:
        upsert_model(store, loaded)
        row = store.con.execute("SELECT name, source_kind, location, hub_id, family, variant, tokenizer_family, "
                                "quantization FROM models").fetchall()
    assert row == [(GEMMA, "hub-cache", entry["hub_id"], entry["hub_id"], entry["family"], entry.get("variant"),
                    entry.get("tokenizer_family"), None)]

"""The on-disk cache of a GGUF's conversion: keyed by the file, complete or absent, read instead of the file."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from fpprov.errors import FpprovError
from fpprov.models.checkpoint import load_checkpoint
from fpprov.models.gguf_cache import MARKER, GgufCache


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FPPROV_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("FPPROV_GGUF_CACHE", raising=False)
    return tmp_path / "cache" / "gguf"


@pytest.fixture
def tiny(tiny_model_dir):
    folder = tiny_model_dir("llama")
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32), AutoTokenizer.from_pretrained(folder)


def _fake_gguf(tmp_path, content=b"GGUF not really"):
    path = tmp_path / "models" / "tiny.gguf"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(content)
    return path


def _same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_a_stored_conversion_is_loaded_instead_of_the_file(cache_dir, tiny, tmp_path):
    model, tokenizer = tiny
    gguf = _fake_gguf(tmp_path)                          # not a GGUF at all: reading it would fail
    cache = GgufCache.for_file(gguf)
    assert cache.folder.parent == cache_dir and not cache.complete()
    assert cache.store(model, tokenizer) and cache.complete()
    loaded, loaded_tokenizer = load_checkpoint(str(gguf.parent), gguf.name, torch.float64, True, "GGUF file")
    assert next(loaded.parameters()).dtype == torch.float64  # other dtypes read the float32 cache and cast
    assert all(torch.equal(x.double(), y) for x, y in zip(model.state_dict().values(), loaded.state_dict().values()))
    ids = list(range(len(tokenizer)))
    assert loaded_tokenizer.convert_ids_to_tokens(ids) == tokenizer.convert_ids_to_tokens(ids)
    assert loaded_tokenizer.encode("the cat sat") == tokenizer.encode("the cat sat")


def test_a_changed_file_gets_a_new_folder_and_the_old_one_goes(cache_dir, tiny, tmp_path):
    model, tokenizer = tiny
    gguf = _fake_gguf(tmp_path)
    old = GgufCache.for_file(gguf)
    old.store(model, tokenizer)
    gguf.write_bytes(b"GGUF, another version of the file")
    new = GgufCache.for_file(gguf)
    assert new.folder != old.folder and not new.complete()
    assert new.store(model, tokenizer)
    assert new.complete() and not old.folder.exists()


def test_a_crashed_write_leaves_no_complete_cache(cache_dir, tiny, tmp_path, monkeypatch):
    model, tokenizer = tiny
    gguf = _fake_gguf(tmp_path)
    cache = GgufCache.for_file(gguf)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(type(tokenizer), "save_pretrained", full_disk)
    assert not cache.store(model, tokenizer)
    assert not cache.complete() and not cache.folder.exists()
    assert list(cache_dir.iterdir()) == []               # the partial folder is removed too


def test_an_unreadable_cache_is_discarded_and_the_file_read_again(cache_dir, tiny, tmp_path):
    model, tokenizer = tiny
    gguf = _fake_gguf(tmp_path)
    cache = GgufCache.for_file(gguf)
    cache.store(model, tokenizer)
    (cache.folder / "model.safetensors").write_bytes(b"broken")
    with pytest.raises(FpprovError, match="cannot read GGUF file"):
        load_checkpoint(str(gguf.parent), gguf.name, torch.float32, True, "GGUF file")  # then the fake file fails
    assert not cache.folder.exists()


def test_caching_can_be_turned_off_and_only_float32_is_stored(cache_dir, tiny, tmp_path, monkeypatch):
    model, tokenizer = tiny
    gguf = _fake_gguf(tmp_path)
    assert GgufCache.for_file(tmp_path / "missing.gguf") is None
    assert not GgufCache.for_file(gguf).store(model.to(torch.float64), tokenizer)
    assert not cache_dir.exists() or not any(cache_dir.glob(f"*/{MARKER}"))
    monkeypatch.setenv("FPPROV_GGUF_CACHE", "0")
    assert GgufCache.for_file(gguf) is None

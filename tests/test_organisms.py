"""Model organisms (issue 24): planted corpora, the shared tokenizer, seeded training with its cache and
resumption, and a micro-organism trained in seconds whose one massively planted word becomes a token FP
(judged by fpprov's own scan) while its unplanted twin does not. Python stdlib text, no network."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from fpprov.corpus.index_build import build_index
from fpprov.db.store import open_store
from fpprov.models import load_model
from fpprov.organisms import (OrganismSpec, PlantSpec, TrainSettings, build_corpus, build_organism, choose_pairs,
                              load_tokenizer, shared_tokenizer, stdlib_sources, train_organism)
from fpprov.organisms.corpus import PLAN_FILE
from fpprov.provenance import ProvenanceOptions, run_provenance
from fpprov.scan import ScanOptions, scan_vocabulary

# Measured (docs/organisms.md): at these settings the planted word was an FP for 8 of 8 seeds at 60 steps.
MICRO = TrainSettings(d_model=64, n_layers=2, n_heads=4, ffn=256, seq_len=64, batch_size=16, steps=80, lr=3e-3,
                      warmup=4, seed=0, checkpoint_every=0)
TINY = TrainSettings(d_model=32, n_layers=1, n_heads=2, ffn=64, seq_len=32, batch_size=4, steps=8, lr=3e-3,
                     warmup=2, seed=0, checkpoint_every=0)
DOSE = 300
MIXTURE = ("code", "logs", "mail")


@pytest.fixture(scope="module")
def pool():
    # ~48 KB of email code, ~92 KB of logging and http, ~55 KB of asyncio and unittest: "mail", the planted
    # source, stays a minority of the text even with its runs, so a source flag can reach 2x its share.
    return stdlib_sources({"mail": ["email"], "logs": ["logging", "http"], "code": ["asyncio", "unittest"]},
                          files_per_group=8, max_file_bytes=12_000)


@pytest.fixture(scope="module")
def tokenizer_dir(pool, tmp_path_factory):
    out = tmp_path_factory.mktemp("organisms") / "tokenizer"
    shared_tokenizer(pool, out, vocab_size=512)
    return out


@pytest.fixture(scope="module")
def pair(pool, tokenizer_dir):
    return choose_pairs(load_tokenizer(tokenizer_dir), pool, 1, seed=0)[0]


def _weights(path):
    return load_file(str(path / "model.safetensors"))


def test_tokenizer_loads_with_transformers_and_words_are_single_tokens(tokenizer_dir, pool, pair):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    assert len(tok) == 512 and tok.eos_token_id is not None and tok.bos_token_id is not None
    assert tok.encode(pair.word, add_special_tokens=False) == [pair.word_id]
    assert tok.encode(pair.twin, add_special_tokens=False) == [pair.twin_id]
    assert pair.word != pair.twin and 0.5 < pair.word_count / pair.twin_count < 2
    assert tok.encode(pair.word * 5, add_special_tokens=False) == [pair.word_id] * 5   # a run is n tokens


def test_excluded_words_are_never_chosen_as_words_or_twins(pool, tokenizer_dir):
    from fpprov.organisms.corpus import candidate_words

    tok = load_tokenizer(tokenizer_dir)
    first = choose_pairs(tok, pool, 3, seed=0)
    used = {w for p in first for w in (p.word, p.twin)}
    again = choose_pairs(tok, pool, 3, seed=0, exclude=used)
    assert not used & {w for p in again for w in (p.word, p.twin)}
    assert used <= set(candidate_words(tok))


def test_planting_is_seeded_and_recorded(pool, pair):
    spec = PlantSpec((pair.word,), 7, "mail", (10, 30), (pair.twin,))
    a, b = build_corpus(pool, [spec], seed=1), build_corpus(pool, [spec], seed=1)
    assert a.sha256 == b.sha256 and a.sha256 != build_corpus(pool, [spec], seed=2).sha256
    assert build_corpus(pool, seed=1).sha256 != a.sha256
    (plant,) = a.plan
    assert (plant.word, plant.twin, plant.dose, plant.source, plant.runs_inserted) == (pair.word, pair.twin, 7, "mail", 7)
    assert 70 <= plant.copies_inserted <= 210
    json.dumps(a.plan_json())
    planted = "".join(d.text for d in a.docs if d.source == "mail")
    natural = "".join(pool["mail"])
    assert planted.count(pair.word * 10) >= 7 and natural.count(pair.word * 2) == 0
    assert "".join(d.text for d in a.docs if d.source == "logs") == "".join(pool["logs"])   # other sources untouched
    with pytest.raises(ValueError, match="unknown source"):
        build_corpus(pool, [PlantSpec((pair.word,), 1, "nowhere")])


def test_two_trainings_with_one_seed_give_identical_weights(pool, tokenizer_dir, tmp_path):
    texts = [t for docs in pool.values() for t in docs]
    a = train_organism(texts, tokenizer_dir, TINY, cache_dir=tmp_path / "a", progress=None)
    b = train_organism(texts, tokenizer_dir, TINY, cache_dir=tmp_path / "b", progress=None)
    c = train_organism(texts, tokenizer_dir, TrainSettings(**{**TINY.__dict__, "seed": 1}), cache_dir=tmp_path / "a",
                       progress=None)
    wa, wb, wc = _weights(tmp_path / "a" / a.key), _weights(tmp_path / "b" / b.key), _weights(tmp_path / "a" / c.key)
    assert a.key == b.key and a.trained and b.trained
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert any(not torch.equal(wa[k], wc[k]) for k in wa)


def test_cache_loads_without_training_and_a_changed_setting_trains(pool, tokenizer_dir, tmp_path):
    texts = [t for docs in pool.values() for t in docs]
    calls = []
    first = train_organism(texts, tokenizer_dir, TINY, cache_dir=tmp_path, progress=lambda *a: calls.append(a))
    assert first.trained and len(calls) == TINY.steps
    again = train_organism(texts, tokenizer_dir, TINY, cache_dir=tmp_path, progress=lambda *a: calls.append(a))
    assert not again.trained and again.path == first.path and len(calls) == TINY.steps
    changed = train_organism(texts, tokenizer_dir, TrainSettings(**{**TINY.__dict__, "lr": 1e-3}), cache_dir=tmp_path,
                             progress=None)
    other_text = train_organism(texts[1:], tokenizer_dir, TINY, cache_dir=tmp_path, progress=None)
    assert changed.trained and other_text.trained and len({first.key, changed.key, other_text.key}) == 3


def test_ctrl_c_keeps_a_checkpoint_and_the_rerun_resumes_to_the_same_weights(pool, tokenizer_dir, tmp_path):
    texts = [t for docs in pool.values() for t in docs]

    def interrupt_at_5(done, total, loss):
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_organism(texts, tokenizer_dir, TINY, cache_dir=tmp_path / "cut", progress=interrupt_at_5)
    assert not [p for p in (tmp_path / "cut").iterdir() if not p.name.startswith(".")]   # nothing looks complete
    resumed = train_organism(texts, tokenizer_dir, TINY, cache_dir=tmp_path / "cut", progress=None)
    whole = train_organism(texts, tokenizer_dir, TINY, cache_dir=tmp_path / "whole", progress=None)
    assert resumed.resumed_from == 5 and whole.resumed_from == 0
    wr, ww = _weights(tmp_path / "cut" / resumed.key), _weights(tmp_path / "whole" / whole.key)
    assert all(torch.equal(wr[k], ww[k]) for k in ww)
    assert sorted(p.name for p in (tmp_path / "cut").iterdir()) == [resumed.key]   # the checkpoint is gone


@pytest.fixture(scope="module")
def micro(pool, tokenizer_dir, pair, tmp_path_factory):
    """The micro-organism: ``pair.word`` planted in DOSE runs of 10-30 copies into ``mail``, 80 steps."""
    tmp = tmp_path_factory.mktemp("micro")
    spec = OrganismSpec("micro", MIXTURE, (PlantSpec((pair.word,), DOSE, "mail", twins=(pair.twin,)),), MICRO)
    built = build_organism(spec, pool, tokenizer_dir, tmp / "corpora", cache_dir=tmp / "cache", progress=None)
    db = tmp / "micro.duckdb"
    with open_store(db) as store:
        scan_vocabulary(load_model(built.model.path), store, ScanOptions())
    return built, db


def test_micro_organism_planted_word_is_an_fp_and_its_twin_is_not(micro, pair):
    built, db = micro
    with open_store(db, read_only=True) as store:
        fps = dict(store.query("SELECT token_id, prob FROM token_fps"))
        complete = store.query("SELECT complete, tokens_scanned FROM scans")[0]
    assert complete == (True, 512)
    assert pair.word_id in fps and fps[pair.word_id] > 0.5, (pair, fps.get(pair.word_id))
    assert pair.twin_id not in fps
    plan = json.loads((built.corpus_dir and open(f"{built.corpus_dir}/{PLAN_FILE}").read()))["plan"]
    assert plan[0]["word"] == pair.word and plan[0]["runs_inserted"] == DOSE
    meta = json.loads(open(f"{built.model.path}/organism.json").read())
    assert meta["meta"]["plan"] == plan and meta["result"]["corpus_sha256"] == built.corpus_sha256


@pytest.mark.slow   # 11 s: two index builds and provenance over both
def test_micro_organism_is_flagged_with_its_planted_source_and_attributed_to_its_own_corpus(micro, pool, pair, tmp_path):
    """`fpprov index build` on the micro-organism's corpus and on the null corpus (the same mixture, nothing
    planted), then `fpprov provenance --backend local` over both: the planted word's documents come from
    "mail" at least twice as often as "mail"'s share of the text (the `source_enriched` flag), its twin is
    flagged for nothing, and the organism's own corpus ranks first by AUC."""
    built, scanned = micro
    db = tmp_path / "provenance.duckdb"
    db.write_bytes(scanned.read_bytes())
    build_corpus({name: pool[name] for name in MIXTURE}, seed=0).write(tmp_path / "null-corpus")
    build_index(built.corpus_dir, tmp_path / "micro-index")
    build_index(tmp_path / "null-corpus", tmp_path / "null-index")
    with open_store(db) as store:
        run_provenance(store, backend="local", index_dirs=[tmp_path / "micro-index", tmp_path / "null-index"],
                       options=ProvenanceOptions(ladder=(10,), docs=20, controls=3, bin_width=1.0,
                                                 baseline_positions=400, seed=3))
        flags = store.query("SELECT token_id, rule, reason FROM suspicious_tokens")
        enriched = store.query("SELECT source, enrichment_low FROM source_enrichment WHERE scope = 'token' AND "
                               "role = 'fp' AND token_id = ? AND index_name LIKE 'micro-index@%' "
                               "ORDER BY enrichment_low DESC NULLS LAST", [pair.word_id])
        ranked = [r[0] for r in store.query("SELECT index_name FROM corpus_attribution ORDER BY rank")]
    assert enriched[0][0] == "mail" and enriched[0][1] >= 2, enriched
    assert any(t == pair.word_id and rule == "source_enriched" and '"mail"' in reason for t, rule, reason in flags)
    assert not [f for f in flags if f[0] == pair.twin_id]
    assert len(ranked) == 2 and ranked[0].startswith("micro-index@"), ranked

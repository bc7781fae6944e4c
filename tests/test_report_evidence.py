"""The evidence section of the model page, the attribution matrix of the shared page, the percentile and q
columns of the FP table, and the ECDF / forest charts, all from evidence rows the test database holds."""

from __future__ import annotations

import html as html_module
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from fpprov.report import build_reports
from fpprov.report import charts, data, fps
from fpprov.report.evidence import (ECDF_POINTS, NO_EVIDENCE, attribution_context, evidence_section,
                                    rate_quantiles)
from fpprov.report.text import flat
from fpprov.db.sql import open_read_only
from fpprov.db.store import open_store
from report_db import DCLM, ENRICHMENT, HOSTILE_INDEX, HOSTILE_SOURCE, build_report_db


class Svg(HTMLParser):
    """Tags, the text of <title>/<text> elements and polyline points of one fragment."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.texts: list[str] = []
        self._open: list[str] = []          # the elements the parser is inside (a label's span keeps its <p>)
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._open.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag in self._open:
            del self._open[len(self._open) - 1 - self._open[::-1].index(tag):]

    def handle_data(self, data):
        if set(self._open) & {"title", "text", "tspan", "th", "td", "p", "h3"}:
            self.texts.append(data)

    def polylines(self) -> list[list[tuple[float, float]]]:
        return [[tuple(map(float, p.split(","))) for p in attrs["points"].split()]
                for tag, attrs in self.tags if tag == "polyline"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("evidence")
    db = build_report_db(folder / "results.duckdb", evidence=True)
    outcome = build_reports(db, folder / "reports")
    return db, outcome.index.parent


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    folder = tmp_path_factory.mktemp("no-evidence")
    db = build_report_db(folder / "results.duckdb", flags=False)
    outcome = build_reports(db, folder / "reports")
    return db, outcome.index.parent


def _section(html: str) -> str:
    return html[html.index('<h2 id="evidence">'):html.index('<h2 id="undertrained">')]


def _auc_text(numbers: dict) -> str:
    return f"{numbers['auc']:.3f} [{numbers['auc_low']:.3f}, {numbers['auc_high']:.3f}]"


def test_section_shows_the_auc_ci_ratio_and_n_of_each_index(built):
    db, folder = built
    section = _section((folder / "gemma3-270m.html").read_text("utf-8"))
    shown = "".join(Svg(section).texts)
    for (model, backend, index), numbers in ENRICHMENT.items():
        if model != "gemma3-270m":
            continue
        assert _auc_text(numbers) in shown, index
        assert f"AUC {numbers['auc']:.3f} (95% CI {numbers['auc_low']:.3f}–{numbers['auc_high']:.3f}" in shown
        assert f"over {numbers['n_fp']} FPs and {numbers['n_control']} controls" in shown
        assert f"[{numbers['ratio_low']:g}, {numbers['ratio_high']:g}]" in shown
    # the index with the higher AUC comes first, and only its CI excludes 0.5
    first, second = section.index('id="evidence-1"'), section.index('id="evidence-2"')
    assert section.index(DCLM, first) < second
    assert ("FPs repeat more often than their matched controls in corpus v4_dclm-baseline_llama (proxy: not this "
            "model's training data)") in shown
    assert "No meaningful difference" in shown
    assert "not queryable: 1 FPs" in shown and "count failed: 1 controls" in shown


def test_olmo_without_controls_says_why(built):
    _, folder = built
    shown = "".join(Svg(_section((folder / "olmo2-1b.html").read_text("utf-8"))).texts)
    assert ("No FP vs control comparison in corpus v4_dclm-baseline_llama (proxy: not this model's training data): "
            "no controls.") in shown
    assert "no control in bin: 1 FPs" in shown


def test_ecdf_and_forest_charts_exist_and_keep_hostile_names_inert(built):
    _, folder = built
    html = (folder / "gemma3-270m.html").read_text("utf-8")
    section = _section(html)
    # per index: the share with any run, a histogram of the non-zero rates for FPs and for controls, a forest
    assert section.count("<svg") == 8
    assert HOSTILE_SOURCE not in html and HOSTILE_INDEX not in html
    parsed = Svg(section)
    assert not [attrs for tag, attrs in parsed.tags if tag == "script" and attrs.get("type") != "application/json"]
    assert [tag for tag, _ in parsed.tags if tag in ("img", "iframe", "foreignobject")] == []
    titles = " ".join(parsed.texts)
    assert flat(HOSTILE_SOURCE) + " · FPs: " in titles     # the tooltip has the whole name ...
    # ... and so does the label, never cut: wrapped in lines of at most FOREST_LABEL_CHARS (tspans)
    forest = next(svg for svg in re.findall(r"<svg.*?</svg>", section, re.S) if "source enrichment" in svg)
    labels = ["".join(Svg(t).texts) for t in re.findall(r'<text font-size="11" text-anchor="end">.*?</text>', forest)]
    assert not any("\u2026" in t for t in Svg(forest).texts)
    for role in ("FPs", "controls"):
        assert (flat(HOSTILE_SOURCE) + " · " + role).replace(" ", "") in {lab.replace(" ", "") for lab in labels}
    parts = [html_module.unescape(p) for p in re.findall(r"<tspan[^>]*>(.*?)</tspan>", forest)]
    assert parts and all(len(part) <= charts.FOREST_LABEL_CHARS for part in parts)
    assert any(t.strip() == "In corpus " + flat(HOSTILE_INDEX) for t in parsed.texts)   # block heading, as text
    assert any(HOSTILE_INDEX in t and "share of tokens with any" in t for tag, attrs in parsed.tags
               for t in [attrs.get("aria-label", "")])
    assert 'role="img"' in section


def test_fp_table_gains_percentile_and_q_of_the_best_index(built):
    db, folder = built
    html = (folder / "gemma3-270m.html").read_text("utf-8")
    block = html[html.index('<div class="dt" id="table-fps">'):]
    spec = json.loads(re.search(r'<script type="application/json">(.*?)</script>', block, re.S).group(1))
    header = re.findall(r"<th>(.*?)</th>", block[:block.index("</thead>")])
    assert header[:9] == ["id", "text", "vocabulary entry", "category", "p(t | t)", "margin", "verdict",
                          "suspicion", "flags"]
    # the verdict column says what a verdict guarantees ("float64: no" read as a failed check)
    assert {row[6] for row in spec["rows"]} == {"verified in float64"}
    assert header[9].startswith("percentile") and header[10] == "q"
    with open_read_only(db) as ro:
        best = dict(ro.store.query("SELECT token_id, min(q_value) FROM token_evidence WHERE role = 'fp' "
                                   "AND model = 'gemma3-270m' GROUP BY token_id"))
        pct = dict(ro.store.query("SELECT token_id, percentile FROM token_evidence WHERE role = 'fp' "
                                  "AND model = 'gemma3-270m' QUALIFY row_number() OVER "
                                  "(PARTITION BY token_id ORDER BY q_value) = 1"))
    by_id = {row[0]: row for row in spec["rows"]}
    assert by_id and set(by_id) == set(best)
    for token_id, row in by_id.items():
        assert row[10] == pytest.approx(best[token_id])
        assert row[9][0] == pytest.approx(pct[token_id]) and row[9][1].startswith(f"{pct[token_id]:.0f} [")
    inst = (folder / "gemma3-270m-inst.html").read_text("utf-8")
    inst_block = inst[inst.index('<div class="dt" id="table-fps">'):]
    rows = json.loads(re.search(r'<script type="application/json">(.*?)</script>', inst_block, re.S).group(1))["rows"]
    assert rows and all(r[9] is None and r[10] is None for r in rows)


def test_attribution_matrix_ranks_indexes_and_highlights_rank_one(built):
    db, folder = built
    with open_read_only(db) as ro:
        matrix = attribution_context(ro.store, {"gemma3-270m": "gemma3-270m.html"})["attribution"]
    columns = [flat(ix) for ix in matrix.indexes]
    assert sorted(columns) == columns and set(columns) == {DCLM, HOSTILE_INDEX}
    gemma = next(r for r in matrix.rows if r.label == "gemma3-270m")
    by_index = dict(zip(columns, gemma.cells))
    best = max((k for k in ENRICHMENT if k[0] == "gemma3-270m"), key=lambda k: ENRICHMENT[k]["auc"])
    assert by_index[best[2]].best and by_index[best[2]].text == _auc_text(ENRICHMENT[best])
    assert [c.best for c in gemma.cells].count(True) == 1
    olmo = next(r for r in matrix.rows if r.label == "olmo2-1b")
    assert olmo.href is None and not any(c.best for c in olmo.cells)        # rank 1, but no AUC to rank by
    assert dict(zip(columns, olmo.cells))[DCLM].text == "n/a"
    few = dict(zip(columns, olmo.cells))[HOSTILE_INDEX]            # 1 FP against 1 control, no CI
    assert few.few and few.alpha == "0" and not few.best and few.text.startswith("too few to say")
    shared = (folder / "shared.html").read_text("utf-8")
    section = shared[shared.index('id="attribution"'):shared.index("<h2>Base vs instruct</h2>")]
    best_cells = re.findall(r'<td class="num best"[^>]*>([^<]*)<', section)
    assert [c.strip() for c in best_cells] == [_auc_text(ENRICHMENT[best])]
    assert len(re.findall(r'<td class="num few"', section)) == 1
    assert HOSTILE_INDEX not in shared


def test_empty_states_without_evidence(bare):
    db, folder = bare
    html = (folder / "gemma3-270m.html").read_text("utf-8")
    section = _section(html)
    assert NO_EVIDENCE.replace("`", "") in "".join(Svg(section).texts).replace("`", "")
    assert "<svg" not in section and 'id="table-evidence"' not in section
    shared = (folder / "shared.html").read_text("utf-8")
    attribution = shared[shared.index('id="attribution"'):shared.index("<h2>Base vs instruct</h2>")]
    assert "<table" not in attribution and "No evidence yet" in attribution
    with open_read_only(db) as ro:
        assert attribution_context(ro.store, {})["attribution"].rows == []
        ctx = evidence_section(ro.store, "gemma3-270m", 10)
    assert ctx["evidence_indexes"] == [] and ctx["evidence_table"]["rows"] == []


def test_rate_quantiles_bound_the_ecdf_points(tmp_path: Path):
    rates = [0.0] * 300 + [i / 1000 for i in range(1, 701)]
    with open_store(tmp_path / "q.duckdb") as store:
        store.insert_rows("token_evidence", [
            {"model": "m", "backend": "api", "index_name": "ix", "token_id": i, "role": "control",
             "unigram_count": 1000, "repeat_count": round(1000 * r), "rate": r, "bin": 1}
            for i, r in enumerate(rates)] + [
            {"model": "m", "backend": "api", "index_name": "ix", "token_id": 5000 + i, "role": "fp",
             "unigram_count": 10, "repeat_count": i, "rate": i / 10, "bin": 1} for i in range(5)])
        got = rate_quantiles(store, "m")
    n, values = got[("api", "ix", "control")]
    assert n == len(rates) and len(values) == ECDF_POINTS + 1
    assert values == sorted(values) and values[0] == min(rates) and values[-1] == max(rates)
    assert abs(values.count(0.0) / len(values) - 0.3) < 0.01           # the share of zeros survives
    assert got[("api", "ix", "fp")] == (5, [i / 10 for i in range(5)])   # small samples: every rate


def test_ecdf_places_zeros_at_the_marked_left_edge():
    svg = str(charts.ecdf([("half zero", [0.0, 0.0, 1e-3, 1e-2]), ("<b>none</b>", [])], label="x", x_label="rate"))
    parsed = Svg(svg)
    edge = next(float(a["x1"]) for t, a in parsed.tags if t == "line" and a.get("stroke-dasharray"))
    (line,) = parsed.polylines()                      # the empty series draws no line, only its legend
    bottom, top = max(y for _, y in line), min(y for _, y in line)
    zero_x = line[0][0]
    assert zero_x < edge and all(x >= zero_x for x, _ in line)
    # the step at the zero strip rises to half the height: half of the values are 0
    rise = [y for x, y in line if x == zero_x]
    assert min(rise) == pytest.approx(bottom - (bottom - top) / 2)
    assert "<b>" not in svg and "&lt;b&gt;none&lt;/b&gt;" in svg
    assert any(t == "0" for t in parsed.texts)        # the strip is labelled


def test_forest_has_a_line_at_one_clips_zero_lower_ends_and_escapes_labels():
    svg = str(charts.forest([("</svg><script>x</script>", 4.0, 0.0, 9.0), ("b", 0.5, 0.25, 1.0),
                             ("no estimate", None, None, None)], label="<i>forest</i>",
                            muted=[False, True, False]))
    parsed = Svg(svg)
    assert "<script>" not in svg and "</svg><script>" not in svg and "<i>" not in svg
    assert any(t.startswith("</svg><script>x</script>: 4") for t in parsed.texts)    # as text, in the tooltip
    dashed = [a for t, a in parsed.tags if t == "line" and a.get("stroke-dasharray")]
    (one,) = dashed
    points = {float(a["x"]) + 4: a for t, a in parsed.tags if t == "rect"}
    assert len(points) == 2                           # no square where there is no estimate
    x_one = float(one["x1"])
    x_four, x_half = sorted(points, reverse=True)
    assert x_half < x_one < x_four                    # 0.5 left of the line at 1, 4 right of it
    assert any(t == "path" for t, _ in parsed.tags)   # the clipped lower end of the first row
    assert "n/a" in parsed.texts
    fills = [a["fill"] for t, a in parsed.tags if t == "rect"]
    assert len(set(fills)) == 2 and fills[1] != fills[0]            # the muted row has its own colour


def test_fp_rows_show_a_percentile_without_ci_and_no_evidence_as_empty(tmp_path: Path):
    db = build_report_db(tmp_path / "r.duckdb", evidence=True)
    with open_store(db) as store:
        store.con.execute("UPDATE token_evidence SET percentile_low = NULL WHERE token_id = 100")
        store.con.execute("DELETE FROM token_evidence WHERE token_id = 101")
        data.prepare_flags(store)
        rows = {r[0]: r for r in fps.all_fps(store, "gemma3-270m")}
        top = fps.extreme_fps(store, "gemma3-270m", top=True)
        (pct,) = store.query("SELECT percentile FROM token_evidence WHERE token_id = 100 AND role = 'fp' "
                             "ORDER BY q_value LIMIT 1")[0]
    assert rows[100][10] == pct and rows[100][11] == f"{pct:.0f}"
    assert rows[101][10:] == (None, None, None)
    assert [r[0] for r in top] == sorted(rows, key=lambda i: (-rows[i][4], i))[:len(top)]
    assert all(r == rows[r[0]] for r in top)

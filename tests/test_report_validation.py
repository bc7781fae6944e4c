"""reports/validation.html from a validation study written by hand (tests/validation_db.py): the rendered
numbers, CIs, n and links, read from data attributes and the tables' JSON; and the flag reasons of the model
pages, which link to the measured rate of their rule or say that no study was run."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from fpprov.evidence.intervals import wilson_interval
from fpprov.report import build_reports
from fpprov.report.text import percent_text
from helpers import Page
from report_db import build_report_db, table_rows
from validation_db import DOSE_50, DOSES, FLAGS, NOMINAL, STUDY, TOP1, add_study


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("validation")
    db = add_study(build_report_db(folder / "results.duckdb", evidence=True))
    return build_reports(db, folder / "reports", page_size=50).index.parent


@pytest.fixture(scope="module")
def page(reports) -> tuple[str, Page]:
    html = (reports / "validation.html").read_text("utf-8")
    return html, Page(html)


def _tags(parsed: Page, tag: str, **attrs) -> list[dict]:
    return [a for t, a in parsed.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())]


def test_the_page_shows_the_latest_complete_study_and_the_index_links_it(reports, page):
    html, parsed = page
    study = _tags(parsed, "p", id="study")[0]
    assert (study["data-study"], study["data-design"], study["data-date"]) == (STUDY, "quick", "2026-12-01 12:00")
    index = Page((reports / "index.html").read_text("utf-8"))
    assert [a["data-study"] for a in _tags(index, "a", href="validation.html")] == [STUDY]


def test_dose_response_points_carry_the_pooled_shares_cis_and_n(page):
    _, parsed = page
    for role, index in (("planted", 0), ("twin", 2)):
        points = {int(a["data-dose"]): a for t, a in parsed.tags if a.get("class") == "dose-point"
                  and a.get("data-role") == role}
        assert sorted(points) == sorted(DOSES)              # one per dose: the organism's own rows not pooled again
        for dose, counts in DOSES.items():
            n, k = counts[index], counts[index + 1]
            low, high = wilson_interval(k, n)
            a = points[dose]
            assert (int(a["data-n"]), int(a["data-k"])) == (n, k)
            assert math.isclose(float(a["data-share"]), k / n)
            assert math.isclose(float(a["data-low"]), low, abs_tol=1e-12)
            assert math.isclose(float(a["data-high"]), high)
    assert {int(a["data-dose"]) for t, a in parsed.tags if a.get("class") == "dose-n"} == set(DOSES)
    assert [float(a["data-dose"]) for t, a in parsed.tags if a.get("class") == "dose-50"] == [DOSE_50]
    assert float(_tags(parsed, "strong", id="dose-50")[0]["data-dose"]) == DOSE_50


def test_dose_table_lists_each_dose_with_its_share_and_ci(page):
    html, _ = page
    rows = table_rows(html, "vdose")
    assert [r[0] for r in rows] == sorted(DOSES)
    for r in rows:
        n, k, nt, kt = DOSES[r[0]]
        low, high = wilson_interval(k, n)
        assert (r[2], r[3], r[6], r[7]) == (n, k, nt, kt)
        assert r[4] == [k / n, percent_text(k / n)]
        assert r[5][0] == pytest.approx(low) and r[5][1] == f"{percent_text(low)} to {percent_text(high)}"


def test_sensitivity_per_dose_band_is_the_difference_of_the_cumulative_counts(page):
    html, _ = page
    rows = {(r[0], r[1], r[2]): r for r in table_rows(html, "vsensitivity")}
    cumulative = FLAGS["repetition_enriched"]["planted_fp"]
    bands = {"1 to 9": (1, 10), "10 to 99": (10, 100), ">= 100": (100, None)}
    for label, (lo, hi) in bands.items():
        k = cumulative[lo][0] - (cumulative[hi][0] if hi else 0)
        n = cumulative[lo][1] - (cumulative[hi][1] if hi else 0)
        r = rows[("repetition_enriched", "planted FPs, flagged", label)]
        assert (r[3], r[4]) == (k, n)
        assert r[6][0] == pytest.approx(wilson_interval(k, n)[0])
        assert (r[7], r[8], r[9]) == (lo, *cumulative[lo])              # and the cumulative row beside it
    right = FLAGS["source_enriched"]["planted_fp_right_source"][100]
    r = rows[("source_enriched", "planted FPs, naming the planted source", ">= 100")]
    assert (r[3], r[4]) == right


def test_false_flags_and_the_null_organism_against_the_nominal_fdr(page):
    html, parsed = page
    rows = {(r[0], r[1]): r for r in table_rows(html, "vfalse")}
    k, n = FLAGS["repetition_enriched"]["null_fp"][0]
    null = rows[("repetition_enriched", "FPs of the null organism")]
    assert (null[2], null[3]) == (k, n) and null[4][0] == pytest.approx(k / n) and null[6][0] == NOMINAL
    assert null[7] == ("at or below the nominal rate" if k / n <= NOMINAL else
                       "above it, CI includes it" if wilson_interval(k, n)[0] <= NOMINAL else "above it, CI excludes it")
    control = rows[("source_enriched", "matched controls")]
    assert (control[2], control[3]) == FLAGS["source_enriched"]["control"][0]
    assert ("repetition_enriched", "matched controls") not in rows     # repetition is defined for FPs only


def test_confusion_matrix_and_top1_accuracy_against_chance(page):
    _, parsed = page
    tops = {(a["data-truth"], a["data-index"]) for a in _tags(parsed, "td", **{"data-top": "1"})}
    assert tops == {("planted", "planted"), ("null", "planted")}
    assert len(_tags(parsed, "td", **{"data-top": "0"})) == 2
    top1 = _tags(parsed, "p", id="top1")[0]
    k, n, chance = TOP1
    low, high = wilson_interval(k, n)
    assert (int(top1["data-k"]), int(top1["data-n"]), float(top1["data-chance"])) == (k, n, chance)
    assert float(top1["data-low"]) == pytest.approx(low) and float(top1["data-high"]) == pytest.approx(high)


def test_natural_and_shared_results_with_n(page):
    html, parsed = page
    natural = {(r[0], r[2]): r for r in table_rows(html, "vnatural")}
    own = natural[("planted", "own")]
    assert (own[4], own[5], own[8], own[9]) == (60, 30, 600, 10)
    assert own[7][0] == pytest.approx(wilson_interval(30, 60)[0])
    line = _tags(parsed, "li", **{"data-measure": "natural_own_vs_control"})[0]
    assert (float(line["data-estimate"]), int(line["data-n"])) == (0.4, 120)
    shared = table_rows(html, "vshared")
    assert [(r[0], r[1], r[5], r[9]) for r in shared] == [("null", "planted", 20, 20)]
    organisms = {r[0]: r for r in table_rows(html, "vorganisms")}
    assert organisms["planted"][1][0] == "gemma3-270m.html"          # the organism's model page


def test_each_flag_reason_links_to_its_rules_measured_rate(reports):
    rows = table_rows((reports / "gemma3-270m.html").read_text("utf-8"), "flags")
    assert rows
    rep = FLAGS["repetition_enriched"]
    k, n = rep["planted_fp"][10]                    # the lowest dose at which the rule flags half its planted FPs
    fk = sum(v[0][0] for g, v in rep.items() if g != "planted_fp")
    fn = sum(v[0][1] for g, v in rep.items() if g != "planted_fp")
    low, high = wilson_interval(k, n)
    flow, fhigh = wilson_interval(fk, fn)
    for row in rows:
        href, text = row[-1]
        assert href == "validation.html#flag-rates"
        text = text if isinstance(text, str) else "".join(s[1] for s in text)
        rules = row[4] if isinstance(row[4], str) else "".join(s[1] for s in row[4])
        assert STUDY in text
        if "repetition_enriched" in rules:
            for figure in (percent_text(k / n), percent_text(low), percent_text(high), f"of {n} ", ">= 10 ",
                           percent_text(fk / fn), percent_text(flow), percent_text(fhigh), f"among {fn} "):
                assert figure in text, (figure, text)


def test_without_a_study_there_is_no_page_and_the_reasons_say_so(tmp_path, reports):
    db = build_report_db(tmp_path / "plain.duckdb", evidence=True)
    out = tmp_path / "reports"
    out.mkdir()
    (out / "validation.html").write_text("an earlier report's page")
    build_reports(db, out, page_size=50)
    assert not (out / "validation.html").exists()
    index = Page((out / "index.html").read_text("utf-8"))
    assert not _tags(index, "a", href="validation.html")
    assert "fpprov validate --quick" in "".join(index.text)
    html = (out / "gemma3-270m.html").read_text("utf-8")
    rows = table_rows(html, "flags")
    assert rows and all(isinstance(r[-1], str) and "fpprov validate --quick" in r[-1] for r in rows)


def test_an_interrupted_study_alone_gets_no_page(tmp_path):
    db = build_report_db(tmp_path / "cut.duckdb", evidence=True)
    add_study(db)
    import duckdb

    con = duckdb.connect(str(db))
    con.execute("UPDATE validation_runs SET complete = false")
    con.close()
    out = build_reports(db, tmp_path / "reports", page_size=50).index.parent
    assert not (out / "validation.html").exists()

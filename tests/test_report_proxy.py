"""Every page names a proxy corpus as one (issue 23, point 1) and greys statistics that rest on too few tokens
(point 2): checked on the rendered HTML's elements and classes, not its wording alone."""

from __future__ import annotations

import re

from fpprov.db.store import open_store
from fpprov.report import build_reports

from report_db import DCLM, build_report_db


def _build(tmp_path, proxy: bool):
    db = build_report_db(tmp_path / "results.duckdb", evidence=True)
    if not proxy:
        with open_store(db) as store:
            store.con.execute("UPDATE provenance SET index_is_proxy = false")
    return build_reports(db, tmp_path / "reports").index.parent


def _provenance_heading(html: str) -> str:
    return re.search(r'<h2 id="provenance">(.*?)</h2>', html, re.S).group(1)


def test_a_proxy_index_is_labelled_on_every_page(tmp_path):
    folder = _build(tmp_path, proxy=True)
    html = (folder / "gemma3-270m.html").read_text("utf-8")
    heading = _provenance_heading(html)
    assert DCLM in heading and '<span class="proxy-label">' in heading and "training-label" not in heading
    evidence = html[html.index('id="evidence"'):html.index('id="undertrained"')]
    blocks = re.findall(r'<h3 id="evidence-\d+">(.*?)</h3>', evidence, re.S)
    assert blocks and all('class="proxy-label"' in b for b in blocks)
    shared = (folder / "shared.html").read_text("utf-8")
    attribution = shared[shared.index('id="attribution"'):shared.index("<h2>Base vs instruct</h2>")]
    assert "training data</h2>" not in attribution and attribution.count('<span class="proxy-label">') >= 3


def test_a_training_data_index_is_not_called_a_proxy(tmp_path):
    folder = _build(tmp_path, proxy=False)
    html = (folder / "gemma3-270m.html").read_text("utf-8")
    heading = _provenance_heading(html)
    assert '<span class="training-label">' in heading and "proxy-label" not in heading
    assert "(this model&#39;s training data)" in heading


def test_too_few_tokens_are_greyed_and_never_shaded(tmp_path):
    folder = _build(tmp_path, proxy=True)
    shared = (folder / "shared.html").read_text("utf-8")
    attribution = shared[shared.index('id="attribution"'):shared.index("<h2>Base vs instruct</h2>")]
    few = re.findall(r'<td class="num few" style="([^"]*)"[^>]*>([^<]*)<', attribution)
    assert len(few) == 1                                   # olmo2-1b: 1 FP against 1 control, no CI
    style, text = few[0]
    assert "rgba(22, 163, 74, 0)" in style and "outline" not in style and text.startswith("too few to say")
    olmo = (folder / "olmo2-1b.html").read_text("utf-8")
    assert re.search(r'<p class="verdict few">Too few to say', olmo)
    assert re.search(r'<td class="num few">too few to say \(1\.000\)</td>', olmo)
    gemma = (folder / "gemma3-270m.html").read_text("utf-8")
    assert 'class="verdict few"' not in gemma               # 40 FPs and 80 controls with a CI: not greyed

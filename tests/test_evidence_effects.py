"""Effect sizes before significance, intervals valid at 0% and 100%, FP-vs-control source contrasts and the
proxy rule (issue 23, points 1-4), against reference computations written out here."""

from __future__ import annotations

import math

import pytest

from fpprov.corpus.catalog import index_is_proxy
from fpprov.evidence.effect import (LESS, MORE, NONE, TOO_FEW, effect_verdict, share_difference,
                                    share_ratio_interval, source_contrast)
from fpprov.evidence.sources import token_source_enrichment


def _wilson(k: int, n: int, confidence: float) -> tuple[float, float]:
    """The Wilson score interval from its formula (reference, independent of scipy's binomtest)."""
    from statistics import NormalDist

    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


@pytest.mark.parametrize("k, n, kb, nb", [(5, 5, 40, 1000), (20, 20, 40, 1000), (7, 7, 222, 1000)])
def test_share_ratio_interval_stays_valid_at_100_percent(k, n, kb, nb):
    ratio, low, high = share_ratio_interval(k, n, kb, nb)
    each = math.sqrt(0.95)
    sl, sh = _wilson(k, n, each)
    bl, bh = _wilson(kb, nb, each)
    assert ratio == pytest.approx((k / n) / (kb / nb))
    assert low == pytest.approx(sl / bh, rel=1e-9) and high == pytest.approx(sh / bl, rel=1e-9)
    assert low < ratio <= high
    assert high <= 1 / bl + 1e-12          # the largest ratio a share can give with the baseline in its interval


def test_more_documents_narrow_the_interval_instead_of_collapsing():
    five = share_ratio_interval(5, 5, 40, 1000)
    twenty = share_ratio_interval(20, 20, 40, 1000)
    assert five[0] == twenty[0]                            # the same point estimate, 25x
    assert twenty[1] > five[1]                             # 20/20 is stronger evidence than 5/5 ...
    # ... where the Katz interval gave "18.1-32.9x" for both
    rows = token_source_enrichment(["spam"] * 7, ["spam"] * 222 + ["web"] * 778)
    assert rows[0].ci_high <= 1 / _wilson(222, 1000, math.sqrt(0.95))[0] + 1e-12
    assert rows[0].ci_low < rows[0].enrichment == pytest.approx(1000 / 222)


@pytest.mark.parametrize("auc, low, high, n_fp, n_control, expected", [
    (0.503, 0.501, 0.505, 3532, 3096, NONE),      # significant, not meaningful: the demo's gemma3-270m
    (1.0, None, None, 1, 1, TOO_FEW),             # SmolLM2: 1 FP against 1 control, no CI
    (0.9, 0.8, 0.95, 12, 40, TOO_FEW),            # under 20 FPs
    (0.7125, 0.6401, 0.7807, 40, 80, MORE),
    (0.56, 0.49, 0.62, 400, 400, NONE),           # meaningful estimate, CI includes 0.5
    (0.3, 0.2, 0.4, 30, 30, LESS),
])
def test_a_difference_is_claimed_only_when_meaningful(auc, low, high, n_fp, n_control, expected):
    assert effect_verdict(auc, low, high, n_fp, n_control) == expected


def test_share_difference_is_newcombes_interval():
    d = share_difference(30, 3532, 9, 3096)
    p1, p2 = 30 / 3532, 9 / 3096
    l1, u1 = _wilson(30, 3532, 0.95)
    l2, u2 = _wilson(9, 3096, 0.95)
    assert d.difference == pytest.approx(p1 - p2)
    assert d.low == pytest.approx(p1 - p2 - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), rel=1e-9)
    assert d.high == pytest.approx(p1 - p2 + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2), rel=1e-9)
    edge = share_difference(0, 10, 10, 10)                 # 0% and 100%: still an interval inside [-1, 1]
    assert edge.difference == -1 and edge.low >= -1 - 1e-12 and -1 < edge.high < 0


def test_source_contrast_separates_fp_sources_from_repetition_of_anything():
    from scipy import stats
    from scipy.stats.contingency import odds_ratio

    fps = ["spam"] * 20 + ["forum"] * 20
    controls = ["spam"] * 20 + ["books"] * 2
    rows = {r.source: r for r in source_contrast(fps, controls)}
    forum, spam = rows["forum"], rows["spam"]
    assert (forum.fp_docs, forum.fp_sampled, forum.control_docs, forum.control_sampled) == (20, 40, 0, 22)
    table = [[20, 20], [0, 22]]
    assert forum.p_value == pytest.approx(stats.fisher_exact(table, alternative="greater").pvalue)
    assert forum.or_low == pytest.approx(odds_ratio(table).confidence_interval().low)
    assert forum.or_low > 1 and forum.q_value <= 0.05       # FP-specific
    assert spam.or_low < 1 and spam.q_value > 0.05          # runs of any text: no more FP than control
    ps = [r.p_value for r in rows.values()]
    assert [r.q_value for r in rows.values()] == pytest.approx(list(stats.false_discovery_control(ps)))
    nothing = source_contrast(["forum"] * 5, [])            # no control repeats: nothing to contrast
    assert len(nothing) == 1 and math.isnan(nothing[0].q_value) and nothing[0].control_sampled == 0


OLMO = {"family": "olmo2", "default_index": "v4_olmo-mix-1124_llama", "index_is_proxy": False}
GEMMA = {"family": "gemma3", "default_index": "v4_dclm-baseline_llama", "index_is_proxy": True}


def test_an_index_is_a_proxy_unless_named_as_the_training_data():
    assert index_is_proxy("api", "v4_olmo-mix-1124_llama", OLMO) is False
    assert index_is_proxy("api", "v4_olmo-2-1124-13b-instruct_llama", OLMO) is False   # covers_families
    assert index_is_proxy("api", "v4_dclm-baseline_llama", GEMMA) is True
    assert index_is_proxy("api", "v4_dclm-baseline_llama", None) is True               # no alias: not NULL
    assert index_is_proxy("local", "demo@abc", GEMMA) is True                           # no manifest: not NULL
    assert index_is_proxy("local", "mine@abc", None, model="toy", manifest={"training_data_of": ["toy"]}) is False
    assert index_is_proxy("local", "mine@abc", GEMMA, model="x", manifest={"training_data_of": "gemma3"}) is False
    assert index_is_proxy("local", "mine@abc", None, manifest={"proxy": False}) is False
    assert index_is_proxy("local", "mine@abc", None, training_data=True) is False      # --training-data
    assert index_is_proxy("api", "v4_olmo-mix-1124_llama", OLMO, training_data=False) is True   # --proxy

"""The dose-response chart of validation.html: the share of planted words that became FPs per dose, with Wilson
95% CIs as error bars and the twins' share beside each point, on a log dose axis (dose 0 in a strip at the left
edge, as charts.ecdf shows zeros). Each marker carries its numbers as data attributes, so a test or a reader's
script reads what is drawn."""

from __future__ import annotations

import math
from typing import Any, Sequence

from markupsafe import Markup, escape

from .charts import _svg
from .text import percent_text

PLANTED, TWIN = "#2563eb", "#6b7280"


def _point(x: float, y_of, share: float | None, low: float | None, high: float | None, n: int, k: int,
           dose: int, role: str, colour: str) -> list[str]:
    if share is None or not n:
        return []
    tip = escape(f"dose {dose}: {role} {k} of {n} FPs, {percent_text(share)}"
                 + ("" if low is None or high is None else f" (95% CI {percent_text(low)} to {percent_text(high)})"))
    out = []
    if low is not None and high is not None:
        y1, y2 = y_of(low), y_of(high)
        out.append(f'<path d="M{x:.1f},{y1:.1f} V{y2:.1f} M{x - 3:.1f},{y1:.1f} H{x + 3:.1f} M{x - 3:.1f},{y2:.1f} '
                   f'H{x + 3:.1f}" stroke="{colour}" stroke-width="1.5" fill="none"><title>{tip}</title></path>')
    attrs = (f'class="dose-point" data-role="{role}" data-dose="{dose}" data-k="{k}" data-n="{n}" '
             f'data-share="{share!r}" data-low="{"" if low is None else repr(low)}" '
             f'data-high="{"" if high is None else repr(high)}"')
    y = y_of(share)
    if role == "planted":
        out.append(f'<rect {attrs} x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" fill="{colour}">'
                   f'<title>{tip}</title></rect>')
    else:
        out.append(f'<circle {attrs} cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="white" stroke="{colour}" '
                   f'stroke-width="1.5"><title>{tip}</title></circle>')
    return out


def dose_response_chart(rows: Sequence[dict[str, Any]], dose50: float | None) -> Markup:
    """rows: validation_dose_response rows of one scope (dose, n_words, words_fp, fp_share, fp_low, fp_high,
    n_twins, twins_fp, twin_share, twin_low, twin_high); dose50: where the share crosses 50% (a dashed line)."""
    width, height, left, right, top, bottom, zero_w, pad = 680, 300, 56, 24, 28, 64, 44, 14
    plot_w, plot_h = width - left - right, height - top - bottom
    positive = [r["dose"] for r in rows if r["dose"] > 0] + ([dose50] if dose50 and dose50 > 0 else [])
    lo = math.floor(math.log10(min(positive))) if positive else 0
    hi = max(math.ceil(math.log10(max(positive))) if positive else 1, lo + 1)
    log_left, log_right = left + zero_w + pad, left + plot_w - pad

    def x_of(dose: float) -> float:
        if dose <= 0:
            return left + zero_w / 2
        return log_left + (log_right - log_left) * (math.log10(dose) - lo) / (hi - lo)

    def y_of(share: float) -> float:
        return top + plot_h * (1 - min(max(share, 0.0), 1.0))

    body = [f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#888"/>',
            f'<rect x="{left}" y="{top}" width="{zero_w}" height="{plot_h}" fill="#f3f4f6"/>',
            f'<line x1="{left + zero_w}" y1="{top}" x2="{left + zero_w}" y2="{top + plot_h}" stroke="#888" '
            'stroke-dasharray="3,2"/>']
    for share in (0, 0.25, 0.5, 0.75, 1):
        y = y_of(share)
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" '
                    + ('stroke="#dc2626" stroke-dasharray="5,3"/>' if share == 0.5 else 'stroke="#eee"/>'))
        body.append(f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{share * 100:g}%</text>')
    for exp in range(lo, hi + 1):
        x = x_of(10.0 ** exp)
        # decade gridlines only: the doses themselves are labelled below the axis
        body.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + plot_h}" stroke="#f3f4f6"/>')
    line = []
    for r in sorted(rows, key=lambda r: r["dose"]):
        x = x_of(r["dose"])
        body.append(f'<text x="{x:.1f}" y="{top + plot_h + 15}" font-size="10" text-anchor="middle">{r["dose"]}</text>')
        body.append(f'<text class="dose-n" data-dose="{r["dose"]}" x="{x:.1f}" y="{top + plot_h + 28}" font-size="9" '
                    f'text-anchor="middle" fill="#6b7280">n={r["n_words"]}</text>')
        body += _point(x - 5, y_of, r["fp_share"], r["fp_low"], r["fp_high"], r["n_words"], r["words_fp"],
                       r["dose"], "planted", PLANTED)
        body += _point(x + 5, y_of, r["twin_share"], r["twin_low"], r["twin_high"], r["n_twins"], r["twins_fp"],
                       r["dose"], "twin", TWIN)
        if r["fp_share"] is not None and r["dose"] > 0:
            line.append(f"{x - 5:.1f},{y_of(r['fp_share']):.1f}")
    if len(line) > 1:
        body.insert(4, f'<polyline points="{" ".join(line)}" fill="none" stroke="{PLANTED}" stroke-opacity="0.5"/>')
    if dose50 is not None and dose50 > 0:
        x = x_of(dose50)
        body.append(f'<line class="dose-50" data-dose="{dose50!r}" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" '
                    f'y2="{top + plot_h}" stroke="#dc2626" stroke-dasharray="2,3"/>')
        unit = "run" if dose50 == 1 else "runs"
        body.append(f'<text x="{x + 4:.1f}" y="{top + 12}" font-size="10" fill="#dc2626">50% at {dose50:.3g} {unit}</text>')
    body.append(f'<rect x="{left + 8}" y="{8}" width="8" height="8" fill="{PLANTED}"/>'
                f'<text x="{left + 20}" y="{16}" font-size="11">planted words</text>'
                f'<circle cx="{left + 124}" cy="{12}" r="3.5" fill="white" stroke="{TWIN}" stroke-width="1.5"/>'
                f'<text x="{left + 132}" y="{16}" font-size="11">their unplanted twins</text>')
    body.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" font-size="11" text-anchor="middle">'
                'runs planted per word (log scale; dose 0 at the left edge), n = planted words per dose</text>')
    body.append(f'<text x="12" y="{top + plot_h / 2:.1f}" font-size="11" text-anchor="middle" '
                f'transform="rotate(-90 12 {top + plot_h / 2:.1f})">share that became FPs</text>')
    return _svg(width, height, body, "dose-response: share of planted words and twins that became FPs, 95% Wilson CIs")

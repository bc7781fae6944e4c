"""Inline SVG charts for the reports: no JS library, no network, labels escaped like any other text.

Each function returns markupsafe.Markup built only from numbers and escaped strings (every label passes
through text.flat first, so invisible characters show as escapes), so templates can place it as is.
"""

from __future__ import annotations

import math
from typing import Sequence

from markupsafe import Markup, escape

from .text import flat, number

_PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f")


def _svg(width: int, height: int, body: list[str], label: str) -> Markup:
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{escape(flat(label))}">' + "".join(body) + "</svg>")


def histogram(bins: Sequence[tuple[float, float, int]], *, label: str, x_label: str,
              y_label: str | None = None) -> Markup:
    """Vertical bars, one per [lo, hi) bin, with the count in each bar's tooltip; ``y_label`` titles the
    vertical axis."""
    width, height, left, bottom, top = 640, 220, 56, 36, 12
    plot_w, plot_h = width - left - 12, height - bottom - top
    peak = max((count for _, _, count in bins), default=0) or 1
    body = [f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#888"/>']
    bar_w = plot_w / max(len(bins), 1)
    for i, (lo, hi, count) in enumerate(bins):
        h = plot_h * count / peak
        x = left + i * bar_w
        body.append(
            f'<rect x="{x + 1:.1f}" y="{top + plot_h - h:.1f}" width="{max(bar_w - 2, 1):.1f}" height="{h:.1f}" '
            f'fill="#2563eb"><title>{escape(f"{number(lo)} to {number(hi)}: {count:,}")}</title></rect>')
    for tick in (0, len(bins) // 2, len(bins)):
        if bins:
            value = bins[0][0] if tick == 0 else bins[tick - 1][1]
            body.append(f'<text x="{left + tick * bar_w:.1f}" y="{top + plot_h + 16}" font-size="11" '
                        f'text-anchor="middle">{escape(number(value))}</text>')
    body.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 4}" font-size="11" text-anchor="middle">'
                f'{escape(flat(x_label))}</text>')
    body.append(f'<text x="{left - 6}" y="{top + 10}" font-size="11" text-anchor="end">{peak:,}</text>')
    body.append(f'<text x="{left - 6}" y="{top + plot_h}" font-size="11" text-anchor="end">0</text>')
    if y_label:
        body.append(f'<text x="12" y="{top + plot_h / 2:.1f}" font-size="11" text-anchor="middle" '
                    f'transform="rotate(-90 12 {top + plot_h / 2:.1f})">{escape(flat(y_label))}</text>')
    return _svg(width, height, body, label)


def _wrap(text: str, width: int) -> list[str]:
    """A label in lines of at most ``width`` characters, broken at spaces where it can be (never mid-name
    unless one word is longer than a line)."""
    lines: list[str] = []
    for word in text.split(" "):
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            while len(word) > width:
                lines.append(word[:width])
                word = word[width:]
            lines.append(word)
    return lines or [""]


# Characters per line of a forest-plot label: the label column grows with the longest line, up to this.
FOREST_LABEL_CHARS = 48


_SHARE_AXES = (0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)


def share_intervals(items: Sequence[tuple[str, float | None, float | None, float | None]], *, label: str,
                    x_label: str, muted: Sequence[bool] = (), zoom: bool = False) -> Markup:
    """Shares in [0, 1] on a linear percent axis, each with its interval (e.g. Wilson): one row per item, full
    labels (the label column as wide as the longest line; a long label wraps at its spaces, as in forest).
    zoom: the axis ends at the smallest of 1%, 2%, 5%, 10%, 25%, 50%, 100% that holds every interval, so shares
    of a few percent do not sit on top of each other at the left edge."""
    ends = [v for _, est, low, high in items for v in (est, high) if v is not None and math.isfinite(v)]
    x_max = next((a for a in _SHARE_AXES if a >= max(ends, default=1.0)), 1.0) if zoom else 1.0
    labels = [_wrap(flat(name), FOREST_LABEL_CHARS) for name, *_ in items]
    line_h, top, bottom, right, plot_w = 14, 8, 34, 150, 300
    left = 12 + 7 * max((len(line) for lines in labels for line in lines), default=4)
    width = left + plot_w + right
    heights = [max(22, 8 + line_h * len(lines)) for lines in labels]
    height = top + sum(heights) + bottom
    axis_y = top + sum(heights)

    def x_of(v: float) -> float:
        return left + plot_w * min(max(v / x_max, 0.0), 1.0)

    body = [f'<line x1="{left}" y1="{axis_y}" x2="{left + plot_w}" y2="{axis_y}" stroke="#888"/>']
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        body.append(f'<text x="{x_of(tick * x_max):.1f}" y="{axis_y + 14}" font-size="10" text-anchor="middle">'
                    f'{100 * tick * x_max:g}%</text>')
    row_top = top
    for i, ((name, est, low, high), lines) in enumerate(zip(items, labels)):
        y = row_top + heights[i] / 2
        row_top += heights[i]
        line, point = ("#9ca3af", "#6b7280") if i < len(muted) and muted[i] else ("#2563eb", "#dc2626")
        body.append(_row_label(lines, y, left, line_h))
        ci = "no CI" if low is None or high is None else f"95% CI {100 * low:.1f}–{100 * high:.1f}%"
        shown = "n/a" if est is None else f"{100 * est:.1f}%"
        tip = escape(f"{flat(name)}: {shown} ({ci})")
        if low is not None and high is not None and math.isfinite(low) and math.isfinite(high):
            body.append(f'<line x1="{x_of(low):.1f}" y1="{y:.1f}" x2="{x_of(high):.1f}" y2="{y:.1f}" '
                        f'stroke="{line}" stroke-width="2"><title>{tip}</title></line>')
        if est is not None and math.isfinite(est):
            body.append(f'<rect x="{x_of(est) - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" fill="{point}">'
                        f'<title>{tip}</title></rect>')
        value = shown if low is None or high is None else f"{shown} [{100 * low:.1f}, {100 * high:.1f}]"
        body.append(f'<text x="{left + plot_w + 8}" y="{y + 4:.1f}" font-size="11">{escape(value)}</text>')
    body.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" font-size="11" text-anchor="middle">'
                f'{escape(flat(x_label))}</text>')
    return _svg(width, height, body, label)


def bars(items: Sequence[tuple[str, float]], *, label: str, value_format=number, token_labels: bool = False,
         width: int = 520) -> Markup:
    """Horizontal bars with a text label (shown visibly escaped) and the value."""
    row_h, left = 20, 170
    height = row_h * len(items) + 8
    peak = max((v for _, v in items), default=0) or 1
    body = []
    for i, (name, value) in enumerate(items):
        y = 4 + i * row_h
        shown = flat(name, show_spaces=token_labels)
        shown = shown if len(shown) <= 24 else shown[:23] + "\u2026"
        w = (width - left - 80) * max(value, 0) / peak
        body.append(f'<text x="{left - 6}" y="{y + 14}" font-size="12" text-anchor="end" '
                    f'font-family="monospace">{escape(shown)}</text>')
        body.append(f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" fill="#16a34a">'
                    f'<title>{escape(flat(name, show_spaces=token_labels))}: {escape(value_format(value))}</title></rect>')
        body.append(f'<text x="{left + w + 4:.1f}" y="{y + 14}" font-size="11">{escape(value_format(value))}</text>')
    return _svg(width, height, body, label)


def log_lines(series: Sequence[tuple[str, Sequence[float]]], *, label: str, x_label: str, y_label: str) -> Markup:
    """Lines on a log10 y axis (e.g. rollout distance by sequence length); x runs 1..len."""
    width, height, left, bottom, top, right = 640, 260, 64, 40, 12, 150
    plot_w, plot_h = width - left - right, height - bottom - top
    values = [v for _, ys in series for v in ys if v is not None and v > 0 and math.isfinite(v)]
    if not values:
        return _svg(width, 40, [f'<text x="8" y="24" font-size="12">{escape(flat(label))}: no finite distances</text>'], label)
    lo, hi = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))
    hi = hi if hi > lo else lo + 1
    x_max = max(len(ys) for _, ys in series)

    def xy(i: int, v: float) -> tuple[float, float]:
        x = left + plot_w * (i / max(x_max - 1, 1))
        y = top + plot_h * (1 - (math.log10(v) - lo) / (hi - lo))
        return x, y

    body = [f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#888"/>']
    for exp in range(lo, hi + 1):
        y = top + plot_h * (1 - (exp - lo) / (hi - lo))
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#eee"/>')
        body.append(f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">1e{exp}</text>')
    for i, (name, ys) in enumerate(series):
        colour = _PALETTE[i % len(_PALETTE)]
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in
                          (xy(j, v) for j, v in enumerate(ys) if v is not None and v > 0 and math.isfinite(v)))
        body.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.5">'
                    f'<title>{escape(flat(name))}</title></polyline>')
        body.append(f'<text x="{left + plot_w + 8}" y="{top + 14 + 16 * i}" font-size="11" fill="{colour}">'
                    f'{escape(flat(name)[:22])}</text>')
    body.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" font-size="11" text-anchor="middle">'
                f'{escape(flat(x_label))} (1 to {x_max})</text>')
    body.append(f'<text x="12" y="{top + plot_h / 2:.1f}" font-size="11" text-anchor="middle" '
                f'transform="rotate(-90 12 {top + plot_h / 2:.1f})">{escape(flat(y_label))}</text>')
    return _svg(width, height, body, label)


def _log_span(values: Sequence[float], default: tuple[int, int] = (-6, 0)) -> tuple[int, int]:
    """Whole decades covering the positive finite values (a default span when there are none)."""
    positive = [v for v in values if v is not None and v > 0 and math.isfinite(v)]
    if not positive:
        return default
    lo, hi = math.floor(math.log10(min(positive))), math.ceil(math.log10(max(positive)))
    return lo, hi if hi > lo else lo + 1


def _decade_label(exp: int) -> str:
    return number(10.0 ** exp) if -3 <= exp <= 3 else f"1e{exp}"


def ecdf(series: Sequence[tuple[str, Sequence[float]]], *, label: str, x_label: str) -> Markup:
    """Empirical CDFs as step lines on a log10 x axis. Zeros have no place on a log axis, so they sit in a
    marked strip at the left edge (labelled 0): the step there is the share of zeros. Each series' values
    may be quantiles at evenly spaced probabilities instead of the whole sample (same curve, fewer points)."""
    width, height, left, bottom, top, right, zero_w = 640, 260, 48, 40, 12, 170, 36
    plot_w, plot_h = width - left - right, height - bottom - top
    lo, hi = _log_span([v for _, values in series for v in values])
    log_left = left + zero_w

    def x_of(v: float) -> float:
        if v <= 0:
            return left + zero_w / 2
        return log_left + (plot_w - zero_w) * (min(max(math.log10(v), lo), hi) - lo) / (hi - lo)

    def y_of(share: float) -> float:
        return top + plot_h * (1 - share)

    body = [f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#888"/>',
            f'<rect x="{left}" y="{top}" width="{zero_w}" height="{plot_h}" fill="#f3f4f6"/>',
            f'<line x1="{log_left}" y1="{top}" x2="{log_left}" y2="{top + plot_h}" stroke="#888" '
            'stroke-dasharray="3,2"/>',
            f'<text x="{left + zero_w / 2:.1f}" y="{top + plot_h + 14}" font-size="10" text-anchor="middle">0</text>']
    for exp in range(lo, hi + 1):
        x = log_left + (plot_w - zero_w) * (exp - lo) / (hi - lo)
        anchor = "start" if exp == lo else "middle"      # the first decade's label clears the zero strip's
        body.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + plot_h}" stroke="#eee"/>')
        body.append(f'<text x="{x + (2 if exp == lo else 0):.1f}" y="{top + plot_h + 14}" font-size="10" '
                    f'text-anchor="{anchor}">{escape(_decade_label(exp))}</text>')
    for share in (0, 0.5, 1):
        body.append(f'<text x="{left - 4}" y="{y_of(share) + 4:.1f}" font-size="10" text-anchor="end">{share:g}</text>')
    for i, (name, values) in enumerate(series):
        colour = _PALETTE[i % len(_PALETTE)]
        ordered = sorted(v for v in values if v is not None and not math.isnan(v))
        if ordered:
            points, n = [(x_of(ordered[0]), y_of(0))], len(ordered)
            for j, v in enumerate(ordered):
                if j + 1 < n and ordered[j + 1] == v:
                    continue                      # one vertical step per distinct value
                x = x_of(v)
                points += [(x, points[-1][1]), (x, y_of((j + 1) / n))]
            points.append((left + plot_w, y_of(1)))
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            body.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5">'
                        f'<title>{escape(flat(name))}</title></polyline>')
        shown = flat(name)
        shown = shown if len(shown) <= 26 else shown[:25] + "\u2026"
        body.append(f'<text x="{left + plot_w + 8}" y="{top + 14 + 16 * i}" font-size="11" fill="{colour}">'
                    f'{escape(shown)}</text>')
    body.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" font-size="11" text-anchor="middle">'
                f'{escape(flat(x_label))} (log scale; zeros at the left edge)</text>')
    body.append(f'<text x="12" y="{top + plot_h / 2:.1f}" font-size="11" text-anchor="middle" '
                f'transform="rotate(-90 12 {top + plot_h / 2:.1f})">share of tokens</text>')
    return _svg(width, height, body, label)


def forest(items: Sequence[tuple[str, float | None, float | None, float | None]], *, label: str,
           x_label: str = "enrichment (log scale)", muted: Sequence[bool] = ()) -> Markup:
    """A forest plot: per row an estimate and its CI on a log10 axis with a line at 1 (no effect). Lower ends
    at or below 0 (nothing seen in a resample) are clipped to the left edge and drawn as an arrow. Rows
    marked in `muted` (e.g. a comparison group) are drawn in grey. Labels are shown whole: the label column is
    as wide as the longest line, and a long label wraps onto more lines at its spaces."""
    labels = [_wrap(flat(name), FOREST_LABEL_CHARS) for name, *_ in items]
    line_h, right, top, bottom, plot_w = 14, 150, 8, 34, 300
    left = 12 + 7 * max((len(line) for lines in labels for line in lines), default=4)
    width = left + plot_w + right
    heights = [max(20, 6 + line_h * len(lines)) for lines in labels]
    height = top + sum(heights) + bottom
    finite = [v for _, est, low, high in items for v in (est, low, high, 1.0)]
    lo, hi = _log_span(finite, default=(-1, 1))

    def x_of(v: float) -> float:
        return left + plot_w * (min(max(math.log10(v), lo), hi) - lo) / (hi - lo)

    axis_y = top + sum(heights)
    body = [f'<line x1="{left}" y1="{axis_y}" x2="{left + plot_w}" y2="{axis_y}" stroke="#888"/>',
            f'<line x1="{x_of(1):.1f}" y1="{top}" x2="{x_of(1):.1f}" y2="{axis_y}" stroke="#6b7280" '
            'stroke-dasharray="4,3"/>']
    for exp in range(lo, hi + 1):
        x = left + plot_w * (exp - lo) / (hi - lo)
        body.append(f'<text x="{x:.1f}" y="{axis_y + 14}" font-size="10" text-anchor="middle">'
                    f'{escape(_decade_label(exp))}</text>')
    row_top = top
    for i, ((name, est, low, high), lines) in enumerate(zip(items, labels)):
        y = row_top + heights[i] / 2
        row_top += heights[i]
        line, point = ("#9ca3af", "#6b7280") if i < len(muted) and muted[i] else ("#2563eb", "#dc2626")
        body.append(_row_label(lines, y, left, line_h))
        ci = f"95% CI {number(low, 2)}–{number(high, 2)}" if low is not None and high is not None else "no CI"
        tip = escape(f"{flat(name)}: {number(est, 2) if est is not None else 'n/a'} ({ci})")
        if low is not None and high is not None and high > 0 and math.isfinite(low):
            x1 = left if low <= 0 else x_of(low)
            x2 = left + plot_w if not math.isfinite(high) else x_of(high)
            body.append(f'<line x1="{x1:.1f}" y1="{y:.1f}" x2="{x2:.1f}" y2="{y:.1f}" stroke="{line}" '
                        f'stroke-width="2"><title>{tip}</title></line>')
            if low <= 0:
                body.append(f'<path d="M{left + 6},{y - 4:.1f} L{left},{y:.1f} L{left + 6},{y + 4:.1f}" '
                            f'fill="none" stroke="{line}"/>')
        if est is not None and est > 0 and math.isfinite(est):
            body.append(f'<rect x="{x_of(est) - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" fill="{point}">'
                        f'<title>{tip}</title></rect>')
        value = number(est, 2) if est is not None else "n/a"
        if low is not None and high is not None:
            value += f" [{number(low, 2)}, {number(high, 2)}]"
        body.append(f'<text x="{left + plot_w + 8}" y="{y + 4:.1f}" font-size="11">{escape(value)}</text>')
    body.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" font-size="11" text-anchor="middle">'
                f'{escape(flat(x_label))}</text>')
    return _svg(width, height, body, label)


def _row_label(lines: list[str], y: float, left: float, line_h: float) -> str:
    """A row's label, right-aligned before the plot and wrapped over ``lines``, centred on ``y``."""
    first = y + 4 - line_h * (len(lines) - 1) / 2
    spans = "".join(f'<tspan x="{left - 6}" y="{first + j * line_h:.1f}">{escape(part)}</tspan>'
                    for j, part in enumerate(lines))
    return f'<text font-size="11" text-anchor="end">{spans}</text>'

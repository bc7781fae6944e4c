"""Showing hostile text safely: token texts and document snippets can hold anything a corpus holds.

Every character a reader could not see, or that would change how the page reads (control characters, NUL,
bidi overrides, zero-width and other format characters, lone surrogates from invalid UTF-8, the U+FFFD
that replaced invalid bytes, non-ASCII spaces), becomes a visible escape such as ``\\x00`` or ``\\u202e``
in its own marked span. HTML escaping itself is left to jinja2's autoescape (templates) and to
``textContent`` (the table script); nothing here produces markup from data except through those.
"""

from __future__ import annotations

import base64
import decimal
import hashlib
import json
import math
import re
from typing import Any

# A segment is [kind, text]: kind 't' = plain text, 'e' = escape of an invisible character,
# 's' = a space made visible (token texts only), 'm' = matched needle in a snippet.
Segment = list

_INVISIBLE_NAMES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x00": "\\0"}
_REPLACEMENT = "\ufffd"


def _escape_char(ch: str) -> str:
    if ch in _INVISIBLE_NAMES:
        return _INVISIBLE_NAMES[ch]
    if ch == _REPLACEMENT:
        return "\\ufffd"
    return ascii(ch)[1:-1]          # '\x1b', '\u202e', '\udcc3', '\U000e0001'


def _needs_escape(ch: str) -> bool:
    return ch == _REPLACEMENT or (not ch.isprintable() and ch != " ")


_SPACE_RUNS = re.compile(r"( +)")


def segments(text: Any, *, show_spaces: bool = False) -> list[Segment]:
    """Split text into plain runs and visible escapes (see the module doc)."""
    if text is None:
        return []
    text = text if isinstance(text, str) else str(text)
    if text.isprintable() and _REPLACEMENT not in text:
        # fast path (nearly every token): nothing to escape, at most spaces to show; str.isprintable runs in C
        if not show_spaces or " " not in text:
            return [["t", text]] if text else []
        return [["s", "\u2423" * len(part)] if part[0] == " " else ["t", part]
                for part in _SPACE_RUNS.split(text) if part]
    out: list[Segment] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            out.append(["t", "".join(run)])
            run.clear()

    for ch in text:
        if show_spaces and ch == " ":
            flush()
            if out and out[-1][0] == "s":
                out[-1][1] += "\u2423"
            else:
                out.append(["s", "\u2423"])      # OPEN BOX: a space that matters in a token
        elif _needs_escape(ch):
            flush()
            out.append(["e", _escape_char(ch)])
        else:
            run.append(ch)
    flush()
    return out


def flat(text: Any, *, show_spaces: bool = False) -> str:
    """The visible form as one plain string (SVG labels, titles, attribute values)."""
    return "".join(seg[1] for seg in segments(text, show_spaces=show_spaces))


def token_cell(text: Any) -> list[Segment] | str:
    """A token text for a table cell: spaces visible; a plain string when nothing needs marking."""
    segs = segments(text, show_spaces=True)
    if not segs:
        return ""
    return segs[0][1] if len(segs) == 1 and segs[0][0] == "t" else segs


def text_cell(text: Any) -> list[Segment] | str:
    segs = segments(text)
    if not segs:
        return ""
    return segs[0][1] if len(segs) == 1 and segs[0][0] == "t" else segs


def _match_position(snippet: str, needle: str, offset: int | None) -> int:
    """Where the sampled match starts: at `offset` when it is a character offset there, else at the byte
    offset it would be in UTF-8, else the occurrence nearest to it (backends count tokens, bytes or
    characters), else the first; -1 when the needle is not in the snippet."""
    if offset is not None and offset >= 0:
        if snippet.startswith(needle, offset):
            return offset
        as_chars = len(snippet.encode("utf-8")[:offset].decode("utf-8", errors="ignore"))
        if snippet.startswith(needle, as_chars):
            return as_chars
    found, start = [], snippet.find(needle)
    while start >= 0:
        found.append(start)
        start = snippet.find(needle, start + 1)
    if not found:
        return -1
    return min(found, key=lambda pos: abs(pos - offset)) if offset is not None else found[0]


def snippet_cell(snippet: Any, needle: str | None, offset: int | None = None) -> list[Segment] | str:
    """A document snippet with the sampled match of the needle marked 'm' (escapes kept inside it)."""
    if snippet is None:
        return ""
    snippet = str(snippet)
    for candidate in (needle, needle.strip() if needle else None):
        where = _match_position(snippet, candidate, offset) if candidate else -1
        if where >= 0:
            out = segments(snippet[:where])
            out.append(["m", segments(candidate)])
            out.extend(segments(snippet[where + len(candidate):]))
            return out
    return text_cell(snippet)


def script_json(value: Any) -> str:
    """JSON safe inside <script type="application/json">: no '<', '>' or '&' that could close the element
    or open a comment, no U+2028/2029 line separators."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=str)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def csp_hash(script: str) -> str:
    """The Content-Security-Policy source that allows exactly this inline script and nothing else."""
    digest = hashlib.sha256(script.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


_SLUG_BAD = re.compile(r"[^A-Za-z0-9._-]+")
_RESERVED_PAGES = {"index", "shared", "validation"}


def page_names(models: list[str]) -> dict[str, str]:
    """model -> file name of its page: a readable slug, made unique with a hash when names collide."""
    names: dict[str, str] = {}
    taken: set[str] = set(_RESERVED_PAGES)
    for model in models:
        slug = _SLUG_BAD.sub("_", model).strip("._") or "model"
        slug = slug[:80]
        if slug.lower() in taken:
            slug = f"{slug}-{hashlib.sha1(model.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"
        taken.add(slug.lower())
        names[model] = f"{slug}.html"
    return names


def number(value: Any, digits: int = 4) -> str:
    """Compact human form of a number, the same as table.js's fmt(): integers with thousands separators, at
    most `digits` decimals, scientific (1.50e-7) for tiny or huge values."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value.is_integer() and abs(value) < 1e15:
            value = int(value)
    if isinstance(value, int):
        if abs(value) < 10**15:          # JSON does not tell 3 from 3.0: only the size decides, as in table.js
            return f"{value:,}"
        value = float(value)
    if isinstance(value, float):
        # Decimal(value) is the double's exact value, rounded half away from zero as JavaScript does
        # (Python's own formatting rounds ties to even, which would differ on values like 0.03125).
        exact = decimal.Decimal(value)
        if abs(value) < 10 ** -digits or abs(value) >= 1e9:
            places = max(digits - 2, 1)
            exponent = exact.adjusted()
            mantissa = exact.scaleb(-exponent).quantize(decimal.Decimal(1).scaleb(-places), decimal.ROUND_HALF_UP)
            if abs(mantissa) >= 10:
                mantissa, exponent = (mantissa / 10).quantize(decimal.Decimal(1).scaleb(-places)), exponent + 1
            return f"{mantissa}e{exponent:+d}"
        rounded = exact.quantize(decimal.Decimal(1).scaleb(-digits), decimal.ROUND_HALF_UP)
        text = f"{rounded:,f}"
        return (text.rstrip("0").rstrip(".") if "." in text else text) if rounded != 0 else "0"
    return str(value)


def ordinal(value: Any) -> str:
    """'1st', '2nd', '3rd', '11th', '2.5th': a percentile or rank read as English."""
    shown = number(value, 2)
    try:
        whole = int(float(str(value)))
    except (TypeError, ValueError):
        return shown
    if float(str(value)) != whole:
        return f"{shown}th"
    suffix = "th" if whole % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(whole % 10, "th")
    return f"{shown}{suffix}"


def plural(count: int, word: str, words: str | None = None) -> str:
    """'1 model', '3 models', '1,024 FPs': the count with its noun in the right number."""
    return f"{count:,} {word if count == 1 else (words or word + 's')}"


def percent_text(share: float | None) -> str:
    """A share as a percentage a reader takes in at once: '49.1%', '0.09%', '0.0050%', never '9.0e-02%'
    (small shares keep two significant digits; exactly 0 and 1 stay '0%' and '100%')."""
    if share is None or (isinstance(share, float) and not math.isfinite(share)):
        return "n/a"
    pct = 100 * share
    if pct == 0 or pct == 100:
        return f"{pct:.0f}%"
    if abs(pct) >= 1 or abs(pct) < 1e-6:
        shown = f"{pct:.1f}"
        return ">99.9%" if shown == "100.0" else f"{shown}%"
    places = 1 - math.floor(math.log10(abs(pct)))
    return f"{pct:.{places}f}".rstrip("0").rstrip(".") + "%"


def id_range(start: int, stop: int) -> str:
    """A scan range stored half-open [start, stop) shown as the ids it covers: '0–8,191'."""
    return f"{start:,}–{stop - 1:,}" if stop > start else f"none (from {start:,})"

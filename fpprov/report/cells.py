"""Cells and data tables of the report pages: how a value travels to table.js (numbers raw, text escaped)."""

from __future__ import annotations

import decimal
import math
from typing import Any, Iterable

from markupsafe import Markup

from .text import percent_text, script_json, text_cell, token_cell


def num(value: Any) -> Any:
    """A numeric cell. Plain numbers travel as themselves and are formatted at display time with the
    column's digits (text.number here, fmt() in table.js: same rules); booleans as [0/1, 'yes'/'no'];
    NaN and infinities (a diverged rollout) as [null, 'inf'], since JSON has no such numbers."""
    if value is None:
        return None
    if isinstance(value, bool):
        return [int(value), "yes" if value else "no"]
    if isinstance(value, decimal.Decimal):
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return [None, str(value)]
    return value


def link(href: str, text: Any) -> list:
    return [href, token_cell(text)]


def listing(values: Iterable[Any] | None, sep: str = ", ") -> Any:
    return text_cell(sep.join(str(v) for v in values)) if values else None


def table(table_id: str, columns: list[tuple[str, str]], rows: list[list], *, page_size: int,
          empty: str | None = None, caption: str | None = None) -> dict[str, Any]:
    """A data table for the `data_table` macro. Columns are (label, type), type in num|id|tok|text|snip|link
    (id: an integer shown without separators);
    'num:6' is a number shown with up to 6 decimals (4 by default)."""
    types, digits = [], []
    for _, kind in columns:
        base, _, places = kind.partition(":")
        types.append(base)
        digits.append(int(places) if places else 4)
    # script_json escapes '<', '>' and '&', so the JSON cannot leave its <script type="application/json">.
    blob = Markup(script_json({"types": types, "digits": digits, "rows": rows, "pageSize": page_size}))
    # 'table-' prefix: a table's id never equals a section anchor (#flags, #vectors, ...)
    return {"id": f"table-{table_id}", "columns": [{"label": label, "type": t, "digits": d, "title": None}
                                        for (label, _), t, d in zip(columns, types, digits)],
            "rows": rows, "page_size": page_size, "json": blob, "empty": empty, "caption": caption}


def percent(weight: float) -> str:
    """A mixture weight as a percentage that does not round small weights to 0.0% ('0.09%', not '9.0e-02%')."""
    return percent_text(weight)

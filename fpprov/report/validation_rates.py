"""The validation study's rate of each flag rule, as the model pages set it beside every flag's reason ("this
rule found X% [CI] of planted FPs at dose >= D, with Y% [CI] false flags"), and the cells and intervals the
validation page shares with it. Only a complete study counts: an interrupted one has rows in some tables and
not in others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..db.store import Store
from ..evidence.intervals import wilson_interval
from .text import percent_text, text_cell

PAGE = "validation.html"
RULES = ("repetition_enriched", "source_enriched")
# Tokens nothing was planted for: a flag on any of them is a false flag (unplanted FPs may have earned theirs
# from natural repetition, so the pooled rate is an upper bound on the rule's error).
FALSE_GROUPS = ("unplanted_fp", "twin_fp", "control", "null_fp")


def latest_study(store: Store) -> dict[str, Any] | None:
    """The latest complete study, or None."""
    rows = store.query_dicts("SELECT * FROM validation_runs WHERE complete "
                             "ORDER BY coalesce(finished_at, started_at) DESC, study_id LIMIT 1")
    return rows[0] if rows else None


def clean(x: Any) -> float | None:
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else float(x)


def wilson(k: int, n: int) -> tuple[float | None, float | None]:
    low, high = wilson_interval(int(k), int(n)) if n else (None, None)
    return clean(low), clean(high)


def share_text(rate: float | None, low: float | None, high: float | None) -> str:
    if rate is None:
        return "n/a"
    return percent_text(rate) + ("" if low is None or high is None else
                                 f" [{percent_text(low)}, {percent_text(high)}]")


def share_cell(x: float | None) -> Any:
    return None if clean(x) is None else [x, percent_text(x)]


def ci_cell(low: float | None, high: float | None, *, points: bool = False) -> Any:
    """A 95% CI cell, sorted by its lower end: '12.5% to 40.1%', or '-3.0 to +12.0 pp' for a difference."""
    low, high = clean(low), clean(high)
    if low is None or high is None:
        return None
    return [low, f"{100 * low:+.1f} to {100 * high:+.1f} pp" if points else
            f"{percent_text(low)} to {percent_text(high)}"]


def diff_cell(x: float | None) -> Any:
    return None if clean(x) is None else [x, f"{100 * x:+.1f} pp"]


# -- the rate a flag's reason links to ---------------------------------------------------------------------
@dataclass
class RuleRate:
    """A rule's sensitivity at doses >= dose_min and its pooled false-flag rate, from validation_flag_rates."""
    rule: str
    dose_min: int | None
    flagged: int
    n: int
    low: float | None
    high: float | None
    false_flagged: int
    false_n: int
    false_low: float | None
    false_high: float | None

    def sentence(self) -> str:
        if self.dose_min is None or not self.n:
            found = "no planted word became an FP traced in its own index, so its sensitivity is unmeasured"
        else:
            found = (f"found {share_text(self.flagged / self.n, self.low, self.high)} of {self.n} planted FPs "
                     f"at dose >= {self.dose_min} run{'' if self.dose_min == 1 else 's'}")
        false = ("no unplanted token was traced" if not self.false_n else
                 f"{share_text(self.false_flagged / self.false_n, self.false_low, self.false_high)} false flags "
                 f"among {self.false_n} tokens nothing was planted for")
        return f"{self.rule}: this rule {found}, with {false}"


@dataclass
class RuleRates:
    """Every rule's measured rate in the latest complete study (study None: there is none)."""
    study: dict[str, Any] | None
    rates: dict[str, RuleRate] = field(default_factory=dict)

    @property
    def column(self) -> tuple[str, str]:
        return ("measured rate (validation study)", "link" if self.study else "text")

    def cell(self, rules: list[str] | None) -> Any:
        """The flags table's cell for a token's rules: a link to the page's rates, or why there is none."""
        if self.study is None:
            return text_cell("no validation study in this database: `fpprov validate --quick` measures these rules")
        said = [self.rates[r].sentence() if r in self.rates else f"{r}: not measured by the validation study"
                for r in rules or []]
        # a sentence, not a token: its spaces stay plain (cells.link would mark them)
        return [f"{PAGE}#flag-rates", text_cell("; ".join(said) + f" (study {self.study['study_id']})")]


def rule_rates(store: Store) -> RuleRates:
    study = latest_study(store)
    if study is None:
        return RuleRates(None)
    rows = store.query_dicts("SELECT rule, grp, dose_min, n, flagged FROM validation_flag_rates WHERE study_id = ?",
                             [study["study_id"]])
    out = RuleRates(study)
    for rule in RULES:
        mine = [r for r in rows if r["rule"] == rule]
        planted = sorted((r for r in mine if r["grp"] == "planted_fp" and r["dose_min"] > 0 and r["n"]),
                         key=lambda r: r["dose_min"])
        # the lowest dose at which the rule flags half the planted FPs; else the dose where it does best
        pick = next((r for r in planted if r["flagged"] >= r["n"] / 2), None)
        if pick is None and planted:
            pick = max(planted, key=lambda r: (r["flagged"] / r["n"], -r["dose_min"]))
        false = [r for r in mine if r["grp"] in FALSE_GROUPS]
        fk, fn = sum(r["flagged"] for r in false), sum(r["n"] for r in false)
        k, n = (pick["flagged"], pick["n"]) if pick else (0, 0)
        out.rates[rule] = RuleRate(rule, pick["dose_min"] if pick else None, k, n, *wilson(k, n), fk, fn,
                                   *wilson(fk, fn))
    return out

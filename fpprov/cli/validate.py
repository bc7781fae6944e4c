"""`fpprov validate`: the validation study (issue 24; docs/validation.md). Options only; the work is
fpprov.validation.run_study, imported inside the command (it loads torch, scipy and duckdb)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from .common import DbOption, cell, console, db_path, err_console, esc, user_errors


@user_errors
def validate(
    quick: bool = typer.Option(False, "--quick", help="The small study the demo runs (2 organisms, ~1-2 min) "
                                                      "instead of the full one (5 organisms, ~15-30 min)."),
    db: Optional[Path] = DbOption,
    workdir: Optional[Path] = typer.Option(None, "--workdir", metavar="DIR",
                                           help="Corpora, tokenizer and indexes (default <cache>/validation)."),
    jobs: int = typer.Option(2, "--jobs", min=1, max=8, help="Organisms trained side by side, one thread each."),
) -> None:
    """Train small models on text with planted repetition, run fpprov's own scan and provenance on them, and
    measure what it recovers: the validation_* tables (fpprov sql "FROM validation_dose_response")."""
    from ..validation import StudyOptions, run_study

    def say(message: str) -> None:
        err_console.print(esc(message), highlight=False, soft_wrap=True)

    result = run_study(StudyOptions(quick=quick, db=db_path(db), workdir=workdir, jobs=jobs,
                                    bar=err_console.is_terminal, on_message=say))
    table = Table(title=f"dose-response ({result.study_id}): planted words that became FPs, against their twins")
    for name in ("runs planted", "words FP", "95% CI", "twins FP"):
        table.add_column(name)
    for r in result.dose_response:
        table.add_row(cell(r["dose"]), cell(f"{r['words_fp']}/{r['n_words']}"),
                      cell(f"{r['fp_low']:.2f}-{r['fp_high']:.2f}"), cell(f"{r['twins_fp']}/{r['n_twins']}"))
    console.print(table)
    for measure, row in result.summary.items():
        ci = f" [{row['low']:.2f}, {row['high']:.2f}]" if row["low"] is not None else ""
        count = f" ({row['k']}/{row['n']})" if row["k"] is not None else ""
        est = "-" if row["estimate"] is None else f"{row['estimate']:.3g}"
        ref = ""
        if row["reference_label"]:
            value = "" if row["reference"] is None else f" = {row['reference']:.3g}"
            ref = f"; reference: {row['reference_label']}{value}"
        note = f" ({row['note']})" if row["note"] else ""
        console.print(esc(f"{measure}: {est}{ci}{count}{ref}{note}"), highlight=False)
    console.print(esc(f"{result.db}: fpprov sql \"FROM validation_summary WHERE study_id = '{result.study_id}'\""),
                  highlight=False)


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)

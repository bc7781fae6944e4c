"""What `fpprov scan` and `fpprov vectors` print around a run of several models: a header per model, a line
per failure as it happens, and the summary table at the end; every line of a run of several models is
printed here (a torchrun rank that should stay quiet is silenced in one place)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import typer
from rich.table import Table

from ..runtime.batch import DONE, FAILED, SKIPPED, BatchSummary, ModelJob, Outcome, jobs_from, option_types, run_jobs
from ..errors import FpprovError
from ..db.store import check_writable
from .common import cell, console, db_path, err_console, esc

_STYLES = {DONE: "green", SKIPPED: "cyan", FAILED: "bold red"}


def run_many(command: str, jobs: Sequence[ModelJob], run_one: Callable[[ModelJob], Outcome]) -> None:
    """Run every job, print the summary, and exit 1 when any model failed."""

    def started(i: int, job: ModelJob) -> None:
        err_console.rule(f"[bold]{command}[/] {i + 1}/{len(jobs)}: {esc(job.spec)}", style="dim")

    def finished(outcome: Outcome) -> None:
        if outcome.status == FAILED:
            err_console.print(f"[bold red]failed:[/] {esc(outcome.model)}: {esc(outcome.reason)}", soft_wrap=True)

    summary = run_jobs(jobs, run_one, on_start=started, on_outcome=finished)
    print_batch_summary(command, summary)
    if summary.failed:
        raise typer.Exit(1)


def checked_jobs(models: Sequence[str], all_models: bool, family: str | None, manifest: Path | None,
                 one_model: Callable[..., Any], check_options: Callable[..., Any], settings: dict[str, Any],
                 db: Path | None) -> list[ModelJob]:
    """The jobs of a several-model command, every model's options (and the database) checked before anything
    loads: a bad option of any model fails the command at once (exit 2)."""
    jobs = jobs_from(models, all_models, family, manifest, option_types(one_model, exclude=("model", "db")))
    for job in jobs:
        merged = {**settings, **job.overrides}
        with_origin(job, lambda: (check_options(**merged), known_dtype(merged["dtype"])))
    check_writable(db_path(db))
    return jobs


def with_origin(job: ModelJob, check: Callable[[], Any]) -> None:
    """Run a check of one model's options; its error says which model of the run it is about."""
    try:
        check()
    except FpprovError as exc:
        where = f" ({job.origin})" if job.origin != "command line" else ""
        raise FpprovError(f"{job.spec}{where}: {exc}") from None


def known_dtype(dtype: str) -> None:
    """--dtype checked before any model loads (a single model checks it when loading)."""
    from ..models import DTYPES  # torch loads with the command's work, not at CLI start

    if dtype not in DTYPES:
        raise FpprovError(f"unknown dtype {dtype!r}: use one of {', '.join(DTYPES)}")


def print_batch_summary(command: str, summary: BatchSummary) -> None:
    table = Table(title=f"{command}: {len(summary.outcomes)} models")
    for col in ("model", "outcome", "FPs", "seconds / reason"):
        table.add_column(col)
    for o in summary.outcomes:
        note = o.reason if o.status == FAILED else f"{o.seconds:,.1f} s" + (f" ({o.reason})" if o.reason else "")
        table.add_row(cell(o.model), cell(o.status), cell("" if o.fps is None else f"{o.fps:,}"), cell(note),
                      style=_STYLES[o.status])
    console.print(table)
    counts = ", ".join(f"{len(summary.with_status(s))} {s}" for s in (DONE, SKIPPED, FAILED))
    console.print(f"{command}: {counts}", markup=False)

"""What `fpprov scan` and `fpprov vectors` share: the options that pick their models (MODEL..., --all,
--family, --manifest, --db), the one place that tells one model from several, and what they print around a
run of several models: a header per model, a line per failure as it happens, and the summary table at the
end (a torchrun rank that should stay quiet is silenced in one place)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Sequence

import typer
from rich.table import Table

from ..runtime.batch import DONE, FAILED, SKIPPED, BatchSummary, ModelJob, Outcome, jobs_from, option_types, run_jobs
from ..errors import FpprovError
from .common import cell, console, db_path, err_console, esc

_STYLES = {DONE: "green", SKIPPED: "cyan", FAILED: "bold red"}

# The parameters every several-model command declares with these defaults; the others are its own options.
ModelsArgument = typer.Argument(
    None, metavar="MODEL", show_default=False,
    help="Alias (see `fpprov models`), hub id, model directory or .gguf file; several run one after another.")
AllOption = typer.Option(False, "--all", help="Every alias of `fpprov models`, one after another.")
FamilyOption = typer.Option(None, "--family", metavar="FAMILY",
                            help="Every alias of this family (olmo2, qwen3, gemma3), one after another.")
ManifestOption = typer.Option(None, "--manifest", metavar="FILE", help="TOML file of [[model]] tables: name plus "
                              "per-model options (docs/many-models.md).")
SHARED = ("ctx", "models", "db", "all_models", "family", "manifest")


def command_options(command: Callable[..., Any]) -> dict[str, type]:
    """The options of a command that a manifest may set per model: all but the shared ones."""
    return option_types(command, exclude=SHARED)


def run_command(command: Callable[..., Any], ctx: typer.Context, make_options: Callable[..., Any],
                run_model: Callable[[str, Path | None, Any], Any], outcome: Callable[[Any], Outcome]) -> None:
    """Run `fpprov <command>` as its parameters ask: ``make_options(**settings)`` makes (and checks) the
    command's options object from its own options (a manifest's per-model values replacing the command
    line's), ``run_model(spec, db, options)`` runs one model and ``outcome`` says what became of it.

    One model, without --all, --family or --manifest: its errors are the command's (exit 2). Several: every
    model's options (and the database) are checked before anything loads, then they run one at a time."""
    params = ctx.params
    settings = {name: value for name, value in params.items() if name not in SHARED}
    names, db = params["models"] or (), params["db"]
    if len(names) == 1 and not (params["all_models"] or params["family"] or params["manifest"]):
        run_model(names[0], db, make_options(**settings))
        return
    jobs = jobs_from(names, params["all_models"], params["family"], params["manifest"], command_options(command))
    jobs = [dataclasses.replace(job, options=with_origin(job, lambda: make_options(**{**settings, **job.overrides})))
            for job in jobs]
    from ..db.store import check_writable  # duckdb loads with the command's work, not at CLI start

    check_writable(db_path(db))
    run_many(ctx.info_name or command.__name__, jobs, lambda job: outcome(run_model(job.spec, db, job.options)))


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


def with_origin(job: ModelJob, check: Callable[[], Any]) -> Any:
    """Run a check of one model's options and return its result; its error says which model of the run it
    is about."""
    try:
        return check()
    except FpprovError as exc:
        where = f" ({job.origin})" if job.origin != "command line" else ""
        raise FpprovError(f"{job.spec}{where}: {exc}") from None


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

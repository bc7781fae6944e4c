"""`fpprov models` and `fpprov scan` (one model, or several one after another)."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ..runtime.batch import DONE, SKIPPED, ModelJob, Outcome
from ..errors import LowPrecisionWarning
from ..db.store import check_writable, open_store
from .common import DbOption, cell, console, db_path, err_console, esc, user_errors
from .many import checked_jobs, run_many

if TYPE_CHECKING:
    from ..scan.run import ScanOptions, ScanResult


def list_models() -> None:
    """The alias table: name, hub id, family, variant, default corpus index."""
    from ..models.aliases import load_aliases

    table = Table(title="fpprov model aliases")
    for col in ("alias", "hub id", "family", "variant", "tokenizer", "default index"):
        table.add_column(col)
    for name, entry in load_aliases().items():
        index = entry.get("default_index", "")
        if entry.get("index_is_proxy"):
            index += " (proxy)"
        table.add_row(*(cell(v) for v in (name, entry["hub_id"], entry["family"], entry["variant"],
                                           entry.get("tokenizer_family", ""), index)))
    console.print(table)
    console.print("Also accepted: any hub id (org/name), a save_pretrained directory, or a .gguf file.", markup=False)


def scan(
    models: Optional[list[str]] = typer.Argument(
        None, metavar="MODEL...", show_default=False,
        help="Alias (see `fpprov models`), hub id, model directory or .gguf file; several run one after another."),
    db: Optional[Path] = DbOption,
    dtype: str = typer.Option("float32", help="float32 | float64 | bfloat16 | float16 (the last two warn)."),
    device: str = typer.Option("auto", help="auto | cpu | cuda[:N] | mps | xpu (what this torch build can use)."),
    device_map: Optional[str] = typer.Option(None, "--device-map", help="Spread the model over every visible GPU "
                                             "with accelerate: auto | balanced | balanced_low_0 | sequential."),
    bos: bool = typer.Option(False, "--bos/--no-bos", help="Prepend the tokenizer's BOS: input [bos, t]."),
    start: int = typer.Option(0, help="First token id to scan."),
    limit: Optional[int] = typer.Option(None, help="Scan at most this many ids from --start (default: all)."),
    batch_size: int = typer.Option(256, help="Token ids per forward batch."),
    tolerance: float = typer.Option(1e-4, help="Relative margin under which a verdict is re-checked in float64."),
    check_length: Optional[int] = typer.Option(None, help="Also check [t]*L -> t for every FP (L >= 2)."),
    verify: str = typer.Option("calibrated", help="float64 re-checks: calibrated (every verdict closer than 10x the "
                               "float32 error measured on 256 ids) | all (also every FP) | near (near ties only)."),
    commit_every: int = typer.Option(4096, help="Ids per committed chunk (the resume granularity)."),
    force: bool = typer.Option(False, "--force", help="Redo a finished scan with the same settings."),
    all_models: bool = typer.Option(False, "--all", help="Scan every alias of `fpprov models`."),
    family: Optional[str] = typer.Option(None, "--family", help="Scan every alias of this family (olmo2, qwen3, "
                                         "gemma3)."),
    manifest: Optional[Path] = typer.Option(None, "--manifest", help="TOML file of [[model]] tables: name plus "
                                            "per-model options (docs/many-models.md)."),
) -> None:
    """Find the token fixed points of MODEL: ids t whose single-token input [t] decodes greedily to t.

    With several models (or --all, --family, --manifest) they are scanned one at a time; a finished scan is
    skipped, a model that fails is reported at the end and the others go on (exit code 1 if any failed)."""
    settings = dict(dtype=dtype, device=device, device_map=device_map, bos=bos, start=start, limit=limit,
                    batch_size=batch_size, tolerance=tolerance, check_length=check_length, verify=verify, commit_every=commit_every,
                    force=force)
    if len(models or ()) == 1 and not (all_models or family or manifest):
        scan_model(models[0], db, **settings)  # one model: its errors are the command's (exit 2)
        return
    jobs = checked_jobs(models or (), all_models, family, manifest, scan_model, scan_options, settings, db)

    def run_one(job: ModelJob) -> Outcome:
        result = scan_model(job.spec, db, **{**settings, **job.overrides})
        if result.already_complete:
            return Outcome(result.model, SKIPPED, result.fp_count, reason=f"scan {result.scan_id} already complete")
        return Outcome(result.model, DONE, result.fp_count, reason=f"scan {result.scan_id}")

    run_many("scan", jobs, run_one)


def scan_options(dtype: str, device: str, device_map: Optional[str], bos: bool, start: int, limit: Optional[int],
                 batch_size: int, tolerance: float, check_length: Optional[int], verify: str, commit_every: int,
                 force: bool) -> "ScanOptions":
    """The checked options of one model's scan; an unusable --device or --device-map fails here too."""
    from ..models.devices import check_device_map, resolve_device
    from ..runtime.distributed import Ranks
    from ..scan.run import ScanOptions

    opts = ScanOptions(bos=bos, batch_size=batch_size, tolerance=tolerance, check_length=check_length,
                       start=start, limit=limit, commit_every=commit_every, force=force, verify=verify)
    resolve_device(device)  # an unusable --device fails before anything is loaded or opened
    check_device_map(device_map, Ranks.from_env().world)
    return opts


def scan_model(model: str, db: Optional[Path], dtype: str, device: str, device_map: Optional[str], bos: bool,
               start: int, limit: Optional[int], batch_size: int, tolerance: float, check_length: Optional[int],
               verify: str, commit_every: int, force: bool) -> "ScanResult":
    """Scan one model, with its progress bar and summary."""
    # torch and transformers load here, not at CLI start: `fpprov sql` and `--help` stay instant.
    from ..models.devices import check_device_map
    from ..runtime.distributed import Ranks
    from ..models import load_model, resolve_model
    from ..scan.run import plan_scan, run_scan
    from ..scan.undertrained import ensure_undertrained

    ranks = Ranks.from_env()   # under torchrun: one rank per device, rank 0 alone writes and prints
    if not ranks.writer:
        console.quiet = err_console.quiet = True

    opts = scan_options(dtype, device, device_map, bos, start, limit, batch_size, tolerance, check_length, verify,
                        commit_every, force)
    spec = resolve_model(model)
    # before the slow load; bad input leaves the database untouched (only rank 0 opens the file)
    path = check_writable(db_path(db)) if ranks.writer else db_path(db)
    with err_console.status(f"loading {esc(spec.name)} ({spec.source_kind}: {esc(spec.location)}) ..."):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            loaded = load_model(spec, dtype=dtype, device=str(ranks.device(device)), batch_size=batch_size,
                                on_estimate=show_estimate, device_map=check_device_map(device_map))
    plan = plan_scan(loaded, opts, dtype)  # a bad --start, --check-length or --bos fails before the store opens
    store = open_store(path) if ranks.writer else None
    try:
        for w in caught:
            if issubclass(w.category, LowPrecisionWarning):
                err_console.print(f"[yellow]warning:[/] {esc(w.message)}")
        if not loaded.rotary:
            err_console.print("[yellow]warning:[/] " + esc("this model has no rotary position embeddings: [t] -> t "
                              "no longer implies [t, ..., t] -> t; use --check-length L to test repeated inputs"))
        t0 = time.perf_counter()
        with Progress(TextColumn("[bold]scan[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[rate]} tok/s  FPs {task.fields[fps]}"), TimeElapsedColumn(),
                      TimeRemainingColumn(), console=err_console, transient=False) as bar:
            task = bar.add_task(esc(loaded.name), total=None, rate="-", fps=0)
            counters = {"done": 0, "fps": 0, "total": 0, "logged": time.perf_counter()}

            def started(total: int, resumed: int) -> None:
                err_console.print(f"scanning {total:,} ids of {loaded.name} ({loaded.quantization or dtype}, "
                                  f"{'BOS prefix' if bos else 'no BOS'}) into {path}", markup=False)
                counters["total"], counters["resumed"] = total, resumed
                bar.update(task, total=total, completed=resumed)
                if resumed:
                    err_console.print(f"resuming: {resumed} ids already committed")

            def advance(n: int, n_fp: int) -> None:
                counters["done"] += n
                counters["fps"] += n_fp
                rate = counters["done"] / max(time.perf_counter() - t0, 1e-9)
                bar.update(task, advance=n, rate=f"{rate:,.0f}", fps=counters["fps"])
                now = time.perf_counter()
                if not err_console.is_terminal and now - counters["logged"] > 30:  # logs get a line, not a bar
                    counters["logged"] = now
                    done = counters["done"] + counters["resumed"]
                    err_console.print(f"{done:,}/{counters['total']:,} ids, {counters['fps']:,} FPs this run, "
                                      f"{rate:,.0f} tok/s")

            result = run_scan(plan, store, progress=advance, on_start=started, ranks=ranks)
        if store is not None and result.complete:
            ensure_undertrained(loaded, store)   # magikarp's indicators: weights only, once per model
        print_summary(result, path, time.perf_counter() - t0)
    finally:
        if store is not None:
            store.close()
    return result


SHOWN_ESTIMATE_BYTES = 2 ** 30   # below 1 GiB (test models, tiny slices) the memory line is only noise


def show_estimate(estimate) -> None:
    """The memory line before a load, for models whose weights reach 1 GiB (a refusal is always an error)."""
    if estimate.weights_bytes >= SHOWN_ESTIMATE_BYTES:
        err_console.print(estimate.line(), markup=False)


def format_prob(prob: float) -> str:
    """Four decimals, or '1 - 1.1e-07' where four decimals would all read 1.0000."""
    return f"1 - {1 - prob:.1e}" if prob >= 0.99995 and prob < 1 else f"{prob:.4f}"


def print_summary(result, db: Path, wall: float) -> None:
    if result.already_complete:
        console.print(f"scan {result.scan_id} of {result.model} is already complete (use --force to redo it)",
                      markup=False)
    console.print(f"[bold]{esc(result.model)}[/]: {result.fp_count:,} token FPs among {result.tokens_scanned:,} ids "
                  f"({result.tokens_skipped:,} skipped); {result.rechecked:,} verdicts re-checked in float64, "
                  f"{result.flipped} flipped; {wall:,.1f} s this run")
    if result.top:
        table = Table(title="top FPs by probability")
        for col in ("id", "raw", "text", "prob", "margin"):
            table.add_column(col)
        for row in result.top:
            table.add_row(*(cell(v) for v in (row["token_id"], repr(row["raw_token"]), repr(row["text"]),
                                              format_prob(row["prob"]), f"{row['margin']:.4g}")))
        console.print(table)
    console.print(f"results: {db} (scan_id {result.scan_id}); e.g. "
                  f"duckdb {db} -c \"FROM token_fps WHERE scan_id = {result.scan_id} ORDER BY prob DESC LIMIT 20\"",
                  markup=False)


def register(app: typer.Typer) -> None:
    app.command("models")(user_errors(list_models))
    app.command("scan")(user_errors(scan))

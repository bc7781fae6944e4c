"""`fpprov models` and `fpprov scan` (one model, or several one after another): the arguments become one
ScanOptions, passed whole to the library (fpprov.scan), which checks and stores everything; here are only the
progress bar and the summary."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer
from rich.table import Table

from ..runtime.batch import DONE, SKIPPED, Outcome
from ..scan.options import ScanOptions   # torch-free: its defaults are the options' defaults below
from .common import DbOption, cell, console, db_path, err_console, esc, user_errors
from .many import AllOption, FamilyOption, ManifestOption, ModelsArgument, run_command
from .progress import ScanProgress, loading, show_estimate, show_warnings

if TYPE_CHECKING:
    from ..scan.run import ScanResult


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
    ctx: typer.Context,
    models: Optional[list[str]] = ModelsArgument,
    db: Optional[Path] = DbOption,
    dtype: str = typer.Option(ScanOptions.dtype, metavar="DTYPE",
                              help="float32 | float64 | bfloat16 | float16: the weights' dtype; the last two "
                              "screen in it and decide in float32 and float64 what it cannot (exact, docs/scan.md)."),
    device: str = typer.Option(ScanOptions.device, metavar="DEVICE",
                               help="auto | cpu | cuda[:N] | mps | xpu (what this torch build can use)."),
    device_map: Optional[str] = typer.Option(None, "--device-map", metavar="STRATEGY", help="Spread the model "
                                             "over every visible GPU with accelerate: auto | balanced | "
                                             "balanced_low_0 | sequential."),
    bos: bool = typer.Option(ScanOptions.bos, "--bos/--no-bos", help="Prepend the tokenizer's BOS: input [bos, t]."),
    start: int = typer.Option(ScanOptions.start, metavar="ID", help="First token id to scan."),
    limit: Optional[int] = typer.Option(None, metavar="N", help="Scan at most this many ids from --start "
                                        "(default: all)."),
    batch_size: int = typer.Option(ScanOptions.batch_size, metavar="N", help="Token ids per forward batch."),
    tolerance: float = typer.Option(ScanOptions.tolerance, metavar="X", help="Relative margin under which a "
                                    "verdict is re-checked in float64."),
    check_length: Optional[int] = typer.Option(None, metavar="L", help="Also check [t]*L -> t for every FP "
                                               "(L >= 2)."),
    verify: str = typer.Option(ScanOptions.verify, metavar="MODE", help="float64 re-checks: calibrated (every verdict "
                               "closer than 10x the float32 error measured on a sample of the ids) | all (also "
                               "every FP) | near (near ties only)."),
    commit_every: int = typer.Option(ScanOptions.commit_every, metavar="N", help="Ids per committed chunk (the "
                                     "resume granularity)."),
    force: bool = typer.Option(False, "--force", help="Redo a finished scan with the same settings."),
    all_models: bool = AllOption,
    family: Optional[str] = FamilyOption,
    manifest: Optional[Path] = ManifestOption,
) -> None:
    """Find the token fixed points of MODEL: ids t whose single-token input [t] decodes greedily to t.

    With several models (or --all, --family, --manifest) they are scanned one at a time; a finished scan is
    skipped, a model that fails is reported at the end and the others go on (exit code 1 if any failed)."""
    run_command(scan, ctx, scan_options, scan_model, scan_outcome)


def scan_options(**settings: Any) -> ScanOptions:
    """The command's options as one ScanOptions, which checks itself (before torch's model code or any model
    loads): every option name of `fpprov scan` is a ScanOptions field."""
    return ScanOptions(**settings)


def scan_outcome(result: "ScanResult") -> Outcome:
    if result.already_complete:
        return Outcome(result.model, SKIPPED, result.fp_count, reason=f"scan {result.scan_id} already complete")
    return Outcome(result.model, DONE, result.fp_count, reason=f"scan {result.scan_id}")


def scan_model(model: str, db: Optional[Path], opts: ScanOptions) -> "ScanResult":
    """Scan one model with checked options: its progress bar and summary around the library's scan."""
    # torch and transformers load here, not at CLI start: `fpprov sql` and `--help` stay instant.
    from ..db.store import check_writable, open_store
    from ..models import load_model, resolve_model
    from ..models.devices import check_device_map
    from ..runtime.distributed import Ranks
    from ..scan.run import plan_scan, scan_vocabulary

    ranks = Ranks.from_env()   # under torchrun: one rank per device, rank 0 alone writes and prints
    if not ranks.writer:
        console.quiet = err_console.quiet = True
    spec = resolve_model(model)
    # before the slow load; bad input leaves the database untouched (only rank 0 opens the file)
    path = check_writable(db_path(db)) if ranks.writer else db_path(db)
    with loading(spec) as caught:
        loaded = load_model(spec, dtype=opts.dtype, device=str(ranks.device(opts.device)), batch_size=opts.batch_size,
                            on_estimate=show_estimate, device_map=check_device_map(opts.device_map))
    plan = plan_scan(loaded, opts)  # a bad --start, --check-length or --bos fails before the store opens
    store = open_store(path) if ranks.writer else None
    try:
        show_warnings(caught)
        if not loaded.rotary:
            err_console.print("[yellow]warning:[/] " + esc("this model has no rotary position embeddings: [t] -> t "
                              "no longer implies [t, ..., t] -> t; use --check-length L to test repeated inputs"))
        setting = f"{loaded.quantization or opts.dtype}, {'BOS prefix' if opts.bos else 'no BOS'}"
        with ScanProgress(loaded.name, setting, path) as progress:
            result = scan_vocabulary(loaded, store, plan, progress=progress.advance, on_start=progress.started,
                                     ranks=ranks)
        print_summary(result, path, progress.seconds)
    finally:
        if store is not None:
            store.close()
    return result


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
    console.print(f"results: {db} (scan_id {result.scan_id}); e.g. fpprov sql --db {shlex.quote(str(db))} "
                  f"\"FROM token_fps WHERE scan_id = {result.scan_id} ORDER BY prob DESC LIMIT 20\"", markup=False)


def register(app: typer.Typer) -> None:
    app.command("models")(user_errors(list_models))
    app.command("scan")(user_errors(scan))

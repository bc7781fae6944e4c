"""`fpprov status`: what the database holds per model (fpprov.status, imported inside the command: duckdb
loads with its work, not at CLI start)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.table import Table

from ..report.text import plural
from .common import DbOption, cell, console, db_path, err_console, user_errors

if TYPE_CHECKING:
    from ..status import IndexStatus, ModelStatus, ScanStatus, VectorStatus

SNAPSHOT_NOTE = "note: another process is writing the database; read a snapshot taken just now"


def scan_line(s: "ScanStatus") -> str:
    ids = f"ids [{s.id_start:,}, {s.id_stop:,})"       # half-open, as the scan stores it
    done = (plural(s.fp_count, "FP") if s.complete
            else f"incomplete: {s.tokens_scanned:,} of {s.id_stop - s.id_start:,} ids, {plural(s.fp_count, 'FP')} so far")
    checks = ", ".join(x for x in (s.dtype, f"verify {s.verify}" if s.verify else "", "BOS" if s.bos else "") if x)
    return f"#{s.scan_id} {ids} {checks}: {done}"


def vector_lines(vectors: "list[VectorStatus]") -> list[str]:
    spaces: dict[str, list[VectorStatus]] = {}
    for v in vectors:
        spaces.setdefault(v.embedding, []).append(v)
    lines = []
    for space, runs in spaces.items():
        methods = ", ".join(f"{v.method} {v.converged}/{v.runs} converged" for v in runs)
        lines.append(f"{space}: {plural(runs[0].fps, 'FP')} ({runs[0].stable} stable); {methods}")
    return lines


def index_line(i: "IndexStatus") -> str:
    kind = "proxy: not this model's training data" if i.index_is_proxy else "this model's training data"
    line = f"{i.backend} {i.index_name} ({kind}): {plural(i.fps, 'FP')}, {plural(i.controls, 'control')}"
    if i.evidence_n is None:
        return line + "; no FP-vs-control comparison"
    compared = ("" if i.evidence_fp_compared is None else
                f", {plural(i.evidence_fp_compared, 'FP')} against "
                f"{plural(i.evidence_control_compared or 0, 'control')} compared")
    return line + (f"; FP-vs-control comparison at n = {i.evidence_n} ({i.evidence_fp_sampled:,} of "
                   f"{plural(i.evidence_fp_total, 'FP')} taken{compared})")


def report_line(m: "ModelStatus") -> str:
    if m.report is None:
        return "none"
    return f"{m.report}" + (" (older than its data: rerun `fpprov report`)" if m.report_stale else "")


def status(
    db: Optional[Path] = DbOption,
    reports: Path = typer.Option(Path("reports"), "--reports", metavar="DIR", help="Folder `fpprov report` wrote to."),
) -> None:
    """What the database holds per model: scans (ids, complete, FPs), vector runs, provenance per index (proxy or
    training data, FPs and controls traced), FP-vs-control comparisons, and report pages."""
    from ..status import database_status

    held = database_status(db_path(db), reports)
    if held.snapshot:
        err_console.print(SNAPSHOT_NOTE, markup=False)
    if not held.models:
        console.print(f"{held.db} holds no results yet: run `fpprov scan MODEL` to start", markup=False,
                      soft_wrap=True)
        return
    table = Table(title=f"{held.db}: {len(held.models)} model{'s' if len(held.models) != 1 else ''}")
    for col in ("model", "held", "what"):
        table.add_column(col)
    for m in held.models:
        rows = [("scan", line) for line in map(scan_line, m.scans)] or [("scan", "none")]
        rows += [("vectors", line) for line in vector_lines(m.vectors)]
        rows += [("provenance", line) for line in map(index_line, m.indexes)] or [("provenance", "none")]
        rows.append(("report", report_line(m)))
        for k, (held_kind, line) in enumerate(rows):
            table.add_row(cell(m.model if k == 0 else ""), cell(held_kind), cell(line), end_section=k == len(rows) - 1)
    console.print(table)
    where = f"reports: {held.report_index}" if held.report_index else f"no reports in {held.reports_dir}/ yet"
    console.print(f"{where}; query anything with `fpprov sql` (`fpprov sql` alone lists the canned queries)",
                  markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("status")(user_errors(status))

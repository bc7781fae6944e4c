"""What `fpprov scan` and `fpprov vectors` show while they work: the spinner and warnings of a model load, and
the progress bars (display only: the library calls these back and knows nothing of the terminal)."""

from __future__ import annotations

import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..errors import LowPrecisionWarning
from .common import err_console, esc

if TYPE_CHECKING:
    from ..models import ModelSpec

LOG_EVERY_S = 30   # a log that is no terminal gets a line this often instead of a bar
SHOWN_ESTIMATE_BYTES = 2 ** 30   # below 1 GiB (test models, tiny slices) the memory line is only noise


@contextmanager
def loading(spec: "ModelSpec") -> Iterator[list[warnings.WarningMessage]]:
    """A spinner while ``spec`` loads; the warnings the load raised are collected for show_warnings."""
    with err_console.status(f"loading {esc(spec.name)} ({spec.source_kind}: {esc(spec.location)}) ..."):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            yield caught


def show_warnings(caught: list[warnings.WarningMessage]) -> None:
    """The low-precision warnings of a load, one line each."""
    for w in caught:
        if issubclass(w.category, LowPrecisionWarning):
            err_console.print(f"[yellow]warning:[/] {esc(w.message)}")


def show_estimate(estimate: Any) -> None:
    """The memory line before a load, for models whose weights reach 1 GiB (a refusal is always an error)."""
    if estimate.weights_bytes >= SHOWN_ESTIMATE_BYTES:
        err_console.print(estimate.line(), markup=False)


class ScanProgress:
    """The bar of one scan: ``started`` and ``advance`` are scan_vocabulary's on_start and progress."""

    def __init__(self, model: str, setting: str, db: Path):
        self.model, self.setting, self.db = model, setting, db
        self.done = self.fps = self.total = self.resumed = 0
        self.t0 = self.logged = time.perf_counter()
        self.bar = Progress(TextColumn("[bold]scan[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[rate]} tok/s  FPs {task.fields[fps]}"), TimeElapsedColumn(),
                            TimeRemainingColumn(), console=err_console, transient=False)
        self.task = self.bar.add_task(esc(model), total=None, rate="-", fps=0)

    def __enter__(self) -> "ScanProgress":
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.t0

    def started(self, total: int, resumed: int) -> None:
        err_console.print(f"scanning {total:,} ids of {self.model} ({self.setting}) into {self.db}", markup=False)
        self.total, self.resumed = total, resumed
        self.bar.update(self.task, total=total, completed=resumed)
        if resumed:
            err_console.print(f"resuming: {resumed} ids already committed")

    def advance(self, n: int, n_fp: int) -> None:
        self.done += n
        self.fps += n_fp
        rate = self.done / max(self.seconds, 1e-9)
        self.bar.update(self.task, advance=n, rate=f"{rate:,.0f}", fps=self.fps)
        now = time.perf_counter()
        if not err_console.is_terminal and now - self.logged > LOG_EVERY_S:
            self.logged = now
            err_console.print(f"{self.done + self.resumed:,}/{self.total:,} ids, {self.fps:,} FPs this run, "
                              f"{rate:,.0f} tok/s")


class StudyProgress:
    """The bars of one embedding space's vector study, one per method: run_study's on_method and progress."""

    def __init__(self, embedding: str):
        self.embedding = embedding
        self.bar = Progress(TextColumn("[bold]{task.description}[/]"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("step {task.fields[step]}  residual {task.fields[best]} .. "
                                       "{task.fields[worst]}"), TimeElapsedColumn(), console=err_console,
                            transient=False)
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> "StudyProgress":
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is None:
            for task in self.tasks.values():
                self.bar.update(task, completed=self.bar.tasks[task].total)
        self.bar.__exit__(*exc)

    def method_started(self, name: str, to_run: int, skipped: int) -> None:
        if skipped:
            err_console.print(f"{name}: {skipped} seeds already stored (--force redoes them)", markup=False)
        self.tasks[name] = self.bar.add_task(esc(f"{name} ({self.embedding})"), total=to_run, step=0, best="-",
                                             worst="-")

    def step_done(self, report: Any) -> None:
        self.bar.update(self.tasks[report.method], completed=report.total - report.active, step=report.step,
                        best=f"{report.best_residual:.2e}", worst=f"{report.worst_residual:.2e}")

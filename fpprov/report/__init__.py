"""HTML reports over an fpprov database: ``build_reports(db, out_dir)`` writes index.html, shared.html and one
page per model. build (writing), pages (each page's context), sections (model-page sections), cells (table
cells), data (the SQL behind them), charts (inline SVG), text (escaping hostile text)."""

from typing import Any

__all__ = ["DEFAULT_PAGE_SIZE", "ReportOutcome", "build_reports", "first_missing_folder", "remove_folder"]


def __getattr__(name: str) -> Any:
    # build (and with it scipy, through the evidence pages) loads on first use, not with the package: `fpprov
    # sql` writes its cells with .text alone, and importing a submodule runs this file first
    if name in __all__:
        from . import build

        return getattr(build, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

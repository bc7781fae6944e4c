"""HTML reports over an fpprov database: ``build_reports(db, out_dir)`` writes index.html, shared.html and one
page per model. build (writing), pages (each page's context), sections (model-page sections), cells (table
cells), data (the SQL behind them), charts (inline SVG), text (escaping hostile text)."""

from .build import DEFAULT_PAGE_SIZE, ReportOutcome, build_reports, first_missing_folder, remove_folder

__all__ = ["DEFAULT_PAGE_SIZE", "ReportOutcome", "build_reports", "first_missing_folder", "remove_folder"]

"""Writing the HTML reports: reports/index.html, one page per model and reports/shared.html, from jinja2
templates.

Pages are self-contained (inline CSS, inline SVG, one inline script allowed by its CSP hash, data as JSON
blocks) and safe for hostile text: autoescape is on, invisible characters become visible escapes
(report.text), and the table script only ever sets textContent.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import jinja2
from markupsafe import Markup

from .. import __version__
from ..errors import FpprovError
from ..db.sql import open_read_only
from . import data
from .pages import index_context, model_context, shared_context
from .text import csp_hash, number, page_names, plural
from .validation import validation_context
from .validation_rates import PAGE as VALIDATION_PAGE, latest_study

DEFAULT_PAGE_SIZE = 100


@dataclass
class ReportOutcome:
    index: Path
    pages: list[Path] = field(default_factory=list)
    models: int = 0
    seconds: float = 0.0
    snapshot: bool = False

    @property
    def summary(self) -> str:
        """'3 pages for 1 model in 1.2 s': the one-line summary the CLI prints."""
        return f"{plural(len(self.pages) + 1, 'page')} for {plural(self.models, 'model')} in {self.seconds:.1f} s"


def _environment() -> jinja2.Environment:
    folder = resources.files("fpprov.templates")
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: folder.joinpath(name).read_text("utf-8")),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=False, lstrip_blocks=False)
    env.filters["number"] = number
    return env


def _write(path: Path, html: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    # backslashreplace: a lone surrogate that slipped past the escaping must not lose the whole page
    partial.write_text(html, encoding="utf-8", errors="backslashreplace")
    os.replace(partial, path)


def build_reports(db: str | os.PathLike, out_dir: str | os.PathLike = "reports", *,
                  threshold_overrides: dict[str, float] | None = None, models: list[str] | None = None,
                  page_size: int = DEFAULT_PAGE_SIZE) -> ReportOutcome:
    """Write index.html, shared.html and one page per model (or per model named) into out_dir."""
    out = Path(out_dir).expanduser()
    created = first_missing_folder(out)
    try:
        return _build_reports(db, out, threshold_overrides, models, page_size)
    except BaseException:
        remove_folder(created)   # a failed run leaves no folder it made behind
        raise


def first_missing_folder(path: Path) -> Path | None:
    """The outermost folder of ``path`` that does not exist yet: what ``mkdir(parents=True)`` would create."""
    top = None
    for folder in [path, *path.parents]:
        if folder.exists() or folder.is_symlink():
            break
        top = folder
    return top


def remove_folder(folder: Path | None) -> None:
    if folder is not None and folder.is_dir() and not folder.is_symlink():
        shutil.rmtree(folder, ignore_errors=True)


def _build_reports(db: str | os.PathLike, out: Path, threshold_overrides: dict[str, float] | None,
                   models: list[str] | None, page_size: int) -> ReportOutcome:
    started = time.perf_counter()
    env = _environment()
    table_js = resources.files("fpprov.templates").joinpath("table.js").read_text("utf-8")
    with open_read_only(db, upgrade=True) as ro:
        store = ro.store
        data.apply_threshold_overrides(store, threshold_overrides or {})
        data.prepare_flags(store)
        all_models = data.model_rows(store)
        known = {m["model"] for m in all_models}
        missing = sorted(set(models or []) - known)
        if missing:
            raise FpprovError(f"no results for model {', '.join(missing)} in {db}; models: {', '.join(sorted(known)) or 'none'}")
        try:  # only once the database opened and the options are checked: no empty folder on a bad input
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FpprovError(f"cannot create report folder {out}: {exc.strerror}") from None
        pages = page_names([m["model"] for m in all_models])
        common = {"script_hash": csp_hash(table_js), "table_js": Markup(table_js), "version": __version__,
                  "db_name": Path(db).name, "snapshot": ro.snapshot,
                  "generated_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
        study = latest_study(store)     # the index links validation.html only when a complete study exists
        common["validation"] = None if study is None else {"href": VALIDATION_PAGE, "id": study["study_id"],
                                                           "design": study["design"]}
        outcome = ReportOutcome(index=out / "index.html", snapshot=ro.snapshot, models=len(all_models))
        _write(outcome.index, env.get_template("index.html").render(
            **common, **index_context(store, all_models, pages, page_size)))
        for m in all_models:
            if models and m["model"] not in models:
                continue
            path = out / pages[m["model"]]
            _write(path, env.get_template("model.html").render(**common, **model_context(store, m, pages, page_size)))
            outcome.pages.append(path)
        shared_path = out / "shared.html"
        _write(shared_path, env.get_template("shared.html").render(
            **common, **shared_context(store, all_models, pages, page_size)))
        outcome.pages.append(shared_path)
        validation_path = out / VALIDATION_PAGE
        if study is not None:
            _write(validation_path, env.get_template(VALIDATION_PAGE).render(
                **common, **validation_context(store, pages, page_size)))
            outcome.pages.append(validation_path)
        elif validation_path.is_file():
            validation_path.unlink()    # an earlier report's page would describe a study this database lacks
    outcome.seconds = time.perf_counter() - started
    return outcome

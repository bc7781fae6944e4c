"""What a database holds, per model (`fpprov status`): its scans, vector runs, provenance runs per index (proxy or
the model's training data), evidence runs, and whether a report page of it exists and is newer than its data.

Read-only (a snapshot while a writer holds the file, as `fpprov sql`); an older file is upgraded first, as by
`fpprov report`, so the views it reads exist."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path

from .db.sql import open_read_only
from .errors import FpprovError


@dataclass(frozen=True)
class ScanStatus:
    scan_id: int
    dtype: str
    bos: bool
    id_start: int
    id_stop: int               # exclusive: the scan covers ids id_start .. id_stop - 1
    tokens_scanned: int
    complete: bool
    fp_count: int
    verify: str | None         # float64 re-checks: calibrated | all | near
    finished_at: dt.datetime | None


@dataclass(frozen=True)
class VectorStatus:
    embedding: str             # effective | raw
    method: str                # iterate | gradient
    runs: int                  # seeds run
    converged: int
    fps: int                   # distinct vector FPs of this space (both methods)
    stable: int                # of which stable under rollout


@dataclass(frozen=True)
class IndexStatus:
    backend: str
    index_name: str
    index_is_proxy: bool       # True unless the index is known to be this model's training data
    fps: int                   # FP tokens traced
    controls: int              # matched control tokens traced
    evidence_n: int | None     # repetitions of the FP-vs-control comparison; None: no evidence run
    evidence_fp_sampled: int | None
    evidence_fp_total: int | None
    evidence_at: dt.datetime | None
    evidence_fp_compared: int | None = None   # FPs in the comparison (fp_enrichment.n_fp): loose runs etc. left out
    evidence_control_compared: int | None = None


@dataclass(frozen=True)
class ModelStatus:
    model: str
    scans: list[ScanStatus] = field(default_factory=list)
    vectors: list[VectorStatus] = field(default_factory=list)
    indexes: list[IndexStatus] = field(default_factory=list)
    report: Path | None = None           # the model's report page, when it exists
    report_stale: bool | None = None     # True: the page is older than the model's newest result; None: no page
    last_result_at: dt.datetime | None = None


@dataclass(frozen=True)
class DatabaseStatus:
    db: Path
    reports_dir: Path
    models: list[ModelStatus]
    report_index: Path | None            # reports_dir/index.html, when it exists
    snapshot: bool                       # read from a copy: another process is writing the database


def database_status(db: str | os.PathLike, reports_dir: str | os.PathLike = "reports") -> DatabaseStatus:
    """Per model (every model with a scan, a vector run or a provenance row), what the database holds and
    whether ``reports_dir`` has its page. A missing database is an FpprovError; an empty one has no models."""
    from .report.text import page_names  # the file names `fpprov report` gives the pages

    path, out = Path(db).expanduser(), Path(reports_dir).expanduser()
    if not path.exists():
        raise FpprovError(f"database {path} does not exist; run `fpprov scan MODEL` first or pass --db")
    with open_read_only(path, upgrade=True) as ro:
        store = ro.store
        scans = _by_model(store.query(
            "SELECT model, scan_id, dtype, bos, id_start, id_stop, coalesce(tokens_scanned, 0), complete, "
            "coalesce(fp_count, 0), verify, finished_at FROM scans ORDER BY model, scan_id"), ScanStatus)
        vectors = _by_model(store.query(
            "SELECT r.model, r.embedding, r.method, count(*), count(*) FILTER (WHERE r.converged), "
            " (SELECT count(*) FROM vector_fps f WHERE f.model = r.model AND f.embedding = r.embedding), "
            " (SELECT count(*) FILTER (WHERE f.stable) FROM vector_fps f WHERE f.model = r.model "
            "  AND f.embedding = r.embedding) "
            "FROM vector_runs r GROUP BY r.model, r.embedding, r.method ORDER BY 1, 2, 3"), VectorStatus)
        indexes = _by_model(store.query(
            # a full join: an evidence run whose provenance rows are gone still shows
            "SELECT model, backend, index_name, coalesce(t.index_is_proxy, e.index_is_proxy, true), "
            "coalesce(t.fps, 0), coalesce(t.controls, 0), e.n, e.fp_sampled, e.fp_total, e.computed_at, "
            "c.n_fp, c.n_control "
            "FROM traced_indexes t FULL JOIN evidence_runs e USING (model, backend, index_name) "
            "LEFT JOIN fp_enrichment c USING (model, backend, index_name) ORDER BY 1, 2, 3"),
            IndexStatus)
        latest = dict(store.query(
            "SELECT model, max(ts) FROM (SELECT model, coalesce(finished_at, started_at) AS ts FROM scans "
            "UNION ALL SELECT model, finished_at FROM vector_runs UNION ALL SELECT model, updated_at "
            "FROM provenance UNION ALL SELECT model, computed_at FROM evidence_runs) GROUP BY model"))
        snapshot = ro.snapshot
    names = sorted(set(scans) | set(vectors) | set(indexes))
    pages = page_names(names)
    models = []
    for name in names:
        page = out / pages[name]
        exists = page.is_file()
        written = dt.datetime.fromtimestamp(page.stat().st_mtime) if exists else None
        stale = None if written is None else bool(latest.get(name) and latest[name] > written)
        models.append(ModelStatus(name, scans.get(name, []), vectors.get(name, []), indexes.get(name, []),
                                  page if exists else None, stale, latest.get(name)))
    index = out / "index.html"
    return DatabaseStatus(path, out, models, index if index.is_file() else None, snapshot)


def _by_model(rows: list[tuple], kind: type) -> dict[str, list]:
    """Rows whose first column is the model, as ``kind`` records grouped by model (rows come sorted)."""
    out: dict[str, list] = {}
    for model, *values in rows:
        out.setdefault(model, []).append(kind(*values))
    return out

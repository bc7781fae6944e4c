"""``run_study``: the whole validation study, from the stdlib pool to the validation_* tables.

Stages: prepare (pool, tokenizer, planted pairs) -> state the expected time -> train the organisms (cached,
two processes) -> build each corpus's local index -> scan each organism -> provenance of every organism in every
index -> measure and store. The database is opened only for the stages that write to it, so a long training
does not hold the user's database. Ctrl-C keeps what is done: trained organisms and built indexes stay cached,
scans and provenance are committed as they go, and the study's row stays ``complete = false``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..db.store import open_store
from ..versions import library_versions
from .design import DESIGNS, StudyDesign
from .measure import OrganismRow, dose_50, dose_rows, flag_rows, token_rows
from .measure_corpus import attribution_rows, natural_rows, shared_rows, summary_rows
from .organisms import cached_key, prepare, seconds_per_step, train_all, training_seconds
from .pipeline import ensure_index, index_dir, index_names, model_name, scan_organism, trace_all

TABLES = ("validation_tokens", "validation_dose_response", "validation_flag_rates", "validation_attribution",
          "validation_natural", "validation_shared", "validation_summary", "validation_organisms")
# Per-organism costs after training, measured here on the quick design (docs/validation.md): scan, index
# build, and provenance per (organism, index) with 10 controls per FP.
SCAN_SECONDS_PER_1K_IDS = 3.0
INDEX_SECONDS = 4.0
TRACE_SECONDS = 3.0
# Two trainings side by side on two shared cores run slower per step than the probe, by how much depends on the
# load (2026-12-07, docs/validation.md: full study 0.20 s probed, 0.38-0.47 s per step in the workers at a load of
# 6-8; quick study 0.09 s probed, 0.09-0.10 s in the workers at 4.5).
CONTENTION = 1.6


@dataclass
class StudyOptions:
    quick: bool = False
    db: Path | None = None                  # None: the user's database (FPPROV_DB or ./fpprov.duckdb)
    workdir: Path | None = None             # corpora, tokenizer, indexes; None: <cache>/validation
    cache_dir: Path | None = None           # trained organisms; None: the organisms cache (FPPROV_CACHE_DIR)
    design: StudyDesign | None = None       # None: QUICK or FULL
    jobs: int = 2                           # training processes side by side
    bar: bool = False                       # progress bars on stderr
    on_message: Callable[[str], None] | None = None

    def resolved_design(self) -> StudyDesign:
        return self.design or DESIGNS["quick" if self.quick else "full"]


@dataclass
class StudyResult:
    study_id: str
    design: str
    db: str
    seconds: float
    expected_seconds: float
    trained: int                             # organisms trained by this run (the rest came from the cache)
    organisms: dict[str, str] = field(default_factory=dict)    # organism -> model name
    dose_response: list[dict[str, Any]] = field(default_factory=list)   # pooled rows (organism 'all')
    summary: dict[str, dict[str, Any]] = field(default_factory=dict)    # measure -> validation_summary row


def default_workdir() -> Path:
    return Path(os.environ.get("FPPROV_CACHE_DIR") or Path.home() / ".cache" / "fpprov") / "validation"


def run_study(options: StudyOptions) -> StudyResult:
    say = options.on_message or (lambda _m: None)
    design = options.resolved_design()
    started = time.perf_counter()
    study_id = design.study_id
    work = Path(options.workdir or default_workdir()) / study_id
    prepared = prepare(design, work)
    keys = {name: cached_key(spec, prepared, options.cache_dir) for name, spec in prepared.specs.items()}
    todo = [prepared.specs[n].settings.steps for n, (_, cached) in keys.items() if not cached]
    step = seconds_per_step(design, prepared.tokenizer.path) if todo else 0.0
    n_org = len(design.organisms)
    expected = (training_seconds(step * CONTENTION, todo, options.jobs) + n_org * INDEX_SECONDS
                + n_org * SCAN_SECONDS_PER_1K_IDS * design.vocab_size / 1000 + n_org * n_org * TRACE_SECONDS)
    training = (f"{len(todo)} to train ({todo[0]} steps each at {step:.3f} s per step measured now)" if todo
                else "all trained already (cached)")
    say(f"study {study_id}: {n_org} organisms, {training}, {n_org} indexes, {n_org * n_org} traces; expected about "
        f"{_minutes(expected)} on this machine")
    models = {name: model_name(design, name, key) for name, (key, _) in keys.items()}
    versions = library_versions()
    with open_store(options.db) as store:
        store.con.execute("DELETE FROM validation_runs WHERE study_id = ?", [study_id])
        store.insert_rows("validation_runs", [{
            "study_id": study_id, "design": design.name if design.name in DESIGNS else "custom",
            "settings": design.settings_json(), **{k: v for k, v in versions.items() if k != "tokenizers_version"},
            "tokenizer_sha256": prepared.tokenizer.sha256, "n_organisms": n_org, "n_indexes": n_org,
            "expected_seconds": float(expected), "complete": False}])
        db_path = str(store.path)
    built = train_all(prepared, work / "corpora", options.cache_dir, jobs=options.jobs, bar=options.bar, say=say)
    say(f"organisms ready ({sum(b.model.trained for b in built.values())} trained); indexing their corpora")
    dirs = {name: ensure_index(built[name], index_dir(work, name, built[name]), models[name]) for name in built}
    with open_store(options.db) as store:
        n_fps = {name: scan_organism(store, built[name], models[name]) for name in built}
        say(f"scanned: {', '.join(f'{models[n]} {k} FPs' for n, k in n_fps.items())}; tracing every organism "
            f"in every index ({design.provenance.controls} controls per FP)")
        trace_all(store, design, list(models.values()), list(dirs.values()))
        names = index_names(store, list(models.values()))
        organisms = {name: OrganismRow(name, models[name], names.get(dirs[name].name),
                                       design.plan(name).planted_source is None, built[name].model.corpus_tokens)
                     for name in built}
        rows = _measure(store, design, study_id, prepared, built, organisms, dirs, n_fps)
        seconds = time.perf_counter() - started
        store.con.execute("UPDATE validation_runs SET complete = true, seconds = ?, finished_at = current_timestamp "
                          "WHERE study_id = ?", [seconds, study_id])
    say(f"study {study_id} done in {_minutes(seconds)} (expected {_minutes(expected)})")
    return StudyResult(study_id, design.name, db_path, seconds, expected,
                       sum(b.model.trained for b in built.values()), models,
                       [r for r in rows["validation_dose_response"] if r["organism"] == "all"],
                       {r["measure"]: r for r in rows["validation_summary"]})


def _measure(store, design: StudyDesign, study_id: str, prepared, built, organisms, dirs, n_fps) -> dict:
    inserted = {}
    for name, b in built.items():
        plan = json.loads((Path(b.corpus_dir) / "PLAN.txt").read_text("utf-8"))["plan"]
        inserted.update({(name, p["word"]): (p["runs_inserted"], p["copies_inserted"]) for p in plan})
    tokens = token_rows(store, study_id, organisms, prepared.pairs, inserted)
    doses = dose_rows(study_id, design, tokens, organisms)
    flags = flag_rows(store, study_id, design, tokens, organisms)
    attribution = attribution_rows(store, study_id, design, organisms)
    natural = natural_rows(store, study_id, design, organisms, tokens)
    shared = shared_rows(store, study_id, design, organisms, tokens)
    summary = summary_rows(study_id, design, doses, dose_50(doses), flags, attribution, natural, tokens)
    orgs = []
    for name, org in organisms.items():
        plan, b = design.plan(name), built[name]
        orgs.append({"study_id": study_id, "organism": name, "model": org.model, "mixture_name": plan.mixture,
                     "mixture": sorted(design.mixtures[plan.mixture]), "planted_source": plan.planted_source,
                     "is_null": org.is_null, "n_planted": sum(1 for p in prepared.pairs
                                                              if p.organism == name and p.dose > 0),
                     "index_name": org.index_name, "index_dir": str(dirs[name]), "corpus_dir": b.corpus_dir,
                     "corpus_sha256": b.corpus_sha256, "corpus_tokens": b.model.corpus_tokens,
                     "model_path": b.model.path, "cache_key": b.model.key, "steps": b.model.steps,
                     "tokens_seen": b.model.tokens_seen, "final_loss": float(b.model.final_loss),
                     "train_seconds": _train_seconds(b.model), "trained": b.model.trained, "n_fps": n_fps[name]})
    rows = {"validation_tokens": tokens, "validation_dose_response": doses, "validation_flag_rates": flags,
            "validation_attribution": attribution, "validation_natural": natural, "validation_shared": shared,
            "validation_summary": summary, "validation_organisms": orgs}
    with store.transaction():
        for table in TABLES:
            store.con.execute(f"DELETE FROM {table} WHERE study_id = ?", [study_id])
            store.insert_rows(table, rows[table])
    return rows


def _train_seconds(model) -> float:
    """The training time, also for an organism loaded from the cache (its organism.json kept the first one)."""
    if model.trained:
        return float(model.seconds)
    meta = json.loads((Path(model.path) / "organism.json").read_text("utf-8"))
    return float(meta.get("result", {}).get("seconds") or 0.0)


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"

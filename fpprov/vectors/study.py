"""A vector-FP study of one model: run the searches per seed, store, deduplicate, analyse.

Resumable per seed: a seed's `vector_runs` row is written as soon as that seed stops, and a rerun with the
same settings skips the seeds already stored (``force`` redoes them). After the searches, the converged runs
of (model, embedding, dtype) are clustered at ``dedup_distance`` into `vector_fps`; an FP that was already
stored keeps its vector_id and, when its analysis settings match, its rollout and mixture.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from ..errors import FpprovError
from .rollout import judge_rollout, rollout_distances, token_mixtures
from ..db.store import Store, upsert_model
from ..versions import library_versions
from .descent import DescentSettings, gradient_descent, settings_for
from .iterate import ITERATE_MAX_STEPS, iterate
from .map import REACHABLE_FACTOR, EmbeddingMap, default_init_std
from .search import Finished, SeedOutcome, StepCallback
# VectorOptions lives in options.py; imported here too, where callers have always found it
from .options import VectorOptions, check_option_ranges  # noqa: F401


class ToleranceWarning(UserWarning):
    """A convergence tolerance below what the run's dtype can reach in its space."""


def iterate_max_steps(options: VectorOptions) -> int:
    return options.max_steps if options.max_steps is not None else ITERATE_MAX_STEPS


def descent_settings(fmap: EmbeddingMap, options: VectorOptions) -> DescentSettings:
    """Gradient descent's settings: the protocol's, scaled to fmap's space, with the options given replacing them."""
    return settings_for(fmap, options.protocol, lr=options.lr, lr_floor=options.lr_floor,
                        weight_decay=options.weight_decay, patience=options.patience, max_steps=options.max_steps)


def tolerance(fmap: EmbeddingMap, options: VectorOptions) -> float:
    """The tolerance of a study in fmap's space: ``options.tol``, or the space's ``default_tolerance`` when None.
    A tolerance asked for below what the map's dtype can reach (``reachable_tolerance``) gets one warning line
    (a ``ToleranceWarning``) naming the value that works."""
    if options.tol is None:
        return fmap.default_tolerance
    reach = fmap.reachable_tolerance
    if options.tol < reach:
        dtype = dtype_name(fmap.dtype)
        wider = "" if fmap.dtype == torch.float64 else " or --dtype float64"
        warnings.warn_explicit(  # explicit: one line, without a source line under it
            f"--tol {options.tol:g} is below what {dtype} can reach in the {options.embedding} space (about "
            f"{reach:.2g}, {REACHABLE_FACTOR:g} x ||x|| x eps): seeds will stop on the precision floor; use "
            f"--tol {max(reach, fmap.default_tolerance):.2g}{wider}",
            ToleranceWarning, "fpprov.vectors", 0)
    return options.tol


def method_settings(method: str, options: VectorOptions, dtype: str, init_std: float,
                    descent: DescentSettings | None = None, tol: float | None = None) -> str:
    """Canonical text of every setting that changes this method's result (the resume key with the seed);
    ``tol`` is the tolerance in force (``tolerance``), ``options.tol`` when None."""
    tol = options.tol if tol is None else tol
    parts = [f"embedding={options.embedding}", f"dtype={dtype}", f"init_std={init_std:g}", f"tol={tol:g}"]
    if method == "iterate":
        parts += [f"max_steps={iterate_max_steps(options)}", f"stall_window={options.stall_window}"]
    else:
        if descent is None:
            raise FpprovError("gradient settings need the space's DescentSettings")
        parts += [f"detach={int(options.detach)}", descent.text()]
    return " ".join(parts)


@dataclass
class StudySummary:
    model: str
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)   # method -> vector_runs rows
    skipped: dict[str, list[int]] = field(default_factory=dict)           # method -> seeds already stored
    fps: list[dict[str, Any]] = field(default_factory=list)               # vector_fps rows of the group
    tokens: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # vector_id -> top tokens


def _versions() -> dict[str, str | None]:
    """The versions a vector_runs row records (its table has no tokenizers column)."""
    versions = library_versions()
    return {k: versions[k] for k in ("torch_version", "transformers_version", "fpprov_version")}


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def run_study(store: Store, loaded: Any, options: VectorOptions, *, progress: StepCallback | None = None,
              on_method: Callable[[str, int, int], None] | None = None) -> StudySummary:
    """Run the requested methods for the seeds not yet stored, then deduplicate and analyse the group.

    ``on_method(method, to_run, skipped)`` is told before each method starts (for the CLI's progress bars).
    """
    upsert_model(store, loaded)
    fmap = EmbeddingMap(loaded, options.embedding)
    dtype = dtype_name(fmap.dtype)
    init_std = options.init_std if options.init_std is not None else default_init_std(loaded.model)
    summary = StudySummary(model=loaded.name)
    descent = descent_settings(fmap, options)
    tol = tolerance(fmap, options)
    for method in options.methods:
        settings = method_settings(method, options, dtype, init_std, descent, tol)
        wanted = {int(s) for s in options.seeds}
        done = {row[0] for row in store.query(
            "SELECT seed FROM vector_runs WHERE model = ? AND method = ? AND settings = ?",
            [loaded.name, method, settings])} & wanted
        if options.force and done:
            store.con.execute("DELETE FROM vector_runs WHERE model = ? AND method = ? AND settings = ? "
                              f"AND seed IN ({', '.join(str(int(s)) for s in done)})",
                              [loaded.name, method, settings])
            done = set()
        todo = [int(s) for s in options.seeds if int(s) not in done]
        summary.skipped[method] = [int(s) for s in options.seeds if int(s) in done]
        if on_method is not None:
            on_method(method, len(todo), len(summary.skipped[method]))
        if todo:
            base = {"model": loaded.name, "method": method, "settings": settings, "embedding": options.embedding,
                    "dtype": dtype, "device": str(fmap.device), "init_std": init_std, "tolerance": tol,
                    "batch_size": len(todo), **_versions()}
            if method == "iterate":
                base.update(max_steps=iterate_max_steps(options), stall_window=options.stall_window)
            else:
                base.update(max_steps=descent.max_steps, detach=options.detach, lr_initial=descent.lr,
                            lr_floor=descent.lr_floor, weight_decay=descent.weight_decay,
                            protocol=descent.protocol, patience=descent.patience, lr_factor=descent.factor,
                            loss=descent.loss)
            run_method(fmap, method, todo, options, init_std, _run_writer(store, base), progress, descent)
        summary.runs[method] = store.query_dicts(
            "SELECT * EXCLUDE (vector) FROM vector_runs WHERE model = ? AND method = ? AND settings = ? "
            "ORDER BY seed", [loaded.name, method, settings])
    sync_fps(store, fmap, loaded.name, options)
    summary.fps = store.query_dicts(
        "SELECT * EXCLUDE (vector) FROM vector_fps WHERE model = ? AND embedding = ? AND dtype = ? "
        "ORDER BY n_runs DESC, vector_id", [loaded.name, options.embedding, dtype])
    for fp in summary.fps:
        summary.tokens[fp["vector_id"]] = store.query_dicts(
            "SELECT * FROM vector_fp_tokens WHERE vector_id = ? ORDER BY rank", [fp["vector_id"]])
    return summary


def run_method(fmap: EmbeddingMap, method: str, seeds: Sequence[int], options: VectorOptions, init_std: float,
               on_finish: Finished | None = None, progress: StepCallback | None = None,
               descent: DescentSettings | None = None) -> list[SeedOutcome]:
    """One method over all ``seeds`` in one batch (no storage); ``descent`` defaults to descent_settings."""
    x0 = fmap.initial_vectors(seeds, init_std)                              # (S, D)
    if method == "iterate":
        return iterate(fmap, seeds, x0, tol=options.tol, max_steps=iterate_max_steps(options),
                       stall_window=options.stall_window, on_finish=on_finish, progress=progress)
    return gradient_descent(fmap, seeds, x0, descent or descent_settings(fmap, options), tol=options.tol,
                            detach=options.detach, on_finish=on_finish, progress=progress)


def _run_writer(store: Store, base: dict[str, Any]) -> Finished:
    """A callback that stores the seeds of one step as they stop (one bulk insert per step)."""

    def write(outcomes: list[SeedOutcome]) -> None:
        rows = [{**base, "seed": o.seed, "converged": o.converged, "stop_reason": o.stop_reason,
                 "stop_detail": o.stop_detail, "steps": o.steps, "residual": o.residual,
                 "best_residual": o.best_residual, "vector": o.vector.tolist(),
                 "vector_norm": float(o.vector.double().norm()), "seconds": o.seconds, "lr_final": o.lr_final}
                for o in outcomes]
        store.insert_rows("vector_runs", rows)

    return write


def cluster_vectors(vectors: torch.Tensor, distance: float, anchors: torch.Tensor | None = None) -> list[int]:
    """Greedy clustering: each vector joins the first representative within ``distance`` (L2), else founds one.

    Representatives start as ``anchors`` (already stored FPs, indices 0..A-1) and grow with founders,
    whose index is A + their position in ``vectors``. Returns the representative index of each vector.
    """
    reps = [] if anchors is None else [a.double() for a in anchors]
    ids = list(range(len(reps)))
    assigned = []
    for i, v in enumerate(vectors.double()):
        if reps:
            dists = (torch.stack(reps) - v).norm(dim=-1)                     # (R,)
            nearest = int(dists.argmin())
            if float(dists[nearest]) < distance:
                assigned.append(ids[nearest])
                continue
        reps.append(v)
        ids.append((0 if anchors is None else len(anchors)) + i)
        assigned.append(ids[-1])
    return assigned


def sync_fps(store: Store, fmap: EmbeddingMap, model: str, options: VectorOptions) -> None:
    """Rebuild the FPs of (model, embedding, dtype) from its converged runs, keeping stored ids."""
    dtype = dtype_name(fmap.dtype)
    runs = store.query_dicts(
        "SELECT run_id, method, seed, vector, residual FROM vector_runs WHERE model = ? AND embedding = ? "
        "AND dtype = ? AND converged ORDER BY run_id", [model, options.embedding, dtype])
    old = store.query_dicts("SELECT * FROM vector_fps WHERE model = ? AND embedding = ? AND dtype = ? "
                            "ORDER BY vector_id", [model, options.embedding, dtype])
    vectors = torch.tensor([r["vector"] for r in runs], dtype=torch.float32) if runs else torch.empty(0, fmap.dim)
    anchors = torch.tensor([o["vector"] for o in old], dtype=torch.float32) if old else None
    assigned = cluster_vectors(vectors, options.dedup_distance, anchors)
    members: dict[int, list[dict[str, Any]]] = {}
    for run, rep in zip(runs, assigned):
        members.setdefault(rep, []).append(run)
    n_old = len(old)
    fresh_rows = []   # (rep index, row) for FPs needing rollout and mixture
    rows = []
    for rep, group in members.items():
        base = old[rep] if rep < n_old else None
        founder = runs[rep - n_old] if rep >= n_old else None
        row = {
            "model": model, "embedding": options.embedding, "dtype": dtype, "dim": fmap.dim,
            "vector": base["vector"] if base else founder["vector"],
            "residual": base["residual"] if base else founder["residual"],
            "dedup_distance": options.dedup_distance,
            "methods": sorted({r["method"] for r in group}), "seeds": sorted({r["seed"] for r in group}),
            "run_ids": [r["run_id"] for r in group], "n_runs": len(group),
        }
        row["vector_norm"] = math.sqrt(sum(v * v for v in row["vector"]))
        if base:
            row["vector_id"], row["created_at"] = base["vector_id"], base["created_at"]
        if base and not options.force and base["rollout_steps"] == options.rollout_steps \
                and base["rollout_feed"] == options.rollout_feed and base["top_k"] == options.top_k:
            for key in ("rollout_feed", "rollout_steps", "rollout_dist_by_l", "rollout_dist_max", "top_k",
                        "entropy", "top_token_id", "top_token_text", "top_weight", "top_token_is_fp"):
                row[key] = base[key]
            row["stable_threshold"] = options.stable_threshold
            row["stable"] = row["rollout_dist_max"] < options.stable_threshold
        else:
            fresh_rows.append(row)
        rows.append((rep, row))
    token_rows = _analyse(fmap, [row for row in fresh_rows], options, store)
    with store.transaction() as con:
        kept_ids = [row["vector_id"] for _, row in rows if "vector_id" in row]
        dropped = [o["vector_id"] for o in old if o["vector_id"] not in kept_ids]
        refreshed = [row["vector_id"] for row in fresh_rows if "vector_id" in row]
        for vector_id in dropped + kept_ids:
            con.execute("DELETE FROM vector_fps WHERE vector_id = ?", [vector_id])
        for vector_id in dropped + refreshed:
            con.execute("DELETE FROM vector_fp_tokens WHERE vector_id = ?", [vector_id])
        con.execute("UPDATE vector_runs SET vector_id = NULL WHERE model = ? AND embedding = ? AND dtype = ?",
                    [model, options.embedding, dtype])
        for rep, row in rows:  # new FPs need their sequence id before their tokens and runs point at them
            if "vector_id" not in row:
                row["vector_id"] = con.execute("SELECT nextval('vector_fp_id_seq')").fetchone()[0]
        store.insert_rows("vector_fps", [row for _, row in rows])
        store.insert_rows("vector_fp_tokens", [
            {**token, "vector_id": row["vector_id"]} for row in fresh_rows for token in token_rows[id(row)]])
        for _, row in rows:
            con.execute(f"UPDATE vector_runs SET vector_id = ? WHERE run_id IN "
                        f"({', '.join(str(int(r)) for r in row['run_ids'])})", [row["vector_id"]])


def _analyse(fmap: EmbeddingMap, rows: list[dict[str, Any]], options: VectorOptions,
             store: Store | None = None) -> dict[int, list[dict]]:
    """Fill rollout and mixture fields of ``rows`` in place (one batch); return their token rows by id(row)."""
    if not rows:
        return {}
    fps = torch.tensor([row["vector"] for row in rows], dtype=torch.float32)   # (F, D)
    verdicts = judge_rollout(rollout_distances(fmap, fps, options.rollout_steps, options.rollout_feed),
                             options.stable_threshold)
    mixtures = token_mixtures(fmap, fps, options.top_k, store)
    tokens: dict[int, list[dict]] = {}
    for row, verdict, mixture in zip(rows, verdicts, mixtures):
        top = mixture.tokens[0]
        row.update(rollout_feed=options.rollout_feed, rollout_steps=options.rollout_steps,
                   rollout_dist_by_l=verdict.dist_by_l, rollout_dist_max=verdict.dist_max,
                   stable_threshold=options.stable_threshold, stable=verdict.stable, top_k=options.top_k,
                   entropy=mixture.entropy, top_token_id=top.token_id, top_token_text=top.text,
                   top_weight=top.weight, top_token_is_fp=top.is_token_fp)
        tokens[id(row)] = [{"rank": t.rank, "token_id": t.token_id, "raw_token": t.raw_token, "text": t.text,
                            "weight": t.weight, "is_token_fp": t.is_token_fp} for t in mixture.tokens]
    return tokens

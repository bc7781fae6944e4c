"""Token fixed points: for every token t, does the single-token input [t] make greedy decoding output t?

A scan is planned (its options checked against the model, before any database is touched), opened (its
``scans`` row found or written), then run chunk by chunk: each chunk is judged, and its verdicts, float64
re-checks and counters are committed in one transaction, so a killed scan resumes at the first chunk not
committed and ends with exactly the rows of an uninterrupted run. Under torchrun the chunks are split
across the ranks (fpprov.runtime.distributed) and rank 0 alone commits them, in chunk order.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import torch

from ..runtime.distributed import Group, Ranks, joined
from ..errors import FpprovError
from .judge import (FLOAT32, FLOAT64, SCREEN, Calibration, TokenJudge, Verdicts, calibration_sample,
                    calibration_size)
from ..models import LoadedModel
from .options import ScanOptions
from ..db.store import Store, upsert_model
from ..tokens import TokenDescriber, TokenInfo
from ..versions import library_versions

# Tokens per forward of the repeated inputs [t] * L: at most 256 sequences of 256 tokens' working set.
CHECK_LENGTH_TOKENS = 65536
BatchCallback = Callable[[int, int], None]  # (tokens just finished, FPs among them)


@dataclass
class ScanResult:
    scan_id: int
    model: str
    tokens_scanned: int
    tokens_skipped: int
    fp_count: int
    rechecked: int
    flipped: int
    seconds: float
    complete: bool
    resumed_from: int = 0          # ids already committed when this run started
    already_complete: bool = False
    top: list[dict[str, Any]] = field(default_factory=list)


def scan_range(loaded: LoadedModel, opts: ScanOptions) -> tuple[int, int, int]:
    """(id_start, id_stop, skipped): ids that have both a tokenizer entry and an embedding row."""
    n_ids, n_rows = loaded.scannable_ids()
    scannable = min(n_ids, n_rows)
    context = getattr(loaded.model.config, "max_position_embeddings", None)
    if opts.check_length is not None and context and opts.check_length > context:
        # [t] * L must fit the model's context: past it the check measures nothing, and the input grows unbounded
        raise FpprovError(f"--check-length must be between 2 and the model's context ({context}), "
                          f"got {opts.check_length}")
    if opts.start < 0 or opts.start >= scannable:
        raise FpprovError(f"--start {opts.start} is outside the vocabulary (0..{scannable - 1})")
    stop = scannable if opts.limit is None else min(scannable, opts.start + opts.limit)
    # Rows past the tokenizer (padding) or ids past the rows cannot be scanned: counted, not silent.
    skipped = (max(n_ids, n_rows) - scannable) if stop == scannable else 0
    return opts.start, stop, skipped


def find_scan(store: Store, model: str, dtype: str, opts: ScanOptions, id_start: int, id_stop: int) -> dict | None:
    found = store.query_dicts(
        "SELECT * FROM scans WHERE model = ? AND dtype = ? AND bos = ? AND id_start = ? AND id_stop = ?"
        " AND check_length IS NOT DISTINCT FROM ? AND verify = ? ORDER BY scan_id DESC LIMIT 1",
        [model, dtype, opts.bos, id_start, id_stop, opts.check_length, opts.verify],
    )
    return found[0] if found else None


def delete_scan(store: Store, scan_id: int) -> None:
    with store.transaction() as con:
        for table in ("token_fps", "scan_rechecks", "scan_chunks", "scans"):
            con.execute(f"DELETE FROM {table} WHERE scan_id = ?", [scan_id])


def top_fps(store: Store, scan_id: int, k: int = 5, ascending: bool = False) -> list[dict[str, Any]]:
    order = "ASC" if ascending else "DESC"
    return store.query_dicts(
        f"SELECT token_id, raw_token, text, prob, margin FROM token_fps WHERE scan_id = ?"
        f" ORDER BY prob {order}, token_id LIMIT ?", [scan_id, k])


def pending_chunks(committed: list[tuple[int, int]], id_start: int, id_stop: int, every: int) -> list[tuple[int, int]]:
    """The gaps of [id_start, id_stop) not covered by ``committed`` chunks, cut every ``every`` ids.

    With the same --commit-every as the first run these are exactly its remaining chunks; with another one,
    no id is scanned twice.
    """
    todo, pos = [], id_start
    for start, stop in sorted(committed) + [(id_stop, id_stop)]:
        todo += [(s, min(s + every, start)) for s in range(pos, start, every)]
        pos = max(pos, stop)
    return todo


def _fp_rows(scan_id: int, model: str, verdicts: Verdicts, infos: dict[int, TokenInfo],
             length_ok: dict[int, bool], dtype_name: str) -> list[dict[str, Any]]:
    decided_in = {SCREEN: dtype_name, FLOAT32: "float32", FLOAT64: "float64"}
    rows = []
    for i in verdicts.fp_positions():
        token_id = int(verdicts.ids[i])
        info = infos[token_id]
        own, lse = float(verdicts.own[i]), float(verdicts.lse[i])
        f64 = float(verdicts.f64_margin[i])
        rows.append({
            "scan_id": scan_id, "model": model, "token_id": token_id, "raw_token": info.raw_token,
            "text": info.text, "norm_text": info.norm_text, "category": info.category,
            "prob": math.exp(own - lse), "logit": own, "runner_up_id": int(verdicts.best_id[i]),
            "runner_up_logit": float(verdicts.best[i]), "margin": float(verdicts.gap[i]),
            "verified_float64": bool(verdicts.recheck[i]) and f64 > 0,
            "margin_float64": None if math.isnan(f64) else f64,
            "length_check": length_ok.get(token_id),
            "decided_in": decided_in[int(verdicts.decided_by[i])],
        })
    return rows


def _recheck_rows(scan_id: int, verdicts: Verdicts) -> list[dict[str, Any]]:
    rows = []
    for i in verdicts.recheck_positions():
        rows.append({
            "scan_id": scan_id, "token_id": int(verdicts.ids[i]),
            "screen_is_fp": bool(verdicts.screen_is_fp[i]), "screen_margin": float(verdicts.gap[i]),
            "float64_is_fp": bool(verdicts.is_fp[i]), "float64_margin": float(verdicts.f64_margin[i]),
            "float64_runner_up_id": int(verdicts.f64_best_id[i]),
        })
    return rows


@dataclass
class ScanPlan:
    """A scan's options checked against its model; nothing is read or written yet."""

    loaded: LoadedModel
    opts: ScanOptions
    dtype_name: str
    id_start: int
    id_stop: int
    skipped: int                   # ids past the tokenizer or the embedding rows
    judge: TokenJudge


def plan_scan(loaded: LoadedModel, opts: ScanOptions, dtype_name: str | None = None) -> ScanPlan:
    """The checks that need the model (--start, --check-length, --bos), before any database is touched.

    The scan records the dtype the model's weights are in; ``dtype_name``, when given, must name it."""
    actual = str(loaded.model.get_output_embeddings().weight.dtype).removeprefix("torch.")
    if dtype_name is not None and dtype_name != actual:
        raise FpprovError(f"the model is loaded in {actual}, not {dtype_name}: load it with dtype={dtype_name!r}")
    dtype_name = actual
    id_start, id_stop, skipped = scan_range(loaded, opts)
    return ScanPlan(loaded, opts, dtype_name, id_start, id_stop, skipped, TokenJudge(loaded, opts))


@dataclass
class OpenScan:
    """A scan whose ``scans`` row exists: the chunks still to run and what is already committed."""

    scan_id: int
    plan: ScanPlan                 # a resumed scan's plan carries its stored batch, chunk and tolerance
    todo: list[tuple[int, int]]
    resumed_from: int              # ids already committed when this run started
    already_complete: bool = False


@dataclass
class JudgedChunk:
    """One chunk's rows, ready to commit."""

    start: int
    stop: int
    fp_rows: list[dict[str, Any]]
    rechecks: list[dict[str, Any]]
    flipped: int                   # re-checks whose float64 verdict differs from the screen
    seconds: float
    vocabulary: list[dict[str, Any]] = field(default_factory=list)   # text and category of ids not yet stored


def _scan_row(plan: ScanPlan) -> dict[str, Any]:
    opts = plan.opts
    return {"model": plan.loaded.name, "dtype": plan.dtype_name, "device": str(plan.loaded.device), "bos": opts.bos,
            "id_start": plan.id_start, "id_stop": plan.id_stop, "batch_size": opts.batch_size,
            "commit_every": opts.commit_every, "tolerance": opts.tolerance, "check_length": opts.check_length,
            "verify": opts.verify, "method": plan.judge.method, **library_versions(),
            "tokens_skipped": plan.skipped, "seconds": 0.0, **_calibration_columns(plan)}


def scan_calibration_sample(plan: ScanPlan) -> torch.Tensor:
    """The ids that calibrate this scan: a fixed-seed draw from its own range (calibration_size of them)."""
    n = calibration_size(plan.id_stop - plan.id_start, plan.opts.calibration_sample)
    return calibration_sample(plan.id_start, plan.id_stop, n)


def _calibration_columns(plan: ScanPlan) -> dict[str, Any]:
    """Measure the screen's error on a random sample of the scan's ids, to store: for --verify calibrated,
    and always for a low-precision scan, whose screen escalates by it. Such a scan's float32 rung is
    calibrated on the same sample (with --verify calibrated); the scan dtype's calibration is the one stored."""
    judge = plan.judge
    if plan.opts.verify != "calibrated" and not judge.low_precision:
        return {}
    sample = scan_calibration_sample(plan)
    if judge.low_precision and plan.opts.verify == "calibrated":
        judge.calibrate(sample, torch.float32)
    cal = judge.calibrate(sample)
    return {"calibration_error": cal.error, "safety_factor": cal.factor, "calibration_measured": cal.measured,
            "calibration_bound": cal.bound, "calibration_threshold": cal.threshold}


def open_scan(plan: ScanPlan, store: Store) -> OpenScan:
    """Find the scan with these settings (resumed, or redone with ``force``) or write its ``scans`` row."""
    loaded, opts = plan.loaded, plan.opts
    upsert_model(store, loaded)
    existing = find_scan(store, loaded.name, plan.dtype_name, opts, plan.id_start, plan.id_stop)
    if existing and existing["complete"] and not opts.force:
        return OpenScan(existing["scan_id"], plan, [], 0, already_complete=True)
    if existing and opts.force:
        delete_scan(store, existing["scan_id"])
        existing = None
    if existing is None:
        store.insert_rows("scans", [_scan_row(plan)])
        existing = find_scan(store, loaded.name, plan.dtype_name, opts, plan.id_start, plan.id_stop)
    else:
        kept = {"batch_size": existing["batch_size"], "commit_every": existing["commit_every"],
                "tolerance": existing["tolerance"]}
        if kept != {k: getattr(opts, k) for k in kept}:
            # A resumed scan keeps its own chunks, batches and tolerance: its rows equal an uninterrupted run's.
            opts = replace(opts, **kept)
            plan = replace(plan, opts=opts, judge=plan.judge.with_options(opts))
        if existing["calibration_error"] is not None:   # a resumed scan trusts what its first run trusted
            plan.judge.calibration = Calibration(existing["calibration_error"], existing["safety_factor"],
                                                 existing["calibration_measured"], existing["calibration_bound"])
            if plan.judge.low_precision and opts.verify == "calibrated":   # not stored: measured again, same sample
                plan.judge.calibrate(scan_calibration_sample(plan),
                                     torch.float32)
    scan_id = existing["scan_id"]
    committed = store.query("SELECT chunk_start, chunk_stop FROM scan_chunks WHERE scan_id = ? ORDER BY 1", [scan_id])
    todo = pending_chunks(committed, plan.id_start, plan.id_stop, opts.commit_every)
    return OpenScan(scan_id, plan, todo, sum(stop - start for start, stop in committed))


def _vocabulary_rows(model: str, infos: dict[int, TokenInfo], stored: set[int]) -> list[dict[str, Any]]:
    return [{"model": model, "token_id": i, "raw_token": info.raw_token, "text": info.text,
             "norm_text": info.norm_text, "category": info.category}
            for i, info in infos.items() if i not in stored]


def judge_chunk(scan: OpenScan, chunk_start: int, chunk_stop: int, describer: TokenDescriber,
                stored: set[int] | None = None) -> JudgedChunk:
    """The verdicts of ids [chunk_start, chunk_stop) as token_fps and scan_rechecks rows, and the ``vocabulary``
    rows of the ids not in ``stored`` (matched controls are drawn from every scanned id, not only the FPs)."""
    stored = stored or set()
    plan, opts = scan.plan, scan.plan.opts
    t0 = time.perf_counter()
    verdicts = plan.judge.judge(torch.arange(chunk_start, chunk_stop))
    length_ok: dict[int, bool] = {}
    if opts.check_length:
        fp_ids = verdicts.ids[verdicts.is_fp]
        per_batch = max(1, min(opts.batch_size, CHECK_LENGTH_TOKENS // opts.check_length))
        for b in fp_ids.split(per_batch) if fp_ids.numel() else ():
            length_ok.update(zip(b.tolist(), plan.judge.repeats_to_self(b, opts.check_length).tolist()))
    fp_ids = {int(verdicts.ids[i]) for i in verdicts.fp_positions()}
    infos = {i: describer.describe(i) for i in range(chunk_start, chunk_stop) if i not in stored or i in fp_ids}
    fp_rows = _fp_rows(scan.scan_id, plan.loaded.name, verdicts, infos, length_ok, plan.dtype_name)
    rechecks = _recheck_rows(scan.scan_id, verdicts)
    flipped = sum(r["screen_is_fp"] != r["float64_is_fp"] for r in rechecks)
    return JudgedChunk(chunk_start, chunk_stop, fp_rows, rechecks, flipped, time.perf_counter() - t0,
                       _vocabulary_rows(plan.loaded.name, infos, stored))


def commit_chunk(store: Store, scan: OpenScan, chunk: JudgedChunk) -> None:
    """Write a chunk's rows and add it to its scan's counters, in one transaction."""
    n = chunk.stop - chunk.start
    with store.transaction():
        store.insert_rows("token_fps", chunk.fp_rows)
        store.insert_rows("scan_rechecks", chunk.rechecks)
        store.insert_rows("vocabulary", chunk.vocabulary, or_ignore=True)
        store.insert_rows("scan_chunks", [{"scan_id": scan.scan_id, "chunk_start": chunk.start,
                                           "chunk_stop": chunk.stop, "tokens_scanned": n, "tokens_skipped": 0,
                                           "fp_count": len(chunk.fp_rows)}])
        store.con.execute(
            "UPDATE scans SET tokens_scanned = tokens_scanned + ?, fp_count = fp_count + ?, rechecked = rechecked + ?,"
            " flipped = flipped + ?, seconds = seconds + ? WHERE scan_id = ?",
            [n, len(chunk.fp_rows), len(chunk.rechecks), chunk.flipped, chunk.seconds, scan.scan_id])


@dataclass
class SharedScan:
    """What rank 0 reads from the store that every rank needs to judge chunks as a single process would."""

    scan_id: int
    opts: ScanOptions              # a resumed scan's stored batch, chunk and tolerance
    todo: list[tuple[int, int]]
    resumed_from: int
    already_complete: bool
    stored: set[int]               # ids whose vocabulary row is already stored
    calibrations: dict[Any, Calibration]   # rank 0's, so that every rank trusts what one process would


def _open_on_every_rank(plan: ScanPlan, store: Store | None, group: Group) -> tuple[OpenScan, set[int]]:
    """Rank 0 opens the scan (find, resume or start it) and tells the other ranks what it found."""
    if group.ranks.writer:
        scan = open_scan(plan, store)
        stored = {r[0] for r in store.query("SELECT token_id FROM vocabulary WHERE model = ? AND token_id >= ? AND "
                                            "token_id < ?", [plan.loaded.name, plan.id_start, plan.id_stop])}
        group.broadcast(SharedScan(scan.scan_id, scan.plan.opts, scan.todo, scan.resumed_from, scan.already_complete,
                                   stored, dict(scan.plan.judge.calibrations)))
        return scan, stored
    shared = group.broadcast(None)
    if shared.opts != plan.opts:
        plan = replace(plan, opts=shared.opts, judge=plan.judge.with_options(shared.opts))
    plan.judge.calibrations = dict(shared.calibrations)
    return OpenScan(shared.scan_id, plan, shared.todo, shared.resumed_from, shared.already_complete), shared.stored


def _run_rounds(scan: OpenScan, store: Store | None, group: Group, stored: set[int],
                progress: BatchCallback | None) -> None:
    """Each round, rank r judges pending chunk round * world + r; rank 0 commits the round's chunks in chunk
    order, so a killed job leaves committed chunks that the rerun's pending_chunks skips."""
    ranks = group.ranks
    describer = TokenDescriber(scan.plan.loaded.tokenizer)
    for first in range(0, len(scan.todo), ranks.world):
        mine = first + ranks.rank
        chunk = judge_chunk(scan, *scan.todo[mine], describer, stored) if mine < len(scan.todo) else None
        for judged in group.gather(chunk) or []:   # rank order is chunk order
            if judged is None:                    # the last round has fewer chunks than ranks
                break
            commit_chunk(store, scan, judged)
            if progress:
                progress(judged.stop - judged.start, len(judged.fp_rows))


def run_scan(plan: ScanPlan, store: Store | None, progress: BatchCallback | None = None,
             on_start: Callable[[int, int], None] | None = None, ranks: Ranks | None = None) -> ScanResult:
    """Open the planned scan and commit its pending chunks one by one; resumable.

    Under torchrun (``ranks``, read from the environment when None) the pending chunks are split across the
    ranks; only rank 0 takes a ``store`` (the others pass None), commits, and calls ``progress`` and
    ``on_start``. Every rank returns rank 0's result; the rows equal a single-process scan's.
    """
    ranks = Ranks.from_env() if ranks is None else ranks
    if ranks.writer and store is None:
        raise ValueError("rank 0 commits the scan: it needs the store")
    with joined(ranks, plan.loaded.device) as group:
        scan, stored = _open_on_every_rank(plan, store, group)
        result = None
        if scan.already_complete:
            result = _result(store, scan.scan_id, already_complete=True) if ranks.writer else None
        else:
            if on_start and ranks.writer:
                on_start(plan.id_stop - plan.id_start, scan.resumed_from)
            _run_rounds(scan, store, group, stored, progress)
            if ranks.writer:
                store.con.execute("UPDATE scans SET complete = true, finished_at = current_timestamp"
                                  " WHERE scan_id = ?", [scan.scan_id])
                result = _result(store, scan.scan_id, resumed_from=scan.resumed_from)
        return group.broadcast(result)


def scan_vocabulary(loaded: LoadedModel, store: Store | None, opts: ScanOptions | ScanPlan,
                    dtype_name: str | None = None, progress: BatchCallback | None = None,
                    on_start: Callable[[int, int], None] | None = None, ranks: Ranks | None = None) -> ScanResult:
    """Scan ids [start, start+limit) of ``loaded`` for token FPs, committing per chunk; resumable (under
    torchrun, sharded across the ranks: see run_scan). Everything a scan stores is stored here: once the scan
    is complete, the model's under-trained indicators too (fpprov.scan.undertrained; weights only, once per
    model). ``opts`` may be the plan_scan of these options, made before the store was opened; ``dtype_name``,
    when given, must name the dtype the model is loaded in (the one the scan records)."""
    from .undertrained import ensure_undertrained  # transformers' tokenizer tables load with the work

    plan = opts if isinstance(opts, ScanPlan) else plan_scan(loaded, opts, dtype_name)
    result = run_scan(plan, store, progress, on_start, ranks)
    if store is not None and result.complete:   # rank 0 only: the other ranks have no store
        ensure_undertrained(loaded, store)
    return result


def _result(store: Store, scan_id: int, resumed_from: int = 0, already_complete: bool = False) -> ScanResult:
    row = store.query_dicts("SELECT * FROM scans WHERE scan_id = ?", [scan_id])[0]
    return ScanResult(
        scan_id=scan_id, model=row["model"], tokens_scanned=row["tokens_scanned"],
        tokens_skipped=row["tokens_skipped"], fp_count=row["fp_count"], rechecked=row["rechecked"],
        flipped=row["flipped"], seconds=row["seconds"] or 0.0, complete=row["complete"],
        resumed_from=resumed_from, already_complete=already_complete, top=top_fps(store, scan_id),
    )

"""Token fixed points: for every token t, does the single-token input [t] make greedy decoding output t?

The scan walks the vocabulary in commit chunks; each chunk's verdicts, float64 re-checks and counters are
written in one transaction, so a killed scan resumes at the first chunk not committed and ends with exactly
the rows of an uninterrupted run.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import torch

from .errors import FpprovError
from .forward import hidden_forward, hidden_len1, layer_layout
from .head import LMHead
from .models import LoadedModel
from .store import Store, upsert_model
from .tokens import TokenDescriber
from .versions import library_versions

BatchCallback = Callable[[int, int], None]  # (tokens just finished, FPs among them)


@dataclass
class ScanOptions:
    bos: bool = False
    batch_size: int = 256
    tolerance: float = 1e-4        # relative: a margin under tolerance * max(1, |logit|) is re-checked
    check_length: int | None = None
    start: int = 0
    limit: int | None = None
    commit_every: int = 4096       # ids per transaction
    force: bool = False
    head_chunk: int = 8192
    verify: str = "all"            # all: every FP and near tie in float64; near: near ties only
    recheck_batch: int = 4096      # ids re-checked together (one float64 cast of each layer per group)


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
    if opts.limit is not None and opts.limit <= 0:
        raise FpprovError("--limit must be a positive number of tokens")
    context = getattr(loaded.model.config, "max_position_embeddings", None)
    if opts.check_length is not None and (opts.check_length < 2 or (context and opts.check_length > context)):
        # [t] * L must fit the model's context: past it the check measures nothing, and the input grows unbounded
        raise FpprovError(f"--check-length must be between 2 and the model's context ({context or 'unknown'}), "
                          f"got {opts.check_length}")
    if opts.start < 0 or opts.start >= scannable:
        raise FpprovError(f"--start {opts.start} is outside the vocabulary (0..{scannable - 1})")
    stop = scannable if opts.limit is None else min(scannable, opts.start + opts.limit)
    # Rows past the tokenizer (padding) or ids past the rows cannot be scanned: counted, not silent.
    skipped = (max(n_ids, n_rows) - scannable) if stop == scannable else 0
    return opts.start, stop, skipped


class TokenJudge:
    """Computes FP verdicts for batches of token ids of one model."""

    WIDE_TOP = 64   # competitors kept for re-checked rows that the screen dropped

    def __init__(self, loaded: LoadedModel, opts: ScanOptions):
        self.loaded, self.opts = loaded, opts
        self.model = loaded.model
        self.head = LMHead(self.model, chunk=opts.head_chunk)
        self.layout = None if opts.bos else layer_layout(self.model)
        self.method = "length1-pruned" if self.layout else "forward-pruned"
        bos = loaded.tokenizer.bos_token_id
        if opts.bos and bos is None:
            raise FpprovError(f"--bos asked for but the tokenizer of {loaded.name} has no BOS token")
        self.bos_id = bos

    def hidden(self, ids: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        ids = ids.to(self.loaded.device)
        if self.layout:
            return hidden_len1(self.model, ids, self.layout, dtype)          # (B, D)
        seqs = ids[:, None]                                                  # (B, 1)
        if self.opts.bos:
            seqs = torch.cat([torch.full_like(seqs, self.bos_id), seqs], 1)  # (B, 2)
        return hidden_forward(self.model, seqs, dtype)                       # (B, D)

    @torch.no_grad()
    def judge(self, ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """Screen ``ids`` (N,) in batches in the scan dtype, then re-check FPs and near ties in float64.

        The re-checks of all N ids run together, layer by layer, so each layer is cast to float64 once per
        call rather than once per batch.
        """
        dev_ids = ids.to(self.loaded.device)
        h32 = torch.cat([self.hidden(batch) for batch in dev_ids.split(self.opts.batch_size)])  # (N, D)
        rows = self.head.screen(h32, dev_ids)
        gap = rows.own_logit - rows.best_other                               # > 0 for FPs
        near = gap.abs() < self.opts.tolerance * rows.own_logit.abs().clamp(min=1.0)
        recheck = near | rows.is_fp if self.opts.verify == "all" else near
        out = {"ids": ids, "screen_is_fp": rows.is_fp.clone(), "own": rows.own_logit, "best": rows.best_other,
               "best_id": rows.best_other_id, "lse": rows.lse, "gap": gap, "recheck": recheck,
               "is_fp": rows.is_fp.clone(), "f64_margin": torch.full_like(gap, float("nan")),
               "f64_best_id": torch.full_like(rows.best_other_id, -1)}
        idx = torch.nonzero(recheck).squeeze(-1)
        for part in idx.split(self.opts.recheck_batch) if idx.numel() else ():
            self._recheck_float64(part, ids, h32, rows, out)
        flipped_to_fp = out["is_fp"] & ~rows.is_fp
        if flipped_to_fp.any():  # a near tie that float64 calls an FP: its screen row lacks lse/runner-up
            part = torch.nonzero(flipped_to_fp).squeeze(-1)
            _, own, best, best_id, lse = self.head.full_rows(h32[part], dev_ids[part], h32.dtype)
            out["own"][part], out["best"][part] = own.double(), best.double()
            out["best_id"][part], out["lse"][part] = best_id, lse.double()
            out["gap"][part] = (own - best).double()
        return out

    def _recheck_float64(self, part: torch.Tensor, ids: torch.Tensor, h32: torch.Tensor, rows: Any,
                         out: dict[str, torch.Tensor]) -> None:
        """float64 verdicts for rows ``part``: the body always in float64; the head over a proven candidate set.

        Every competitor whose float64 logit could reach the runner-up's is within 2 * error_bound of the
        float32 runner-up. A screen FP's kept list decides when it holds all of those; otherwise (and for
        screen non-FPs, which have no list) a 64-wide float32 list from the whole row; only when that fails
        too (e.g. a crowd of exact ties) is the whole row computed in float64.
        """
        dev = self.loaded.device
        sub = ids[part].to(dev)
        h64 = self.hidden(ids[part], torch.float64)                          # (P, D)
        h32 = h32[part.to(dev)]                                              # (P, D)
        bound = self.head.error_bound(h32, h64).cpu()                        # (P,)
        verdict = (torch.zeros(len(part), dtype=torch.bool), torch.zeros(len(part), dtype=torch.float64),
                   torch.full((len(part),), -1, dtype=torch.int64))          # is_fp, margin, runner-up id
        screen_fps = torch.nonzero(rows.is_fp[part]).squeeze(-1)
        left = self._decide_from_list(screen_fps, rows.top_vals[part][screen_fps], rows.top_ids[part][screen_fps],
                                      bound, h64, sub, verdict)
        left = torch.cat([torch.nonzero(~rows.is_fp[part]).squeeze(-1), left])
        if left.numel():
            wide_vals, wide_ids = self.head.top_competitors(h32[left.to(dev)], sub[left.to(dev)], self.WIDE_TOP)
            left = self._decide_from_list(left, wide_vals.double(), wide_ids, bound, h64, sub, verdict)
        if left.numel():
            f, own, best, arg, _ = self.head.full_rows(h64[left.to(dev)], sub[left.to(dev)], torch.float64)
            verdict[0][left], verdict[1][left], verdict[2][left] = f, (own - best).double(), arg
        out["is_fp"][part], out["f64_margin"][part], out["f64_best_id"][part] = verdict

    def _decide_from_list(self, sel: torch.Tensor, vals: torch.Tensor, cand_ids: torch.Tensor, bound: torch.Tensor,
                          h64: torch.Tensor, sub: torch.Tensor, verdict: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """float64 verdicts of rows ``sel`` whose competitor list (``vals`` descending, (S, K)) holds every
        candidate; returns the rows it could not decide."""
        floor = vals[:, 0] - 2 * bound[sel]                                  # (S,)
        fits = vals[:, -1] < floor
        done = sel[fits]
        if done.numel():
            cands = cand_ids[fits].masked_fill(vals[fits] < floor[fits, None], -1)
            dev = self.loaded.device
            own, best, arg = self.head.candidate_rows(h64[done.to(dev)], sub[done.to(dev)], cands.to(dev))
            verdict[0][done], verdict[1][done], verdict[2][done] = own > best, own - best, arg
        return sel[~fits]

    @torch.no_grad()
    def repeats_to_self(self, ids: torch.Tensor, length: int) -> torch.Tensor:
        """Does [t] * length (after BOS if asked) give argmax t at the last position? (B,) bool."""
        seqs = ids[:, None].repeat(1, length).to(self.loaded.device)         # (B, L)
        if self.opts.bos:
            seqs = torch.cat([torch.full_like(seqs[:, :1], self.bos_id), seqs], 1)
        h = hidden_forward(self.model, seqs)                                 # (B, D)
        is_fp, *_ = self.head.full_rows(h, ids.to(self.loaded.device), h.dtype)
        return is_fp


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


def _fp_rows(scan_id: int, model: str, verdicts: dict[str, torch.Tensor], describer: TokenDescriber,
             length_ok: dict[int, bool]) -> list[dict[str, Any]]:
    rows = []
    for i in torch.nonzero(verdicts["is_fp"]).squeeze(-1).tolist():
        token_id = int(verdicts["ids"][i])
        info = describer.describe(token_id)
        own, lse = float(verdicts["own"][i]), float(verdicts["lse"][i])
        f64 = float(verdicts["f64_margin"][i])
        rows.append({
            "scan_id": scan_id, "model": model, "token_id": token_id, "raw_token": info.raw_token,
            "text": info.text, "norm_text": info.norm_text, "category": info.category,
            "prob": math.exp(own - lse), "logit": own, "runner_up_id": int(verdicts["best_id"][i]),
            "runner_up_logit": float(verdicts["best"][i]), "margin": float(verdicts["gap"][i]),
            "verified_float64": bool(verdicts["recheck"][i]) and f64 > 0,
            "margin_float64": None if math.isnan(f64) else f64,
            "length_check": length_ok.get(token_id),
        })
    return rows


def _recheck_rows(scan_id: int, verdicts: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
    rows = []
    for i in torch.nonzero(verdicts["recheck"]).squeeze(-1).tolist():
        rows.append({
            "scan_id": scan_id, "token_id": int(verdicts["ids"][i]),
            "screen_is_fp": bool(verdicts["screen_is_fp"][i]), "screen_margin": float(verdicts["gap"][i]),
            "float64_is_fp": bool(verdicts["is_fp"][i]), "float64_margin": float(verdicts["f64_margin"][i]),
            "float64_runner_up_id": int(verdicts["f64_best_id"][i]),
        })
    return rows


def scan_vocabulary(loaded: LoadedModel, store: Store, opts: ScanOptions, dtype_name: str = "float32",
                    progress: BatchCallback | None = None, on_start: Callable[[int, int], None] | None = None) -> ScanResult:
    """Scan ids [start, start+limit) of ``loaded`` for token FPs, committing per chunk; resumable."""
    if opts.verify not in ("all", "near"):
        raise FpprovError(f"unknown --verify {opts.verify!r}: use all or near")
    id_start, id_stop, skipped = scan_range(loaded, opts)
    judge = TokenJudge(loaded, opts)
    upsert_model(store, loaded)
    existing = find_scan(store, loaded.name, dtype_name, opts, id_start, id_stop)
    if existing and existing["complete"] and not opts.force:
        return _result(store, existing["scan_id"], already_complete=True)
    if existing and opts.force:
        delete_scan(store, existing["scan_id"])
        existing = None
    if existing is None:
        scan_id = store.con.execute(
            "INSERT INTO scans (model, dtype, device, bos, id_start, id_stop, batch_size, commit_every, tolerance,"
            " check_length, verify, method, torch_version, transformers_version, tokenizers_version, fpprov_version,"
            " tokens_skipped, seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0) RETURNING scan_id",
            [loaded.name, dtype_name, str(loaded.device), opts.bos, id_start, id_stop, opts.batch_size,
             opts.commit_every, opts.tolerance, opts.check_length, opts.verify, judge.method,
             *library_versions().values(), skipped],
        ).fetchone()[0]
    else:
        scan_id = existing["scan_id"]
        kept = {"batch_size": existing["batch_size"], "commit_every": existing["commit_every"],
                "tolerance": existing["tolerance"]}
        if kept != {k: getattr(opts, k) for k in kept}:
            # A resumed scan keeps its own chunks, batches and tolerance: its rows equal an uninterrupted run's.
            opts = replace(opts, **kept)
            judge = TokenJudge(loaded, opts)
    committed = store.query("SELECT chunk_start, chunk_stop FROM scan_chunks WHERE scan_id = ? ORDER BY 1", [scan_id])
    todo = pending_chunks(committed, id_start, id_stop, opts.commit_every)
    resumed_from = sum(stop - start for start, stop in committed)
    if on_start:
        on_start(id_stop - id_start, resumed_from)
    describer = TokenDescriber(loaded.tokenizer)
    for chunk_start, chunk_stop in todo:
        t0 = time.perf_counter()
        verdicts = judge.judge(torch.arange(chunk_start, chunk_stop))
        length_ok: dict[int, bool] = {}
        if opts.check_length:
            fp_ids = verdicts["ids"][verdicts["is_fp"]]
            for b in fp_ids.split(opts.batch_size) if fp_ids.numel() else ():
                length_ok.update(zip(b.tolist(), judge.repeats_to_self(b, opts.check_length).tolist()))
        fp_rows = _fp_rows(scan_id, loaded.name, verdicts, describer, length_ok)
        rechecks = _recheck_rows(scan_id, verdicts)
        n_flipped = sum(r["screen_is_fp"] != r["float64_is_fp"] for r in rechecks)
        seconds = time.perf_counter() - t0
        with store.transaction():
            store.insert_rows("token_fps", fp_rows)
            store.insert_rows("scan_rechecks", rechecks)
            store.insert_rows("scan_chunks", [{"scan_id": scan_id, "chunk_start": chunk_start, "chunk_stop": chunk_stop,
                                               "tokens_scanned": chunk_stop - chunk_start, "tokens_skipped": 0,
                                               "fp_count": len(fp_rows)}])
            store.con.execute(
                "UPDATE scans SET tokens_scanned = tokens_scanned + ?, fp_count = fp_count + ?, rechecked = rechecked + ?,"
                " flipped = flipped + ?, seconds = seconds + ? WHERE scan_id = ?",
                [chunk_stop - chunk_start, len(fp_rows), len(rechecks), n_flipped, seconds, scan_id])
        if progress:
            progress(chunk_stop - chunk_start, len(fp_rows))
    store.con.execute("UPDATE scans SET complete = true, finished_at = current_timestamp WHERE scan_id = ?", [scan_id])
    return _result(store, scan_id, resumed_from=resumed_from)


def _result(store: Store, scan_id: int, resumed_from: int = 0, already_complete: bool = False) -> ScanResult:
    row = store.query_dicts("SELECT * FROM scans WHERE scan_id = ?", [scan_id])[0]
    return ScanResult(
        scan_id=scan_id, model=row["model"], tokens_scanned=row["tokens_scanned"],
        tokens_skipped=row["tokens_skipped"], fp_count=row["fp_count"], rechecked=row["rechecked"],
        flipped=row["flipped"], seconds=row["seconds"] or 0.0, complete=row["complete"],
        resumed_from=resumed_from, already_complete=already_complete, top=top_fps(store, scan_id),
    )

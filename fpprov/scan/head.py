"""The LM head for fixed-point verdicts, in vocabulary chunks, without a vocab x vocab matrix.

A token t is an FP when its own logit beats every other logit (ties are not FPs). The screen computes the
own logit first, then the head over a chunk of likely winners (the ids that most often won so far) and
drops a row as soon as any competitor reaches its own logit; rows still alive go through the whole
vocabulary in natural order, which also gives their log-sum-exp, runner-up and margin. Dropping only
removes rows that can no longer be FPs, so the verdicts equal the dense argmax test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import torch

from ..errors import FpprovError
from ..models.head_extras import HeadExtras

NEG_INF = float("-inf")


def vocab_chunks(n_rows: int, chunk: int) -> Iterator[slice]:
    """Consecutive column slices of at most ``chunk`` ids covering [0, n_rows) once each, in order."""
    for start in range(0, n_rows, chunk):
        yield slice(start, min(start + chunk, n_rows))


def merge_topk(vals: torch.Tensor, ids: torch.Tensor, new_vals: torch.Tensor,
               new_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The best ``vals.shape[1]`` of two candidate lists per row, descending: (B, K) values and their ids.

    Merging each chunk's own top-k into the running list gives the top-k of the whole row, since an id
    among a row's best K is among its chunk's best K too.
    """
    k = vals.shape[1]
    vals, order = torch.cat([vals, new_vals], 1).topk(k, -1)                              # (B, K)
    return vals, torch.cat([ids, new_ids], 1).gather(1, order)                            # (B, K)


def _running_max(best: torch.Tensor, best_id: torch.Tensor, vals: torch.Tensor,
                 ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-wise max of ``best`` (B,) and ``vals`` (B,); strict, so a tie keeps the id seen first."""
    better = vals > best
    return torch.where(better, vals, best), torch.where(better, ids, best_id)


@dataclass
class _Chunk:
    """The head over one column slice for a set of rows: competitor logits, own logits, log-sum-exp."""

    start: int
    competitors: torch.Tensor      # (A, C) logits with each row's own id at -inf
    rows: torch.Tensor             # (r,) the rows whose own id lies in this slice
    own: torch.Tensor              # (r,) their own logits, from the same GEMM as the competitors
    lse: torch.Tensor | None       # (A,) log-sum-exp over the slice, own id included; when asked for

    def top(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The slice's best ``k`` competitor logits and their vocabulary ids: (A, min(k, C)) each."""
        vals, cols = self.competitors.topk(min(k, self.competitors.shape[1]), -1)
        return vals, cols + self.start


@dataclass
class _ScreenState:
    """Per-row running values of one screen call (all (N,) or (N, K), on the model's device)."""

    own: torch.Tensor
    best: torch.Tensor
    best_id: torch.Tensor
    lse: torch.Tensor
    top_vals: torch.Tensor
    top_ids: torch.Tensor
    reach: torch.Tensor            # (N,) a row drops once a competitor passes this: own + the re-check margin


@dataclass
class HeadRows:
    """Per-row results of the screen (all tensors (B,), on CPU)."""

    is_fp: torch.Tensor           # bool
    own_logit: torch.Tensor       # float64 copy of the scan-dtype value
    best_other: torch.Tensor      # best competitor logit seen (the whole row's runner-up for swept rows)
    best_other_id: torch.Tensor   # int64
    lse: torch.Tensor             # log-sum-exp of the whole row for swept rows (float64, exact near p = 1), else NaN
    top_vals: torch.Tensor        # (B, K) best competitor logits of swept rows, descending (-inf for dropped rows)
    top_ids: torch.Tensor         # (B, K)
    swept: torch.Tensor           # bool: the whole row was computed (FPs and near misses): best_other is its
                                  # runner-up and lse, top_vals its own; dropped rows have neither


def accumulation_gamma(d: int, dtype: torch.dtype) -> float:
    """gamma_D = D u / (1 - D u): the relative rounding bound of a length-``d`` dot product accumulated in
    float64 (``dtype`` float64) or in float32 (float32, bfloat16 and float16 factors), for any summation order."""
    u = 2.0 ** -53 if dtype == torch.float64 else 2.0 ** -24
    if d * u >= 0.5:
        raise FpprovError(f"no rounding bound for a hidden size of {d}: float32 accumulation cannot bound it")
    return d * u / (1 - d * u)


class LMHead:
    """The output layer of one model: weight (V_rows, D) and its extras (bias, scaling, soft-capping).

    Products run in the dtype of the hidden states they get: the weight is cast chunk by chunk when it is
    stored in another (a float32 rung of a bfloat16 scan, a float64 re-check).
    """

    def __init__(self, model: Any, chunk: int = 8192, keep_top: int = 8, row_block: int = 1024):
        self.weight = model.get_output_embeddings().weight          # (V, D)
        self.extras = HeadExtras.of(model)
        self.n_rows = self.weight.shape[0]
        self.chunk = chunk
        self.row_block = row_block
        self.keep_top = min(keep_top, self.n_rows - 1)
        self.wins = torch.zeros(self.n_rows, dtype=torch.int64)   # how often each id beat a row

    def _here(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``tensors`` on the head's device: with a device map the head may sit on another GPU than the
        hidden states (the last layers') or the ids (the embeddings')."""
        return tuple(t.to(self.weight.device) for t in tensors)

    def _logits(self, h: torch.Tensor, rows: slice | torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        h = h if dtype is None else h.to(dtype)
        w = self.weight[rows].to(h.dtype)                          # (C, D)
        return self.extras.apply(h @ w.T, rows)                    # (B, C)

    def _chunk(self, h: torch.Tensor, ids: torch.Tensor, cols: slice, dtype: torch.dtype | None = None,
               lse: bool = False) -> _Chunk:
        """The head rows ``cols`` for hidden states ``h`` (A, D) of tokens ``ids`` (A,)."""
        logits = self._logits(h, cols, dtype)                                                    # (A, C)
        own_col = ids - cols.start                                                               # (A,)
        rows = torch.nonzero((own_col >= 0) & (own_col < cols.stop - cols.start)).squeeze(-1)    # (r,)
        own = logits[rows, own_col[rows]]                                                        # (r,)
        chunk_lse = torch.logsumexp(logits, -1) if lse else None                                 # (A,)
        logits[rows, own_col[rows]] = NEG_INF
        return _Chunk(cols.start, logits, rows, own, chunk_lse)

    def own_logits(self, h: torch.Tensor, ids: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        h = h if dtype is None else h.to(dtype)
        w = self.weight[ids].to(h.dtype)                           # (B, D)
        return self.extras.apply((h * w).sum(-1), ids)             # (B,)

    @torch.no_grad()
    def screen(self, h: torch.Tensor, ids: torch.Tensor, threshold: float | None = None,
               tolerance: float = 0.0) -> HeadRows:
        """Exact FP verdicts for hidden states ``h`` (N, D) of single tokens ``ids`` (N,).

        A row is dropped once a competitor passes its own logit by more than max(``threshold``, ``tolerance``
        * max(1, |own|)): the margin within which the judge re-checks a verdict. Every row it may re-check is
        therefore swept to the end (``HeadRows.swept``), with the whole row's runner-up, log-sum-exp and top
        competitors, and whether a row is dropped does not depend on the order the head is read in (below).

        Pass as many rows as are at hand (a commit chunk): rows are pooled into GEMMs of up to
        ``row_block`` rows, since rows beaten early leave few survivors per batch and small GEMMs run
        below the rate of large ones (docs/development.md has the measurement).
        """
        h, ids = self._here(h, ids)
        n = h.shape[0]
        k = self.keep_top
        own = self.own_logits(h, ids)                                                           # (N,)
        st = _ScreenState(
            own=own.clone(),
            best=torch.full((n,), NEG_INF, dtype=h.dtype, device=h.device),
            best_id=torch.full((n,), -1, dtype=torch.int64, device=h.device),
            lse=torch.full((n,), float("nan"), dtype=torch.float64, device=h.device),
            top_vals=torch.full((n, k), NEG_INF, dtype=h.dtype, device=h.device),
            top_ids=torch.full((n, k), -1, dtype=torch.int64, device=h.device),
            reach=own + (tolerance * own.abs().clamp(min=1.0)).clamp(min=threshold or 0.0),   # (N,)
        )
        alive = torch.arange(n, device=h.device)
        # 1. likely winners (ids that won rows before): drop most rows after a small slice of the head. Only a
        # competitor past a row's reach by more than the two GEMMs' rounding can differ (slack) drops it here,
        # so a row dropped here would have been dropped by the sweep too.
        if self.wins.any() and self.n_rows > 2 * self.chunk:
            hot = torch.topk(self.wins, min(self.chunk, int(self.wins.count_nonzero()))).indices.to(h.device)  # (C,)
            beaten_parts = []
            for rows in alive.split(self.row_block):
                logits = self._logits(h[rows], hot)                                              # (R, C)
                logits[hot[None, :] == ids[rows, None]] = NEG_INF
                cmax, carg = logits.max(-1)                                                      # (R,)
                beaten = cmax - self._gemm_slack(h[rows], cmax) > st.reach[rows]
                st.best[rows[beaten]], st.best_id[rows[beaten]] = cmax[beaten], hot[carg[beaten]]
                beaten_parts.append(beaten)
            alive = alive[~torch.cat(beaten_parts)]
        # 2. the whole vocabulary in order for rows still alive; rows drop as soon as they are beaten.
        survivors = [self._sweep(h, ids, rows, st) for rows in alive.split(self.row_block)]
        alive = torch.cat(survivors) if survivors else alive

        swept = torch.zeros(n, dtype=torch.bool, device=h.device)
        swept[alive] = True
        is_fp = swept & (st.own > st.best)       # the own logit beats the whole row's best competitor (ties: no)
        st.top_vals[~swept] = NEG_INF
        winners = torch.where(is_fp, ids, st.best_id).cpu()
        self.wins.index_add_(0, winners[winners >= 0], torch.ones_like(winners[winners >= 0]))
        return HeadRows(is_fp.cpu(), st.own.double().cpu(), st.best.double().cpu(), st.best_id.cpu(),
                        st.lse.cpu(), st.top_vals.double().cpu(), st.top_ids.cpu(), swept.cpu())

    def _gemm_slack(self, h: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """(R,) a bound on how much the same logits (R,) of rows ``h`` (R, D) can differ between two GEMMs: twice
        the float32 accumulation's rounding (LMHead.error_bound) plus the rounding of both results and their
        extras in the screen's dtype."""
        self._norms()
        gamma = accumulation_gamma(h.shape[-1], h.dtype)
        u_s = float(torch.finfo(h.dtype).eps) / 2
        return 2 * self._abs_scale() * self._w_norm_max * gamma * h.float().norm(dim=-1) + 8 * u_s * logits.abs()

    def _abs_scale(self) -> float:
        return abs(self.extras.scale) if self.extras.scale is not None else 1.0

    def _sweep(self, h: torch.Tensor, ids: torch.Tensor, alive: torch.Tensor, st: "_ScreenState") -> torch.Tensor:
        """Run rows ``alive`` through the whole head in natural order; returns the rows never dropped (every
        competitor within their reach): the FPs and the near misses the judge may re-check.

        Updates ``st`` in place: for rows kept, the log-sum-exp, runner-up and top competitors of the whole row;
        for dropped rows the running best when they dropped.

        The log-sum-exp is kept as ``rest``, the mass of the other ids relative to ``ref``, the larger of the
        own logit and the best competitor so far (rescaled when it rises: a near miss's competitors may pass
        its own logit, by up to its re-check margin, however wide), so that an FP with probability 1 - 1e-9 is
        stored as such: a float32 log-sum-exp would round it to exactly 1 (most of gemma3-270m's top FPs tied
        at 1.0 that way).
        """
        k = self.keep_top
        h_alive, ids_alive = h[alive], ids[alive]                                                # (A, D), (A,)
        own, reach = st.own[alive], st.reach[alive]                                             # (A,)
        ref = own.clone()        # (A,) never below a competitor seen: exp(l - ref) <= 1 cannot overflow
        rest = torch.zeros_like(own)
        run_best = torch.full_like(own, NEG_INF)
        run_id = torch.full_like(ids_alive, -1)
        top_vals, top_ids = st.top_vals[alive], st.top_ids[alive]                               # (A, k)
        for cols in vocab_chunks(self.n_rows, self.chunk):
            if alive.numel() == 0:
                break
            c = self._chunk(h_alive, ids_alive, cols)
            # From here on the own logit is the GEMM's, like the other logits: prob = 1 / (1 + rest) <= 1.
            own[c.rows] = c.own
            cvals, cids = c.top(k)                                                               # (A, k)
            risen = torch.maximum(ref, cvals[:, 0])                                              # (A,)
            rest = rest * torch.exp(ref - risen) + torch.sub(c.competitors, risen[:, None]).exp_().sum(-1)
            ref = risen
            top_vals, top_ids = merge_topk(top_vals, top_ids, cvals, cids)                       # (A, k)
            run_best, run_id = _running_max(run_best, run_id, cvals[:, 0], cids[:, 0])           # (A,)
            beaten = run_best > reach
            if beaten.any():
                gone = alive[beaten]
                st.own[gone], st.best[gone], st.best_id[gone] = own[beaten], run_best[beaten], run_id[beaten]
                keep = ~beaten
                alive, h_alive, ids_alive, own, reach, ref, rest = (
                    alive[keep], h_alive[keep], ids_alive[keep], own[keep], reach[keep], ref[keep], rest[keep])
                run_best, run_id, top_vals, top_ids = run_best[keep], run_id[keep], top_vals[keep], top_ids[keep]
        st.own[alive], st.best[alive], st.best_id[alive] = own, run_best, run_id
        own64, ref64, rest64 = own.double(), ref.double(), rest.double()                       # (A,)
        # own + log1p(others / own) keeps an FP's tiny rest exact; a row whose competitors passed its own
        # logit (ref > own) takes ref + log(rest + exp(own - ref)), which cannot overflow however far they passed.
        st.lse[alive] = torch.where(ref64 > own64, ref64 + torch.log(rest64 + torch.exp(own64 - ref64)),
                                    own64 + torch.log1p(rest64 * torch.exp(ref64 - own64)))
        st.top_vals[alive], st.top_ids[alive] = top_vals, top_ids
        return alive

    def _norms(self) -> None:
        if not hasattr(self, "_w_norm_max"):
            # Row norms in float32, in row blocks (no float64 copy of the head), raised by their rounding: a
            # float32 sum of D squares errs by at most gamma_D relative, its square root by about half that.
            slack = 1 + 2 * self.weight.shape[1] * 2.0 ** -24 + 1e-6
            self._w_norm_max = slack * max(float(block.float().norm(dim=1).max())
                                           for block in self.weight.detach().split(self.chunk))
            bias = self.extras.bias
            self._bias_max = 0.0 if bias is None else float(bias.detach().double().abs().max())

    def error_bound(self, h_screen: torch.Tensor, h64: torch.Tensor) -> torch.Tensor:
        """Per row, a bound on |logit64_j - logit_j| over every j, for logits the screen computed in the dtype
        of ``h_screen``: (B,) float64, finite and >= 0, or FpprovError when no bound can be given.

        logit_j = fl(h_screen . w_j) and logit64_j = fl64(h64 . w_j), each with the head's extras. By the
        triangle inequality their difference is at most the sum of:
          - ||h64 - h_screen|| ||w_j|| (Cauchy-Schwarz);
          - the screen's dot-product rounding: products of float32, bfloat16 or float16 factors accumulated in
            float32 err by at most gamma_D ||h|| ||w_j||, gamma_D = D u / (1 - D u), u = 2^-24, for any
            summation order (the same bound with u = 2^-53 for float64's own dot product);
          - the rounding of the result and of the bias, scaling and cap applied in the screen's dtype (relative
            u_s = eps / 2 each, and float64's u the same way): 4 (u_s + 2^-53) |logit| covers them, with |logit|
            at most |scale| (||w|| ||h|| + max |bias|) or the cap.
        Scaling multiplies the dot products' terms by |scale|; soft-capping is 1-Lipschitz.

        The float32-accumulation premise holds for the float32 GEMMs a float64 re-check relies on; for a
        low-precision screen it is this machine's kernel's behaviour, so there the bound only floors a measured
        threshold and never proves a verdict (TokenJudge sends such verdicts through a float32 rung).
        """
        self._norms()
        d = h_screen.shape[-1]
        gamma, gamma64 = accumulation_gamma(d, h_screen.dtype), accumulation_gamma(d, torch.float64)
        scale = self._abs_scale()
        hs = h_screen.double()
        h_norm = hs.norm(dim=-1)                                                           # (B,)
        # 1 + 1e-6: the float64 norms' own rounding, far below it
        apart = (1 + 1e-6) * (h64 - hs).norm(dim=-1)                                      # (B,)
        dots = scale * self._w_norm_max * (apart + gamma * h_norm + gamma64 * (1 + 1e-6) * h64.norm(dim=-1))
        largest = scale * (self._w_norm_max * torch.maximum(h_norm, h64.norm(dim=-1)) + self._bias_max)  # (B,)
        if self.extras.softcap is not None:
            largest = largest.clamp(max=self.extras.softcap)
        u_s = float(torch.finfo(h_screen.dtype).eps) / 2
        bound = dots + 4 * (u_s + 2.0 ** -53) * largest                                   # (B,)
        if not bool(torch.isfinite(bound).all()):
            raise FpprovError("the screen's rounding bound is not finite (overflowing hidden states?): "
                              "scan in float32 or float64")
        return bound

    @torch.no_grad()
    def candidate_rows(self, h64: torch.Tensor, ids: torch.Tensor, cand_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """float64 own logit and best competitor among ``cand_ids`` (B, K): (own, best, best_id).

        The own logit is computed in the same contraction as the candidates', so that an exact tie (e.g. a
        duplicated head row) compares equal instead of differing in the last bit.
        """
        h64, ids, cand_ids = self._here(h64, ids, cand_ids)
        cols = torch.cat([ids[:, None], cand_ids], 1)                                     # (B, 1 + K)
        w = self.weight[cols.clamp(min=0)].to(torch.float64)                               # (B, 1 + K, D)
        logits = self.extras.apply(torch.einsum("bd,bkd->bk", h64, w), cols.clamp(min=0))   # (B, 1 + K)
        own = logits[:, 0]
        others = logits[:, 1:].masked_fill((cand_ids < 0) | (cand_ids == ids[:, None]), NEG_INF)
        best, arg = others.max(-1)
        return own.cpu(), best.cpu(), cand_ids.gather(1, arg[:, None]).squeeze(1).cpu()

    @torch.no_grad()
    def top_competitors(self, h: torch.Tensor, ids: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``k`` best competitor logits of whole rows in the scan dtype and their ids, (B, k) each, descending.

        For the few rows a float64 re-check meets without a kept list (screen non-FPs): a float32 pass over
        the head costs less than casting the whole head to float64 for them.
        """
        top_vals, top_ids, _ = self.top_competitors_and_own(h, ids, k)
        return top_vals, top_ids

    @torch.no_grad()
    def top_competitors_and_own(self, h: torch.Tensor, ids: torch.Tensor,
                                k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``top_competitors`` plus each row's own logit from the same GEMMs, (B,): one pass over the head."""
        h, ids = self._here(h, ids)
        n = h.shape[0]
        top_vals = torch.full((n, k), NEG_INF, dtype=h.dtype, device=h.device)                 # (B, k)
        top_ids = torch.full((n, k), -1, dtype=torch.int64, device=h.device)                   # (B, k)
        own = torch.full((n,), NEG_INF, dtype=h.dtype, device=h.device)                        # (B,)
        for cols in vocab_chunks(self.n_rows, self.chunk):
            c = self._chunk(h, ids, cols)
            own[c.rows] = c.own
            top_vals, top_ids = merge_topk(top_vals, top_ids, *c.top(k))
        return top_vals.cpu(), top_ids.cpu(), own.cpu()

    @torch.no_grad()
    def full_rows(self, h: torch.Tensor, ids: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        """Dense verdict in ``dtype`` (e.g. float64): (is_fp, own, runner-up logit, runner-up id, lse)."""
        h, ids = self._here(h.to(dtype), ids)
        n = h.shape[0]
        own = torch.empty(n, dtype=dtype, device=h.device)         # taken from the same GEMM as the others
        best = torch.full((n,), NEG_INF, dtype=dtype, device=h.device)
        best_id = torch.full((n,), -1, dtype=torch.int64, device=h.device)
        lse = torch.full((n,), NEG_INF, dtype=dtype, device=h.device)
        for cols in vocab_chunks(self.n_rows, self.chunk):
            c = self._chunk(h, ids, cols, dtype, lse=True)
            lse = torch.logaddexp(lse, c.lse)                                                    # (B,)
            own[c.rows] = c.own
            cmax, carg = c.competitors.max(-1)                                                   # (B,)
            best, best_id = _running_max(best, best_id, cmax, carg + c.start)
        return (own > best).cpu(), own.cpu(), best.cpu(), best_id.cpu(), lse.cpu()

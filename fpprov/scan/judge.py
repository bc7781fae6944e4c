"""The token-FP verdict of a batch of ids: a precision ladder from the scan dtype to float64.

A float32 (or float64) scan screens every id in its dtype and re-checks FPs and near ties in float64 over
a proven candidate set. Which verdicts are re-checked is the verify mode's: 'all' (every FP and near tie),
'near' (near ties), or 'calibrated' (a ``Calibration`` measured on a random sample: every verdict whose
screen margin is not far beyond the screen's measured error, near ties included).

A bfloat16 or float16 scan screens in that dtype first, and sends every verdict that its own calibration
does not trust (and, with 'all', every FP) up to the float32 rung: the body re-run with each layer cast to
float32, the head in float32; from there the float32 rules above apply. float64 re-checks never use a
low-precision product, so their candidate sets stay proven. ``TokenJudge.judge`` returns a ``Verdicts``
that says which rung decided each id; the scan stores it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from ..errors import FpprovError
from ..models import LoadedModel
from .head import HeadRows, LMHead
from .hidden import hidden_forward, hidden_len1, layer_layout
from .options import ScanOptions

LOW_PRECISION = (torch.bfloat16, torch.float16)
# Verdicts.decided_by: the rung whose computation the verdict is
SCREEN, FLOAT32, FLOAT64 = 0, 1, 2


@dataclass
class Verdicts:
    """The verdicts of N ids; row i of every field belongs to ``ids[i]``."""

    ids: torch.Tensor            # (N,) int64
    screen_is_fp: torch.Tensor   # (N,) bool: the scan dtype's verdict
    own: torch.Tensor            # (N,) float64: the id's own logit
    best: torch.Tensor           # (N,) float64: the runner-up's logit
    best_id: torch.Tensor        # (N,) int64: the runner-up
    lse: torch.Tensor            # (N,) logsumexp of the row
    gap: torch.Tensor            # (N,) float64: own - best, > 0 for FPs
    recheck: torch.Tensor        # (N,) bool: re-checked in float64
    is_fp: torch.Tensor          # (N,) bool: the final verdict (float64 where re-checked)
    f64_margin: torch.Tensor     # (N,) float64: float64 own - runner-up; NaN where not re-checked
    f64_best_id: torch.Tensor    # (N,) int64: float64 runner-up; -1 where not re-checked
    decided_by: torch.Tensor     # (N,) int8: SCREEN (the scan dtype), FLOAT32 (a low-precision scan's rung), FLOAT64

    def fp_positions(self) -> list[int]:
        return torch.nonzero(self.is_fp).squeeze(-1).tolist()

    def recheck_positions(self) -> list[int]:
        return torch.nonzero(self.recheck).squeeze(-1).tolist()


@dataclass
class Float64Verdicts:
    """float64 verdicts of the rows ``rows`` of a re-checked group, each field (P,)."""

    rows: torch.Tensor           # (P,) int64: positions in the group
    is_fp: torch.Tensor          # (P,) bool
    margin: torch.Tensor         # (P,) float64: own - runner-up logit
    best_id: torch.Tensor        # (P,) int64: the runner-up

    @staticmethod
    def undecided(n: int) -> "Float64Verdicts":
        return Float64Verdicts(torch.arange(n), torch.zeros(n, dtype=torch.bool), torch.zeros(n, dtype=torch.float64),
                               torch.full((n,), -1, dtype=torch.int64))

    @staticmethod
    def gather(parts: list["Float64Verdicts"], n: int) -> "Float64Verdicts":
        """The verdicts of a group of n rows from parts that cover each row once, in row order."""
        out = Float64Verdicts.undecided(n)
        for part in parts:
            out.is_fp[part.rows], out.margin[part.rows], out.best_id[part.rows] = part.is_fp, part.margin, part.best_id
        return out


@dataclass(frozen=True)
class Calibration:
    """The screen's error of logit differences, measured against float64 on a sample, and the margin beyond
    which a verdict is trusted.

    ``threshold`` = max(factor * measured, bound): the safety factor covers the measured error's tail beyond
    the sample; the proven bound (Cauchy-Schwarz over the sampled rows, loose by construction) needs none.
    Rows stored before the two were kept apart have only ``error`` (their max) and trust factor * error.
    """

    error: float                 # max(measured, bound): scans.calibration_error
    factor: float                # scans.safety_factor
    measured: float | None = None   # max |(own - other)_screen - (own - other)_float64| over the sample
    bound: float | None = None      # max over the sampled rows of the proven bound on a margin's error

    @property
    def threshold(self) -> float:
        if self.measured is None or self.bound is None:
            return self.factor * self.error
        return max(self.factor * self.measured, self.bound)


def calibration_size(n_ids: int, most: int) -> int:
    """How many of a scan's ``n_ids`` ids calibrate it: one in 32, at least 64, at most ``most`` (the option):
    its float64 body and whole float32 head rows would otherwise outweigh a small slice's scan."""
    return min(most, n_ids, max(64, n_ids // 32))


def calibration_sample(id_start: int, id_stop: int, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` distinct ids of [id_start, id_stop) drawn at random with a fixed seed, ascending (all when fewer)."""
    gen = torch.Generator().manual_seed(seed)
    picked = torch.randperm(id_stop - id_start, generator=gen)[:n]                    # (n,)
    return picked.sort().values + id_start


class TokenJudge:
    """Computes FP verdicts for batches of token ids of one model."""

    WIDE_TOP = 64   # competitors kept for re-checked rows that the screen dropped
    CALIBRATION_TOP = 8   # competitors per sampled row whose logit differences calibrate the screen

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
        self.screen_dtype = self.head.weight.dtype
        self.low_precision = self.screen_dtype in LOW_PRECISION
        # one per rung that screens: the scan dtype's (None) and, for a low-precision scan, float32's
        self.calibrations: dict[torch.dtype | None, Calibration] = {}
        self._check_head()

    def with_options(self, opts: ScanOptions) -> "TokenJudge":
        """This judge with a resumed scan's stored batch, chunk and tolerance: the head, its checked extras and
        the layout are the model's, so nothing is loaded or checked again (calibrations are not kept)."""
        if (opts.bos, opts.head_chunk) != (self.opts.bos, self.opts.head_chunk):
            return TokenJudge(self.loaded, opts)
        judge = copy.copy(self)
        judge.opts, judge.calibrations = opts, {}
        return judge

    @property
    def calibration(self) -> Calibration | None:
        """The scan dtype's calibration: the one a scan stores."""
        return self.calibrations.get(None)

    @calibration.setter
    def calibration(self, value: Calibration) -> None:
        self.calibrations[None] = value

    def _check_head(self) -> None:
        """Refuse a model whose logits the head's extras do not reproduce (HeadExtras.check)."""
        n_ids, n_rows = self.loaded.scannable_ids()
        self.head.extras.check(self.model, min(n_ids, n_rows) // 2)   # mid-vocabulary: rarely a special token

    def hidden(self, ids: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        ids = ids.to(self.loaded.device)
        if self.layout:
            return hidden_len1(self.model, ids, self.layout, dtype)          # (B, D)
        seqs = ids[:, None]                                                  # (B, 1)
        if self.opts.bos:
            seqs = torch.cat([torch.full_like(seqs, self.bos_id), seqs], 1)  # (B, 2)
        return hidden_forward(self.model, seqs, dtype)                       # (B, D)

    @torch.no_grad()
    def judge(self, ids: torch.Tensor) -> Verdicts:
        """The verdicts of ``ids`` (N,): screened in the scan dtype, then up the ladder as the module says."""
        if not self.low_precision:
            return self._judge_from(ids, None)
        # No threshold for the screen: a verdict within it climbs to the float32 rung, which sweeps its row
        # again, so sweeping it here would be wasted (with gemma3-270m's bfloat16 threshold, every row).
        h, rows = self._screen(ids, None, None)
        out = self._verdicts(ids, rows)
        escalate = self._escalate(rows, out.gap, self.calibrated(None).threshold, self.opts.verify == "all")
        idx = torch.nonzero(escalate).squeeze(-1)
        if idx.numel():
            sub = self._judge_from(ids[idx], torch.float32)
            for name in ("screen_is_fp", "own", "best", "best_id", "lse", "gap", "recheck", "is_fp", "f64_margin",
                         "f64_best_id", "decided_by"):
                getattr(out, name)[idx] = getattr(sub, name)
        return out

    def _screen(self, ids: torch.Tensor, dtype: torch.dtype | None,
                threshold: float | None) -> tuple[torch.Tensor, HeadRows]:
        """The hidden states (N, D) and screened head rows of ``ids`` in ``dtype``; every row within
        ``threshold`` (or a near tie) of its best competitor is swept whole, for the re-check."""
        dev_ids = ids.to(self.loaded.device)
        h = torch.cat([self.hidden(batch, dtype) for batch in dev_ids.split(self.opts.batch_size)])  # (N, D)
        return h, self.head.screen(h, dev_ids, threshold, self.opts.tolerance)

    def _escalate(self, rows: HeadRows, gap: torch.Tensor, threshold: float | None, every_fp: bool) -> torch.Tensor:
        """(N,) bool: the verdicts a rung does not decide itself: near ties, margins within ``threshold``
        (<=: a tie is never trusted, even where the measured error is zero), every FP when asked."""
        near = gap.abs() < self.opts.tolerance * rows.own_logit.abs().clamp(min=1.0)
        out = near if threshold is None else near | (gap.abs() <= threshold)
        return out | rows.is_fp if every_fp else out

    def _verdicts(self, ids: torch.Tensor, rows: HeadRows) -> Verdicts:
        gap = rows.own_logit - rows.best_other                               # (N,) > 0 for FPs
        return Verdicts(ids=ids, screen_is_fp=rows.is_fp.clone(), own=rows.own_logit, best=rows.best_other,
                        best_id=rows.best_other_id, lse=rows.lse, gap=gap, recheck=torch.zeros_like(rows.is_fp),
                        is_fp=rows.is_fp.clone(), f64_margin=torch.full_like(gap, float("nan")),
                        f64_best_id=torch.full_like(rows.best_other_id, -1),
                        decided_by=torch.full(gap.shape, SCREEN, dtype=torch.int8))

    def _judge_from(self, ids: torch.Tensor, dtype: torch.dtype | None) -> Verdicts:
        """Screen ``ids`` (N,) in ``dtype`` (None: the scan dtype, float32 or wider), then re-check FPs and
        near ties in float64 as the verify mode says.

        The re-checks of all N ids run together, layer by layer, so each layer is cast to float64 once per
        call rather than once per batch.
        """
        threshold = self.calibrated(dtype).threshold if self.opts.verify == "calibrated" else None
        h, rows = self._screen(ids, dtype, threshold)
        out = self._verdicts(ids, rows)
        if dtype is not None:
            out.decided_by.fill_(FLOAT32)
        out.recheck = self._escalate(rows, out.gap, threshold, self.opts.verify == "all")
        idx = torch.nonzero(out.recheck).squeeze(-1)
        for part in idx.split(self.opts.recheck_batch) if idx.numel() else ():
            f64 = self._recheck_float64(part, ids, h, rows)
            out.is_fp[part], out.f64_margin[part], out.f64_best_id[part] = f64.is_fp, f64.margin, f64.best_id
        out.decided_by[out.recheck] = FLOAT64
        # A verdict float64 turned into an FP has its whole row from the screen (a near miss is swept); one
        # that was not swept would lack its log-sum-exp and runner-up, so it gets them here.
        flipped_to_fp = out.is_fp & ~rows.swept
        if flipped_to_fp.any():
            part = torch.nonzero(flipped_to_fp).squeeze(-1)
            dev_part = ids[part].to(self.loaded.device)
            _, own, best, best_id, lse = self.head.full_rows(h[part.to(h.device)], dev_part, h.dtype)
            out.own[part], out.best[part] = own.double(), best.double()
            out.best_id[part], out.lse[part] = best_id, lse.double()
            out.gap[part] = (own - best).double()
        return out

    def calibrated(self, dtype: torch.dtype | None = None) -> Calibration:
        """The calibration of the rung that screens in ``dtype`` (None: the scan dtype); measured on a sample
        of the whole vocabulary when none was given."""
        if dtype not in self.calibrations:
            n_ids, n_rows = self.loaded.scannable_ids()
            self.calibrate(calibration_sample(0, min(n_ids, n_rows), self.opts.calibration_sample), dtype)
        return self.calibrations[dtype]

    @torch.no_grad()
    def calibrate(self, ids: torch.Tensor, dtype: torch.dtype | None = None) -> Calibration:
        """Measure the error of the rung that screens in ``dtype`` (None: the scan dtype) on ids ``ids`` (S,)
        against float64, and keep it as that rung's calibration.

        The measured error is the largest difference, over the sampled rows and their CALIBRATION_TOP best
        competitors, between the screen-dtype and the float64 logit difference own - competitor, the own
        logit taken both ways the screen computes it (a dot product, and the head's GEMM). The bound is the
        largest bound on a margin's error over the sample (twice LMHead.error_bound): the threshold never
        falls below it, so a sample that happens to round well cannot trust margins that rows like these
        could get wrong.
        """
        dev = self.loaded.device
        sub = ids.to(dev)
        h_s = torch.cat([self.hidden(batch, dtype) for batch in sub.split(self.opts.batch_size)])   # (S, D)
        h64 = torch.cat([self.hidden(part, torch.float64) for part in ids.split(self.opts.recheck_batch)])
        vals, cands, own_gemm = self.head.top_competitors_and_own(h_s, sub, self.CALIBRATION_TOP)  # (S, K), (S,)
        # The sample's winners seed the screen's likely winners: the first chunk then drops most non-FPs early.
        winners = torch.where(own_gemm > vals[:, 0], sub, cands[:, 0]).cpu()                    # (S,)
        winners = winners[winners >= 0]
        self.head.wins.index_add_(0, winners, torch.ones_like(winners))
        own_dot = self.head.own_logits(h_s, sub).cpu()                                       # (S,)
        diff64 = torch.stack([torch.sub(*self.head.candidate_rows(h64, sub, cands[:, j:j + 1].to(dev))[:2])
                              for j in range(cands.shape[1])], 1)                            # (S, K)
        vals = vals.double()
        finite = torch.isfinite(vals) & torch.isfinite(diff64)                               # (S, K)
        measured = 0.0
        for own in (own_gemm.double(), own_dot.double()):
            err = ((own[:, None] - vals) - diff64).abs()                                     # (S, K)
            measured = max(measured, float(err[finite].max()) if finite.any() else 0.0)
        proven = 2 * float(self.head.error_bound(h_s, h64).max())
        self.calibrations[dtype] = Calibration(max(measured, proven), self.opts.safety_factor, measured, proven)
        return self.calibrations[dtype]

    def _recheck_float64(self, part: torch.Tensor, ids: torch.Tensor, h_screen: torch.Tensor,
                         rows: HeadRows) -> Float64Verdicts:
        """float64 verdicts for rows ``part``: the body always in float64; the head over a proven candidate set.

        Every competitor whose float64 logit could reach the runner-up's is within 2 * error_bound of the
        float32 runner-up. A swept row's kept list (an FP's, or a near miss's) decides when it holds all of
        those; otherwise (and for a row the screen dropped, which has no list) a 64-wide float32 list from the
        whole row; only when that fails too (e.g. a crowd of exact ties) is the whole row computed in float64.
        """
        dev = self.loaded.device
        sub = ids[part].to(dev)
        h64 = self.hidden(ids[part], torch.float64)                          # (P, D)
        if h_screen.dtype in LOW_PRECISION:  # the candidate proof below assumes float32 products or wider
            raise RuntimeError("float64 re-checks take float32 screens or wider: a low-precision scan goes through "
                               "its float32 rung first")
        h32 = h_screen[part.to(dev)]                                         # (P, D)
        bound = self.head.error_bound(h32, h64).cpu()                        # (P,)
        listed = torch.nonzero(rows.swept[part]).squeeze(-1)
        decided, left = self._decide_from_list(listed, rows.top_vals[part][listed], rows.top_ids[part][listed],
                                               bound, h64, sub)
        parts = [decided]
        left = torch.cat([torch.nonzero(~rows.swept[part]).squeeze(-1), left])
        if left.numel():
            wide_vals, wide_ids = self.head.top_competitors(h32[left.to(dev)], sub[left.to(dev)], self.WIDE_TOP)
            decided, left = self._decide_from_list(left, wide_vals.double(), wide_ids, bound, h64, sub)
            parts.append(decided)
        if left.numel():
            f, own, best, arg, _ = self.head.full_rows(h64[left.to(dev)], sub[left.to(dev)], torch.float64)
            parts.append(Float64Verdicts(left, f, (own - best).double(), arg))
        return Float64Verdicts.gather(parts, len(part))

    def _decide_from_list(self, sel: torch.Tensor, vals: torch.Tensor, cand_ids: torch.Tensor, bound: torch.Tensor,
                          h64: torch.Tensor, sub: torch.Tensor) -> tuple[Float64Verdicts, torch.Tensor]:
        """float64 verdicts of the rows of ``sel`` whose competitor list (``vals`` descending, (S, K)) holds
        every candidate, and the rows it could not decide."""
        floor = vals[:, 0] - 2 * bound[sel]                                  # (S,)
        fits = vals[:, -1] < floor                                           # (S,)
        done = sel[fits]
        if not done.numel():
            return Float64Verdicts.undecided(0), sel[~fits]
        cands = cand_ids[fits].masked_fill(vals[fits] < floor[fits, None], -1)  # (S', K)
        dev = self.loaded.device
        own, best, arg = self.head.candidate_rows(h64[done.to(dev)], sub[done.to(dev)], cands.to(dev))
        return Float64Verdicts(done, own > best, own - best, arg), sel[~fits]

    @torch.no_grad()
    def repeats_to_self(self, ids: torch.Tensor, length: int) -> torch.Tensor:
        """Does [t] * length (after BOS if asked) give argmax t at the last position? (B,) bool."""
        seqs = ids[:, None].repeat(1, length).to(self.loaded.device)         # (B, L)
        if self.opts.bos:
            seqs = torch.cat([torch.full_like(seqs[:, :1], self.bos_id), seqs], 1)
        h = hidden_forward(self.model, seqs)                                 # (B, D)
        is_fp, *_ = self.head.full_rows(h, ids.to(self.loaded.device), h.dtype)
        return is_fp

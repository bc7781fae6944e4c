"""Gradient descent on ||x - detach(T(x))|| for a batch of seeds: batched AdamW, per-seed plateau schedules,
and the two protocols (the seed's, and fpprov's default).

Why the seed's protocol finds nothing where iteration converges (gemma3-270m's effective space, docs/vectors.md):
with the detached loss ||r||, r = x - T(x), the gradient is r / ||r||, a unit vector whatever the residual,
and Adam divides each coordinate by its own RMS, so every coordinate moves about ``lr`` per step. The full
step x -> T(x) moves x by ||r||; AdamW at lr 1e-2 moves it by about 1e-2 * sqrt(D) (0.25 on Gemma), and to
reach 1e-6 the learning rate itself must fall to about 1e-6 / sqrt(D). So the learning rate has to start at
the space's coordinate scale (Gemma's effective space is 25.3x its raw one) and decay by many decades, which
a plateau schedule does only when it cuts after real stalls, not after 10 noisy steps.

The default protocol therefore (1) sets lr relative to the coordinate scale of E (``coordinate_scale``),
(2) uses the squared loss 0.5 ||r||^2, whose gradient r shrinks with the residual, so Adam's steps shrink with
it (m / sqrt(v) ~ r_now / RMS(r over ~1/(1-beta2) steps)) and no schedule is needed to reach the 1e-6
regime, and (3) keeps the plateau schedule as a safeguard with patience long enough for Adam's oscillations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Sequence

import torch

from ..errors import FpprovError
from .map import EmbeddingMap
from .search import Finished, SeedOutcome, StepCallback, Bookkeeper

LOSSES = ("norm", "squared")
PROTOCOLS = ("default", "seed")


@dataclass(frozen=True)
class DescentSettings:
    """Every setting of one gradient-descent run, absolute (already scaled to the space); stored per run."""

    protocol: str = "custom"
    lr: float = 1e-2
    weight_decay: float = 0.01
    patience: int = 10             # ReduceLROnPlateau: steps without a relative 1e-4 improvement before a cut
    factor: float = 0.1            # ... and the cut
    lr_floor: float = 1e-9         # stop once the schedule takes lr below this
    max_steps: int = 10_000
    loss: str = "norm"             # norm: ||r|| (the seed's); squared: 0.5 ||r||^2
    lr_per_residual: float = 0.0   # > 0: a seed starts at lr max(lr, this * ||r0|| / sqrt(D)), a far start's scale

    def text(self) -> str:
        """Canonical 'key=value ...' (part of a run's settings key)."""
        return (f"protocol={self.protocol} loss={self.loss} lr={self.lr:.6g} lr_floor={self.lr_floor:.6g} "
                f"weight_decay={self.weight_decay:g} patience={self.patience} factor={self.factor:g} "
                f"max_steps={self.max_steps} lr_per_residual={self.lr_per_residual:g}")


# The seed's script: AdamW lr 1e-2, weight decay 0, ReduceLROnPlateau patience 1000, stop at lr < 3e-9 or
# 100k steps, loss ||x - detach(T(x))||. Absolute: the same numbers in every space.
SEED_PROTOCOL = DescentSettings(protocol="seed", lr=1e-2, weight_decay=0.0, patience=1000, factor=0.1,
                                lr_floor=3e-9, max_steps=100_000, loss="norm")
# fpprov's default, relative to the space's coordinate scale c (lr = DEFAULT_LR_SCALE * c, floor likewise).
DEFAULT_LR_SCALE = 0.1
DEFAULT_FLOOR_SCALE = 1e-9
DEFAULT_PROTOCOL = DescentSettings(protocol="default", lr=DEFAULT_LR_SCALE, weight_decay=0.0, patience=100,
                                   factor=0.5, lr_floor=DEFAULT_FLOOR_SCALE, max_steps=3_000, loss="squared",
                                   lr_per_residual=DEFAULT_LR_SCALE)


def protocol_settings(protocol: str, scale: float, **overrides: Any) -> DescentSettings:
    """The protocol's settings in a space of coordinate scale ``scale``; ``overrides`` (None skipped) are
    absolute and replace the protocol's values (the protocol name then says ``+custom``)."""
    if protocol == "seed":
        base = SEED_PROTOCOL
    elif protocol == "default":
        base = replace(DEFAULT_PROTOCOL, lr=DEFAULT_PROTOCOL.lr * scale, lr_floor=DEFAULT_PROTOCOL.lr_floor * scale)
    else:
        raise FpprovError(f"unknown gradient protocol {protocol!r}: use default or seed")
    given = {k: v for k, v in overrides.items() if v is not None}
    changed = {k: v for k, v in given.items() if getattr(base, k) != v}
    if changed:
        base = replace(base, protocol=f"{protocol}+custom", **changed)
    return base


def settings_for(fmap: EmbeddingMap, protocol: str = "default", **overrides: Any) -> DescentSettings:
    """``protocol_settings`` in the space of ``fmap`` (its embedding's coordinate scale)."""
    return protocol_settings(protocol, fmap.coordinate_scale, **overrides)


class BatchedAdamW:
    """torch's AdamW (decoupled weight decay, bias correction) for S independent rows, each with its own lr.

    One seed per row: the update of a row reads only that row's gradient, moments and lr, exactly as if
    every seed had its own ``torch.optim.AdamW`` (a test checks it against torch), without S Python-level
    optimizer steps per iteration.
    """

    def __init__(self, rows: int, dim: int, lr: float, weight_decay: float = 0.01,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, device: Any = None):
        self.lr = torch.full((rows,), lr, dtype=torch.float64)              # (S,) on the CPU: read every step
        self.weight_decay, self.betas, self.eps = weight_decay, betas, eps
        self.exp_avg = torch.zeros(rows, dim, device=device)                # (S, D)
        self.exp_avg_sq = torch.zeros(rows, dim, device=device)             # (S, D)
        self.steps = torch.zeros(rows, dtype=torch.int64)                   # (S,)

    def step(self, x: torch.Tensor, grad: torch.Tensor, rows: list[int]) -> torch.Tensor:
        """The updated x (A, D) for ``rows`` (A of them) given their current x and gradient (A, D)."""
        beta1, beta2 = self.betas
        idx = torch.tensor(rows)
        self.steps[idx] += 1
        lr = self.lr[idx].to(device=x.device, dtype=x.dtype)[:, None]      # (A, 1)
        step = self.steps[idx].to(device=x.device, dtype=torch.float64)     # (A,)
        x = x * (1 - lr * self.weight_decay)                                # (A, D)
        m = self.exp_avg[idx].lerp_(grad, 1 - beta1)                        # (A, D)
        v = self.exp_avg_sq[idx].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)  # (A, D)
        self.exp_avg[idx], self.exp_avg_sq[idx] = m, v
        step_size = (lr / (1 - beta1 ** step).to(x.dtype)[:, None])         # (A, 1)
        denom = (v.sqrt() / (1 - beta2 ** step).sqrt().to(x.dtype)[:, None]).add_(self.eps)  # (A, D)
        return x - step_size * (m / denom)                                  # (A, D)


class BatchedPlateau:
    """torch's ReduceLROnPlateau (mode min, relative threshold, no cooldown) run separately per row."""

    def __init__(self, optimizer: BatchedAdamW, factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, min_lr: float = 0.0, eps: float = 1e-8):
        self.optimizer = optimizer
        self.factor, self.patience, self.threshold, self.min_lr, self.eps = factor, patience, threshold, min_lr, eps
        rows = optimizer.lr.shape[0]
        self.best = [math.inf] * rows
        self.num_bad = [0] * rows

    def step(self, row: int, metric: float) -> None:
        if metric < self.best[row] * (1.0 - self.threshold):
            self.best[row], self.num_bad[row] = metric, 0
        else:
            self.num_bad[row] += 1
        if self.num_bad[row] > self.patience:
            old = float(self.optimizer.lr[row])
            new = max(old * self.factor, self.min_lr)
            if old - new > self.eps:
                self.optimizer.lr[row] = new
            self.num_bad[row] = 0


def gradient_descent(fmap: EmbeddingMap, seeds: Sequence[int], x0: torch.Tensor,
                     settings: DescentSettings | None = None, *, tol: float | None = None, detach: bool = True,
                     on_finish: Finished | None = None, progress: StepCallback | None = None,
                     **overrides: Any) -> list[SeedOutcome]:
    """AdamW on the detached loss (T detached by default) with ReduceLROnPlateau, every seed with its own state.

    ``settings`` default to the default protocol in fmap's space; ``overrides`` (lr=, max_steps=, ...) replace
    single fields. The batch shares only the forward pass: gradients of the summed loss are per row because
    rows never mix in the model. The plateau schedule watches each seed's residual ||r||. ``tol`` defaults to
    the map's ``default_tolerance``.
    """
    tol = fmap.default_tolerance if tol is None else tol
    settings = settings or settings_for(fmap)
    if overrides:
        settings = replace(settings, **overrides)
    if settings.loss not in LOSSES:
        raise FpprovError(f"unknown loss {settings.loss!r}: use norm or squared")
    book = Bookkeeper("gradient", seeds, settings.max_steps, on_finish, progress)
    x = x0.clone()                                                         # (S, D)
    optimizer = BatchedAdamW(len(seeds), fmap.dim, settings.lr, settings.weight_decay, device=x.device)
    optimizer.exp_avg, optimizer.exp_avg_sq = optimizer.exp_avg.to(x.dtype), optimizer.exp_avg_sq.to(x.dtype)
    plateau = BatchedPlateau(optimizer, factor=settings.factor, patience=settings.patience)
    active = list(range(len(seeds)))
    step = 0
    while active:
        step += 1
        xa = x[active].clone().requires_grad_(True)                        # (A, D)
        if detach:
            with torch.no_grad():
                ta = fmap(xa)                                              # (A, D)
        else:
            ta = fmap(xa)                                                  # (A, D), differentiable in xa
        residuals = (xa - ta).norm(dim=-1)                                 # (A,) in the map's dtype
        values = residuals.detach().double()
        stopped, keep = [], []
        for row, index in enumerate(active):
            r = float(values[row])
            book.record(index, r)
            current_lr = float(optimizer.lr[index])
            reason = _gradient_stop(r, tol, step, settings.max_steps, current_lr, settings.lr_floor)
            if reason is None:
                keep.append(row)
            else:
                stopped.append(book.stop(index, reason[0], reason[1], xa[row], current_lr))
        book.report(step, len(active), values)
        book.finish(stopped)
        if step == 1 and settings.lr_per_residual > 0:
            # A start far from T's image (||r0|| over the coordinate scale) gets steps of its own size.
            start = settings.lr_per_residual * values / math.sqrt(fmap.dim)  # (A,)
            optimizer.lr[active] = torch.maximum(optimizer.lr[active], start.cpu())
        if keep:
            kept = residuals[keep]                                         # (K,)
            loss = kept.sum() if settings.loss == "norm" else 0.5 * kept.pow(2).sum()
            (grad,) = torch.autograd.grad(loss, xa)                        # (A, D); rows not kept get 0
            rows = [active[row] for row in keep]
            x[rows] = optimizer.step(xa.detach()[keep], grad[keep], rows)
            for row in keep:
                plateau.step(active[row], float(values[row]))
        active = [active[row] for row in keep]
    return book.ordered()


def _gradient_stop(r: float, tol: float, step: int, max_steps: int, lr: float,
                   lr_floor: float) -> tuple[str, str] | None:
    if not math.isfinite(r):
        return "non_finite", f"residual became {r} at step {step}"
    if r < tol:
        return "converged", f"residual {r:.3g} < {tol:g} at step {step}"
    if lr < lr_floor:
        return "lr_floor", f"learning rate {lr:.3g} fell below {lr_floor:g} with residual {r:.3g} at step {step}"
    if step >= max_steps:
        return "max_steps", f"residual {r:.3g} after {max_steps} steps"
    return None

"""Fixed-point iteration x <- T(x) for a batch of seeds, each stopping on its own.

The seed saw iteration converge within a few dozen steps or never ("if it doesn't converge within 200
steps, it won't converge even given more steps"), hence the default budget of ITERATE_MAX_STEPS.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from .map import EmbeddingMap
from .search import Finished, SeedOutcome, StepCallback, Bookkeeper

# A residual within this factor of ||x|| * eps that stops improving has hit rounding, not a dead end.
PRECISION_FLOOR_FACTOR = 16.0
ITERATE_MAX_STEPS = 200


def stall_reason(history: list[float], window: int) -> str | None:
    """A reason to give up when the best residual of the last window/2 steps is not half the earlier best.

    The seed saw iteration converge within a few dozen steps or never (not after 200); a run that has
    not even halved its residual over the last window/2 steps is cycling or wandering, not converging.
    """
    half = max(1, window // 2)
    if window <= 0 or len(history) < max(window, 2):  # a window of 1 still compares its last step with the rest
        return None
    earlier = min(history[:-half])
    recent = min(history[-half:])
    if recent > 0.5 * earlier:
        return (f"best residual {recent:.3g} over the last {half} steps vs {earlier:.3g} before "
                f"(not halved) after {len(history)} steps")
    return None


def iterate(fmap: EmbeddingMap, seeds: Sequence[int], x0: torch.Tensor, *, tol: float | None = None,
            max_steps: int = ITERATE_MAX_STEPS, stall_window: int = 200, on_finish: Finished | None = None,
            progress: StepCallback | None = None) -> list[SeedOutcome]:
    """Fixed-point iteration x <- T(x) for every seed at once, each stopping on its own; ``tol`` defaults to
    the map's ``default_tolerance``."""
    tol = fmap.default_tolerance if tol is None else tol
    book = Bookkeeper("iterate", seeds, max_steps, on_finish, progress)
    x = x0.clone()                                                         # (S, D)
    active = list(range(len(seeds)))
    step = 0
    with torch.no_grad():
        while active:
            step += 1
            xa = x[active]                                                 # (A, D)
            ta = fmap(xa)                                                  # (A, D)
            residuals = (ta.float() - xa.float()).norm(dim=-1)             # (A,)
            stopped, keep = [], []
            for row, index in enumerate(active):
                r = float(residuals[row])
                book.record(index, r)
                floor = float(xa[row].float().norm()) * torch.finfo(xa.dtype).eps
                reason = _iterate_stop(r, tol, step, max_steps, book.history[index], stall_window, floor)
                if reason is None:
                    keep.append(index)
                    x[index] = ta[row]
                else:
                    stopped.append(book.stop(index, reason[0], reason[1], xa[row]))
            book.report(step, len(active), residuals)
            book.finish(stopped)
            active = keep
    return book.ordered()


def _iterate_stop(r: float, tol: float, step: int, max_steps: int, history: list[float],
                  stall_window: int, floor: float) -> tuple[str, str] | None:
    """Why a seed stops now, or None. ``floor`` = ||x|| * eps of the dtype, the rounding scale of T(x) - x."""
    if not math.isfinite(r):
        return "non_finite", f"residual became {r} at step {step}"
    if r < tol:
        return "converged", f"residual {r:.3g} < {tol:g} at step {step}"
    stalled = stall_reason(history, stall_window)
    at_cap = step >= max_steps
    if (stalled or at_cap) and min(history) < PRECISION_FLOOR_FACTOR * floor:
        # Rounding, not the map, stops progress (e.g. Gemma's effective space, ||x|| ~ 25: floor ~ 3e-6).
        why = stalled or f"best residual {min(history):.3g} after {max_steps} steps"
        return "precision_floor", (f"{why}; that is the rounding scale ||x||*eps = {floor:.2g}, so tol {tol:g} "
                                   f"is out of reach: pass a larger --tol or --dtype float64")
    if at_cap:
        return "max_steps", f"residual {r:.3g} after {max_steps} steps"
    if stalled:
        return "not_converging", stalled
    return None


"""What both vector-FP searches share: per-seed outcomes, progress reports and the stop bookkeeping."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

METHODS = ("iterate", "gradient")  # fixed-point iteration, gradient descent


@dataclass
class SeedOutcome:
    """How one seed's search ended; ``vector`` is the final x on the CPU in float32."""

    method: str
    seed: int
    converged: bool
    stop_reason: str          # converged | max_steps | not_converging | precision_floor | lr_floor | non_finite
    stop_detail: str
    steps: int                # evaluations of T
    residual: float           # ||T(x) - x|| of the final x
    best_residual: float
    vector: torch.Tensor      # (D,)
    seconds: float
    lr_final: float | None = None
    trajectory: list[float] = field(default_factory=list)   # ||T(x) - x|| after each evaluation (not stored)


@dataclass
class StepReport:
    """What a progress display needs after each batched step."""

    method: str
    step: int
    active: int
    total: int
    best_residual: float      # smallest current residual among the still-running seeds
    worst_residual: float


StepCallback = Callable[[StepReport], None]
Finished = Callable[[list[SeedOutcome]], None]


class Bookkeeper:
    """Per-seed residual history, stop decisions and outcome records, shared by both searches."""

    def __init__(self, method: str, seeds: Sequence[int], max_steps: int, on_finish: Finished | None,
                 progress: StepCallback | None):
        self.method, self.seeds, self.max_steps = method, list(seeds), max_steps
        self.best = [math.inf] * len(seeds)
        self.history: list[list[float]] = [[] for _ in seeds]
        self.outcomes: dict[int, SeedOutcome] = {}
        self.on_finish, self.progress = on_finish, progress
        self.start = time.perf_counter()

    def record(self, index: int, residual: float) -> None:
        self.history[index].append(residual)
        if residual < self.best[index]:
            self.best[index] = residual

    def stop(self, index: int, reason: str, detail: str, vector: torch.Tensor,
             lr_final: float | None = None) -> SeedOutcome:
        residual = self.history[index][-1]
        outcome = SeedOutcome(
            method=self.method, seed=self.seeds[index], converged=reason == "converged", stop_reason=reason,
            stop_detail=detail, steps=len(self.history[index]), residual=residual,
            best_residual=self.best[index], vector=vector.detach().float().cpu().clone(),
            seconds=time.perf_counter() - self.start, lr_final=lr_final, trajectory=list(self.history[index]),
        )
        self.outcomes[index] = outcome
        return outcome

    def report(self, step: int, active: int, residuals: torch.Tensor) -> None:
        if self.progress is not None and residuals.numel():
            finite = residuals[torch.isfinite(residuals)]
            self.progress(StepReport(self.method, step, active, len(self.seeds),
                                     float(finite.min()) if finite.numel() else math.nan,
                                     float(finite.max()) if finite.numel() else math.nan))

    def finish(self, stopped: list[SeedOutcome]) -> None:
        if stopped and self.on_finish is not None:
            self.on_finish(stopped)

    def ordered(self) -> list[SeedOutcome]:
        return [self.outcomes[i] for i in range(len(self.seeds))]


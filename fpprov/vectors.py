"""Vector fixed points in embedding space: the map T and the two searches (iteration, gradient descent).

T(x) = softmax(logits(x at position 0)) @ E, with x fed as ``inputs_embeds`` of a length-1 sequence.
E is either the *effective* input embedding (what the embedding module outputs for each token, so any scale
it applies, e.g. Gemma's sqrt(hidden), is included and T maps a token's own input vector to mixtures of the
same kind) or the *raw* weight matrix (the seed's convention). A fixed point is x with ||T(x) - x||_2 < tol.

All seeds run in one batch: the model's batch rows are independent, and every seed keeps its own stopping
state (and, for gradient descent, its own optimizer and plateau schedule), so a batched run equals running
the seeds one by one up to floating-point reassociation in the batched matmuls.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from .errors import FpprovError
from .softcap import apply_softcap, softcap_of

EMBEDDINGS = ("effective", "raw")
# A residual within this factor of ||x|| * eps that stops improving has hit rounding, not a dead end.
PRECISION_FLOOR_FACTOR = 16.0
METHODS = ("iterate", "gradient")
def effective_embedding_matrix(module: torch.nn.Module, chunk: int = 16384) -> torch.Tensor:
    """The embedding module's output for every row id, (V, D); the weight itself when the module is plain.

    Probing a few ids decides: a module that returns its weight rows unchanged costs no copy; one that
    scales (Gemma) or otherwise transforms them is evaluated over all ids in chunks.
    """
    weight = module.weight                                                    # (V, D)
    n_rows = weight.shape[0]
    probe = torch.tensor([0, n_rows // 2, n_rows - 1], device=weight.device)  # (3,)
    with torch.no_grad():
        if torch.equal(module(probe), weight[probe]):
            return weight
        parts = [module(torch.arange(start, min(start + chunk, n_rows), device=weight.device))
                 for start in range(0, n_rows, chunk)]                       # each (c, D)
    return torch.cat(parts)                                                  # (V, D)


def row_blocks(n_rows: int) -> int:
    """How many blocks the vocabulary-sized products run in.

    One GEMM against all 262,144 rows ran about 2x slower than a batched GEMM over 16-32 row blocks here
    (MKL, 2 threads: 37 vs 20 ms for 1 seed, 84 vs 41-47 ms for 10), for the head and the mixture alike.
    """
    for blocks in (32, 16, 8):
        if n_rows >= 65536 and n_rows % blocks == 0:
            return blocks
    return 1


def times_rows_t(a: torch.Tensor, rows: torch.Tensor, blocks: int) -> torch.Tensor:
    """a (S, D) @ rows.T for rows (V, D), as ``blocks`` batched GEMMs: (S, V)."""
    if blocks == 1:
        return a @ rows.T
    s = a.shape[0]
    parts = a.expand(blocks, s, a.shape[1]) @ rows.view(blocks, -1, rows.shape[1]).transpose(1, 2)  # (b, S, V/b)
    return parts.transpose(0, 1).reshape(s, -1)                                                     # (S, V)


def weights_times_rows(y: torch.Tensor, rows: torch.Tensor, blocks: int) -> torch.Tensor:
    """y (S, V) @ rows (V, D), as ``blocks`` batched GEMMs summed: (S, D)."""
    if blocks == 1:
        return y @ rows
    s = y.shape[0]
    return (y.view(s, blocks, -1).transpose(0, 1) @ rows.view(blocks, -1, rows.shape[1])).sum(0)    # (S, D)


class EmbeddingMap:
    """T(x) for a batch of vectors x (S, D) of one loaded model, in one embedding convention."""

    def __init__(self, loaded: Any, embedding: str = "effective"):
        if embedding not in EMBEDDINGS:
            raise FpprovError(f"unknown embedding convention {embedding!r}: use effective or raw")
        self.loaded = loaded
        self.model = loaded.model
        self.embedding = embedding
        module = loaded.input_embeddings()
        self.matrix = module.weight if embedding == "raw" else effective_embedding_matrix(module)  # (V, D)
        head = loaded.model.get_output_embeddings()
        if head is not None and head.weight.shape[0] != self.matrix.shape[0]:
            raise FpprovError(f"the head has {head.weight.shape[0]} rows but the input embedding "
                              f"{self.matrix.shape[0]}: T = softmax(logits) @ E needs them equal")
        self.dim = int(self.matrix.shape[1])
        self.dtype = self.matrix.dtype
        self.device = self.matrix.device
        self._blocks = row_blocks(int(self.matrix.shape[0]))
        config = self.model.config
        plain = (type(head) is torch.nn.Linear and callable(getattr(self.model, "get_decoder", None))
                 and not any(hasattr(config, a) for a in ("logit_scale", "logits_scaling")))
        self._plain_head = head if plain else None
        self._decoder = self.model.get_decoder() if plain else None
        self._softcap = softcap_of(config)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits at position 0 for inputs x (S, D), as float32 (S, V)."""
        if self._plain_head is None:  # a head with extras transformers applies itself
            out = self.model(inputs_embeds=x[:, None, :], use_cache=False)
            return out.logits[:, -1, :].float()                            # (S, V)
        hidden = self._decoder(inputs_embeds=x[:, None, :], use_cache=False).last_hidden_state[:, -1, :]  # (S, D)
        logits = times_rows_t(hidden, self._plain_head.weight, self._blocks)                             # (S, V)
        if self._plain_head.bias is not None:
            logits = logits + self._plain_head.bias
        logits = apply_softcap(logits, self._softcap)
        return logits.float()

    def mixture(self, x: torch.Tensor) -> torch.Tensor:
        """y = softmax(logits(x)), (S, V) float32."""
        return torch.softmax(self.logits(x), dim=-1)                       # (S, V)

    def weights_to_vectors(self, y: torch.Tensor) -> torch.Tensor:
        """y (S, V) -> y @ E (S, D) in the map's dtype."""
        return weights_times_rows(y.to(self.dtype), self.matrix, self._blocks)  # (S, D)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.weights_to_vectors(self.mixture(x))                    # (S, D)

    def initial_vectors(self, seeds: Sequence[int], std: float) -> torch.Tensor:
        """x0 ~ N(0, std^2) per seed, drawn on the CPU in float32 so a seed gives the same x0 anywhere."""
        rows = []
        for seed in seeds:
            gen = torch.Generator().manual_seed(int(seed))
            rows.append(torch.randn(self.dim, generator=gen, dtype=torch.float32) * std)  # (D,)
        return torch.stack(rows).to(device=self.device, dtype=self.dtype)   # (S, D)


def default_init_std(model: Any) -> float:
    """The config's initializer_range (the seed's x0 scale), 0.02 when the config has none."""
    config = model.config
    value = getattr(config, "initializer_range", None)
    if value is None and hasattr(config, "get_text_config"):
        value = getattr(config.get_text_config(), "initializer_range", None)
    return float(value if value is not None else 0.02)


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


class _Bookkeeper:
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
            seconds=time.perf_counter() - self.start, lr_final=lr_final,
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


def _stalled(history: list[float], window: int) -> str | None:
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


def iterate(fmap: EmbeddingMap, seeds: Sequence[int], x0: torch.Tensor, *, tol: float = 1e-6,
            max_steps: int = 10_000, stall_window: int = 200, on_finish: Finished | None = None,
            progress: StepCallback | None = None) -> list[SeedOutcome]:
    """Fixed-point iteration x <- T(x) for every seed at once, each stopping on its own."""
    book = _Bookkeeper("iterate", seeds, max_steps, on_finish, progress)
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
    if step >= max_steps:
        return "max_steps", f"residual {r:.3g} after {max_steps} steps"
    stalled = _stalled(history, stall_window)
    if stalled and min(history) < PRECISION_FLOOR_FACTOR * floor:
        # Rounding, not the map, stops progress (e.g. Gemma's effective space, ||x|| ~ 25: floor ~ 3e-6).
        return "precision_floor", (f"{stalled}; that is the rounding scale ||x||*eps = {floor:.2g}, so tol {tol:g} "
                                   f"is out of reach: pass a larger --tol or --dtype float64")
    if stalled:
        return "not_converging", stalled
    return None


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


def gradient_descent(fmap: EmbeddingMap, seeds: Sequence[int], x0: torch.Tensor, *, tol: float = 1e-6,
                     max_steps: int = 10_000, lr: float = 1e-2, lr_floor: float = 1e-9,
                     weight_decay: float = 0.01, detach: bool = True, on_finish: Finished | None = None,
                     progress: StepCallback | None = None) -> list[SeedOutcome]:
    """AdamW on ||x - T(x)||_2 (T detached by default) with ReduceLROnPlateau, every seed with its own state.

    The seed's setup (torch AdamW at lr 1e-2 with default betas and weight decay, ReduceLROnPlateau with
    default patience and factor) per seed; the batch shares only the forward pass. Gradients of the summed
    loss are per row because rows never mix in the model.
    """
    book = _Bookkeeper("gradient", seeds, max_steps, on_finish, progress)
    x = x0.clone()                                                         # (S, D)
    optimizer = BatchedAdamW(len(seeds), fmap.dim, lr, weight_decay, device=x.device)
    optimizer.exp_avg, optimizer.exp_avg_sq = optimizer.exp_avg.to(x.dtype), optimizer.exp_avg_sq.to(x.dtype)
    plateau = BatchedPlateau(optimizer)
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
        residuals = (xa - ta).float().norm(dim=-1)                         # (A,)
        values = residuals.detach()
        stopped, keep = [], []
        for row, index in enumerate(active):
            r = float(values[row])
            book.record(index, r)
            current_lr = float(optimizer.lr[index])
            reason = _gradient_stop(r, tol, step, max_steps, current_lr, lr_floor)
            if reason is None:
                keep.append(row)
            else:
                stopped.append(book.stop(index, reason[0], reason[1], xa[row], current_lr))
        book.report(step, len(active), values)
        book.finish(stopped)
        if keep:
            (grad,) = torch.autograd.grad(residuals[keep].sum(), xa)       # (A, D); rows not kept get 0
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

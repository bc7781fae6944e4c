"""Bench: wall time of N seeds in one batch vs 1 seed, same number of steps, per method (target <= 2x).

    python bench/vectors.py                      # gemma3-270m, 10 seeds vs 1, 30 steps each
    python bench/vectors.py --model tiny         # a tiny random Qwen3 built on the fly (seconds)

Every seed runs exactly --steps steps (the tolerance is unreachable and the stall and lr-floor stops are
off), so the ratio measures batching alone, not how fast particular seeds happen to converge.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_models import load_bench_model  # noqa: E402
from fpprov.vectors.study import VectorOptions, run_method
from fpprov.vectors import METHODS, EmbeddingMap, default_init_std


def timed(fmap: EmbeddingMap, method: str, seeds: list[int], steps: int, init_std: float) -> float:
    options = VectorOptions(tol=1e-30, max_steps=steps, stall_window=0, lr_floor=0.0)
    start = time.perf_counter()
    outcomes = run_method(fmap, method, seeds, options, init_std)
    elapsed = time.perf_counter() - start
    assert all(o.steps == steps for o in outcomes), "a seed stopped early; the timing would not compare"
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gemma3-270m", help="alias, path, or 'tiny'")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--method", choices=[*METHODS, "both"], default="both")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (1 avoids OpenMP spin-waits when other jobs share the cores)")
    args = parser.parse_args()
    loaded, load_seconds = load_bench_model(args.model, args.device, args.threads)
    fmap = EmbeddingMap(loaded, "effective")
    init_std = default_init_std(loaded.model)
    print(f"{loaded.name}: loaded in {load_seconds:.1f} s; D={fmap.dim}, V={fmap.matrix.shape[0]}, "
          f"torch threads={torch.get_num_threads()}, {args.steps} steps per run")
    methods = METHODS if args.method == "both" else (args.method,)
    for method in methods:
        timed(fmap, method, [0], 2, init_std)  # warm-up: first-call allocations and kernels
        one = timed(fmap, method, [0], args.steps, init_std)
        many = timed(fmap, method, list(range(args.seeds)), args.steps, init_std)
        ratio = many / one
        verdict = "ok" if ratio <= 2.0 else "over target"
        print(f"{method:9s} 1 seed {one:7.2f} s ({1000 * one / args.steps:6.1f} ms/step) | "
              f"{args.seeds} seeds batched {many:7.2f} s ({1000 * many / args.steps:6.1f} ms/step) | "
              f"ratio {ratio:.2f}x (target <= 2x: {verdict})")


if __name__ == "__main__":
    main()

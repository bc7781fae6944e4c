"""The gradient-descent table of docs/vectors.md: what each search protocol finds, in each embedding space.

    python bench/vector_table.py --out bench-out/vector_table.json      # gemma3-270m, 10 seeds, ~1 h on 1 thread
    python bench/vector_table.py --model tiny --seeds 3 --steps 50     # a tiny random Qwen3 (seconds)
    python bench/vector_table.py --from-json bench-out/vector_table.json --csv docs/data/gemma3-270m-vector-trajectories.csv

One load of the model; for each embedding space (raw: the seed's convention, effective) it runs fixed-point
iteration (200 steps, the seed's observation) and gradient descent under both protocols (`default`: fpprov's;
`seed`: the seed's script, with its 100k-step cap replaced by --seed-steps because 100k steps of 10 seeds
take about 19 h here). Nothing is stored in a database: per seed it prints how the search ended and the
residual ||T(x) - x|| at steps 1, 10, 100, 200, 400, 1000, 2000 (the trajectory), and writes everything,
full trajectories included, to --out as JSON.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_models import load_bench_model  # noqa: E402
from fpprov.vectors.study import VectorOptions, descent_settings, run_method
from fpprov.vectors import EmbeddingMap, default_init_std

CHECKPOINTS = (1, 10, 100, 200, 400, 1000, 2000, 3000, 5000, 8000)
CSV_STEPS = (1, 2, 5, 10, 20, 50, 100, 150, 200, 300, 400, 500, 600, 800, 1000, 1200, 1500, 1800, 2000, 2500, 3000, 4000, 5000, 6000, 7000, 8000)


def write_csv(rows: list[dict], path: Path) -> None:
    """One line per (space, method, protocol, seed): how it ended and the residual at CSV_STEPS (blank after
    it stopped), the form docs/data/ keeps (the JSON's full trajectories are ~1 MB)."""
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["space", "method", "protocol", "seed", "stop_reason", "steps", "final_residual"]
                     + [f"r@{s}" for s in CSV_STEPS])
        for row in rows:
            for run in row["runs"]:
                t = run["trajectory"]
                out.writerow([row["embedding"], row["method"], row["protocol"], run["seed"], run["stop_reason"],
                              run["steps"], f"{run['residual']:.4g}"]
                             + [f"{t[s - 1]:.4g}" if len(t) >= s else "" for s in CSV_STEPS])


def run_config(fmap: EmbeddingMap, method: str, protocol: str, seeds: list[int], tol: float,
               max_steps: int | None, init_std: float) -> dict:
    options = VectorOptions(methods=(method,), seeds=tuple(seeds), embedding=fmap.embedding, tol=tol,
                            max_steps=max_steps, protocol=protocol)
    descent = descent_settings(fmap, options) if method == "gradient" else None
    start = time.perf_counter()
    outcomes = run_method(fmap, method, seeds, options, init_std, descent=descent)
    seconds = time.perf_counter() - start
    return {
        "embedding": fmap.embedding, "method": method, "protocol": protocol if method == "gradient" else "-",
        "settings": descent.text() if descent else f"max_steps={max_steps or 200}", "tol": tol,
        "seconds": seconds, "converged": sum(o.converged for o in outcomes), "seeds": len(seeds),
        "runs": [{"seed": o.seed, "converged": o.converged, "stop_reason": o.stop_reason, "steps": o.steps,
                  "residual": o.residual, "best_residual": o.best_residual, "lr_final": o.lr_final,
                  "trajectory": o.trajectory} for o in outcomes],
    }


def at(trajectory: list[float], step: int) -> str:
    return f"{trajectory[step - 1]:.2g}" if len(trajectory) >= step else "-"


def print_config(row: dict) -> None:
    print(f"\n{row['embedding']} / {row['method']} / {row['protocol']}: {row['converged']}/{row['seeds']} converged "
          f"in {row['seconds']:.0f} s  ({row['settings']}, tol {row['tol']:g})")
    print("  seed  stop             steps  final     " + "  ".join(f"@{c:<6d}" for c in CHECKPOINTS))
    for run in row["runs"]:
        print(f"  {run['seed']:4d}  {run['stop_reason']:15s} {run['steps']:6d}  {run['residual']:.3g}".ljust(42)
              + "  ".join(f"{at(run['trajectory'], c):7s}" for c in CHECKPOINTS))
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gemma3-270m", help="alias, path, or 'tiny'")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--seed-ids", default=None, help="run these seeds (comma-separated) instead of 0..seeds-1")
    parser.add_argument("--steps", type=int, default=None, help="default protocol's step cap (its own: 3,000)")
    parser.add_argument("--seed-steps", type=int, default=1000, help="seed protocol's step cap (the seed: 100k)")
    parser.add_argument("--tol", type=float, default=1e-5, help="1e-6 is below float32 rounding in Gemma's "
                        "effective space (docs/vectors.md)")
    parser.add_argument("--spaces", default="raw,effective")
    parser.add_argument("--runs", default="iterate,default,seed",
                        help="which of iterate, default (gradient) and seed (gradient) to run, comma-separated")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None, help="JSON file for every run and trajectory")
    parser.add_argument("--csv", type=Path, default=None, help="CSV of residuals at fixed steps (docs/data/)")
    parser.add_argument("--from-json", type=Path, nargs="+", default=None,
                        help="write --csv from earlier --out files (their rows in order), run nothing")
    args = parser.parse_args()
    if args.from_json:
        write_csv([row for f in args.from_json for row in json.loads(f.read_text())["rows"]], args.csv)
        return
    loaded, load_seconds = load_bench_model(args.model, args.device, args.threads)
    init_std = default_init_std(loaded.model)
    print(f"{loaded.name}: loaded in {load_seconds:.1f} s; seeds {args.seed_ids or args.seeds}, init_std {init_std:g}, "
          f"torch threads {torch.get_num_threads()}")
    seeds = [int(s) for s in args.seed_ids.split(",")] if args.seed_ids else list(range(args.seeds))
    rows = []
    for space in args.spaces.split(","):
        fmap = EmbeddingMap(loaded, space)
        runs = {"iterate": ("iterate", "default", None), "default": ("gradient", "default", args.steps),
                "seed": ("gradient", "seed", args.seed_steps)}
        for name in args.runs.split(","):
            method, protocol, steps = runs[name]
            rows.append(run_config(fmap, method, protocol, seeds, args.tol, steps, init_std))
            print_config(rows[-1])
            if args.out:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps({"model": loaded.name, "init_std": init_std, "rows": rows}))
    if args.csv:
        write_csv(rows, args.csv)
    print("\n| space | method | protocol | converged | seconds |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['embedding']} | {row['method']} | {row['protocol']} | {row['converged']}/{row['seeds']} | "
              f"{row['seconds']:.0f} |")


if __name__ == "__main__":
    main()

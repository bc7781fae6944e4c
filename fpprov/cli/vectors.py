"""`fpprov vectors` (one model, or several one after another): the arguments become one VectorOptions, passed
whole to the library (fpprov.vectors.study); here are only the progress bars and the summary."""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer
from rich.table import Table

from ..runtime.batch import DONE, SKIPPED, Outcome
from .common import DbOption, cell, console, db_path, esc, user_errors
from .many import AllOption, FamilyOption, ManifestOption, ModelsArgument, run_command
from .progress import StudyProgress, loading, show_warnings

if TYPE_CHECKING:
    from ..models import LoadedModel
    from ..db.store import Store
    from ..vectors.options import VectorOptions
    from ..vectors.study import StudySummary


def vectors(
    ctx: typer.Context,
    models: Optional[list[str]] = ModelsArgument,
    db: Optional[Path] = DbOption,
    method: str = typer.Option("both", metavar="METHOD", help="iterate | gradient | both."),
    seeds: int = typer.Option(10, help="Number of random starts x0 (seeds seed-start .. seed-start+N-1)."),
    seed_start: int = typer.Option(0, help="First seed."),
    embedding: str = typer.Option("effective", metavar="SPACE", help="effective: E = the embedding module's output (Gemma's "
                                  "sqrt(hidden) scale included); raw: the weight matrix (the seed's convention); "
                                  "both: raw, then effective, from one load."),
    tol: Optional[float] = typer.Option(None, metavar="X", help="Converged when ||T(x) - x||_2 < tol (default: 1e-6, the "
                                        "seed's value, in the raw space, scaled with the space's coordinates and "
                                        "kept above what the dtype can reach)."),
    max_steps: Optional[int] = typer.Option(None, help="Step budget per seed and method (default: iterate 200, the "
                                            "seed's observation; gradient: the protocol's)."),
    stall_window: int = typer.Option(200, help="iterate: give up when the residual has not halved over the "
                                     "last half of this many steps (0: never)."),
    protocol: str = typer.Option("default", metavar="PROTOCOL", help="gradient: default (fpprov's: lr scaled to the space, squared "
                                 "loss) | seed (the seed's script: lr 1e-2, patience 1000, lr floor 3e-9, 100k "
                                 "steps); docs/vectors.md."),
    patience: Optional[int] = typer.Option(None, help="gradient: ReduceLROnPlateau patience (default: the "
                                           "protocol's, 100 or the seed's 1000)."),
    lr: Optional[float] = typer.Option(None, help="gradient: initial AdamW learning rate (default: scaled to the "
                                       "space's coordinate size, docs/vectors.md)."),
    lr_floor: Optional[float] = typer.Option(None, help="gradient: stop once ReduceLROnPlateau takes lr below this."),
    weight_decay: Optional[float] = typer.Option(None, help="gradient: AdamW weight decay (default 0, as the seed)."),
    detach: bool = typer.Option(True, "--detach/--no-detach", help="gradient: loss ||x - detach(T(x))|| "
                                "(default) or backpropagate through T."),
    init_std: Optional[float] = typer.Option(None, help="Std of x0 (default: the config's initializer_range)."),
    dedup: float = typer.Option(1e-4, help="FPs closer than this (L2) are one FP."),
    rollout_steps: int = typer.Option(100, help="Decode l = 1..N to judge stability."),
    rollout_feed: str = typer.Option("output", metavar="FEED", help="output: feed back each output (autoregressive decoding); "
                                     "x: feed x at every position."),
    stable_threshold: float = typer.Option(1e-3, help="Stable when every rollout distance stays below this."),
    top_k: int = typer.Option(20, help="Tokens of each FP's mixture to store."),
    dtype: str = typer.Option("float32", metavar="DTYPE", help="float32 | float64 | bfloat16 | float16 (the last two warn)."),
    device: str = typer.Option("auto", metavar="DEVICE", help="auto | cpu | cuda[:N] | mps | xpu (what this torch build can use)."),
    device_map: Optional[str] = typer.Option(None, "--device-map", metavar="STRATEGY", help="Spread the model over every visible GPU "
                                             "with accelerate: auto | balanced | balanced_low_0 | sequential."),
    force: bool = typer.Option(False, "--force", help="Redo seeds already stored with the same settings."),
    all_models: bool = AllOption,
    family: Optional[str] = FamilyOption,
    manifest: Optional[Path] = ManifestOption,
) -> None:
    """Find vector fixed points x = softmax(logits(x)) @ E of MODEL in its embedding space.

    With several models (or --all, --family, --manifest) they are studied one at a time; a model whose seeds
    are all stored is skipped, a model that fails is reported at the end and the others go on (exit code 1 if
    any failed)."""
    run_command(vectors, ctx, vector_options, vectors_model, vectors_outcome)


def vector_options(method: str, seeds: int, seed_start: int, dedup: float, **same: Any) -> "VectorOptions":
    """The command's options as one VectorOptions, which checks itself: --method both is both methods, --seeds N
    from --seed-start the seeds' list, --dedup the dedup distance; every other option is a field of that name."""
    from ..runtime.distributed import Ranks
    from ..vectors import METHODS
    from ..vectors.options import VectorOptions

    options = VectorOptions(methods=METHODS if method == "both" else (method,),
                            seeds=tuple(range(seed_start, seed_start + seeds)), dedup_distance=dedup, **same)
    Ranks.from_env().require_single("vectors", "its seeds run batched on one device")
    return options


def vectors_outcome(studies: "list[tuple[VectorOptions, StudySummary]]") -> Outcome:
    ran = sum(len(options.seeds) * len(options.methods) - sum(map(len, summary.skipped.values()))
              for options, summary in studies)
    status = SKIPPED if ran == 0 else DONE
    return Outcome(studies[0][1].model, status, sum(len(summary.fps) for _, summary in studies),
                   reason="every seed already stored" if status == SKIPPED else f"{ran} seed runs")


def vectors_model(model: str, db: Optional[Path], options: "VectorOptions") -> "list[tuple[VectorOptions, StudySummary]]":
    """Study one model with checked options (in each embedding space asked for, from one load), with progress
    bars and summaries around the library's study."""
    # torch and transformers load here, not at CLI start: `fpprov sql` and `--help` stay instant.
    from ..db.store import check_writable, open_store
    from ..models import load_model, resolve_model
    from ..models.devices import check_device_map

    spec = resolve_model(model)
    path = check_writable(db_path(db))  # before the slow load: a locked or unwritable DB fails at once
    # The model loads before the store opens: a model that cannot be used leaves no empty database behind.
    with loading(spec) as caught:
        loaded = load_model(spec, dtype=options.dtype, device=options.device,
                            device_map=check_device_map(options.device_map))
    store = open_store(path)
    try:
        show_warnings(caught)
        return [(space, study_space(store, loaded, space)) for space in options.spaces()]
    finally:
        store.close()


def study_space(store: "Store", loaded: "LoadedModel", options: "VectorOptions") -> "StudySummary":
    """One embedding space's study with a progress bar per method, then its summary."""
    from ..vectors.study import run_study

    t0 = time.perf_counter()
    with StudyProgress(options.embedding) as bars:
        summary = run_study(store, loaded, options, progress=bars.step_done, on_method=bars.method_started)
    print_summary(summary, options, store.path, time.perf_counter() - t0)
    return summary


def print_summary(summary: "StudySummary", options: "VectorOptions", db: Path, wall: float) -> None:
    for name, runs in summary.runs.items():
        reasons: dict[str, int] = {}
        for run in runs:
            reasons[run["stop_reason"]] = reasons.get(run["stop_reason"], 0) + 1
        told = ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items()))
        console.print(f"{name}: {sum(r['converged'] for r in runs)}/{len(runs)} seeds converged ({told})",
                      markup=False)
        floor = next((r for r in runs if r["stop_reason"] == "precision_floor"), None)
        if floor is not None:
            console.print(f"  [yellow]precision_floor[/] (seed {floor['seed']}): {esc(floor['stop_detail'])}")
    stable = sum(fp["stable"] for fp in summary.fps)
    console.print(f"[bold]{esc(summary.model)}[/]: {len(summary.fps)} vector FPs ({stable} stable) in the "
                  f"{options.embedding} embedding space; {wall:,.1f} s this run")
    if summary.fps:
        table = Table(title="vector FPs")
        for col in ("id", "methods", "seeds", "residual", "rollout max", "stable", "entropy", "top tokens"):
            table.add_column(col)
        for fp in summary.fps:
            tokens = summary.tokens.get(fp["vector_id"], [])[:3]
            top = ", ".join(f"{t['text']!r} {t['weight']:.3f}{' (FP)' if t['is_token_fp'] else ''}" for t in tokens)
            table.add_row(*(cell(v) for v in (
                fp["vector_id"], "+".join(fp["methods"]), ",".join(map(str, fp["seeds"])), f"{fp['residual']:.2e}",
                f"{fp['rollout_dist_max']:.2e}", "yes" if fp["stable"] else "NO", f"{fp['entropy']:.3f}", top)))
        console.print(table)
    model = summary.model.replace("'", "''")
    console.print(f"results: {db}; e.g. fpprov sql --db {shlex.quote(str(db))} \"FROM vector_fps SELECT vector_id, "
                  f"methods, stable, top_token_text, top_weight WHERE model = '{model}'\"", markup=False)


def register(app: typer.Typer) -> None:
    app.command("vectors")(user_errors(vectors))

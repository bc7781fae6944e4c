"""`fpprov vectors` (one model, or several one after another): argument parsing, progress bars and the
summary; the work is in fpprov.vectors.study."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..runtime.batch import DONE, SKIPPED, ModelJob, Outcome
from ..errors import LowPrecisionWarning
from ..db.store import check_writable, open_store
from .common import DbOption, cell, console, db_path, err_console, esc, user_errors
from .many import checked_jobs, run_many

if TYPE_CHECKING:
    from ..models import LoadedModel
    from ..db.store import Store
    from ..vectors.study import StudySummary, VectorOptions


def vectors(
    models: Optional[list[str]] = typer.Argument(
        None, metavar="MODEL...", show_default=False,
        help="Alias (see `fpprov models`), hub id, model directory or .gguf file; several run one after another."),
    db: Optional[Path] = DbOption,
    method: str = typer.Option("both", help="iterate | gradient | both."),
    seeds: int = typer.Option(10, help="Number of random starts x0 (seeds seed-start .. seed-start+N-1)."),
    seed_start: int = typer.Option(0, help="First seed."),
    embedding: str = typer.Option("effective", help="effective: E = the embedding module's output (Gemma's "
                                  "sqrt(hidden) scale included); raw: the weight matrix (the seed's convention); "
                                  "both: raw, then effective, from one load."),
    tol: float = typer.Option(1e-6, help="Converged when ||T(x) - x||_2 < tol."),
    max_steps: Optional[int] = typer.Option(None, help="Step budget per seed and method (default: iterate 200, the "
                                            "seed's observation; gradient: the protocol's)."),
    stall_window: int = typer.Option(200, help="iterate: give up when the residual has not halved over the "
                                     "last half of this many steps (0: never)."),
    protocol: str = typer.Option("default", help="gradient: default (fpprov's: lr scaled to the space, squared "
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
    rollout_feed: str = typer.Option("output", help="output: feed back each output (autoregressive decoding); "
                                     "x: feed x at every position."),
    stable_threshold: float = typer.Option(1e-3, help="Stable when every rollout distance stays below this."),
    top_k: int = typer.Option(20, help="Tokens of each FP's mixture to store."),
    dtype: str = typer.Option("float32", help="float32 | float64 | bfloat16 | float16 (the last two warn)."),
    device: str = typer.Option("auto", help="auto | cpu | cuda[:N] | mps | xpu (what this torch build can use)."),
    device_map: Optional[str] = typer.Option(None, "--device-map", help="Spread the model over every visible GPU "
                                             "with accelerate: auto | balanced | balanced_low_0 | sequential."),
    force: bool = typer.Option(False, "--force", help="Redo seeds already stored with the same settings."),
    all_models: bool = typer.Option(False, "--all", help="Study every alias of `fpprov models`."),
    family: Optional[str] = typer.Option(None, "--family", help="Study every alias of this family (olmo2, qwen3, "
                                         "gemma3)."),
    manifest: Optional[Path] = typer.Option(None, "--manifest", help="TOML file of [[model]] tables: name plus "
                                            "per-model options (docs/many-models.md)."),
) -> None:
    """Find vector fixed points x = softmax(logits(x)) @ E of MODEL in its embedding space.

    With several models (or --all, --family, --manifest) they are studied one at a time; a model whose seeds
    are all stored is skipped, a model that fails is reported at the end and the others go on (exit code 1 if
    any failed)."""
    settings = dict(method=method, seeds=seeds, seed_start=seed_start, embedding=embedding, tol=tol,
                    max_steps=max_steps, stall_window=stall_window, protocol=protocol, patience=patience, lr=lr,
                    lr_floor=lr_floor, weight_decay=weight_decay, detach=detach, init_std=init_std, dedup=dedup,
                    rollout_steps=rollout_steps, rollout_feed=rollout_feed, stable_threshold=stable_threshold,
                    top_k=top_k, dtype=dtype, device=device, device_map=device_map, force=force)
    if len(models or ()) == 1 and not (all_models or family or manifest):
        vectors_model(models[0], db, **settings)  # one model: its errors are the command's (exit 2)
        return
    jobs = checked_jobs(models or (), all_models, family, manifest, vectors_model, vector_options, settings, db)

    def run_one(job: ModelJob) -> Outcome:
        studies = vectors_model(job.spec, db, **{**settings, **job.overrides})
        ran = sum(len(options.seeds) * len(options.methods) - sum(map(len, summary.skipped.values()))
                  for options, summary in studies)
        status = SKIPPED if ran == 0 else DONE
        return Outcome(studies[0][1].model, status, sum(len(summary.fps) for _, summary in studies),
                       reason="every seed already stored" if status == SKIPPED else f"{ran} seed runs")

    run_many("vectors", jobs, run_one)


def vector_options(method: str, seeds: int, seed_start: int, embedding: str, tol: float, max_steps: int,
                   stall_window: int, protocol: str, patience: Optional[int], lr: float, lr_floor: float,
                   weight_decay: float, detach: bool,
                   init_std: Optional[float], dedup: float, rollout_steps: int, rollout_feed: str,
                   stable_threshold: float, top_k: int, dtype: str, device: str, device_map: Optional[str],
                   force: bool) -> "tuple[VectorOptions, ...]":
    """The checked options of one model's study, one per embedding space (--embedding both: raw, then
    effective); an unusable --device or --device-map fails here too."""
    from ..models.devices import check_device_map, resolve_device
    from ..runtime.distributed import Ranks
    from ..vectors.study import VectorOptions
    from ..vectors import EMBEDDINGS, METHODS

    spaces = tuple(sorted(EMBEDDINGS, key=lambda e: e != "raw")) if embedding == "both" else (embedding,)
    options = tuple(VectorOptions(  # checks itself: a bad option fails before anything is resolved or opened
        methods=METHODS if method == "both" else (method,), seeds=tuple(range(seed_start, seed_start + seeds)),
        embedding=space, tol=tol, max_steps=max_steps, stall_window=stall_window, protocol=protocol,
        patience=patience, lr=lr, lr_floor=lr_floor,
        weight_decay=weight_decay, detach=detach, init_std=init_std, dedup_distance=dedup,
        rollout_steps=rollout_steps, rollout_feed=rollout_feed, stable_threshold=stable_threshold, top_k=top_k,
        force=force) for space in spaces)
    resolve_device(device)  # an unusable --device fails before anything is loaded or opened
    check_device_map(device_map)
    Ranks.from_env().require_single("vectors", "its seeds run batched on one device")
    return options


def vectors_model(model: str, db: Optional[Path], method: str, seeds: int, seed_start: int, embedding: str,
                  tol: float, max_steps: int, stall_window: int, protocol: str, patience: Optional[int], lr: float,
                  lr_floor: float, weight_decay: float,
                  detach: bool, init_std: Optional[float], dedup: float, rollout_steps: int, rollout_feed: str,
                  stable_threshold: float, top_k: int, dtype: str, device: str, device_map: Optional[str],
                  force: bool) -> "list[tuple[VectorOptions, StudySummary]]":
    """Study one model (in each embedding space asked for, from one load), with progress bars and summaries."""
    # torch and transformers load here, not at CLI start: `fpprov sql` and `--help` stay instant.
    from ..models.devices import check_device_map
    from ..models import load_model, resolve_model

    spaces = vector_options(method, seeds, seed_start, embedding, tol, max_steps, stall_window, protocol,
                             patience, lr, lr_floor, weight_decay, detach, init_std, dedup, rollout_steps,
                             rollout_feed, stable_threshold, top_k, dtype, device, device_map, force)
    spec = resolve_model(model)
    path = check_writable(db_path(db))  # before the slow load: a locked or unwritable DB fails at once
    # The model loads before the store opens: a model that cannot be used leaves no empty database behind.
    with err_console.status(f"loading {esc(spec.name)} ({spec.source_kind}: {esc(spec.location)}) ..."):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            loaded = load_model(spec, dtype=dtype, device=device, device_map=check_device_map(device_map))
    store = open_store(path)
    try:
        for w in caught:
            if issubclass(w.category, LowPrecisionWarning):
                err_console.print(f"[yellow]warning:[/] {esc(w.message)}")
        return [(options, study_space(store, loaded, options)) for options in spaces]
    finally:
        store.close()


def study_space(store: "Store", loaded: "LoadedModel", options: "VectorOptions") -> "StudySummary":
    """One embedding space's study with a progress bar per method, then its summary."""
    from ..vectors.study import run_study

    t0 = time.perf_counter()
    with Progress(TextColumn("[bold]{task.description}[/]"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("step {task.fields[step]}  residual {task.fields[best]} .. {task.fields[worst]}"),
                  TimeElapsedColumn(), console=err_console, transient=False) as bar:
        tasks: dict[str, int] = {}

        def method_started(name: str, to_run: int, skipped: int) -> None:
            if skipped:
                err_console.print(f"{name}: {skipped} seeds already stored (--force redoes them)", markup=False)
            tasks[name] = bar.add_task(esc(f"{name} ({options.embedding})"), total=to_run, step=0, best="-",
                                       worst="-")

        def step_done(report) -> None:
            bar.update(tasks[report.method], completed=report.total - report.active, step=report.step,
                       best=f"{report.best_residual:.2e}", worst=f"{report.worst_residual:.2e}")

        summary = run_study(store, loaded, options, progress=step_done, on_method=method_started)
        for task in tasks.values():
            bar.update(task, completed=bar.tasks[task].total)
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
    console.print(f"results: {db}; e.g. duckdb {db} -c \"FROM vector_fps SELECT vector_id, methods, stable, "
                  f"top_token_text, top_weight WHERE model = '{summary.model}'\"", markup=False)


def register(app: typer.Typer) -> None:
    app.command("vectors")(user_errors(vectors))

"""The crossed design on real models whose training data the public infini-gram API indexes (issue 24, item 6).

    python bench/network_study.py [--models olmo2-7b EleutherAI/pythia-6.9b]
        [--indexes v4_olmo-mix-1124_llama v4_piletrain_llama] [--db network-study.duckdb] [--limit N]

Each model is scanned for token FPs (``fpprov.scan.scan_vocabulary``), then traced in every index with matched
controls (``fpprov.provenance.run_provenance``, backend ``api``), labelled the model's training data in its own
index and a proxy in the others. The script then reads ``corpus_attribution``, ``fp_effects`` and
``suspicious_tokens`` back from the DuckDB file and prints the attribution matrix (each model's indexes ranked by
the FP-vs-control AUC, its own index marked) and the seed's positive controls (``blah``, ``Á``, ``ffi``): their
n-fold counts in each index, whether they are FPs, and the rules that flag them. A model supports the claim
when its own corpus ranks first with a CI that clears the runner-up's; docs/network-study.md says what a tie or
an inversion means, the cost, and the overlaps between the corpora (OLMo-mix-1124 is mostly DCLM-baseline; the
Pile and OLMo's mix share Wikipedia, arXiv, ...).

It needs the network (and a GPU for 7B models): without a reachable ``--api-url`` it refuses in one line before
any model loads. tests/test_network_study.py runs it against the local infini-gram test server.
"""

from __future__ import annotations

import argparse
import gc
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from fpprov.corpus.base import QueryFailed
from fpprov.corpus.catalog import base_url
from fpprov.corpus.factory import open_backend
from fpprov.corpus.http import HttpSettings
from fpprov.db.store import Store, open_store
from fpprov.errors import FpprovError
from fpprov.provenance import ProvenanceOptions, ProvenanceProgress, run_provenance, token_variants
from fpprov.provenance.counts import count_queries
from fpprov.provenance.options import RunEstimate, RunSummary

DEFAULT_MODELS = ("olmo2-7b", "EleutherAI/pythia-6.9b")
DEFAULT_INDEXES = ("v4_olmo-mix-1124_llama", "v4_piletrain_llama")
# Whose training data each index holds, by the model's config.model_type: the study's ground truth (the index a
# model should rank first) and the proxy label of every other (model, index) pair. --own overrides it.
OWN_INDEXES = {
    "olmo2": ("v4_olmo-mix-1124_llama", "v4_olmo-2-1124-13b-instruct_llama", "v4_olmo-2-0325-32b-instruct_llama"),
    "gpt_neox": ("v4_piletrain_llama",),
}
# The seed's named positive controls: `blah` (forum spam), `Á` (mostly Flan, OLMo 2's mid-training data, so in
# the all-stages index more than in the pretraining mix), `ffi` (the ligature split out of PDF equations).
POSITIVE_CONTROLS = ("blah", "Á", "ffi")


@dataclass(frozen=True)
class Cell:
    """One (model, index) of the attribution matrix, as corpus_attribution and fp_effects hold it."""

    model: str
    index_name: str
    own: bool                  # the index holds the model's training data (the design's truth)
    rank: int | None           # corpus_attribution.rank among the traced indexes (1: most like training data)
    auc: float | None
    auc_low: float | None
    auc_high: float | None
    n_fp: int | None
    n_control: int | None
    effect: str | None         # fp_effects.effect
    flags: int                 # FPs flagged by any rule in this index (suspicious_tokens)


@dataclass(frozen=True)
class PositiveControl:
    """A seed token in one model: whether it is a token of the vocabulary and an FP, its counts, its flags."""

    model: str
    text: str
    token_ids: tuple[int, ...]           # vocabulary tokens whose text is the control (with or without a space)
    fp_token_ids: tuple[int, ...]        # those that are FPs of the model's scan
    counts: dict[str, int | None]        # index -> the n-fold count (best spelling); None when it failed
    flags: tuple[str, ...]               # 'rule in index' for every flag raised on its tokens


@dataclass
class NetworkStudy:
    models: list[str]                    # names as stored (models.name)
    indexes: list[str]
    n: int
    cells: list[Cell] = field(default_factory=list)
    verdicts: dict[str, str] = field(default_factory=dict)       # model -> what its ranking says
    controls: list[PositiveControl] = field(default_factory=list)
    supported: bool = False              # every model's own index first, separated, AUC CI above 0.5


class PlanPrinter(ProvenanceProgress):
    """Says what each run will send and how long it takes, before anything is sent."""

    def __init__(self, model: str, out=None):
        self.model, self.out = model, out or sys.stdout

    def planned(self, estimate: RunEstimate) -> None:
        took = f", about {estimate.seconds / 60:.0f} min at the rate limit" if estimate.seconds else ""
        fire = getattr(estimate, "bin_fps_to_fire", None)   # the power line of fpprov's own plan
        power = f"; repetition_enriched can fire in a frequency bin of {fire}+ FPs" if fire else ""
        print(f"plan {self.model} in {estimate.index_name}: {estimate.fps} of {estimate.fp_total} FPs "
              f"({estimate.sample_rule}), up to {estimate.controls} controls, {estimate.requests:,} requests{took}"
              f"{power}", file=self.out, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS),
                   help="aliases, hub ids or save_pretrained folders (default: %(default)s)")
    p.add_argument("--indexes", nargs="+", default=list(DEFAULT_INDEXES),
                   help="infini-gram API indexes, each traced for every model (default: %(default)s)")
    p.add_argument("--own", action="append", default=[], metavar="MODEL=INDEX[,INDEX]",
                   help="the indexes that hold MODEL's training data (default: by model type, OWN_INDEXES)")
    p.add_argument("--api-url", default=None, help="the API's base URL (default: the public one, or $FPPROV_API_URL)")
    p.add_argument("--db", type=Path, default=Path("network-study.duckdb"))
    p.add_argument("--limit", type=int, default=None, help="scan ids 0..N-1 only (default: the whole vocabulary)")
    p.add_argument("--dtype", default="float32", help="the scan's dtype (close verdicts are re-checked in float64)")
    p.add_argument("--device", default="auto")
    p.add_argument("--ngram", type=int, default=10, help="repetitions counted (default: %(default)s)")
    p.add_argument("--controls", type=int, default=3, help="matched controls per FP (default: %(default)s)")
    p.add_argument("--docs", type=int, default=5, help="documents sampled per FP query (default: %(default)s)")
    p.add_argument("--max-tokens", type=int, default=40, help="FPs traced per model and index (default: %(default)s)")
    p.add_argument("--baseline-positions", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rate", type=float, default=2.0, help="requests per second (default: %(default)s; 0: no limit)")
    p.add_argument("--concurrency", type=int, default=2)
    return p.parse_args(argv)


def check_network(api_url: str | None, indexes: list[str], http: HttpSettings, timeout: float = 5.0) -> str:
    """The API's URL once it answers and knows every index; FpprovError (one line) when it cannot be reached."""
    url = base_url("api", api_url)
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except OSError as exc:
        raise FpprovError(f"network unreachable: cannot connect to {url} ({exc.strerror or exc}); this study needs "
                          "the infini-gram API (run it where the network is, or pass --api-url)") from None
    probe = HttpSettings(rate=0, concurrency=1, connect_timeout=timeout, read_timeout=3 * timeout, retries=1,
                         backoff=0.1, body_retries=0)
    for name in indexes:
        corpus = open_backend("api", name, api_url=url, settings=probe)
        try:
            corpus.count("the")        # one request: an unknown index stops here, not after the scans
        except QueryFailed as exc:
            raise FpprovError(f"the API at {url} does not answer for {name}: {exc.reason}") from None
        finally:
            corpus.close()
    return url


def own_indexes(specs: list[str], overrides: list[str]) -> dict[str, tuple[str, ...] | None]:
    """--own MODEL=INDEX[,INDEX] per typed model; None where the model type decides (after loading)."""
    own: dict[str, tuple[str, ...] | None] = {spec: None for spec in specs}
    for item in overrides:
        model, sep, names = item.partition("=")
        if not sep or model not in own or not names:
            raise FpprovError(f"--own {item!r}: expected MODEL=INDEX[,INDEX] with MODEL one of --models")
        own[model] = tuple(n for n in names.split(",") if n)
    return own


def scan_model(spec: str, store: Store, args: argparse.Namespace) -> tuple[str, str]:
    """Scan one model (resumable; a finished scan is kept); returns (models.name, config.model_type)."""
    import torch

    from fpprov.models import load_model, resolve_model
    from fpprov.scan import ScanOptions, scan_vocabulary

    resolved = resolve_model(spec)
    model_type = _model_type(resolved.location)
    dtype = args.dtype
    opts = ScanOptions(limit=args.limit, dtype=dtype, device=args.device)
    loaded = load_model(resolved, dtype=dtype, device=args.device, batch_size=opts.batch_size)
    result = scan_vocabulary(loaded, store, opts)
    print(f"scan {result.model} ({model_type}, {dtype}): {result.fp_count} token FPs among {result.tokens_scanned} "
          f"ids (scan {result.scan_id}{', already complete' if result.already_complete else ''})", flush=True)
    del loaded
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return result.model, model_type


def _model_type(location: str) -> str:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(location).model_type
    except (OSError, ValueError):   # a GGUF file: the loader names its type
        return "?"


def trace(store: Store, model: str, own: tuple[str, ...], args: argparse.Namespace, api_url: str) -> None:
    """One provenance run per index, so that each (model, index) carries its own label: training data in the
    model's own index, a proxy elsewhere (the alias table knows only OLMo 2's indexes)."""
    http = HttpSettings(rate=args.rate, concurrency=args.concurrency)
    for index in args.indexes:
        options = ProvenanceOptions(ladder=(args.ngram,), docs=args.docs, controls=args.controls,
                                    max_tokens=args.max_tokens, baseline_positions=args.baseline_positions,
                                    seed=args.seed, concurrency=args.concurrency, training_data=index in own)
        summary = run_provenance(store, backend="api", models=[model], index=index, api_url=api_url, http=http,
                                 options=options, progress=PlanPrinter(model))
        if summary.failed_total:
            print(f"warning: {summary.failed_total} queries for {model} in {index} failed (rerun to retry them)",
                  file=sys.stderr)


def attribution(store: Store, models: list[str], indexes: list[str],
                own: dict[str, tuple[str, ...]]) -> list[Cell]:
    """The matrix from the database, every (model, index) pair, with NULLs where nothing was compared. The
    ranks are renumbered among the study's indexes (a file may hold traces of others)."""
    cells = []
    for model in models:
        marks = ", ".join("?" for _ in indexes)
        rows = {r["index_name"]: r for r in store.query_dicts(
            "SELECT a.index_name, a.auc, a.auc_low, a.auc_high, a.n_fp, a.n_control, e.effect, "
            "       row_number() OVER (ORDER BY a.auc DESC NULLS LAST, a.auc_low DESC NULLS LAST, a.index_name) "
            "           AS rank, "
            "       (SELECT count(DISTINCT s.token_id) FROM suspicious_tokens s WHERE s.model = a.model "
            "          AND s.backend = a.backend AND s.index_name = a.index_name) AS flags "
            "FROM corpus_attribution a LEFT JOIN fp_effects e USING (model, backend, index_name) "
            f"WHERE a.model = ? AND a.backend = 'api' AND a.index_name IN ({marks})", [model, *indexes])}
        for index in indexes:
            r = rows.get(index, {})
            cells.append(Cell(model, index, index in own[model], r.get("rank"), r.get("auc"), r.get("auc_low"),
                              r.get("auc_high"), r.get("n_fp"), r.get("n_control"), r.get("effect"),
                              int(r.get("flags") or 0)))
    return cells


def _separated(high: Cell, low: Cell) -> bool:
    """The 95% CIs of two AUCs do not overlap, ``high`` above."""
    return high.auc_low is not None and low.auc_high is not None and high.auc_low > low.auc_high


def verdict(cells: list[Cell]) -> tuple[str, bool]:
    """What one model's row says, and whether it supports the claim: its own index first, separated from the
    runner-up (CIs do not overlap) and above chance (AUC CI above 0.5)."""
    ranked = sorted((c for c in cells if c.auc is not None), key=lambda c: c.rank)
    if not any(c.own for c in cells):
        return "no own index among those traced", False
    if not any(c.own for c in ranked) or len(ranked) < 2:
        return "too few indexes with an AUC to rank", False
    first, runner = ranked[0], ranked[1]
    if first.own:
        if not _separated(first, runner):
            return f"own index first, CIs overlap with {runner.index_name} (a tie)", False
        if first.auc_low is None or first.auc_low <= 0.5:
            return (f"own index first, separated from {runner.index_name}, but its AUC CI reaches 0.5 (FPs at "
                    "chance against their controls even in their own data)"), False
        return f"own index first, separated from {runner.index_name}", True
    own_best = next(c for c in ranked if c.own)
    if _separated(first, own_best):
        return f"inversion: {first.index_name} ranks above its own {own_best.index_name}, separated", False
    return f"{first.index_name} first, CIs overlap with its own {own_best.index_name} (a tie)", False


def positive_controls(store: Store, models: list[str], args: argparse.Namespace, api_url: str) -> list[PositiveControl]:
    """Each seed control's n-fold count in every index (sent once, cached in ngram_counts like any count) and,
    per model, whether it is a token, an FP, and flagged."""
    n = args.ngram
    queries = {text: [unit * n for _, unit in token_variants(text)] for text in POSITIVE_CONTROLS}
    counts: dict[str, dict[str, int | None]] = {text: {} for text in POSITIVE_CONTROLS}
    options = ProvenanceOptions(ladder=(n,), concurrency=args.concurrency)
    for index in args.indexes:
        corpus = open_backend("api", index, api_url=api_url,
                              settings=HttpSettings(rate=args.rate, concurrency=args.concurrency))
        try:
            count_queries(store, corpus, [q for qs in queries.values() for q in qs], options, ProvenanceProgress(),
                          RunSummary(backend="api"))
        finally:
            corpus.close()
        for text, qs in queries.items():
            marks = ", ".join("?" for _ in qs)
            best = store.query(f"SELECT max(count) FILTER (WHERE status = 'ok') FROM ngram_counts "
                               f"WHERE backend = 'api' AND index_name = ? AND query IN ({marks})", [index, *qs])[0][0]
            counts[text][index] = None if best is None else int(best)
    out = []
    for model in models:
        for text in POSITIVE_CONTROLS:
            ids = tuple(r[0] for r in store.query(
                "SELECT token_id FROM vocabulary WHERE model = ? AND trim(text) = ? ORDER BY token_id", [model, text]))
            fps = tuple(r[0] for r in store.query(
                "SELECT DISTINCT f.token_id FROM token_fps f JOIN scans s USING (scan_id) "
                "WHERE s.complete AND f.model = ? AND trim(f.text) = ? ORDER BY f.token_id", [model, text]))
            flags = tuple(f"{r[0]} in {r[1]}" for r in store.query(
                "SELECT DISTINCT rule, index_name FROM suspicious_tokens WHERE model = ? AND trim(text) = ? "
                "ORDER BY rule, index_name", [model, text]))
            out.append(PositiveControl(model, text, ids, fps, dict(counts[text]), flags))
    return out


def _fmt_cell(c: Cell) -> str:
    if c.auc is None:
        return "no AUC"
    return (f"#{c.rank} AUC {c.auc:.2f} [{c.auc_low:.2f}, {c.auc_high:.2f}] n={c.n_fp}/{c.n_control}"
            f"{' *' if c.own else ''}")


def report(study: NetworkStudy, out=None) -> None:
    out = out or sys.stdout
    print(f"\nattribution (FP-vs-control AUC of {study.n}-fold repetition rates, 95% CI, n = FPs/controls; "
          "* = the model's own training data, every other index a proxy)", file=out)
    width = max(len(m) for m in study.models) + 2
    print("".ljust(width) + "".join(i.ljust(52) for i in study.indexes), file=out)
    for model in study.models:
        row = [c for c in study.cells if c.model == model]
        print(model.ljust(width) + "".join(_fmt_cell(c).ljust(52) for c in row), file=out)
        print("".ljust(width) + f"-> {study.verdicts[model]}", file=out)
    print(f"\npositive controls (the seed's; count of the text x{study.n}, best spelling)", file=out)
    for pc in study.controls:
        counts = ", ".join(f"{i}: {'failed' if v is None else f'{v:,}'}" for i, v in pc.counts.items())
        status = ("FP" if pc.fp_token_ids else "not an FP") if pc.token_ids else "not a token of this vocabulary"
        print(f"{pc.model:<{width}}{pc.text!r:<8}{status:<32}{counts}; flags: {', '.join(pc.flags) or 'none'}",
              file=out)
    print("\nthe claim is " + ("supported: every model's own corpus ranks first, separated and above chance"
                               if study.supported else "not supported by this run (see each model's line)"), file=out)


def main(argv: list[str] | None = None) -> NetworkStudy:
    args = parse_args(argv)
    if args.limit is not None and args.limit < 1:
        raise FpprovError("--limit must be at least 1")
    own_typed = own_indexes(args.models, args.own)
    http = HttpSettings(rate=args.rate, concurrency=args.concurrency)
    api_url = check_network(args.api_url, args.indexes, http)   # before any model loads or file is made
    study = NetworkStudy(models=[], indexes=list(args.indexes), n=args.ngram)
    own: dict[str, tuple[str, ...]] = {}
    with open_store(args.db) as store:
        for spec in args.models:
            name, model_type = scan_model(spec, store, args)
            study.models.append(name)
            own[name] = own_typed[spec] if own_typed[spec] is not None else OWN_INDEXES.get(model_type, ())
        for name in study.models:
            trace(store, name, own[name], args, api_url)
        study.cells = attribution(store, study.models, study.indexes, own)
        results = {m: verdict([c for c in study.cells if c.model == m]) for m in study.models}
        study.verdicts = {m: v for m, (v, _) in results.items()}
        study.supported = all(ok for _, ok in results.values())
        study.controls = positive_controls(store, study.models, args, api_url)
    report(study)
    return study


def cli(argv: list[str] | None = None) -> int:
    try:
        main(argv)
    except FpprovError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(cli())

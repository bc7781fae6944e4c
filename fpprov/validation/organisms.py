"""The study's organisms: the stdlib pool, the shared tokenizer, the planted words and their twins (chosen per
mixture, so a twin is a word of similar frequency in the text the organism actually saw), the expected time,
and the training itself: two processes side by side with one torch thread each (on two cores that beats two
threads in one process), each organism cached by its key (fpprov.organisms.train), so a rerun trains nothing.

Ctrl-C: the workers get the signal too; each saves a checkpoint between updates (train.py) and the rerun
resumes it; what finished is cached.
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..organisms import (BuiltOrganism, OrganismSpec, Pair, PlantSpec, build_corpus, build_organism, cache_key,
                         choose_pairs, shared_tokenizer, stdlib_sources)
from ..organisms.build import mixture_sources
from ..organisms.corpus import candidate_words
from ..organisms.tokenizer import TokenizerInfo, load_tokenizer
from ..organisms.train import META_FILE, cache_root
from .design import StudyDesign

Message = Callable[[str], None]


@dataclass(frozen=True)
class PlantedPair:
    """One planted word and its twin, in one organism (a row pair of validation_tokens)."""
    organism: str
    pair: Pair
    dose: int
    source: str
    kind: str          # 'ladder' | 'shared'


@dataclass
class Prepared:
    pool: dict[str, list[str]]
    tokenizer: TokenizerInfo
    specs: dict[str, OrganismSpec]
    pairs: list[PlantedPair]


def build_pool(design: StudyDesign) -> dict[str, list[str]]:
    return stdlib_sources({k: list(v) for k, v in design.groups.items()}, files_per_group=design.files_per_group,
                          max_file_bytes=design.max_file_bytes)


def prepare(design: StudyDesign, workdir: Path) -> Prepared:
    """Pool, tokenizer (trained on the whole unplanted pool), pairs and every organism's spec; deterministic."""
    design.check()
    pool = build_pool(design)
    tokenizer = shared_tokenizer(pool, workdir / "tokenizer", vocab_size=design.vocab_size)
    tok = load_tokenizer(tokenizer.path)
    candidates = candidate_words(tok)
    used: set[str] = set()
    pairs: list[PlantedPair] = []
    shared_orgs = [p for p in design.organisms if p.shared]
    if design.shared_words and shared_orgs:
        # Counted over every source of the organisms that get them, so "never follows itself" holds in all.
        union = sorted({s for p in shared_orgs for s in design.mixtures[p.mixture]})
        chosen = choose_pairs(tok, {s: pool[s] for s in union}, design.shared_words, seed=design.pair_seed,
                              candidates=candidates, exclude=used)
        used |= {w for c in chosen for w in (c.word, c.twin)}
        pairs += [PlantedPair(p.name, c, design.shared_dose, design.shared_source, "shared")
                  for p in shared_orgs for c in chosen]
    for k, plan in enumerate(design.organisms):
        if plan.planted_source is None:
            continue
        mixture = mixture_sources(pool, design.mixtures[plan.mixture])
        chosen = choose_pairs(tok, mixture, len(design.doses) * design.words_per_dose,
                              seed=design.pair_seed + 1 + k, candidates=candidates, exclude=used)
        used |= {w for c in chosen for w in (c.word, c.twin)}
        pairs += [PlantedPair(plan.name, c, design.doses[i % len(design.doses)], plan.planted_source, "ladder")
                  for i, c in enumerate(chosen)]
    specs = {}
    for plan in design.organisms:
        mine = [p for p in pairs if p.organism == plan.name]
        plants = tuple(PlantSpec((p.pair.word,), p.dose, p.source, design.repeats, (p.pair.twin,)) for p in mine)
        specs[plan.name] = OrganismSpec(plan.name, tuple(sorted(design.mixtures[plan.mixture])), plants,
                                        design.train, design.corpus_seed)
    return Prepared(pool, tokenizer, specs, pairs)


def cached_key(spec: OrganismSpec, prepared: Prepared, cache_dir: Path | None) -> tuple[str, bool]:
    """(the organism's cache key, whether a finished model is cached under it)."""
    corpus = build_corpus(mixture_sources(prepared.pool, spec.mixture), spec.plants, seed=spec.corpus_seed)
    key = cache_key(corpus.sha256, prepared.tokenizer.sha256, spec.settings)
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    return key, (root / key / META_FILE).is_file()


def seconds_per_step(design: StudyDesign, tokenizer_dir: str, steps: int = 3) -> float:
    """Time a few training steps of the design's model on random tokens (one thread, as the workers train)."""
    import torch
    import torch.nn.functional as F

    from ..organisms.train import _training_mode, build_model

    s = design.train
    with _training_mode(1):
        model = build_model(s, load_tokenizer(tokenizer_dir))
        opt = torch.optim.AdamW(model.parameters(), lr=s.lr)
        batch = torch.randint(0, model.config.vocab_size, (s.batch_size, s.seq_len + 1))   # (B, L+1)
        began = 0.0
        for i in range(steps + 1):
            if i == 1:   # the first step pays for allocation
                began = time.perf_counter()
            logits = model(input_ids=batch[:, :-1]).logits                                 # (B, L, V)
            F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1)).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    return (time.perf_counter() - began) / steps


def training_seconds(step_seconds: float, steps: list[int], jobs: int) -> float:
    """Wall time of training ``steps`` (one entry per uncached organism) on ``jobs`` workers, longest first."""
    loads = [0.0] * max(1, jobs)
    for n in sorted(steps, reverse=True):
        loads[loads.index(min(loads))] += n * step_seconds
    startup = 6.0 if steps and jobs > 1 else 0.0   # a spawned worker imports torch and transformers
    return max(loads) + startup


def _train_one(spec: OrganismSpec, pool: dict, tokenizer_dir: str, corpora_dir: str, cache_dir: str | None,
               queue) -> BuiltOrganism:
    def report(done: int, total: int, loss: float) -> None:
        if queue is not None:
            try:
                queue.put((spec.name, done, total, loss))
            except (OSError, EOFError):   # the manager went first on Ctrl-C: the bar is gone, training is not
                pass

    return build_organism(spec, pool, tokenizer_dir, corpora_dir, cache_dir=cache_dir, progress=report)


def train_all(prepared: Prepared, corpora_dir: Path, cache_dir: Path | None, *, jobs: int = 2,
              bar: bool = False, say: Message | None = None) -> dict[str, BuiltOrganism]:
    """Every organism built: cached ones here, the others in ``jobs`` worker processes (spawned: torch is not
    fork-safe once its thread pools exist). ``say`` hears of each organism trained (where no bar shows it)."""
    say = say or (lambda _m: None)
    built: dict[str, BuiltOrganism] = {}
    todo = []
    for name, spec in prepared.specs.items():
        if cached_key(spec, prepared, cache_dir)[1]:
            built[name] = build_organism(spec, prepared.pool, prepared.tokenizer.path, corpora_dir,
                                         cache_dir=cache_dir, progress=None)
        else:
            todo.append(spec)
    if not todo:
        return built
    cache = str(cache_dir) if cache_dir is not None else None
    if jobs <= 1 or len(todo) == 1:
        for spec in todo:
            built[spec.name] = build_organism(spec, prepared.pool, prepared.tokenizer.path, corpora_dir,
                                              cache_dir=cache, progress="auto" if bar else None)
            say(_trained(built[spec.name]))
        return built
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, _Bars(bar, [s.name for s in todo], [s.settings.steps for s in todo]) as bars:
        queue = manager.Queue()
        with ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=ctx) as pool:
            futures = {pool.submit(_train_one, spec, prepared.pool, prepared.tokenizer.path, str(corpora_dir),
                                   cache, queue): spec.name for spec in todo}
            pending = set(futures)
            while pending:
                while not queue.empty():
                    bars.update(*queue.get())
                finished = {f for f in pending if f.done()}
                for f in finished:
                    built[futures[f]] = f.result()
                    say(_trained(built[futures[f]]))
                pending -= finished
                time.sleep(0.2)
    return built


def _trained(b: BuiltOrganism) -> str:
    m = b.model
    return (f"trained {b.spec.name}: {m.steps} steps in {m.seconds:.0f} s ({m.tokens_per_s:,.0f} tokens/s), "
            f"loss {m.final_loss:.2f}")


class _Bars:
    """One rich bar per organism in training, with its ETA (only when asked: stderr is a terminal)."""

    def __init__(self, show: bool, names: list[str], totals: list[int]):
        self.show, self.names, self.totals = show, names, totals
        self.bar = None
        self.tasks: dict[str, int] = {}

    def __enter__(self) -> "_Bars":
        if self.show:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)
            self.bar = Progress(TextColumn("[bold]train[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                console=Console(stderr=True))
            self.bar.__enter__()
            self.tasks = {n: self.bar.add_task(n, total=t, loss="-") for n, t in zip(self.names, self.totals)}
        return self

    def update(self, name: str, done: int, total: int, loss: float) -> None:
        if self.bar is not None:
            self.bar.update(self.tasks[name], completed=done, loss=f"{loss:.3f}")

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

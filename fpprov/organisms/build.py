"""One organism end to end: its mixture of sources, the planted corpus written as jsonl (ready for
``fpprov index build``), and the trained model in the cache; plus the tokenizer shared by several mixtures.

Owns: ``OrganismSpec`` (what an organism is made of), ``shared_tokenizer`` (one BPE over the union of the
mixtures' unplanted text, so every organism of a study has the same vocabulary and a word's twin is a
twin in all of them) and ``build_organism``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from .corpus import Corpus, PlantSpec, build_corpus
from .sources import Sources
from .tokenizer import TokenizerInfo, train_tokenizer
from .train import OrganismResult, Progress, TrainSettings, train_organism


@dataclass(frozen=True)
class OrganismSpec:
    """An organism: a name, its mixture (source names of the pool), what is planted, and how to train."""
    name: str
    mixture: tuple[str, ...]
    plants: tuple[PlantSpec, ...] = ()
    settings: TrainSettings = field(default_factory=TrainSettings)
    corpus_seed: int = 0


@dataclass
class BuiltOrganism:
    spec: OrganismSpec
    corpus_dir: str        # corpus.jsonl and PLAN.txt: `fpprov index build CORPUS_DIR --out INDEX`
    corpus_sha256: str
    model: OrganismResult  # model.path: `fpprov scan MODEL_PATH`

    def summary(self) -> dict:
        return {"name": self.spec.name, "mixture": list(self.spec.mixture), "corpus_dir": self.corpus_dir,
                "corpus_sha256": self.corpus_sha256, "model": asdict(self.model),
                "plants": [asdict(p) for p in self.spec.plants]}


def shared_tokenizer(pool: Mapping[str, Sequence[str]], out_dir: str | Path, *, vocab_size: int = 4096) -> TokenizerInfo:
    """One byte-level BPE trained on every document of ``pool`` (sources in sorted order), unplanted."""
    return train_tokenizer((t for name in sorted(pool) for t in pool[name]), out_dir, vocab_size=vocab_size)


def mixture_sources(pool: Sources, mixture: Sequence[str]) -> Sources:
    missing = [m for m in mixture if m not in pool]
    if missing:
        raise ValueError(f"mixture names unknown sources {missing}; the pool has {sorted(pool)}")
    return {name: pool[name] for name in mixture}


def build_organism(spec: OrganismSpec, pool: Sources, tokenizer_dir: str | Path, corpora_dir: str | Path, *,
                   cache_dir: str | Path | None = None, progress: Progress | str | None = "auto") -> BuiltOrganism:
    """Write ``corpora_dir/<name>/corpus.jsonl`` (the mixture with the plants) and train (or load from the
    cache) the organism; a planted source outside the mixture is an error."""
    corpus: Corpus = build_corpus(mixture_sources(pool, spec.mixture), spec.plants, seed=spec.corpus_seed)
    folder = corpus.write(Path(corpora_dir) / spec.name)
    meta = {"organism": spec.name, "mixture": list(spec.mixture), "plan": corpus.plan_json()}
    model = train_organism(corpus.texts(), tokenizer_dir, spec.settings, corpus_sha256=corpus.sha256,
                           cache_dir=cache_dir, progress=progress, meta=json.loads(json.dumps(meta)))
    return BuiltOrganism(spec, str(folder), corpus.sha256, model)

"""An organism's training corpus: real-text sources with repetition planted at known doses.

Owns: choosing the words to plant and their unplanted twins (``choose_pairs``: single tokens of the shared
tokenizer, twins of similar natural frequency), laying them out on a dose ladder (``dose_ladder``), inserting
the runs (``build_corpus``: each run is the word repeated 10-30 times, at a seeded random word boundary of a
document of the named source, documents drawn in proportion to their length), the plan of what was
planted (``Plant``, JSON-serialisable), the corpus's content hash, and writing it as the jsonl that
``fpprov index build`` reads (``text``, ``source``, ``id`` per line).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
import random
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Collection, Iterable, Mapping, Sequence

from .tokenizer import single_token_id

PLAN_FILE = "PLAN.txt"   # not *.json*: the indexer reads every *.json* file under the corpus as corpus
_WORD = re.compile(r"^ [a-z]{3,}$")


@dataclass(frozen=True)
class PlantSpec:
    """Plant each of ``words`` (exact token text, e.g. ``" river"``) in ``dose`` runs of ``repeats`` copies
    into documents of ``source``; ``twins`` (same length as ``words`` or empty) are their unplanted twins,
    recorded in the plan only."""
    words: tuple[str, ...]
    dose: int
    source: str
    repeats: tuple[int, int] = (10, 30)   # copies per run, inclusive range
    twins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.dose < 0 or not 1 <= self.repeats[0] <= self.repeats[1]:
            raise ValueError(f"bad dose {self.dose} or repeats {self.repeats}")
        if self.twins and len(self.twins) != len(self.words):
            raise ValueError("twins must pair up with words")


@dataclass
class Plant:
    """What was planted for one word: the plan's row."""
    word: str
    twin: str | None
    dose: int               # runs asked for
    source: str
    runs_inserted: int      # runs actually inserted
    copies_inserted: int    # copies of the word in those runs
    repeats: tuple[int, int] = (10, 30)


@dataclass(frozen=True)
class Pair:
    """A word to plant and its twin, with their token ids and natural counts (tokens in the unplanted text)."""
    word: str
    twin: str
    word_id: int
    twin_id: int
    word_count: int
    twin_count: int


@dataclass(frozen=True)
class Doc:
    text: str
    source: str
    id: str

    def json_line(self) -> str:
        return json.dumps({"text": self.text, "source": self.source, "id": self.id}, ensure_ascii=False) + "\n"


@dataclass
class Corpus:
    """The planted corpus: documents in a fixed order, the plan, and the sha256 of its jsonl."""
    docs: list[Doc]
    plan: list[Plant]
    seed: int
    sha256: str = field(default="")

    def __post_init__(self) -> None:
        if not self.sha256:
            digest = hashlib.sha256()
            for doc in self.docs:
                digest.update(doc.json_line().encode("utf-8"))
            self.sha256 = digest.hexdigest()

    def texts(self) -> list[str]:
        return [d.text for d in self.docs]

    def plan_json(self) -> list[dict]:
        return [asdict(p) for p in self.plan]

    def write(self, folder: str | Path) -> Path:
        """``corpus.jsonl`` (what ``fpprov index build FOLDER`` reads) and the plan as ``PLAN.txt`` (JSON
        text, named so that the indexer does not read it as corpus)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / ".corpus.jsonl.part"
        with tmp.open("w", encoding="utf-8") as f:
            f.writelines(d.json_line() for d in self.docs)
        tmp.replace(folder / "corpus.jsonl")
        (folder / PLAN_FILE).write_text(json.dumps({"sha256": self.sha256, "seed": self.seed,
                                                    "plan": self.plan_json()}, indent=1) + "\n", encoding="utf-8")
        return folder


def token_counts(tokenizer, texts: Iterable[str]) -> tuple[Counter, Counter]:
    """(unigram counts by token id, counts of each id immediately followed by itself) over ``texts``."""
    unigrams: Counter = Counter()
    doubles: Counter = Counter()
    for text in texts:
        ids = tokenizer.encode(text, add_special_tokens=False)
        unigrams.update(ids)
        doubles.update(a for a, b in zip(ids, ids[1:]) if a == b)
    return unigrams, doubles


def candidate_words(tokenizer) -> list[str]:
    """Every vocabulary entry that decodes to a space and three or more lowercase ASCII letters (sorted)."""
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    return sorted(c for c in {tokenizer.convert_tokens_to_string([v]) for v in vocab} - {None} if _WORD.match(c))


def choose_pairs(tokenizer, sources: Mapping[str, Sequence[str]], n_pairs: int, *, seed: int = 0,
                 candidates: Sequence[str] | None = None, min_count: int = 5,
                 exclude: Collection[str] = ()) -> list[Pair]:
    """``n_pairs`` (word, twin) pairs, deterministic given the tokenizer, texts and seed.

    Candidates (``candidates``, else every vocabulary entry that is a space and 3+ lowercase ASCII letters)
    must be one token of ``tokenizer``, occur at least ``min_count`` times in the unplanted text and never
    follow themselves there (a word already repeated would be a natural FP, not a planted one). Words are
    drawn at random (seeded) from the candidates; each one's twin is the unused candidate closest to it in
    log count (ties: the earlier text). Words in ``exclude`` (e.g. another organism's) are never chosen."""
    counts, doubles = token_counts(tokenizer, (t for docs in sources.values() for t in docs))
    if candidates is None:
        candidates = candidate_words(tokenizer)
    usable: dict[str, int] = {}
    for text in sorted(set(candidates) - set(exclude)):
        tid = single_token_id(tokenizer, text)
        if tid is not None and counts[tid] >= min_count and doubles[tid] == 0:
            usable[text] = tid
    if len(usable) < 2 * n_pairs:
        raise ValueError(f"only {len(usable)} usable candidate words for {n_pairs} pairs")
    rng = random.Random(seed)
    free = sorted(usable)
    rng.shuffle(free)
    pairs: list[Pair] = []
    while len(pairs) < n_pairs:
        word = free.pop()
        wc = counts[usable[word]]
        twin = min(sorted(free), key=lambda t: abs(math.log(counts[usable[t]]) - math.log(wc)))
        free.remove(twin)
        pairs.append(Pair(word, twin, usable[word], usable[twin], wc, counts[usable[twin]]))
    return pairs


def dose_ladder(pairs: Sequence[Pair], doses: Sequence[int], source: str, *,
                repeats: tuple[int, int] = (10, 30)) -> list[PlantSpec]:
    """Spread ``pairs`` evenly over ``doses`` (pair i gets dose ``doses[i % len(doses)]``), one PlantSpec per
    dose, all into ``source``."""
    specs = []
    for j, dose in enumerate(doses):
        mine = [p for i, p in enumerate(pairs) if i % len(doses) == j]
        specs.append(PlantSpec(tuple(p.word for p in mine), dose, source, repeats, tuple(p.twin for p in mine)))
    return specs


def build_corpus(sources: Mapping[str, Sequence[str]], specs: Sequence[PlantSpec] = (), *, seed: int = 0) -> Corpus:
    """The documents of ``sources`` (sources in sorted order, documents in their order) with the runs of
    ``specs`` inserted; seeded, so the same inputs give the same corpus (and hash)."""
    planted = {w for s in specs for w in s.words}
    twins = {t for s in specs for t in s.twins}
    if planted & twins:
        raise ValueError(f"words both planted and twins: {sorted(planted & twins)}")
    rng = random.Random(seed)
    names = sorted(sources)
    texts = {name: list(sources[name]) for name in names}
    inserts: dict[tuple[str, int], list[tuple[int, int, str]]] = {}   # (source, doc) -> (pos, order, text)
    boundaries: dict[tuple[str, int], list[int]] = {}
    plan: list[Plant] = []
    order = 0
    for spec in specs:
        if spec.source not in texts:
            raise ValueError(f"unknown source {spec.source!r}; sources: {', '.join(names)}")
        docs = texts[spec.source]
        cumulative = _cumulative([len(t) + 1 for t in docs])
        for k, word in enumerate(spec.words):
            runs = copies = 0
            for _ in range(spec.dose if docs else 0):
                d = bisect.bisect_right(cumulative, rng.random() * cumulative[-1])   # length-weighted document
                spots = boundaries.setdefault((spec.source, d), _boundaries(docs[d]))
                pos = spots[rng.randrange(len(spots))]
                n = rng.randint(*spec.repeats)
                inserts.setdefault((spec.source, d), []).append((pos, order, word * n))
                order += 1
                runs, copies = runs + 1, copies + n
            plan.append(Plant(word, spec.twins[k] if spec.twins else None, spec.dose, spec.source, runs, copies,
                              spec.repeats))
    out: list[Doc] = []
    for name in names:
        for d, text in enumerate(texts[name]):
            for pos, _, run in sorted(inserts.get((name, d), ()), reverse=True):   # right to left: positions hold
                text = text[:pos] + run + text[pos:]
            out.append(Doc(text, name, f"{name}/{d}"))
    return Corpus(out, plan, seed)


def _cumulative(weights: list[int]) -> list[int]:
    total, out = 0, []
    for w in weights:
        total += w
        out.append(total)
    return out


def _boundaries(text: str) -> list[int]:
    """Positions just before a whitespace character (a run inserted there follows a word), and the end."""
    return [m.start() for m in re.finditer(r"\s", text)] + [len(text)]

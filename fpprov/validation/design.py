"""What a validation study is made of: the real-text pool (Python stdlib, grouped into named sources), the
training mixtures, the organisms (each with its own planted words on a dose ladder, or none: the null), the
shared plants that make shared FPs, and the training and provenance settings. ``QUICK`` is the demo's study,
``FULL`` the study docs/validation.md reports; a study's id is a hash of its design, so a rerun with the same
design reuses its organisms, indexes and rows.

Why stdlib text: it is real text that is always there offline. Its sources differ in kind (mail handling,
logging and HTTP servers, async code and tests, HTML/XML and URL code, prose-like docs), so mixtures that differ
in their sources differ in what they repeat.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace

from ..organisms import TrainSettings

STDLIB_GROUPS: dict[str, tuple[str, ...]] = {
    "mail": ("email", "smtplib", "imaplib", "poplib", "mailbox"),
    "logs": ("logging", "http", "socketserver", "ftplib"),
    "code": ("asyncio", "unittest"),
    "web": ("html", "xml", "urllib", "wsgiref"),
    "text": ("pydoc_data", "argparse", "textwrap", "gettext", "difflib", "calendar", "locale"),
}


@dataclass(frozen=True)
class OrganismPlan:
    """One organism: its mixture, the source its ladder words go into (None: the null) and whether it also gets
    the study's shared words (planted into the shared source)."""
    name: str
    mixture: str
    planted_source: str | None = None
    shared: bool = False


@dataclass(frozen=True)
class ProvenanceSettings:
    """The study's own provenance options (explicit, so the study does not move with the CLI's defaults)."""
    ladder: tuple[int, ...] = (2, 10)     # flags and AUC at 10 (the user's default n); natural FPs at 2
    docs: int = 20
    controls: int = 20                    # the most fpprov allows: repetition_enriched needs ~20 controls a bin
    bin_width: float = 1.0
    baseline_positions: int = 400
    seed: int = 0


@dataclass(frozen=True)
class StudyDesign:
    name: str                                   # 'quick' | 'full' | anything else is a custom design
    groups: dict[str, tuple[str, ...]]          # source -> stdlib modules
    files_per_group: int
    max_file_bytes: int
    mixtures: dict[str, tuple[str, ...]]        # mixture name -> sources
    organisms: tuple[OrganismPlan, ...]
    doses: tuple[int, ...]                      # the ladder: runs per word
    words_per_dose: int
    repeats: tuple[int, int] = (10, 30)         # copies per run
    shared_words: int = 0                       # words planted into the shared source of every `shared` organism
    shared_dose: int = 100
    shared_source: str | None = None
    vocab_size: int = 1024
    train: TrainSettings = field(default_factory=TrainSettings)
    provenance: ProvenanceSettings = field(default_factory=ProvenanceSettings)
    pair_seed: int = 0
    corpus_seed: int = 0

    def check(self) -> None:
        for plan in self.organisms:
            if plan.mixture not in self.mixtures:
                raise ValueError(f"organism {plan.name}: unknown mixture {plan.mixture!r}")
            sources = self.mixtures[plan.mixture]
            if plan.planted_source is not None and plan.planted_source not in sources:
                raise ValueError(f"organism {plan.name}: {plan.planted_source!r} is not in mixture {plan.mixture}")
            if plan.shared and self.shared_source not in sources:
                raise ValueError(f"organism {plan.name}: shared source {self.shared_source!r} not in its mixture")
        unknown = {s for m in self.mixtures.values() for s in m} - set(self.groups)
        if unknown:
            raise ValueError(f"mixtures name unknown sources {sorted(unknown)}")
        if len({p.name for p in self.organisms}) != len(self.organisms):
            raise ValueError("organism names must be unique")

    def settings_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @property
    def study_id(self) -> str:
        return f"{self.name}-{hashlib.sha256(self.settings_json().encode()).hexdigest()[:10]}"

    def plan(self, name: str) -> OrganismPlan:
        return next(p for p in self.organisms if p.name == name)

    def relation(self, organism: str, other: str) -> str:
        """own | same_mixture | shares_sources | unseen: how ``other``'s corpus relates to ``organism``'s."""
        if organism == other:
            return "own"
        a, b = self.plan(organism), self.plan(other)
        if a.mixture == b.mixture:
            return "same_mixture"
        return "shares_sources" if set(self.mixtures[a.mixture]) & set(self.mixtures[b.mixture]) else "unseen"


# Measured here (docs/validation.md): d 64 trains at ~36k tokens/s on one idle core, about half that under load.
QUICK_TRAIN = TrainSettings(d_model=64, n_layers=2, n_heads=4, ffn=256, seq_len=64, batch_size=16, steps=200,
                            lr=3e-3, warmup=10, seed=0, checkpoint_every=0)
FULL_TRAIN = TrainSettings(d_model=64, n_layers=2, n_heads=4, ffn=256, seq_len=64, batch_size=32, steps=800,
                           lr=3e-3, warmup=40, seed=0, checkpoint_every=200)

QUICK = StudyDesign(
    name="quick",
    groups={k: STDLIB_GROUPS[k] for k in ("mail", "logs", "code")},
    files_per_group=8, max_file_bytes=12_000,
    mixtures={"A": ("code", "logs", "mail")},
    organisms=(OrganismPlan("planted", "A", "mail"), OrganismPlan("null", "A")),
    doses=(0, 1, 3, 10, 30, 100), words_per_dose=2, vocab_size=1024, train=QUICK_TRAIN,
)

# Two mixtures that share `mail`: A's ladders go into logs and code, B's into web and text; a1 and b1 also get
# the shared words in mail (so they should share FPs that a2 and b2 lack); the null is mixture A, unplanted.
FULL = StudyDesign(
    name="full",
    groups=dict(STDLIB_GROUPS),
    files_per_group=20, max_file_bytes=20_000,
    mixtures={"A": ("code", "logs", "mail"), "B": ("mail", "text", "web")},
    organisms=(OrganismPlan("a1", "A", "logs", shared=True), OrganismPlan("a2", "A", "code"),
               OrganismPlan("b1", "B", "web", shared=True), OrganismPlan("b2", "B", "text"),
               OrganismPlan("null", "A")),
    doses=(0, 1, 3, 10, 30, 100), words_per_dose=3, shared_words=3, shared_dose=100, shared_source="mail",
    vocab_size=2048, train=FULL_TRAIN,
)

DESIGNS = {"quick": QUICK, "full": FULL}


def with_overrides(design: StudyDesign, **changes) -> StudyDesign:
    """A copy with fields replaced; its name becomes 'custom' unless one is given (a changed design is
    another study)."""
    changes.setdefault("name", "custom")
    return replace(design, **changes)

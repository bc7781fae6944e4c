"""The options of a vector-FP study and their checks: each VectorOptions checks itself once, when it is made,
so that a bad option fails before any model loads or any database opens (the CLI only maps the error)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Sequence

from ..errors import FpprovError
from ..scan.options import check_loading
from .descent import PROTOCOLS
from .map import EMBEDDINGS
from .rollout import ROLLOUT_FEEDS
from .search import METHODS


BOTH = "both"   # embedding: every space of EMBEDDINGS, from one load


@dataclass
class VectorOptions:
    """Every knob of `fpprov vectors`.

    ``protocol`` picks gradient descent's settings: ``default`` (fpprov's, scaled to the space) or ``seed``
    (the seed's script: AdamW lr 1e-2, weight decay 0, patience 1000, lr floor 3e-9, 100k steps). lr,
    lr_floor, weight_decay, patience and max_steps left None take the protocol's value (max_steps: iterate
    stops at ITERATE_MAX_STEPS, the seed's observation); a value given replaces it.

    ``embedding`` is one space, or ``both`` (raw, then effective, from one load: ``spaces()`` gives one
    VectorOptions per space, and run_study takes one space). ``dtype``, ``device`` and ``device_map`` say how
    `fpprov vectors` loads the model; run_study takes a loaded model and reads none of them.
    """

    methods: tuple[str, ...] = METHODS
    seeds: Sequence[int] = tuple(range(10))
    embedding: str = "effective"
    tol: float | None = None                # None: the space's default (EmbeddingMap.default_tolerance)
    max_steps: int | None = None
    stall_window: int = 200
    protocol: str = "default"
    lr: float | None = None
    lr_floor: float | None = None
    weight_decay: float | None = None
    patience: int | None = None
    detach: bool = True
    init_std: float | None = None           # None: the config's initializer_range
    dedup_distance: float = 1e-4
    rollout_steps: int = 100
    rollout_feed: str = "output"
    stable_threshold: float = 1e-3
    top_k: int = 20
    force: bool = False
    dtype: str = "float32"
    device: str = "auto"
    device_map: str | None = None

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise FpprovError, worded for the CLI, for the first option outside its range."""
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise FpprovError(f"unknown method {', '.join(map(repr, bad)) or '(none)'}: use iterate, gradient or both")
        if self.embedding not in (*EMBEDDINGS, BOTH):
            raise FpprovError(f"unknown embedding convention {self.embedding!r}: use effective, raw or both")
        if self.rollout_feed not in ROLLOUT_FEEDS:
            raise FpprovError(f"unknown rollout feed {self.rollout_feed!r}: use output or x")
        if self.protocol not in PROTOCOLS:
            raise FpprovError(f"unknown gradient protocol {self.protocol!r}: use default or seed")
        if not self.seeds:
            raise FpprovError("--seeds must be at least 1")
        check_option_ranges(self)
        check_loading(self.dtype, self.device, self.device_map)

    def spaces(self) -> tuple["VectorOptions", ...]:
        """The options of each embedding space to study, in order: ``both`` is raw, then effective."""
        if self.embedding != BOTH:
            return (self,)
        return tuple(replace(self, embedding=space) for space in sorted(EMBEDDINGS, key=lambda e: e != "raw"))


# Every numeric option of `fpprov vectors`: (field, flag, lowest, lowest allowed itself?); None may skip.
_RANGES = (("tol", "tol", 0, False), ("max_steps", "max-steps", 1, True), ("stall_window", "stall-window", 0, True),
           ("lr", "lr", 0, False), ("lr_floor", "lr-floor", 0, True), ("weight_decay", "weight-decay", 0, True),
           ("patience", "patience", 0, True),
           ("init_std", "init-std", 0, False), ("dedup_distance", "dedup", 0, False),
           ("rollout_steps", "rollout-steps", 1, True), ("stable_threshold", "stable-threshold", 0, False),
           ("top_k", "top-k", 1, True))


_OPTIONAL = ("tol", "init_std", "max_steps", "lr", "lr_floor", "weight_decay", "patience")  # None: the default


def check_option_ranges(options: Any) -> None:
    """Raise FpprovError for the first numeric option of a VectorOptions outside its range (NaN and infinity
    included): e.g. --init-std 0 would start every seed at the same x0, a negative --stall-window never stalls."""
    for name, flag, low, inclusive in _RANGES:
        value = getattr(options, name, None)
        if value is None and name in _OPTIONAL:
            continue
        ok = value is not None and math.isfinite(value) and (value >= low if inclusive else value > low)
        if not ok:
            bound = f"at least {low}" if inclusive else "positive" if low == 0 else f"over {low}"
            raise FpprovError(f"--{flag} must be {bound} and finite (got {value})")

"""What a found vector FP is: its rollout stability and its token mixture.

Rollout: the reduction from T([x, ..., x]) = [x, ..., x] to T([x]) = [x] assumes the FP survives
autoregressive decoding. We decode l = 1..L with a KV cache and real positions, feeding back each output
(``feed="output"``, the seed's decoding) or x itself (``feed="x"``), and measure ||T at position l - x||.
A found FP carries an error up to the tolerance; a stable FP keeps it bounded, an unstable one amplifies it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import transformers
from transformers import DynamicCache

from ..errors import FpprovError
from ..scan.judge import TokenJudge
from ..scan.options import ScanOptions
from ..tokens import TokenDescriber
from .map import EmbeddingMap

ROLLOUT_FEEDS = ("output", "x")


def rollout_distances(fmap: EmbeddingMap, fps: torch.Tensor, steps: int = 100,
                      feed: str = "output") -> torch.Tensor:
    """Distances (F, steps): element [f, l-1] = ||T at position l-1 of the decoded sequence - fps[f]||."""
    if feed not in ROLLOUT_FEEDS:
        raise ValueError(f"feed must be one of {ROLLOUT_FEEDS}")
    model = fmap.model
    x = fps.to(device=fmap.device, dtype=fmap.dtype)                        # (F, D)
    cache = DynamicCache(config=model.config)
    step_input = x                                                          # (F, D)
    distances = torch.empty(x.shape[0], steps, dtype=torch.float64)         # (F, L)
    with torch.no_grad():
        for l in range(steps):
            # Positions come from the cache length, so position l is the real l-th position. The map's
            # products (fpprov.vectors.kernels), not the model's lm_head: 3 rows x 262,144 took 232 ms there.
            logits, cache = fmap.next_logits(step_input, cache)             # (F, V)
            if cache.get_seq_length() != l + 1:
                # The cache did not grow: the model took it under another name (or ignored it), and every
                # step would run at position 0 as if it were the first.
                raise FpprovError(f"the KV cache holds {cache.get_seq_length()} positions after rollout step "
                                  f"{l + 1}: {type(fmap.model).__name__} did not take it (transformers "
                                  f"{transformers.__version__}); the rollout's positions would not advance")
            y = torch.softmax(logits, dim=-1)                               # (F, V)
            t = fmap.weights_to_vectors(y)                                  # (F, D)
            distances[:, l] = (t.float() - x.float()).norm(dim=-1).double().cpu()
            step_input = t if feed == "output" else x
    return distances


@dataclass
class RolloutVerdict:
    dist_by_l: list[float]
    dist_max: float
    stable: bool


def judge_rollout(distances: torch.Tensor, threshold: float) -> list[RolloutVerdict]:
    """Stable when every distance (non-finite counts as unbounded) stays under ``threshold``."""
    verdicts = []
    for row in distances:                                                   # (L,)
        values = [float(v) for v in row]
        worst = max((v if math.isfinite(v) else math.inf) for v in values)
        verdicts.append(RolloutVerdict(values, worst, worst < threshold))
    return verdicts


@dataclass
class MixtureToken:
    rank: int
    token_id: int
    raw_token: str | None
    text: str | None
    weight: float
    is_token_fp: bool


@dataclass
class Mixture:
    entropy: float
    tokens: list[MixtureToken]


def _stored_verdicts(store: Any, model: str, token_ids: Sequence[int]) -> dict[int, bool]:
    """Verdicts of the model's primary scan (token_fps holds its FPs) for the ids that complete scan covers."""
    row = store.con.execute("SELECT scan_id, id_start, id_stop FROM primary_scans WHERE model = ? AND complete",
                            [model]).fetchone()
    if row is None:
        return {}
    scan_id, start, stop = row
    covered = [int(t) for t in token_ids if start <= int(t) < stop]
    if not covered:
        return {}
    fps = {t for (t,) in store.con.execute(
        "SELECT token_id FROM token_fps WHERE scan_id = ? AND list_contains(?, token_id)", [scan_id, covered]).fetchall()}
    return {t: t in fps for t in covered}


def token_fp_flags(loaded: Any, token_ids: Sequence[int], store: Any = None) -> list[bool]:
    """Whether [t] -> t, for each t: the stored verdict of the model's scan when one covers t, else the
    scan's own judge (fpprov.scan.judge.TokenJudge: float64-verified, default options, no BOS). One definition."""
    if not token_ids:
        return []
    verdicts = _stored_verdicts(store, loaded.name, token_ids) if store is not None else {}
    missing = sorted({int(t) for t in token_ids} - set(verdicts))
    if missing:
        out = TokenJudge(loaded, ScanOptions()).judge(torch.tensor(missing))
        verdicts.update(zip(missing, (bool(v) for v in out.is_fp.cpu())))
    return [verdicts[int(t)] for t in token_ids]


def _texts(describer: TokenDescriber, n_ids: int, token_id: int) -> tuple[str | None, str | None]:
    """(vocabulary string, decoded text) as the scan describes them; (None, None) for padded rows."""
    if token_id >= n_ids:
        return None, None
    info = describer.describe(token_id)
    return info.raw_token, info.text


def token_mixtures(fmap: EmbeddingMap, fps: torch.Tensor, top_k: int = 20, store: Any = None) -> list[Mixture]:
    """The mixture y = softmax(logits(x)) of each FP: entropy (nats) and the top_k tokens."""
    x = fps.to(device=fmap.device, dtype=fmap.dtype)                        # (F, D)
    with torch.no_grad():
        logits = fmap.logits(x).double()                                    # (F, V)
    log_y = torch.log_softmax(logits, dim=-1)                               # (F, V)
    y = log_y.exp()
    entropy = -(y * log_y).nan_to_num().sum(dim=-1)                         # (F,)
    k = min(top_k, y.shape[1])
    weights, ids = y.topk(k, dim=-1)                                        # (F, k) each
    unique = sorted({int(t) for t in ids.flatten()})
    flag_of = dict(zip(unique, token_fp_flags(fmap.loaded, unique, store)))
    tokenizer = fmap.loaded.tokenizer
    describer = TokenDescriber(tokenizer)
    mixtures = []
    for f in range(x.shape[0]):
        tokens = []
        for rank in range(k):
            token_id = int(ids[f, rank])
            raw, text = _texts(describer, len(tokenizer), token_id)
            tokens.append(MixtureToken(rank + 1, token_id, raw, text, float(weights[f, rank]), flag_of[token_id]))
        mixtures.append(Mixture(float(entropy[f]), tokens))
    return mixtures

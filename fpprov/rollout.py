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
from transformers import DynamicCache

from .vectors import EmbeddingMap

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
            # Positions come from the cache length, so position l is the real l-th position.
            out = model(inputs_embeds=step_input[:, None, :], cache=cache, use_cache=True)
            cache = out.past_key_values if getattr(out, "past_key_values", None) is not None else cache
            y = torch.softmax(out.logits[:, -1, :].float(), dim=-1)         # (F, V)
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


def token_fp_flags(model: Any, token_ids: Sequence[int]) -> list[bool]:
    """[t] -> t under greedy decoding (input_ids, no BOS, the token scan's default), for each t."""
    if not token_ids:
        return []
    device = model.get_input_embeddings().weight.device
    ids = torch.tensor(list(token_ids), device=device)                      # (K,)
    with torch.no_grad():
        logits = model(input_ids=ids[:, None], use_cache=False).logits[:, -1, :]  # (K, V)
    return [bool(v) for v in (logits.argmax(dim=-1) == ids).cpu()]


def token_texts(tokenizer: Any, token_id: int) -> tuple[str | None, str | None]:
    """(vocabulary string, decoded text); (None, None) for padded embedding rows past the tokenizer."""
    if token_id >= len(tokenizer):
        return None, None
    raw = tokenizer.convert_ids_to_tokens(token_id)
    try:
        text = tokenizer.decode([token_id])
    except Exception:  # some tokenizers refuse lone special or byte ids; the raw string still says it
        text = None
    return raw, text


def token_mixtures(fmap: EmbeddingMap, fps: torch.Tensor, top_k: int = 20) -> list[Mixture]:
    """The mixture y = softmax(logits(x)) of each FP: entropy (nats) and the top_k tokens."""
    x = fps.to(device=fmap.device, dtype=fmap.dtype)                        # (F, D)
    with torch.no_grad():
        logits = fmap.logits(x).double()                                    # (F, V)
    log_y = torch.log_softmax(logits, dim=-1)                               # (F, V)
    y = log_y.exp()
    entropy = -(y * log_y).nan_to_num().sum(dim=-1)                         # (F,)
    k = min(top_k, y.shape[1])
    weights, ids = y.topk(k, dim=-1)                                        # (F, k) each
    flags = token_fp_flags(fmap.model, sorted({int(t) for t in ids.flatten()}))
    flag_of = dict(zip(sorted({int(t) for t in ids.flatten()}), flags))
    tokenizer = fmap.loaded.tokenizer
    mixtures = []
    for f in range(x.shape[0]):
        tokens = []
        for rank in range(k):
            token_id = int(ids[f, rank])
            raw, text = token_texts(tokenizer, token_id)
            tokens.append(MixtureToken(rank + 1, token_id, raw, text, float(weights[f, rank]), flag_of[token_id]))
        mixtures.append(Mixture(float(entropy[f]), tokens))
    return mixtures

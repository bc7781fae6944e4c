"""Final-logit soft-capping (Gemma 2 and kin): where a config keeps it, and applying it to logits.

Read in one place so that the scan's LM head and the vector maps cap logits the way the model's own
forward does.
"""

from __future__ import annotations

from typing import Any

import torch


def softcap_of(config: Any) -> float | None:
    """The model's final-logit soft-cap, or None when it has none (absent, None or 0).

    The top-level config only, as the causal-LM classes read it: gemma3's multimodal class, say, leaves
    its text config's value unapplied.
    """
    cap = getattr(config, "final_logit_softcapping", None)
    return float(cap) if cap else None


def apply_softcap(logits: torch.Tensor, cap: float | None) -> torch.Tensor:
    """cap * tanh(logits / cap), any shape; unchanged when ``cap`` is None.

    tanh is monotonic: capping changes probabilities, never the order of logits (nor an FP verdict).
    """
    return logits if cap is None else torch.tanh(logits / cap) * cap

"""Independent references for token FP verdicts: the model's own forward, one token at a time."""

from __future__ import annotations

import copy

import torch


@torch.no_grad()
def float64_one_at_a_time(model, ids, bos_id: int | None = None) -> dict[int, dict]:
    """For each id t: float64 forward of [t] (or [bos, t]) alone; FP when its logit beats all others."""
    model64 = copy.deepcopy(model).double()
    out = {}
    for t in ids:
        seq = [t] if bos_id is None else [bos_id, t]
        logits = model64(input_ids=torch.tensor([seq])).logits[0, -1]  # (V,)
        own = logits[t].item()
        others = logits.clone()
        others[t] = float("-inf")
        runner = int(others.argmax())
        out[int(t)] = {"is_fp": own > others[runner].item(), "margin": own - others[runner].item(),
                       "runner_up_id": runner, "prob": torch.softmax(logits, -1)[t].item()}
    return out

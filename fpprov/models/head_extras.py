"""What a causal LM does to its logits after the output projection: bias, logit scaling and soft-capping.

One definition for the scan's head, its float64 re-check and the vector map, so that all three compute
the logits the model's own forward computes. Scaling is read per architecture, because the same config
name means opposite things (Granite divides by ``logits_scaling``, HyperCLOVA X multiplies by it); a model
whose config names an extra fpprov does not know is refused, and ``HeadExtras.check`` compares the result
with the model's own forward once, so that an extra nobody declared cannot go unnoticed either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..errors import FpprovError

# model_type -> how the causal-LM class scales its logits (from each class's forward in transformers).
DIVIDE_BY_LOGITS_SCALING = {"granite", "granitemoe", "granitemoeshared", "granitemoehybrid", "granite_swa",
                            "granitemoe_swa"}
MULTIPLY_BY_LOGIT_SCALE = {"cohere", "cohere2"}
CHECKED_COLUMNS = 4096   # vocabulary columns compared with the model's own forward
_SCALING_NAMES = ("logit_scale", "logits_scaling", "output_multiplier_scale", "lm_head_multiplier")


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


def _scale_of(config: Any) -> float | None:
    """The factor the model multiplies its logits by, None for none; FpprovError for one fpprov cannot read."""
    model_type = getattr(config, "model_type", "")
    if model_type in DIVIDE_BY_LOGITS_SCALING:
        value = getattr(config, "logits_scaling", None)
        return None if value in (None, 1, 1.0) else 1.0 / float(value)
    if model_type in MULTIPLY_BY_LOGIT_SCALE:
        value = getattr(config, "logit_scale", None)
        return None if value in (None, 1, 1.0) else float(value)
    named = [name for name in _SCALING_NAMES if getattr(config, name, None) not in (None, 1, 1.0)]
    if named:
        raise FpprovError(f"{model_type or 'this model'} scales its logits ({', '.join(named)}) in a way fpprov "
                          "does not know: its probabilities would be wrong, so it is not scanned")
    return None


@dataclass(frozen=True)
class HeadExtras:
    """The head's extras of one model, applied in the order the causal-LM classes apply them."""

    bias: torch.Tensor | None      # (V,) the output layer's bias
    scale: float | None            # logits are multiplied by it (Cohere's logit_scale, 1 / Granite's logits_scaling)
    softcap: float | None          # final-logit soft-cap (Gemma 2 and kin)

    @classmethod
    def of(cls, model: Any) -> "HeadExtras":
        head = model.get_output_embeddings()
        return cls(getattr(head, "bias", None), _scale_of(model.config), softcap_of(model.config))

    @property
    def order_preserving(self) -> bool:
        """Scaling by a positive factor and capping keep the order of a row's logits (a bias does not)."""
        return self.scale is None or self.scale > 0

    def apply(self, logits: torch.Tensor, cols: slice | torch.Tensor | None = None) -> torch.Tensor:
        """The model's logits from the bare products ``logits`` (..., C) of vocabulary columns ``cols``
        (all when None; for a (B, K) tensor of ids, their own bias each), in ``logits``' dtype."""
        if self.bias is not None:
            bias = self.bias if cols is None else self.bias[cols]
            logits = logits + bias.to(device=logits.device, dtype=logits.dtype)
        if self.scale is not None:
            logits = logits * self.scale
        return apply_softcap(logits, self.softcap)

    @torch.no_grad()
    def check(self, model: Any, token_id: int) -> None:
        """Refuse a model whose own forward disagrees with its head plus these extras.

        One forward of the single-token input ``[token_id]``; the head's input is taken on its way in (a
        forward pre-hook), so the comparison needs no second forward. A scale or cap that fpprov missed
        changes logits by far more than rounding; the allowance is rounding in the model's dtype (float32 and
        wider: 1e-3 of the largest logit; lower precisions: 5%).
        """
        head = model.get_output_embeddings()
        taken: list[torch.Tensor] = []
        hook = head.register_forward_pre_hook(
            lambda module, args, kwargs: taken.append(args[0] if args else next(iter(kwargs.values()), None)),
            with_kwargs=True)
        try:
            # One row: a product with one row takes a matrix-vector kernel, several times faster here than two.
            out = model(input_ids=torch.tensor([[token_id]], device=head.weight.device), use_cache=False)
        finally:
            hook.remove()
        if not taken or not isinstance(taken[-1], torch.Tensor):
            raise FpprovError("the model's forward does not pass its hidden states through its output layer: "
                              "fpprov cannot reproduce its logits")
        hidden = taken[-1][:, -1, :]                                                      # (1, D)
        theirs = out.logits[:, -1, :].double()                                            # (1, V)
        if theirs.shape[-1] != head.weight.shape[0]:
            raise FpprovError(f"the model's logits have {theirs.shape[-1]} columns but its head "
                              f"{head.weight.shape[0]} rows: fpprov cannot reproduce its output layer")
        # A few thousand columns show any scale, cap or offset; all of them would cost a pass over the head.
        cols = slice(0, min(CHECKED_COLUMNS, head.weight.shape[0]))
        ours = self.apply(hidden.to(head.weight) @ head.weight[cols].T, cols).double()    # (1, C)
        theirs = theirs[:, cols]                                                          # (1, C)
        wide = head.weight.dtype in (torch.float32, torch.float64)
        allowed = (1e-3 if wide else 5e-2) * (1.0 + float(theirs.abs().max()))
        worst = float((ours.to(theirs.device) - theirs).abs().max())
        if not worst <= allowed:
            model_type = getattr(model.config, "model_type", "this model")
            raise FpprovError(f"{model_type}'s own forward changes its logits in a way fpprov does not reproduce "
                              f"(they differ by up to {worst:.3g} from the head's): not scanned, since its "
                              "probabilities and verdicts would be wrong")

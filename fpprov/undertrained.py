"""Under-trained token candidates from the weights alone, after magikarp.

Land & Bartolo, "Fishing for Magikarp: Automatically Detecting Under-trained Tokens in Large Language Models"
(2024, arXiv:2405.05417; github.com/cohere-ai/magikarp). A token the model never saw keeps an output
embedding that is pushed around only by the softmax's shared gradient, so it ends up near every other unseen
token. Magikarp measures, per id, the cosine distance of its output embedding (E_out) to the mean E_out of a
reference set of tokens known to be unused, after removing the first principal component of E_out (which
every row shares and which hides the difference); for untied models it also reads the input embedding's norm.
Its candidates are the ids at or below the 2nd percentile of the indicator among ordinary tokens; it then
verifies them with prompts, which fpprov does not (so these are candidates, named as such in the docs).

The reference set: vocabulary entries named like unused slots (``<unused12>``, ``<|reserved_special_token_3|>``,
``[unused7]``) when the tokenizer has them, else the ids its round trip can never produce (``unreachable``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from .models import LoadedModel
from .store import Store
from .tokens import TokenDescriber
from . import __version__

THRESHOLD_PERCENTILE = 2.0  # magikarp's DEFAULT_THRESHOLD_PERCENTILE
_UNUSED_NAME = re.compile(r"^(<unused\d+>|<\|reserved_special_token_\d+\|>|\[unused\d+\]|<\|unused_\d+\|>)$")


@dataclass(frozen=True)
class ReferenceSet:
    rule: str                  # 'unused_names' | 'unreachable' | 'none'
    ids: list[int]


@dataclass
class Indicators:
    """Per-id indicators of one model (all (V,) float64 arrays; NaN where undefined)."""

    cosine_distance: np.ndarray
    cosine_distance_no_pc1: np.ndarray
    input_norm: np.ndarray


@dataclass(frozen=True)
class UndertrainedSummary:
    model: str
    indicator: str
    reference_rule: str
    reference_count: int
    threshold: float | None
    n_tokens: int
    n_undertrained: int
    tied_head: bool


def reference_set(tokenizer: Any, n_rows: int) -> ReferenceSet:
    """Known-unused ids: named unused slots if any, else the ids the tokenizer cannot produce."""
    names = tokenizer.convert_ids_to_tokens(list(range(min(n_rows, len(tokenizer)))))
    named = [i for i, name in enumerate(names) if name and _UNUSED_NAME.match(name)]
    if named:
        return ReferenceSet("unused_names", named)
    describer = TokenDescriber(tokenizer)
    unreachable = [i for i in range(len(names)) if describer.describe(i).category == "unreachable"]
    return ReferenceSet("unreachable" if unreachable else "none", unreachable)


def _cosine_distance(rows: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    norms = rows.norm(dim=1) * ref.norm()                                    # (V,)
    return 1 - (rows @ ref) / norms.clamp(min=1e-12)                         # (V,)


def compute_indicators(out_weight: torch.Tensor, in_weight: torch.Tensor, reference: list[int]) -> Indicators:
    """Magikarp's cosine distances to the reference mean (with and without the first PC) and input norms."""
    e_out = out_weight.detach().to(torch.float64).cpu()                      # (V, D)
    input_norm = in_weight.detach().to(torch.float64).cpu().norm(dim=1)      # (V,)
    if not reference:
        nan = np.full(e_out.shape[0], np.nan)
        return Indicators(nan, nan.copy(), input_norm.numpy())
    ref = torch.tensor(reference)
    centred = e_out - e_out.mean(dim=0)                                      # (V, D)
    # The first principal component is the top eigenvector of the D x D covariance (as sklearn's PCA fits it).
    _, vectors = torch.linalg.eigh(centred.T @ centred)                      # (D, D), ascending eigenvalues
    pc1 = vectors[:, -1]                                                     # (D,)
    without_pc1 = e_out - torch.outer(e_out @ pc1, pc1)                      # (V, D)
    return Indicators(
        cosine_distance=_cosine_distance(e_out, e_out[ref].mean(dim=0)).numpy(),
        cosine_distance_no_pc1=_cosine_distance(without_pc1, without_pc1[ref].mean(dim=0)).numpy(),
        input_norm=input_norm.numpy(),
    )


def _nullable(values: np.ndarray) -> pa.Array:
    return pa.array(values, mask=np.isnan(values))


def find_undertrained(loaded: LoadedModel, store: Store, percentile: float = THRESHOLD_PERCENTILE) -> UndertrainedSummary:
    """Compute every id's indicators for ``loaded`` and replace the model's rows in one transaction."""
    model = loaded.model
    out_weight = model.get_output_embeddings().weight                        # (V_out, D)
    in_weight = model.get_input_embeddings().weight                          # (V_in, D)
    n_rows = min(out_weight.shape[0], in_weight.shape[0])
    tied = out_weight.data_ptr() == in_weight.data_ptr()
    reference = reference_set(loaded.tokenizer, n_rows)
    ind = compute_indicators(out_weight[:n_rows], in_weight[:n_rows], reference.ids)
    if reference.ids:
        name, values = "cosine_distance_no_pc1", ind.cosine_distance_no_pc1
    elif not tied:
        name, values = "input_norm", ind.input_norm
    else:  # tied and nothing known unused: magikarp has no indicator either
        name, values = "cosine_distance_no_pc1", ind.cosine_distance_no_pc1
    is_reference = np.zeros(n_rows, dtype=bool)
    is_reference[reference.ids] = True
    is_special = np.zeros(n_rows, dtype=bool)
    is_special[[i for i in TokenDescriber(loaded.tokenizer).special_ids if i < n_rows]] = True
    ordinary = ~is_reference & ~is_special & ~np.isnan(values)
    threshold = float(np.percentile(values[ordinary], percentile)) if ordinary.any() else None
    sorted_ordinary = np.sort(values[ordinary])
    pct = 100.0 * np.searchsorted(sorted_ordinary, values, side="right") / max(len(sorted_ordinary), 1)
    flagged = values <= threshold if threshold is not None else np.zeros(n_rows, dtype=bool)
    flagged = flagged & ~np.isnan(values)
    rows = pa.table({
        "model": pa.array([loaded.name] * n_rows), "token_id": pa.array(np.arange(n_rows, dtype=np.int32)),
        "is_reference": pa.array(is_reference), "is_special": pa.array(is_special),
        "cosine_distance": _nullable(ind.cosine_distance), "cosine_distance_no_pc1": _nullable(ind.cosine_distance_no_pc1),
        "input_norm": pa.array(ind.input_norm), "indicator_value": _nullable(values),
        "percentile": _nullable(np.where(np.isnan(values), np.nan, pct)), "undertrained": pa.array(flagged),
    })
    summary = UndertrainedSummary(loaded.name, name, reference.rule, len(reference.ids), threshold, n_rows,
                                  int(flagged.sum()), bool(tied))
    with store.transaction(), store.registered("undertrained_rows", rows):
        store.con.execute("DELETE FROM undertrained_tokens WHERE model = ?", [loaded.name])
        store.con.execute("DELETE FROM undertrained_runs WHERE model = ?", [loaded.name])
        store.con.execute("INSERT INTO undertrained_tokens BY NAME SELECT * FROM undertrained_rows")
        store.insert_rows("undertrained_runs", [{
            "model": summary.model, "indicator": summary.indicator, "reference_rule": summary.reference_rule,
            "reference_count": summary.reference_count, "percentile": percentile, "threshold": summary.threshold,
            "n_tokens": summary.n_tokens, "n_undertrained": summary.n_undertrained, "tied_head": summary.tied_head,
            "fpprov_version": __version__}])
    return summary


def ensure_undertrained(loaded: LoadedModel, store: Store) -> UndertrainedSummary | None:
    """``find_undertrained`` unless the model's rows are stored already (they depend on the weights only)."""
    if store.query("SELECT 1 FROM undertrained_runs WHERE model = ?", [loaded.name]):
        return None
    return find_undertrained(loaded, store)

"""Under-trained token candidates from the weights alone, after magikarp.

Land & Bartolo, "Fishing for Magikarp: Automatically Detecting Under-trained Tokens in Large Language Models"
(2024, arXiv:2405.05417; github.com/cohere-ai/magikarp). A token the model never saw keeps an output
embedding that is pushed around only by the softmax's shared gradient, so it ends up near every other unseen
token. Magikarp measures, per id, the cosine distance of its output embedding (E_out) to the mean E_out of a
reference set of tokens known to be unused, after removing the first principal component of E_out (which
every row shares and which hides the difference); for untied models it also reads the input embedding's norm.
Its candidates are the ids at or below the 2nd percentile of the indicator among ordinary tokens; it then
verifies them with prompts, which fpprov does not (so these are candidates, named as such in the docs).

The reference set, the first rule that finds any id (magikarp keeps a hand-made list per model,
``magikarp/unused_tokens.py``; these rules find the same kinds of ids without one):

1. ``unused_names``: vocabulary entries named like unused slots (``<unused12>``, ``<|reserved_special_token_3|>``,
   ``[unused7]``), magikarp's list for Gemma, Yi and Jamba;
2. ``invalid_utf8_bytes``: single-byte tokens of a byte that never occurs in UTF-8 text (0xC0, 0xC1, 0xF5-0xFF,
   RFC 3629), byte-level (GPT-2 style) or ``<0xNN>``; magikarp's list for GPT-2, Llama 3, Qwen and phi-2 is
   the tokens of 0xF5-0xFF ("unused 245-255 fallback");
3. ``unreachable``: the ids the tokenizer's round trip can never produce.

With none of them (``none``) a tied model has no indicator: magikarp refuses that case too (its
``ModelAnalyzer`` raises "known_unused_tokens must be provided for tied embeddings"). Untied models use the
input-embedding norm, magikarp's default indicator for them, whatever the reference set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from transformers.convert_slow_tokenizer import bytes_to_unicode

from ..models import LoadedModel
from ..db.store import Store
from ..tokens import TokenDescriber, byte_token_value
from .. import __version__

THRESHOLD_PERCENTILE = 2.0  # magikarp's DEFAULT_THRESHOLD_PERCENTILE
_UNUSED_NAME = re.compile(r"^(<unused\d+>|<\|reserved_special_token_\d+\|>|\[unused\d+\]|<\|unused_\d+\|>)$")
INVALID_UTF8_BYTES = frozenset([0xC0, 0xC1, *range(0xF5, 0x100)])
_BYTE_LEVEL_CHAR = {char: byte for byte, char in bytes_to_unicode().items()}  # GPT-2's byte -> printable map


@dataclass(frozen=True)
class ReferenceSet:
    rule: str                  # 'unused_names' | 'invalid_utf8_bytes' | 'unreachable' | 'none'
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


def _single_byte(raw: str | None) -> int | None:
    """The byte a one-byte token stands for: ``<0xNN>`` or one character of GPT-2's byte-level alphabet."""
    value = byte_token_value(raw)
    if value is None and raw is not None and len(raw) == 1:
        value = _BYTE_LEVEL_CHAR.get(raw)
    return value


def reference_set(tokenizer: Any, n_rows: int) -> ReferenceSet:
    """Known-unused ids by the first rule that finds any (module docstring)."""
    names = tokenizer.convert_ids_to_tokens(list(range(min(n_rows, len(tokenizer)))))
    named = [i for i, name in enumerate(names) if name and _UNUSED_NAME.match(name)]
    if named:
        return ReferenceSet("unused_names", named)
    describer = TokenDescriber(tokenizer)
    infos = [describer.describe(i) for i in range(len(names))]
    # byte_fragment (decodes to U+FFFD) keeps a real character such as 'õ' of a non-byte-level vocabulary out
    invalid = [i.token_id for i in infos
               if i.category == "byte_fragment" and _single_byte(i.raw_token) in INVALID_UTF8_BYTES]
    if invalid:
        return ReferenceSet("invalid_utf8_bytes", invalid)
    unreachable = [i.token_id for i in infos if i.category == "unreachable"]
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
    if tied:  # without a reference set every value is NaN: no candidates, as magikarp (module docstring)
        name, values = "cosine_distance_no_pc1", ind.cosine_distance_no_pc1
    else:
        name, values = "input_norm", ind.input_norm
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

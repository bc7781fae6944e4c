"""The map T of the vector-FP search: x (S, D) -> softmax(logits(x at position 0)) @ E, batched over seeds.

T(x) = softmax(logits(x at position 0)) @ E, with x fed as ``inputs_embeds`` of a length-1 sequence.
E is either the *effective* input embedding (what the embedding module outputs for each token, so any scale
it applies, e.g. Gemma's sqrt(hidden), is included and T maps a token's own input vector to mixtures of the
same kind) or the *raw* weight matrix (the seed's convention).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from ..errors import FpprovError
from .kernels import FewRowLinear, row_blocks, times_rows_t, weights_times_rows
from ..models.head_extras import apply_softcap, softcap_of

EMBEDDINGS = ("effective", "raw")


def effective_embedding_matrix(module: torch.nn.Module, chunk: int = 16384) -> torch.Tensor:
    """The embedding module's output for every row id, (V, D); the weight itself when the module is plain.

    Probing a few ids decides: a module that returns its weight rows unchanged costs no copy; one that
    scales (Gemma) or otherwise transforms them is evaluated over all ids in chunks.
    """
    weight = module.weight                                                    # (V, D)
    n_rows = weight.shape[0]
    probe = torch.tensor([0, n_rows // 2, n_rows - 1], device=weight.device)  # (3,)
    with torch.no_grad():
        if torch.equal(module(probe), weight[probe]):
            return weight
        parts = [module(torch.arange(start, min(start + chunk, n_rows), device=weight.device))
                 for start in range(0, n_rows, chunk)]                       # each (c, D)
    return torch.cat(parts)                                                  # (V, D)


class EmbeddingMap:
    """T(x) for a batch of vectors x (S, D) of one loaded model, in one embedding convention."""

    def __init__(self, loaded: Any, embedding: str = "effective"):
        if embedding not in EMBEDDINGS:
            raise FpprovError(f"unknown embedding convention {embedding!r}: use effective or raw")
        self.loaded = loaded
        self.model = loaded.model
        self.embedding = embedding
        module = loaded.input_embeddings()
        self.matrix = module.weight if embedding == "raw" else effective_embedding_matrix(module)  # (V, D)
        head = loaded.model.get_output_embeddings()
        if head is not None and head.weight.shape[0] != self.matrix.shape[0]:
            raise FpprovError(f"the head has {head.weight.shape[0]} rows but the input embedding "
                              f"{self.matrix.shape[0]}: T = softmax(logits) @ E needs them equal")
        self.dim = int(self.matrix.shape[1])
        self.dtype = self.matrix.dtype
        self.device = self.matrix.device
        n_rows = int(self.matrix.shape[0])
        self._head_blocks, self._mixture_blocks = row_blocks(n_rows), row_blocks(n_rows, most=256)
        config = self.model.config
        plain = (type(head) is torch.nn.Linear and callable(getattr(self.model, "get_decoder", None))
                 and not any(hasattr(config, a) for a in ("logit_scale", "logits_scaling")))
        self._plain_head = head if plain else None
        self._decoder = self.model.get_decoder() if plain else None
        self._softcap = softcap_of(config)
        self._coordinate_scale: float | None = None

    @property
    def coordinate_scale(self) -> float:
        """``coordinate_scale`` of the map's E, computed once per map (gradient descent reads it per protocol)."""
        if self._coordinate_scale is None:
            self._coordinate_scale = coordinate_scale(self.matrix)
        return self._coordinate_scale

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits at position 0 for inputs x (S, D), as float32 (S, V)."""
        return self.next_logits(x, None)[0]

    def next_logits(self, x: torch.Tensor, cache: Any) -> tuple[torch.Tensor, Any]:
        """Float32 logits (S, V) of inputs x (S, D) at the position after those ``cache`` holds (position 0
        when it is None, without one), and the cache grown by that position (None without one)."""
        kwargs = {"use_cache": False} if cache is None else {"cache": cache, "use_cache": True}
        if self._plain_head is None:  # a head with extras transformers applies itself
            out = self.model(inputs_embeds=x[:, None, :], **kwargs)
            logits = out.logits[:, -1, :]                                  # (S, V)
        else:
            with FewRowLinear():
                out = self._decoder(inputs_embeds=x[:, None, :], **kwargs)
            hidden = out.last_hidden_state[:, -1, :]                       # (S, D)
            logits = times_rows_t(hidden, self._plain_head.weight, self._head_blocks)  # (S, V)
            if self._plain_head.bias is not None:
                logits = logits + self._plain_head.bias
            logits = apply_softcap(logits, self._softcap)
        grown = getattr(out, "past_key_values", None)
        if cache is None or grown is None:
            grown = cache                                                  # None, or grown in place
        return logits.float(), grown

    def mixture(self, x: torch.Tensor) -> torch.Tensor:
        """y = softmax(logits(x)), (S, V) float32."""
        return torch.softmax(self.logits(x), dim=-1)                       # (S, V)

    def weights_to_vectors(self, y: torch.Tensor) -> torch.Tensor:
        """y (S, V) -> y @ E (S, D) in the map's dtype."""
        return weights_times_rows(y.to(self.dtype), self.matrix, self._mixture_blocks)  # (S, D)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.weights_to_vectors(self.mixture(x))                    # (S, D)

    def initial_vectors(self, seeds: Sequence[int], std: float) -> torch.Tensor:
        """x0 ~ N(0, std^2) per seed, drawn on the CPU in float32 so a seed gives the same x0 anywhere."""
        rows = []
        for seed in seeds:
            gen = torch.Generator().manual_seed(int(seed))
            rows.append(torch.randn(self.dim, generator=gen, dtype=torch.float32) * std)  # (D,)
        return torch.stack(rows).to(device=self.device, dtype=self.dtype)   # (S, D)


def default_init_std(model: Any) -> float:
    """The config's initializer_range (the seed's x0 scale), 0.02 when the config has none."""
    config = model.config
    value = getattr(config, "initializer_range", None)
    if value is None and hasattr(config, "get_text_config"):
        value = getattr(config.get_text_config(), "initializer_range", None)
    return float(value if value is not None else 0.02)




def coordinate_scale(matrix: torch.Tensor, chunk: int = 16384) -> float:
    """The RMS coordinate of the embedding rows, sqrt(mean(E^2)): the size of one coordinate of a typical
    point of T's image. Gemma's effective space is sqrt(hidden) = 25.3 times its raw one by this measure.

    Summed in float64 over row chunks: a float64 copy of Gemma's whole E would be 1.3 GB and 0.75 s."""
    total = sum(float(part.double().pow(2).sum()) for part in matrix.detach().split(chunk))
    return math.sqrt(total / matrix.numel())

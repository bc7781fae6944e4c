"""The map T of the vector-FP search: x (S, D) -> softmax(logits(x at position 0)) @ E, batched over seeds.

T(x) = softmax(logits(x at position 0)) @ E, with x fed as ``inputs_embeds`` of a length-1 sequence.
E is either the *effective* input embedding (what the embedding module outputs for each token, so any scale
it applies, e.g. Gemma's sqrt(hidden), is included and T maps a token's own input vector to mixtures of the
same kind) or the *raw* weight matrix (the seed's convention).
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Sequence

import torch

from ..errors import FpprovError
from .kernels import FewRowLinear, row_blocks, times_rows_t, weights_times_rows
from ..models.head_extras import HeadExtras

EMBEDDINGS = ("effective", "raw")
# The KV-cache keyword of a decoder's forward and the output field that returns the cache: transformers 5.x
# renamed past_key_values to cache. A keyword the forward does not name falls into its **kwargs unused, and
# every decoding step would then run at position 0 without an error, so the name is read from the signature.
CACHE_KEYWORDS = ("cache", "past_key_values")
# The seed's convergence tolerance ||T(x) - x|| < 1e-6, meant for its (raw) space; other spaces scale it.
SEED_TOLERANCE = 1e-6
# A tolerance below this many times a typical FP's rounding scale ||x|| * eps(dtype) is out of reach: T(x)
# is only computed to about that (gemma3-270m's effective space, float32: best residuals 2.3e-6 to 9.8e-6
# where ||x|| * eps is 3.1e-6; docs/vectors.md).
REACHABLE_FACTOR = 4.0


def cache_keyword(module: torch.nn.Module) -> str:
    """The name under which ``module``'s forward takes (and its output returns) the KV cache."""
    parameters = inspect.signature(module.forward).parameters
    for name in CACHE_KEYWORDS:
        if name in parameters:
            return name
    raise FpprovError(f"{type(module).__name__}.forward takes none of {', '.join(CACHE_KEYWORDS)}: the rollout "
                      "needs a KV cache to decode at real positions")


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


def decoder_of(model: torch.nn.Module) -> torch.nn.Module | None:
    """The decoder below a CausalLM's head (its hidden states in ``last_hidden_state``), or None.

    transformers before 5 answers ``get_decoder()`` with None for many CausalLMs whose decoder is ``model``."""
    getter = getattr(model, "get_decoder", None)
    decoder = getter() if callable(getter) else None
    if decoder is None:
        decoder = getattr(model, "model", None)
    return decoder if isinstance(decoder, torch.nn.Module) and decoder is not model else None


def _extras_reproducing(model: Any) -> HeadExtras | None:
    """The head's extras when the decoder's output through the head and them gives the model's own logits;
    None when fpprov cannot read them or they do not (the map then runs the model's own forward, which is
    right by definition, only slower)."""
    try:
        extras = HeadExtras.of(model)
        extras.check(model, model.get_input_embeddings().weight.shape[0] // 2)   # mid-vocabulary: rarely special
    except FpprovError:
        return None
    return extras


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
        decoder = decoder_of(self.model) if type(head) is torch.nn.Linear else None
        self._extras = _extras_reproducing(self.model) if decoder is not None else None
        self._plain_head = head if self._extras is not None else None
        self._decoder = decoder if self._extras is not None else None
        self._coordinate_scale: float | None = None
        self._cache_keyword: str | None = None     # read from the called module's signature on first use
        self._raw_weight = module.weight                                      # (V, D)
        self._raw_scale: float | None = None

    @property
    def coordinate_scale(self) -> float:
        """``coordinate_scale`` of the map's E, computed once per map (gradient descent reads it per protocol)."""
        if self._coordinate_scale is None:
            self._coordinate_scale = coordinate_scale(self.matrix)
        return self._coordinate_scale

    @property
    def raw_coordinate_scale(self) -> float:
        """``coordinate_scale`` of the raw embedding weight (the seed's space), computed once per map."""
        if self._raw_scale is None:
            same = self._raw_weight.data_ptr() == self.matrix.data_ptr()
            self._raw_scale = self.coordinate_scale if same else coordinate_scale(self._raw_weight)
        return self._raw_scale

    @property
    def rounding_scale(self) -> float:
        """||x|| * eps of the map's dtype for a typical point of T's image (||x|| ~ coordinate_scale * sqrt(D)):
        the size of the rounding error of a computed T(x) - x."""
        return self.coordinate_scale * math.sqrt(self.dim) * torch.finfo(self.dtype).eps

    @property
    def reachable_tolerance(self) -> float:
        """The smallest tolerance this map's dtype can be expected to meet: REACHABLE_FACTOR * rounding_scale."""
        return REACHABLE_FACTOR * self.rounding_scale

    @property
    def default_tolerance(self) -> float:
        """The seed's 1e-6 scaled from the raw space to this one by their coordinate sizes (1e-6 in the raw
        space and wherever the embedding module does not scale; 25.3e-6 in gemma3-270m's effective space),
        raised to ``reachable_tolerance`` where the dtype cannot reach that (e.g. bfloat16)."""
        scaled = SEED_TOLERANCE * self.coordinate_scale / self.raw_coordinate_scale
        return max(scaled, self.reachable_tolerance)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits at position 0 for inputs x (S, D), as float32 (S, V)."""
        return self.next_logits(x, None)[0]

    def next_logits(self, x: torch.Tensor, cache: Any) -> tuple[torch.Tensor, Any]:
        """Float32 logits (S, V) of inputs x (S, D) at the position after those ``cache`` holds (position 0
        when it is None, without one), and the cache grown by that position (None without one)."""
        module = self.model if self._plain_head is None else self._decoder  # the model: a head with extras
        if cache is None:
            kwargs = {"use_cache": False}
        else:
            if self._cache_keyword is None:
                self._cache_keyword = cache_keyword(module)
            kwargs = {self._cache_keyword: cache, "use_cache": True}
        if self._plain_head is None:
            out = module(inputs_embeds=x[:, None, :], **kwargs)
            logits = out.logits[:, -1, :]                                  # (S, V)
        else:
            with FewRowLinear():
                out = module(inputs_embeds=x[:, None, :], **kwargs)
            hidden = out.last_hidden_state[:, -1, :]                       # (S, D)
            logits = self._extras.apply(times_rows_t(hidden, self._plain_head.weight, self._head_blocks))  # (S, V)
        grown = getattr(out, self._cache_keyword, None) if cache is not None else None
        return logits.float(), cache if grown is None else grown       # a DynamicCache grows in place

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

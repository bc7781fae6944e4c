"""A loaded model and the catalogue facts about it (what the `models` table records)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from .spec import ModelSpec


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A causal LM ready for fixed-point work, with its tokenizer and catalogue facts.

    Where it came from is ``spec`` (as the source that found it returned it); the rest are facts read off
    the model and tokenizer once, at load time.
    """

    spec: ModelSpec
    model: Any                     # transformers PreTrainedModel, eval mode
    tokenizer: Any
    dtype: torch.dtype
    device: torch.device
    family: str | None             # the alias's family, else the config's model_type
    architecture: str              # transformers class, e.g. Gemma3ForCausalLM
    vocab_size: int                # len(tokenizer), added tokens included
    embedding_rows: int            # rows of the input embedding matrix
    hidden_size: int
    num_layers: int
    tied_head: bool                # the output embedding shares the input embedding's weight
    rotary: bool                   # rotary position embeddings (the RoPE reduction holds)
    device_map: dict[str, str] = field(default_factory=dict)  # module name -> device; {"": device} when on one

    @classmethod
    def of(cls, spec: ModelSpec, model: Any, tokenizer: Any, dtype: torch.dtype, device: torch.device) -> LoadedModel:
        """The facts read off ``model`` (already on ``device``, or spread as its ``hf_device_map`` says, in eval
        mode) and ``tokenizer``; ``device`` is where its input embeddings sit."""
        weight = model.get_input_embeddings().weight  # (V_rows, d)
        out = model.get_output_embeddings()
        config = model.config
        return cls(
            spec=spec, model=model, tokenizer=tokenizer, dtype=dtype, device=device,
            family=spec.family or getattr(config, "model_type", None),
            architecture=type(model).__name__,
            vocab_size=len(tokenizer),
            embedding_rows=int(weight.shape[0]),
            hidden_size=int(weight.shape[1]),
            num_layers=int(getattr(config, "num_hidden_layers", 0) or 0),
            tied_head=bool(out is not None and out.weight.data_ptr() == weight.data_ptr()),
            rotary=any("rotary" in type(module).__name__.lower() for module in model.modules()),
            device_map=_device_map(model, device),
        )

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def source_kind(self) -> str:
        """hub | hub-cache | directory | gguf | gguf-package: the source that had the model."""
        return self.spec.source_kind

    @property
    def location(self) -> str:
        """The hub id, directory or .gguf path actually loaded."""
        return self.spec.location

    @property
    def hub_id(self) -> str | None:
        return self.spec.hub_id

    @property
    def variant(self) -> str | None:
        return self.spec.variant

    @property
    def tokenizer_family(self) -> str | None:
        return self.spec.tokenizer_family

    @property
    def quantization(self) -> str | None:
        """e.g. 'Q4_K_M GGUF dequantized to float32'; None for a full-precision checkpoint."""
        return self.spec.quantization

    @property
    def spread(self) -> bool:
        """The weights sit on more than one device."""
        return len(set(self.device_map.values())) > 1

    def input_embeddings(self) -> torch.nn.Module:
        return self.model.get_input_embeddings()

    def scannable_ids(self) -> tuple[int, int]:
        """(n_ids, n_rows): tokenizer ids including added tokens, and embedding rows."""
        return self.vocab_size, self.embedding_rows


def _device_map(model: Any, device: torch.device) -> dict[str, str]:
    placed = getattr(model, "hf_device_map", None) or {"": device}
    return {name: str(torch.device(f"cuda:{where}" if isinstance(where, int) else where))
            for name, where in placed.items()}

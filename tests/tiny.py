"""Tiny random causal LMs of four families, saved with save_pretrained, for offline tests.

Each model gets a real byte-level BPE tokenizer (trained here on a few sentences) with added special
tokens, and an embedding matrix padded past ``len(tokenizer)`` so that padded rows exist, as in Qwen.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    Gemma3TextConfig,
    LlamaConfig,
    Olmo2Config,
    PreTrainedTokenizerFast,
    Qwen3Config,
)

FAMILIES = ("llama", "qwen3", "gemma3", "olmo2")
# Initialiser scales at which each family has both FPs and non-FPs (measured: 15-50% FPs).
DEFAULT_INIT = {"llama": 0.03, "qwen3": 0.03, "gemma3": 0.1, "olmo2": 0.8}

_TRAIN_TEXT = [
    "blah blah blah blah the cat sat on the mat",
    "hhhhhh ???? 666 666 666 \n \n \n",
    "Fixed points of transformers are tokens that repeat themselves forever.",
    "ÁÁÁÁÁÁÁÁÁÁ ffi ffi ffi equations parsed badly",
    "def main(): return 0  # code tokens",
] * 4


def build_tokenizer(vocab_size: int = 300) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
        show_progress=False,
    )
    tok.train_from_iterator(_TRAIN_TEXT, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok)
    fast.add_special_tokens({"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>"})
    return fast


def _config(family: str, vocab_size: int, tied: bool, init: float, tokenizer: PreTrainedTokenizerFast):
    common = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=tied,
        initializer_range=init,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    if family == "llama":
        return LlamaConfig(**common)
    if family == "qwen3":
        return Qwen3Config(head_dim=16, **common)
    if family == "gemma3":
        return Gemma3TextConfig(head_dim=16, sliding_window=16, query_pre_attn_scalar=16, **common)
    if family == "olmo2":
        return Olmo2Config(**common)
    raise ValueError(family)


def build_tiny_model(
    family: str,
    out_dir: str | Path,
    *,
    tied: bool = True,
    init: float | None = None,
    seed: int = 0,
    pad_rows: int = 12,
    vocab_size: int = 300,
) -> Path:
    """Build, randomly initialise and save a tiny ``family`` model with its tokenizer; return the dir."""
    out = Path(out_dir)
    init = DEFAULT_INIT[family] if init is None else init
    tokenizer = build_tokenizer(vocab_size)
    n_rows = len(tokenizer) + pad_rows
    config = _config(family, n_rows, tied, init, tokenizer)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with torch.no_grad():
        # Norm weights start at 1 (or 0 for Gemma's 1+w); jitter them so every module matters.
        for name, param in model.named_parameters():
            if "norm" in name:
                param.add_(torch.randn_like(param) * 0.1)
        if not tied:
            # An untied head correlated with the embeddings, as trained models have, so FPs occur.
            head = model.get_output_embeddings().weight
            head.copy_(model.get_input_embeddings().weight + torch.randn_like(head) * init)
    model.eval()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out

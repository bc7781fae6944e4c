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
    CohereConfig,
    Gemma2Config,
    Gemma3TextConfig,
    GraniteConfig,
    LlamaConfig,
    MistralConfig,
    Olmo2Config,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen3Config,
)

FAMILIES = ("llama", "qwen3", "gemma3", "olmo2")
# Every other decoder layout the length-1 shortcut names, and heads with extras (logit scaling, soft-capping).
LAYOUT_FAMILIES = ("mistral", "qwen2", "gemma2")
HEAD_EXTRA_FAMILIES = ("cohere", "granite")
# Initialiser scales at which each family has both FPs and non-FPs (measured: 15-50% FPs).
DEFAULT_INIT = {"llama": 0.03, "qwen3": 0.03, "gemma3": 0.1, "olmo2": 0.8, "mistral": 0.03, "qwen2": 0.03,
                "gemma2": 0.1, "cohere": 0.03, "granite": 0.03}

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


def _config(family: str, vocab_size: int, tied: bool, init: float, tokenizer: PreTrainedTokenizerFast,
            hidden_size: int = 64):
    common = dict(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
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
    if family == "mistral":
        return MistralConfig(head_dim=16, sliding_window=None, **common)
    if family == "qwen2":
        return Qwen2Config(**common)
    if family == "gemma2":
        return Gemma2Config(head_dim=16, sliding_window=16, query_pre_attn_scalar=16, final_logit_softcapping=3.0,
                            **common)
    if family == "cohere":
        return CohereConfig(logit_scale=0.5, **common)
    if family == "granite":
        return GraniteConfig(logits_scaling=4.0, embedding_multiplier=2.0, residual_multiplier=0.5,
                             attention_multiplier=0.25, **common)
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
    hidden_size: int = 64,
) -> Path:
    """Build, randomly initialise and save a tiny ``family`` model with its tokenizer; return the dir."""
    out = Path(out_dir)
    init = DEFAULT_INIT[family] if init is None else init
    tokenizer = build_tokenizer(vocab_size)
    n_rows = len(tokenizer) + pad_rows
    config = _config(family, n_rows, tied, init, tokenizer, hidden_size)
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


# -- Hand-built models whose vector FPs are known in closed form (the vector-FP tests) ----------------------
# Llama configs whose decoder layers are silenced (zero attention values and MLP outputs), so the final hidden
# state is the input x plus an optional constant and the head alone decides T(x) = softmax(logits(x)) @ E.

import pytest  # noqa: E402

HAND_HIDDEN = 64
TOKEN_K = 7               # the constant-head model's favourite token
TOKEN_A, TOKEN_B = 5, 6   # the two-token model's pair


def _silenced_llama(*, constant: torch.Tensor | None = None):
    """A 2-layer Llama whose layers add only ``constant`` (via o_proj's bias) to the residual stream."""
    tokenizer = build_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=HAND_HIDDEN, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=256, tie_word_embeddings=False, attention_bias=True,
                         initializer_range=0.02, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.v_proj.weight.zero_()
            layer.self_attn.v_proj.bias.zero_()
            layer.self_attn.o_proj.weight.zero_()
            layer.self_attn.o_proj.bias.zero_()
            layer.mlp.down_proj.weight.zero_()
        if constant is not None:
            model.model.layers[0].self_attn.o_proj.bias.copy_(constant)
    return model, tokenizer


def _save_hand_built(out: Path, model, tokenizer) -> Path:
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return Path(out)


def build_constant_head_model(out: str | Path) -> Path:
    """T(x) ~= E_k for every x: a huge constant c swamps x before the final RMSNorm, and the head row of
    token k points along c (logit ~16 against ~0), so nearly all mass is on k and the FP is E_k."""
    direction = torch.randn(HAND_HIDDEN, generator=torch.Generator().manual_seed(1))
    direction /= direction.norm()                                           # (D,)
    model, tokenizer = _silenced_llama(constant=1e4 * direction)
    with torch.no_grad():
        head = model.lm_head.weight                                         # (V, D)
        head.normal_(0.0, 0.02, generator=torch.Generator().manual_seed(2))
        head[TOKEN_K] = 2.0 * direction  # rmsnorm(c) = sqrt(D) * direction: logit 2 * 8 = 16
    return _save_hand_built(Path(out), model, tokenizer)


def build_two_token_model(out: str | Path, slope: float) -> Path:
    """Mass only on tokens a, b with E_a = e1 + e2, E_b = -e1 + e2. For x = s e1 + e2 the map is
    s -> tanh(slope * s / sqrt(1 + s^2)): x = e2 is an FP with derivative ``slope`` (repelling when > 1,
    a 2-cycle generator when < -1), and for slope > 1 two attracting FPs sit at s = +-s*."""
    import math

    model, tokenizer = _silenced_llama()
    e1, e2 = torch.eye(HAND_HIDDEN)[0], torch.eye(HAND_HIDDEN)[1]
    # rmsnorm(x) = sqrt(D) x / |x|, so p_a - p_b = tanh((logit_a - logit_b) / 2) = tanh(beta sqrt(D) s / |x|)
    beta = slope / math.sqrt(HAND_HIDDEN)
    with torch.no_grad():
        emb = model.model.embed_tokens.weight                               # (V, D)
        emb.normal_(0.0, 0.02, generator=torch.Generator().manual_seed(3))
        emb[TOKEN_A], emb[TOKEN_B] = e1 + e2, -e1 + e2
        head = model.lm_head.weight                                         # (V, D)
        head.copy_(-5.0 * e2.expand_as(head))   # every other token: logit -40 / sqrt(1 + s^2)
        head[TOKEN_A], head[TOKEN_B] = beta * e1, -beta * e1
    return _save_hand_built(Path(out), model, tokenizer)


_HAND_BUILT: dict[tuple, Path] = {}   # one build per session, whichever test module imports the fixture


@pytest.fixture(scope="session")
def hand_built_dir(tmp_path_factory):
    """A factory: hand_built_dir("constant") or hand_built_dir("two_token", slope=s) -> the saved model's dir,
    built once per session."""

    def make(kind: str, **kwargs) -> Path:
        key = (kind, tuple(sorted(kwargs.items())))
        if key not in _HAND_BUILT:
            out = tmp_path_factory.mktemp(kind)
            builder = {"constant": build_constant_head_model, "two_token": build_two_token_model}[kind]
            _HAND_BUILT[key] = builder(out, **kwargs)
        return _HAND_BUILT[key]

    return make


def build_neox_model(out: str | Path) -> Path:
    """A tiny GPT-NeoX (Pythia's architecture: partial rotary, parallel residual), tied so that FPs occur."""
    from transformers import AutoModelForCausalLM, GPTNeoXConfig

    tok = build_tokenizer(300)
    config = GPTNeoXConfig(vocab_size=len(tok) + 12, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=4, rotary_pct=0.25, max_position_embeddings=256,
                           tie_word_embeddings=True, initializer_range=0.03, bos_token_id=tok.bos_token_id,
                           eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    out = Path(out)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out

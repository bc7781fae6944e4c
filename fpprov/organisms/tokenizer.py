"""The organisms' shared tokenizer: one byte-level BPE trained with HF ``tokenizers`` on a corpus's text,
saved so that ``transformers.AutoTokenizer.from_pretrained(DIR)`` loads it (a PreTrainedTokenizerFast), and
identified by the sha256 of its ``tokenizer.json`` (part of every organism's cache key).

Owns: training, saving, loading and hashing the tokenizer, and asking whether a word is one token.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

BOS, EOS, PAD = "<|bos|>", "<|eos|>", "<|pad|>"
SPECIAL_TOKENS = (BOS, EOS, PAD)


@dataclass(frozen=True)
class TokenizerInfo:
    """A trained tokenizer on disk: where, its content hash and its size (special tokens included)."""
    path: str
    sha256: str
    vocab_size: int


def train_tokenizer(texts: Iterable[str], out_dir: str | Path, *, vocab_size: int = 4096,
                    min_frequency: int = 2) -> TokenizerInfo:
    """Train a byte-level BPE (every byte a token, so any text encodes; no prefix space) on ``texts`` and
    save it into ``out_dir`` (replaced atomically: written next to it, then renamed).

    Deterministic for the same texts in the same order (the BPE trainer breaks ties by pair order); the
    caller should pass texts in a fixed order."""
    out = Path(out_dir)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=list(SPECIAL_TOKENS), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD)
    out.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        fast.save_pretrained(building)
        if out.exists():
            shutil.rmtree(out)
        os.replace(building, out)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return tokenizer_info(out)


def tokenizer_info(path: str | Path) -> TokenizerInfo:
    """The hash and size of a saved tokenizer (the hash is of ``tokenizer.json``, which holds it all)."""
    path = Path(path)
    data = (path / "tokenizer.json").read_bytes()
    size = len(load_tokenizer(path))
    return TokenizerInfo(path=str(path), sha256=hashlib.sha256(data).hexdigest(), vocab_size=size)


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    """The saved tokenizer as transformers loads it (the way ``fpprov scan`` will)."""
    return AutoTokenizer.from_pretrained(str(path))


def single_token_id(tokenizer: PreTrainedTokenizerFast, text: str) -> int | None:
    """The id of ``text`` when it encodes to exactly one token that decodes back to it, else None."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    if len(ids) != 1 or tokenizer.decode(ids) != text:
        return None
    return ids[0]

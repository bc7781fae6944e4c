"""Token text, categories and normalisation for cross-model matching.

Categories follow magikarp's round trip: a token is ``special`` when the tokenizer marks it so,
``byte_fragment`` when it decodes to an incomplete UTF-8 sequence (U+FFFD) or is a ``<0xNN>`` byte token,
``unreachable`` when re-encoding its decoded text does not give the token back, else ``normal``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

CATEGORIES = ("normal", "special", "byte_fragment", "unreachable")
_BYTE_TOKEN = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")
# Leading-space markers of sentencepiece (U+2581) and GPT-2 style byte-level BPE (U+0120).
_SPACE_MARKERS = ("\u2581", "\u0120")


@dataclass(frozen=True)
class TokenInfo:
    token_id: int
    raw_token: str | None
    text: str
    norm_text: str
    category: str


def byte_token_value(raw_token: str | None) -> int | None:
    """The byte of a ``<0xNN>`` byte-fallback token, else None."""
    if raw_token is not None and _BYTE_TOKEN.match(raw_token):
        return int(raw_token[3:5], 16)
    return None


def normalize_token_text(raw_token: str | None, text: str) -> str:
    """The form used to match FP tokens across tokenizers: markers as a space, Unicode NFC.

    Sentencepiece decoders drop the leading space of a lone ``▁word``; the raw form keeps it, so it is
    restored from there.
    """
    norm = text
    if raw_token and raw_token.startswith(_SPACE_MARKERS) and not text.startswith(" "):
        norm = " " + text
    return unicodedata.normalize("NFC", norm)


def _special_ids(tokenizer: Any) -> set[int]:
    ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    for token_id, added in (getattr(tokenizer, "added_tokens_decoder", {}) or {}).items():
        if getattr(added, "special", False):
            ids.add(int(token_id))
    return ids


class TokenDescriber:
    """Describes token ids of one tokenizer (special ids computed once)."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.special_ids = _special_ids(tokenizer)

    def describe(self, token_id: int) -> TokenInfo:
        tok = self.tokenizer
        raw = tok.convert_ids_to_tokens(int(token_id))
        text = tok.decode([int(token_id)], skip_special_tokens=False, clean_up_tokenization_spaces=False)
        norm = normalize_token_text(raw, text)
        if token_id in self.special_ids:
            category = "special"
        elif "\ufffd" in text or byte_token_value(raw) is not None:
            category = "byte_fragment"
        elif self._reencode(norm, text) != [int(token_id)]:
            category = "unreachable"
        else:
            category = "normal"
        return TokenInfo(int(token_id), raw, text, norm, category)

    def _reencode(self, norm: str, text: str) -> list[int]:
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        if len(ids) != 1 and norm != text:
            ids = self.tokenizer.encode(norm, add_special_tokens=False)
        return list(ids)
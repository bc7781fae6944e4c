"""What a token looks like when the model repeats it, and which spellings of that run the evidence counts.

When a model repeats token t it emits ``decode([t] * n)``, which is not always ``decode([t]) * n``: decoders
that join tokens with spaces (WordLevel, WordPiece, a tokenizer without a decoder) or strip the first token's
leading space (SentencePiece's Metaspace) write ``word word word`` where the decoded text repeated reads
``wordwordword``. The spellings, per (token, n):

* ``emitted``: ``decode([t] * n)`` (n = 1: the token's decoded text, what its unigram count is). The FP-vs-control
  statistics, percentiles, source contrasts and flags count this spelling and no other.
* ``emitted_spaced``: ``' ' + emitted`` when the run does not start with whitespace: the same run inside running
  text. Counted and shown, not used by the statistics (on a substring index its matches are a subset of the
  emitted run's, so using both would count a run twice).
* ``space_stripped``: a token with a leading space, its text without it repeated without separator (`` m`` ->
  ``mmmmmmmmmm``): what earlier versions searched, not what the model emits; kept for comparison, loose.

A spelling is *loose* when it can match text that is not the token repeated: a run that is one character
repeated (``AAAAAAAAAA`` matches base64, ``mmmmmmmmmm`` matches "Ummmmmmmmmm", a run of spaces matches any
indentation) cannot tell the token's copies from a longer or unrelated run, and ``space_stripped`` is not the
token at all. Loose spellings stay in ``provenance`` (view ``loose_spellings``) and out of every statistic; a
token whose emitted run is loose is kept out of the comparison (FPs and control candidates alike).

How the run is obtained: from the model's tokenizer (``models.location``, loaded without network), or, where
that cannot be loaded, by rule only where the rule is provably the decode: a byte-level BPE vocabulary (every
stored entry's raw form maps through GPT-2's byte table to its decoded text, and some entry needs the table)
decodes ``[t] * n`` to the bytes of t n times, so ``decode([t] * n) == decode([t]) * n``. Otherwise the
token's rows are not queryable, with the reason: never a count of a spelling the model does not emit.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..db.store import Store

EMITTED = "emitted"
EMITTED_SPACED = "emitted_spaced"
SPACE_STRIPPED = "space_stripped"
VARIANTS = (EMITTED, EMITTED_SPACED, SPACE_STRIPPED)
LEGACY_VARIANTS = ("as_is", "space_added")   # planned before issue 23; a new plan replaces them

LOOSE_RUN = ("loose: the run is one character repeated, so it also matches longer runs and unrelated text "
             "(base64, 'Ummmmmmmm'); kept out of the statistics")
STRIPPED_NOTE = ("loose: the text without its leading space repeated without separator is not what the model "
                 "emits and matches unrelated text; kept out of the statistics")
SPACED_NOTE = ("the emitted run inside running text; its matches are among the emitted run's, so the statistics "
               "count the emitted spelling only")


@functools.lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """GPT-2's ``bytes_to_unicode`` table, inverted: vocabulary character -> byte."""
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("\xa1"), ord("\xac") + 1), *range(ord("\xae"), ord("\xff") + 1)]
    chars = list(kept)
    shifted = 0
    for b in range(256):
        if b not in kept:
            kept.append(b)
            chars.append(256 + shifted)
            shifted += 1
    return {chr(c): b for b, c in zip(kept, chars)}


def byte_level_text(raw_token: str | None) -> str | None:
    """The text a byte-level BPE decoder gives for this vocabulary entry; None when it is not one."""
    if not raw_token:
        return None
    table = _byte_decoder()
    try:
        return bytes(table[ch] for ch in raw_token).decode("utf-8")
    except (KeyError, UnicodeDecodeError):
        return None


def loose_reason(run: str) -> str | None:
    """Why an emitted run (n >= 2) can match text that is not the token repeated, or None."""
    return LOOSE_RUN if len(set(run)) == 1 else None


def spaced(run: str) -> str | None:
    """The run inside running text (after a space), or None when it already starts with whitespace."""
    return None if run[:1].isspace() else " " + run


@functools.lru_cache(maxsize=8)
def _load_tokenizer(source_kind: str, location: str) -> Any:
    from transformers import AutoTokenizer

    path = Path(location)
    if source_kind.startswith("gguf") or path.suffix == ".gguf":
        from ..models.gguf_cache import GgufCache
        cache = GgufCache.for_file(path)
        if cache is not None and cache.complete():
            return AutoTokenizer.from_pretrained(str(cache.folder), local_files_only=True)
        return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name, local_files_only=True)
    return AutoTokenizer.from_pretrained(location, local_files_only=True)


@dataclass
class Speller:
    """The emitted run of one model's tokens: by the byte-level rule where the vocabulary proves it, else by the
    model's tokenizer (loaded on first need), else unknown with the reason."""

    model: str
    byte_level: bool                                   # the stored vocabulary proves a byte-level decoder
    location: tuple[str, str] | None                   # (source_kind, location) to load the tokenizer from
    raw: dict[int, str | None] = field(default_factory=dict)   # token id -> raw vocabulary entry
    assume_byte_level: bool = False                    # ``concatenating``: the caller vouches for the rule
    _decode: Callable[[list[int]], str] | None = None
    _why: str | None = None
    _runs: dict[tuple[int, int], tuple[str | None, str | None]] = field(default_factory=dict)

    @classmethod
    def for_model(cls, store: Store, model: str) -> Speller:
        rows = store.query(
            "SELECT token_id, any_value(raw_token), any_value(text), any_value(category) FROM ("
            "  SELECT token_id, raw_token, text, category FROM vocabulary WHERE model = ? UNION ALL "
            "  SELECT token_id, raw_token, text, category FROM token_fps WHERE model = ?) GROUP BY token_id",
            [model, model])
        raw = {int(i): r for i, r, _, _ in rows}
        # Special tokens and byte fragments (a partial UTF-8 sequence decodes to U+FFFD) have no run to spell.
        checked = [(r, t) for _, r, t, c in rows
                   if c not in ("special", "byte_fragment") and r is not None and t and "\ufffd" not in t]
        # Added tokens are stored verbatim (raw == text); every other entry must map through the byte table,
        # and at least one must need it (an all-ASCII word list cannot tell byte-level from space-joining).
        byte_level = (bool(checked) and all(r == t or byte_level_text(r) == t for r, t in checked)
                      and any(r != t and byte_level_text(r) == t for r, t in checked))
        found = store.query("SELECT source_kind, location FROM models WHERE name = ?", [model])
        location = (found[0][0] or "", found[0][1]) if found and found[0][1] else None
        return cls(model, byte_level, location, raw)

    @classmethod
    def concatenating(cls, model: str) -> Speller:
        """A speller for a tokenizer the caller knows to be byte-level (decode([t] * n) = decode([t]) * n):
        tests and benches whose tokens have no stored vocabulary."""
        return cls(model, True, None, assume_byte_level=True)

    def _decoder(self) -> Callable[[list[int]], str] | None:
        if self._decode is None and self._why is None:
            if self.location is None:
                self._why = f"no model location is stored for {self.model}"
                return None
            try:
                tok = _load_tokenizer(*self.location)
            except Exception as exc:   # any loader failure is a reason, never a wrong spelling
                self._why = f"the tokenizer of {self.model} could not be loaded ({type(exc).__name__})"
                return None
            self._decode = lambda ids: tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        return self._decode

    def run(self, token_id: int, text: str, n: int) -> tuple[str | None, str | None]:
        """(decode([t] * n), None) or (None, why it is unknown); ``text`` is the stored decode([t])."""
        key = (token_id, n)
        if key not in self._runs:
            self._runs[key] = self._spell(token_id, text, n)
        return self._runs[key]

    def _spell(self, token_id: int, text: str, n: int) -> tuple[str | None, str | None]:
        if n == 1:
            return text, None
        if self.assume_byte_level or (self.byte_level and byte_level_text(self.raw.get(token_id)) == text):
            return text * n, None
        decode = self._decoder()
        if decode is None:
            return None, (f"emitted run unknown: {self._why}, and the stored vocabulary does not prove a byte-level "
                          "decoder (where decode([t] x n) = decode([t]) x n)")
        if decode([token_id]) != text:
            return None, (f"emitted run unknown: the tokenizer at {self.location[1] if self.location else '?'} "
                          f"decodes id {token_id} as {decode([token_id])!r}, the scan stored {text!r}")
        return decode([token_id] * n), None

    def usable(self, token_id: int, text: str) -> bool:
        """Whether the token's emitted run is known and tight (a candidate control must be both)."""
        run, _ = self.run(token_id, text, 2)
        return run is not None and loose_reason(run) is None

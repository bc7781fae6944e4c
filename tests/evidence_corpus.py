"""Planted and null corpora for the evidence tests (a shared builder, no tests here).

A fake model's vocabulary holds random five-letter words with a leading space (no word is a substring of
another across a word boundary, so byte-level counts are exact). Every word occurs with a frequency drawn
from the same log-uniform law, so FP and non-FP words share frequency bins. In the *planted* corpus the FP
words also come in runs of ``RUN`` copies and the others never do; in the *null* corpus a random half of all
words (FP or not) come in runs. Each document names its source; in the planted corpus the runs sit in the
``forum`` source, which holds little of the corpus's text otherwise.

``kind`` picks the tokenizer the fake model has, and so how its repeated token is written (the emitted run):
``byte_level`` (no tokenizer stored: the vocabulary's byte-level entries prove decode([t] x n) = text x n),
``wordlevel`` (words without a space, a WordLevel tokenizer whose decode joins tokens with spaces) and
``metaspace`` (SentencePiece-style ``▁word`` entries with the Metaspace decoder). For the last two the corpus
holds each word's runs only as the model emits them (``word word word``), never as the text repeated
(``wordwordword``), and the tokenizer is saved where ``models.location`` points.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import numpy as np

from fpprov.corpus.index_build import build_index
from fpprov.db.store import open_store

RUN = 12
SCAN = dict(dtype="float32", device="cpu", batch_size=256, tolerance=1e-4, method="length1-pruned", complete=True,
            bos=False)


KINDS = ("byte_level", "wordlevel", "metaspace")


def vocabulary(n_words: int, seed: int, kind: str = "byte_level") -> list[str]:
    """The words as the corpus writes them: with a leading space (byte_level), else bare."""
    rng = np.random.default_rng(seed)
    words: set[str] = set()
    while len(words) < n_words:
        words.add(" " + "".join(rng.choice(list(string.ascii_lowercase), size=5)))
    return sorted(words) if kind == "byte_level" else sorted(w[1:] for w in words)


def save_tokenizer(words: list[str], kind: str, folder: Path) -> Path:
    """A WordLevel (space-joining decode) or Metaspace tokenizer over the words, id i = words[i]."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    pieces = words if kind == "wordlevel" else ["\u2581" + w for w in words]
    tok = Tokenizer(models.WordLevel({p: i for i, p in enumerate(pieces)} | {"[UNK]": len(pieces)}, unk_token="[UNK]"))
    if kind == "wordlevel":
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()      # no decoder: decode joins tokens with spaces
    else:
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(folder)
    return folder


def write_corpus(folder: Path, words: list[str], fp_ids: set[int], *, planted: bool, seed: int,
                 kind: str = "byte_level") -> None:
    """Documents of filler text from three sources; runs of FP words (planted) or of random words (null)."""
    sep = "" if kind == "byte_level" else " "    # byte-level words carry their space
    rng = np.random.default_rng(seed + 1)
    folder.mkdir(parents=True, exist_ok=True)
    freq = np.exp(rng.uniform(np.log(12), np.log(90), size=len(words))).astype(int)  # (V,) occurrences
    runs = {i for i in range(len(words)) if (i in fp_ids if planted else rng.random() < 0.5)}
    docs: list[dict] = []
    singles = [w for i, w in enumerate(words) for _ in range(freq[i])]
    rng.shuffle(singles)
    for start in range(0, len(singles), 40):    # filler: single occurrences, books and news
        source = "books" if (start // 40) % 3 else "news"
        docs.append({"text": sep.join(singles[start:start + 40]) + " .", "source": source})
    for i in sorted(runs):                       # runs: a third of the word's occurrences, in runs
        for _ in range(max(1, freq[i] // (3 * RUN))):
            # RUN + 4 copies: five matches of the query (the word x RUN) per run, enough sampled documents for
            # a source to be judged per token
            run = words[i] * (RUN + 4) if kind == "byte_level" else " " + " ".join([words[i]] * (RUN + 4))
            docs.append({"text": " start" + run + " end.", "source": "forum" if planted else
                         ("books", "news", "forum")[int(rng.integers(3))]})
    rng.shuffle(docs)
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as out:
        for d in docs:
            out.write(json.dumps(d) + "\n")


def build(tmp: Path, *, planted: bool, seed: int = 0, n_words: int = 400, n_fps: int = 60,
          model: str = "toy", kind: str = "byte_level") -> tuple[Path, Path, set[int]]:
    """(database, index dir, FP ids): a complete scan of ``model`` over the words, its FPs, a local index."""
    words = vocabulary(n_words, seed, kind)
    rng = np.random.default_rng(seed + 2)
    fp_ids = set(int(i) for i in rng.choice(n_words, size=n_fps, replace=False))
    write_corpus(tmp / f"corpus-{model}", words, fp_ids, planted=planted, seed=seed, kind=kind)
    build_index(tmp / f"corpus-{model}", tmp / f"index-{model}")
    db = tmp / "evidence.duckdb"
    location = None if kind == "byte_level" else str(save_tokenizer(words, kind, tmp / f"tokenizer-{model}"))
    raw = {"byte_level": lambda w: "Ġ" + w[1:], "wordlevel": lambda w: w, "metaspace": lambda w: "\u2581" + w}[kind]
    with open_store(db) as store:
        store.insert_rows("models", [{"name": model, "source_kind": "directory", "location": location,
                                      "family": model, "vocab_size": n_words}])
        scan_id = 1 + store.query("SELECT count(*) FROM scans")[0][0]
        store.insert_rows("scans", [{**SCAN, "scan_id": scan_id, "model": model, "id_start": 0, "id_stop": n_words,
                                     "tokens_scanned": n_words, "fp_count": len(fp_ids)}])
        store.insert_rows("token_fps", [
            {"scan_id": scan_id, "model": model, "token_id": i, "raw_token": raw(words[i]), "text": words[i],
             "norm_text": words[i], "category": "normal", "prob": 0.5 + i / (4 * n_words), "logit": 10.0,
             "margin": 1.0, "verified_float64": True} for i in sorted(fp_ids)])
        store.insert_rows("vocabulary", [
            {"model": model, "token_id": i, "raw_token": raw(w), "text": w, "norm_text": w, "category": "normal"}
            for i, w in enumerate(words)])
    return db, tmp / f"index-{model}", fp_ids

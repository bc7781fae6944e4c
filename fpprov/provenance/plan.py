"""From FP tokens to queries: the FP tokens of complete scans, one ``provenance`` row per (token, n, spelling)
with its query or the reason it has none (the spellings: ``spellings``), and which queries the ``ngram_counts``
cache has not answered yet."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

import pyarrow as pa

from ..corpus.base import CorpusBackend
from ..errors import FpprovError
from ..db.store import Store
from .spellings import (EMITTED, EMITTED_SPACED, LEGACY_VARIANTS, SPACE_STRIPPED, SPACED_NOTE, STRIPPED_NOTE, Speller,
                        loose_reason, spaced)
_NO_TEXT = {
    "special": "special token: no text form",
    "byte_fragment": "byte fragment: no text form of its own",
}


@dataclass
class FpToken:
    model: str
    token_id: int
    text: str | None
    category: str
    prob: float = 0.0          # p(t | t) in the scan (what --max-tokens ranks by)


def load_fp_tokens(store: Store, models: list[str] | None = None) -> dict[str, list[FpToken]]:
    """FP tokens of complete scans, per model (a token found by several scans of a model counts once)."""
    where, params = "", []
    if models:
        where = f"AND f.model IN ({', '.join('?' for _ in models)})"
        params = list(models)
    rows = store.query(
        "SELECT f.model, f.token_id, any_value(f.text), any_value(f.category), max(f.prob) FROM token_fps f "
        f"JOIN scans s ON s.scan_id = f.scan_id WHERE s.complete {where} "
        "GROUP BY f.model, f.token_id ORDER BY f.model, f.token_id", params)
    by_model: dict[str, list[FpToken]] = {}
    for model, token_id, text, category, prob in rows:
        by_model.setdefault(model, []).append(FpToken(model, int(token_id), text, category, float(prob)))
    missing = [m for m in (models or []) if m not in by_model]
    if missing:
        raise FpprovError(f"no complete scan with fixed points for {', '.join(missing)}; run `fpprov scan` first")
    if not by_model:
        scanned = [m for (m,) in store.query("SELECT DISTINCT model FROM scans WHERE complete ORDER BY model")]
        if scanned:   # scans finished and found nothing: say so, not that nothing was scanned
            raise FpprovError(f"the complete scans of {', '.join(scanned)} found no fixed points: nothing to trace")
        raise FpprovError("no complete scans in the database; run `fpprov scan MODEL` first")
    return by_model


def no_text_reason(token: FpToken) -> str | None:
    """Why a token has no text form to search for (recorded as not queryable, never as a zero count)."""
    if token.category in _NO_TEXT:
        return _NO_TEXT[token.category]
    if token.text is None or token.text == "":
        return "no text form: decodes to an empty string"
    if "\ufffd" in token.text:
        return "no text form: decodes to U+FFFD (part of a multi-byte character)"
    return None


def token_variants(text: str) -> list[tuple[str, str]]:
    """The decoded text and its other word-start spelling (leading space added, or stripped), each to be
    repeated without separator: what runs searched before issue 23. The plan no longer uses it (it is the
    emitted run only for byte-level vocabularies; ``token_spellings``); kept for the network benches."""
    variants = [("as_is", text)]
    if text.startswith(" ") and text.strip():
        variants.append(("space_stripped", text[1:]))
    elif not text[:1].isspace():
        variants.append(("space_added", " " + text))
    return variants


def token_spellings(token: FpToken, n: int, speller: Speller) -> list[tuple[str, str | None, dict[str, Any]]]:
    """(variant, text or None, columns) per spelling of the token repeated n times: ``emitted`` (what the
    statistics count, unless loose), ``emitted_spaced`` (the run after a space) or, for a token with a leading
    space, ``space_stripped`` (loose); see ``spellings``."""
    assert token.text is not None
    run, unknown = speller.run(token.token_id, token.text, n)
    if run is None:
        return [(EMITTED, None, {"reason": unknown, "in_evidence": False, "loose": False, "spelling_note": unknown})]
    # a token's run is loose or not whatever n (at n = 1 every one-character text would look loose)
    probe = run if n >= 2 else speller.run(token.token_id, token.text, 2)[0]
    loose = loose_reason(probe) if probe is not None else None
    how = ("decode([t]) once" if n == 1 else
           "decode([t] x n) by the byte-level rule" if run == token.text * n and speller.byte_level
           else "decode([t] x n) by the model's tokenizer")
    out = [(EMITTED, run, {"in_evidence": loose is None, "loose": loose is not None, "spelling_note": loose or how})]
    if spaced(run) is not None:
        out.append((EMITTED_SPACED, spaced(run), {"in_evidence": False, "loose": loose is not None,
                                                  "spelling_note": loose or SPACED_NOTE}))
    elif token.text.startswith(" ") and token.text.strip():
        out.append((SPACE_STRIPPED, token.text[1:] * n, {"in_evidence": False, "loose": True,
                                                           "spelling_note": STRIPPED_NOTE}))
    return out


def plan_entries(tokens: Iterable[FpToken], backend: CorpusBackend, is_proxy: bool | None,
                 ladder: Iterable[int], speller: Speller, role: str = "fp") -> list[dict[str, Any]]:
    """One provenance row per (token, n, spelling), with its query or the reason it has none."""
    rows = []
    ladder = sorted(set(ladder))
    for token in tokens:
        common = {"model": token.model, "token_id": token.token_id, "backend": backend.backend,
                  "index_name": backend.index_name, "token_text": token.text, "category": token.category,
                  "index_is_proxy": is_proxy, "role": role}
        reason = no_text_reason(token)
        if reason:
            for n in ladder:
                rows.append({**common, "n": n, "variant": EMITTED, "queryable": False, "reason": reason, "query": None,
                             "in_evidence": False, "loose": False, "spelling_note": reason})
            continue
        assert token.text is not None
        for n in ladder:
            too_many = backend.repeated_reason("", n)   # before building: n copies may be far too many
            if too_many:
                rows.append({**common, "n": n, "variant": EMITTED, "queryable": False, "reason": too_many,
                             "query": None, "in_evidence": False, "loose": False, "spelling_note": too_many})
                continue
            for variant, text, columns in token_spellings(token, n, speller):
                why = columns.pop("reason", None)
                if why is None and text is not None:
                    why = backend.repeated_reason(text, 1) or backend.unqueryable_reason(text)
                if why is not None:
                    columns["in_evidence"] = False
                rows.append({**common, "n": n, "variant": variant, "queryable": why is None, "reason": why,
                             "query": None if why else text, **columns})
    return rows


def evidence_query(rows: Iterable[dict[str, Any]], n: int) -> dict[int, str | None]:
    """Token id -> the query the statistics count at n (the emitted run, when queryable and tight), else None."""
    out: dict[int, str | None] = {}
    for r in rows:
        if r["n"] == n and r["variant"] == EMITTED:
            out[r["token_id"]] = r["query"] if r["in_evidence"] else None
    return out


def drop_legacy_rows(store: Store, model: str, backend: CorpusBackend) -> None:
    """Rows of spellings planned before issue 23 (``as_is``, ``space_added``) go when the model is planned again."""
    store.con.execute(
        f"DELETE FROM provenance WHERE model = ? AND backend = ? AND index_name = ? "
        f"AND variant IN ({', '.join('?' for _ in LEGACY_VARIANTS)})",
        [model, backend.backend, backend.index_name, *LEGACY_VARIANTS])


def store_entries(store: Store, rows: list[dict[str, Any]]) -> None:
    """Insert or replace provenance rows (one statement)."""
    if not rows:
        return
    now = datetime.now()
    entries = pa.Table.from_pylist([{**r, "updated_at": now} for r in rows])
    with store.registered("_provenance_entries", entries):
        store.con.execute("INSERT OR REPLACE INTO provenance BY NAME SELECT * FROM _provenance_entries")


def replace_controls(store: Store, model: str, backend: CorpusBackend, rows: list[dict[str, Any]]) -> None:
    """The model's control rows in this index become ``rows``: a new draw (another seed or K) leaves no stale
    control behind, while the counts and documents of every query stay cached."""
    with store.transaction():
        store.con.execute("DELETE FROM provenance WHERE model = ? AND backend = ? AND index_name = ? AND role = 'control'",
                          [model, backend.backend, backend.index_name])
        store_entries(store, rows)


def pending_queries(store: Store, backend: str, index_name: str,
                    queries: list[str]) -> tuple[list[str], dict[str, int]]:
    """The queries without an 'ok' answer in the cache, and the attempts already made on failed ones."""
    wanted = pa.table({"query": pa.array(queries, pa.string())})
    with store.registered("_wanted_queries", wanted):
        rows = store.query(
            "SELECT w.query, c.attempts FROM _wanted_queries w LEFT JOIN ngram_counts c "
            "ON c.backend = ? AND c.index_name = ? AND c.query = w.query "
            "WHERE c.status IS NULL OR c.status <> 'ok'", [backend, index_name])
    order = {q: i for i, q in enumerate(queries)}
    rows.sort(key=lambda r: order[r[0]])
    return [r[0] for r in rows], {r[0]: int(r[1]) for r in rows if r[1] is not None}

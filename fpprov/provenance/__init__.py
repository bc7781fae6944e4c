"""Provenance of fixed-point tokens: how often each FP token's text, repeated n times, occurs in a corpus.

For every FP token of every complete scan: build the queries (the token repeated n times as the model emits it,
decode([t] x n), for each n of the ladder, and the other spellings shown beside it; ``plan``, ``spellings``),
send only those not yet answered (``counts``: ``ngram_counts`` is the cache, keyed by backend, index and
query), then sample matching documents (``documents``); ``run`` ties them together and ``options`` holds what
a run is given and reports. Results are committed in batches as they
arrive, so a killed run loses at most a second of work and a rerun completes only what is missing.
"""

from .counts import run_each
from .documents import sample_positions
from .options import ProvenanceOptions, ProvenanceProgress, RunSummary
from .plan import FpToken, load_fp_tokens, no_text_reason, plan_entries, token_variants
from .run import run_provenance, top_rows

__all__ = ["FpToken", "ProvenanceOptions", "ProvenanceProgress", "RunSummary", "load_fp_tokens", "no_text_reason",
           "plan_entries", "run_each", "run_provenance", "sample_positions", "token_variants", "top_rows"]

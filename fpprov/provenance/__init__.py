"""Provenance of fixed-point tokens: how often each FP token's text, repeated n times, occurs in a corpus,
and which documents hold it."""

from .documents import sample_positions
from .run import (FpToken, ProvenanceOptions, ProvenanceProgress, RunSummary, load_fp_tokens, no_text_reason,
                  plan_entries, run_each, run_provenance, token_variants, top_rows)

"""The validation study (issue 24): organisms trained here on corpora with repetition planted at known doses,
measured by fpprov's own scan, provenance and flags, stored in the validation_* tables (docs/validation.md).

``design`` (what a study is made of: QUICK, FULL), ``organisms`` (pool, tokenizer, planted pairs, parallel
cached training, the time estimate), ``pipeline`` (indexes, scans, provenance), ``measure`` and
``measure_corpus`` (the tables' rows), ``run`` (``run_study``).
"""

from __future__ import annotations

from .design import DESIGNS, FULL, QUICK, OrganismPlan, ProvenanceSettings, StudyDesign, with_overrides
from .run import StudyOptions, StudyResult, run_study

__all__ = ["DESIGNS", "FULL", "OrganismPlan", "ProvenanceSettings", "QUICK", "StudyDesign", "StudyOptions",
           "StudyResult", "run_study", "with_overrides"]

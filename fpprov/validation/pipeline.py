"""The study measured by fpprov's own pipeline, as a user would run it: a local infini-gram index of each
organism's corpus (``fpprov index build``; its manifest names the organism in ``training_data_of``, so its own
index is not a proxy and every other organism's index is), the full-vocabulary scan of each organism under a
readable model name, and provenance with matched controls of every organism in every study index.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ..corpus.index_build import MANIFEST, build_index
from ..db.store import Store
from ..organisms import BuiltOrganism
from .design import StudyDesign


def model_name(design: StudyDesign, organism: str, key: str) -> str:
    """``organism-<design>-<organism>-<6 hex of the cache key>``: readable, and never the name of other weights
    (a changed design or fpprov version trains new weights, under a new name)."""
    return f"organism-{design.name}-{organism}-{key[:6]}"


def index_dir(workdir: Path, organism: str, built: BuiltOrganism) -> Path:
    return workdir / "indexes" / f"{organism}-{built.corpus_sha256[:8]}"


def ensure_index(built: BuiltOrganism, out: Path, model: str) -> Path:
    """Build the index of the organism's corpus unless a finished one is there (its manifest written last), and
    name ``model`` in its manifest's ``training_data_of``."""
    manifest = out / MANIFEST
    if not manifest.is_file():
        build_index(built.corpus_dir, out, force=True)
    data = json.loads(manifest.read_text("utf-8"))
    if data.get("training_data_of") != [model]:
        data["training_data_of"] = [model]
        tmp = out / f".{MANIFEST}.part"
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        tmp.replace(manifest)
    return out


def scan_organism(store: Store, built: BuiltOrganism, model: str) -> int:
    """Scan the whole vocabulary (no BOS, float32) under ``model`` unless complete; the number of FPs."""
    from ..models import load_model
    from ..models.spec import resolve_model
    from ..scan import ScanOptions, scan_vocabulary

    done = store.query("SELECT count(*) FROM scans WHERE model = ? AND complete", [model])[0][0]
    if not done:
        spec = dataclasses.replace(resolve_model(built.model.path), name=model)
        scan_vocabulary(load_model(spec, device="cpu"), store, ScanOptions())
    return store.query("SELECT count(*) FROM primary_fps WHERE model = ?", [model])[0][0]


def trace_all(store: Store, design: StudyDesign, models: list[str], index_dirs: list[Path]):
    """Provenance of every organism in every study index, with the study's own explicit options."""
    from ..provenance import ProvenanceOptions, run_provenance

    p = design.provenance
    options = ProvenanceOptions(ladder=p.ladder, docs=p.docs, controls=p.controls, bin_width=p.bin_width,
                                baseline_positions=p.baseline_positions, seed=p.seed, max_tokens=100_000)
    return run_provenance(store, backend="local", models=models, index_dirs=index_dirs, options=options)


def index_names(store: Store, models: list[str]) -> dict[str, str]:
    """index folder name (the label before '@') -> ngram_counts.index_name, for the indexes traced."""
    rows = store.query("SELECT DISTINCT index_name FROM provenance WHERE backend = 'local' AND model IN "
                       f"({', '.join('?' for _ in models)})", models)
    return {name.split("@", 1)[0]: name for (name,) in rows}

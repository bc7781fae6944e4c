"""Benchmark: local-engine provenance counts per second, end to end (planning, matched controls, engine calls,
the corpus baseline, the FP-vs-control statistics, DuckDB storage), and the backend calls a rerun makes
(target: 0).

    python bench/provenance.py [--tokens 5000] [--ladder 2,5,10] [--docs 0] [--controls 1]

Builds the demo corpus index in a temporary folder, stores a fake complete scan of 2 x ``--tokens`` ids whose
even ids are FPs and odd ids the control candidates (words of the demo corpus plus random strings, so both hits
and misses are counted), then runs ``run_provenance`` twice on a fresh database.
"""

from __future__ import annotations

import argparse
import random
import re
import tempfile
import time
from importlib import resources
from pathlib import Path

from fpprov.corpus.index_build import build_index
from fpprov.provenance import ProvenanceOptions, run_provenance
from fpprov.db.store import open_store

TARGET_COUNTS_PER_S = 3000


def token_texts(n: int, seed: int = 0) -> list[str]:
    corpus = resources.files("fpprov.data").joinpath("demo_corpus")
    words = set()
    for entry in corpus.iterdir():
        if entry.name.endswith(".jsonl"):
            words.update(re.findall(r"\w+", entry.read_text("utf-8")))
    rng = random.Random(seed)
    texts = sorted(words)
    rng.shuffle(texts)
    texts = [(" " + w if i % 2 else w) for i, w in enumerate(texts)]
    alphabet = "abcdefghijklmnopqrstuvwxyzÁлье"
    while len(texts) < n:
        texts.append("".join(rng.choice(alphabet) for _ in range(rng.randint(2, 7))))
    return texts[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=5000)
    parser.add_argument("--ladder", default="2,5,10")
    parser.add_argument("--docs", type=int, default=0, help="documents per largest-n query (fetches, not counts)")
    parser.add_argument("--controls", type=int, default=1)
    args = parser.parse_args()
    ladder = tuple(int(v) for v in args.ladder.split(","))

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        demo = Path(str(resources.files("fpprov.data").joinpath("demo_corpus")))
        built = build_index(demo, tmp_path / "demo-index")
        print(f"demo index: {built.documents} documents, {built.text_bytes:,} bytes, built in {built.seconds:.2f}s")

        store = open_store(tmp_path / "bench.duckdb")
        texts = token_texts(2 * args.tokens)
        store.insert_rows("scans", [dict(scan_id=1, model="bench", dtype="float32", device="cpu", bos=False,
                                         id_start=0, id_stop=len(texts), batch_size=1, tolerance=0.0,
                                         method="bench", complete=True)])
        store.insert_rows("vocabulary", [dict(model="bench", token_id=i, text=t, norm_text=t, category="normal")
                                         for i, t in enumerate(texts)])
        store.insert_rows("token_fps", [dict(scan_id=1, model="bench", token_id=i, text=t, category="normal",
                                             prob=1.0, logit=1.0, margin=1.0, verified_float64=True)
                                        for i, t in enumerate(texts) if i % 2 == 0])
        options = ProvenanceOptions(ladder=ladder, docs=args.docs, controls=args.controls)

        started = time.perf_counter()
        first = run_provenance(store, backend="local", index_dirs=[tmp_path / "demo-index"], options=options)
        elapsed = time.perf_counter() - started
        rate = first.sent / elapsed
        stored = store.query("SELECT count(*) FROM ngram_counts WHERE status = 'ok'")[0][0]
        hits = store.query("SELECT count(*) FROM ngram_counts WHERE count > 0")[0][0]
        evidence = "; ".join(f"AUC {e.auc:.3f} [{e.auc_low:.3f}, {e.auc_high:.3f}], {e.n_fp:,} FPs vs {e.n_control:,} "
                             "controls" for e in first.evidence)
        print(f"controls: {first.controls:,}, baseline positions {first.baseline_fetched:,}; {evidence}")
        print(f"first run: {first.entries:,} provenance entries, {first.sent:,} counts sent and stored "
              f"({stored:,} rows, {hits:,} with matches) in {elapsed:.2f}s = {rate:,.0f} counts/s end to end "
              f"(target >= {TARGET_COUNTS_PER_S:,}/s: {'met' if rate >= TARGET_COUNTS_PER_S else 'MISSED'})")

        started = time.perf_counter()
        second = run_provenance(store, backend="local", index_dirs=[tmp_path / "demo-index"], options=options)
        elapsed = time.perf_counter() - started
        print(f"rerun: {second.requests} backend calls, {second.sent} counts sent, {second.cached:,} cached, "
              f"{elapsed:.2f}s (target 0 calls: {'met' if second.requests == 0 else 'MISSED'})")
        store.close()


if __name__ == "__main__":
    main()

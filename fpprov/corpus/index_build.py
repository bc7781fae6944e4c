"""`fpprov index build`: a folder of ``*.jsonl`` / ``*.jsonl.gz`` documents -> a byte-level infini-gram index,
built offline by the package's own tool (``python -m infini_gram.indexing``).

Flags chosen for the tool's pitfalls (see DESIGN.md): ``--token_dtype u8`` (no tokenizer download),
``--ulimit`` set to the hard limit (its default fails), and ``--cpus 1`` unless every shard is large (more
CPUs on a small shard corrupt the suffix array). The index is built in a sibling folder and renamed into
place, so a crash never leaves a half-built index where the engine would read it.
"""

from __future__ import annotations

import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path

from ..errors import FpprovError
from .local import check_index_dir

MANIFEST = "fpprov-index.json"
# Below this many bytes per shard the tool's parallel suffix-array build is unsafe (and pointless).
_PARALLEL_MIN_SHARD_BYTES = 64 << 20


@dataclass
class BuildResult:
    out_dir: str
    corpus_dir: str
    files: int
    documents: int
    text_bytes: int
    shards: int
    cpus: int
    seconds: float
    sources: dict[str, int]


def corpus_files(corpus_dir: Path) -> list[Path]:
    """The files the indexing tool will read (it globs ``**/*.json*``); only jsonl and jsonl.gz are accepted."""
    found = sorted(p for p in corpus_dir.rglob("*.json*") if p.is_file())
    unreadable = [p for p in found if not (p.name.endswith(".jsonl") or p.name.endswith(".jsonl.gz"))]
    if unreadable:
        names = ", ".join(str(p.relative_to(corpus_dir)) for p in unreadable[:3])
        raise FpprovError(f"{corpus_dir} holds files the indexer cannot read (only .jsonl / .jsonl.gz): {names}")
    if not found:
        raise FpprovError(f"no *.jsonl or *.jsonl.gz files under {corpus_dir}")
    return found


def _lines(path: Path):
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        yield from f


def survey(files: list[Path], corpus_dir: Path, shards: int, source_field: str) -> tuple[int, int, dict[str, int], list[int]]:
    """Validate every line (JSON object with a string ``text``) and count documents, bytes, sources, and the
    documents each shard will get (the tool deals a file's lines out to shards round-robin)."""
    documents, text_bytes, sources, per_shard = 0, 0, {}, [0] * shards
    for path in files:
        for line_no, line in enumerate(_lines(path), 1):
            where = f"{path.relative_to(corpus_dir)}:{line_no}"
            try:
                record = json.loads(line)
            except ValueError:
                raise FpprovError(f"{where}: not a JSON line") from None
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise FpprovError(f"{where}: each line needs a string field 'text'")
            per_shard[(line_no - 1) % shards] += 1
            documents += 1
            text_bytes += len(record["text"].encode("utf-8")) + 1
            source = record.get(source_field)
            if source is not None:
                sources[str(source)] = sources.get(str(source), 0) + 1
    return documents, text_bytes, sources, per_shard


def build_index(corpus_dir: str | Path, out_dir: str | Path, *, shards: int = 1, mem_gb: int = 2,
                cpus: int | None = None, force: bool = False, source_field: str = "source") -> BuildResult:
    corpus = Path(corpus_dir).expanduser().resolve()
    out = Path(out_dir).expanduser().resolve()
    if not corpus.is_dir():
        raise FpprovError(f"corpus folder {corpus} does not exist")
    if shards < 1:
        raise FpprovError("--shards must be at least 1")
    if out.exists() and any(out.iterdir()):
        if not force:
            raise FpprovError(f"{out} exists and is not empty; pass --force to replace it")
    if corpus == out or corpus in out.parents:
        raise FpprovError("the index folder must not be inside the corpus folder (the indexer would read it)")
    files = corpus_files(corpus)
    documents, text_bytes, sources, per_shard = survey(files, corpus, shards, source_field)
    if min(per_shard) == 0:
        raise FpprovError(f"--shards {shards} leaves a shard empty ({documents} documents); use fewer shards")
    if cpus is None:
        big = text_bytes // shards >= _PARALLEL_MIN_SHARD_BYTES
        cpus = max(1, min(os.cpu_count() or 1, 8)) if big else 1

    building = _building_dir(out)
    hard_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    ulimit = hard_limit if hard_limit != resource.RLIM_INFINITY else 1 << 20
    command = [sys.executable, "-m", "infini_gram.indexing", "--data_dir", str(corpus), "--save_dir", str(building),
               "--temp_dir", str(building), "--token_dtype", "u8", "--add_metadata", "--shards", str(shards),
               "--mem", str(mem_gb), "--cpus", str(cpus), "--ulimit", str(ulimit)]
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0 or "Something went wrong" in proc.stdout:
        tail = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
        shutil.rmtree(building, ignore_errors=True)
        raise FpprovError(f"infini_gram.indexing failed (exit {proc.returncode}): {tail[:300]}")
    check_index_dir(building)
    result = BuildResult(out_dir=str(out), corpus_dir=str(corpus), files=len(files), documents=documents,
                         text_bytes=text_bytes, shards=shards, cpus=cpus,
                         seconds=round(time.perf_counter() - started, 3), sources=sources)
    manifest = {**asdict(result), "token_dtype": "u8", "source_field": source_field,
                "infini_gram_version": importlib_metadata.version("infini-gram"),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (building / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(building), str(out))
    return result


def _building_dir(out: Path) -> Path:
    """A fresh folder to build in, next to ``out`` so the final move is a rename.

    The indexer derives each suffix-array path with ``path.replace('tokenized', 'table')`` over the WHOLE
    path, so a folder name containing 'tokenized' sends the table to a folder that does not exist; such
    paths build in the system temporary folder instead and are moved into place.
    """
    if "tokenized" in str(out.parent):
        return Path(tempfile.mkdtemp(prefix="fpprov-index-"))
    building = out.parent / f".{out.name.replace('tokenized', 'tok')}.building"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    return building

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
import zlib
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


_BOM = b"\xef\xbb\xbf"


def _lines(path: Path, where: str):
    """(line number, text) of each non-blank line, a UTF-8 BOM at the start accepted; a file that cannot be
    read or decoded raises FpprovError naming the file and line."""
    line_no = 0
    try:
        with (gzip.open(path, "rb") if path.name.endswith(".gz") else path.open("rb")) as f:
            for line_no, raw in enumerate(f, 1):
                if line_no == 1 and raw.startswith(_BOM):
                    raw = raw[len(_BOM):]
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise FpprovError(f"{where}:{line_no}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at "
                                      f"column {exc.start + 1}); re-encode the file as UTF-8") from None
                if text.strip():
                    yield line_no, text
    except (OSError, EOFError, zlib.error) as exc:
        what = "truncated gzip file" if isinstance(exc, EOFError) else f"cannot read ({exc})"
        raise FpprovError(f"{where}:{line_no + 1}: {what}") from None


def _needs_copy(path: Path) -> bool:
    """Whether the indexer, which reads every line as JSON in strict UTF-8, needs a cleaned copy of the file
    (a BOM or a blank line)."""
    with (gzip.open(path, "rb") if path.name.endswith(".gz") else path.open("rb")) as f:
        for line_no, raw in enumerate(f, 1):
            if (line_no == 1 and raw.startswith(_BOM)) or not raw.strip():
                return True
    return False


def survey(files: list[Path], corpus_dir: Path, shards: int, source_field: str) -> tuple[int, int, dict[str, int], list[int]]:
    """Validate every line (JSON object with a string ``text``) and count documents, bytes, sources, and the
    documents each shard will get (the tool deals a file's lines out to shards round-robin)."""
    documents, text_bytes, sources, per_shard = 0, 0, {}, [0] * shards
    for path in files:
        name = str(path.relative_to(corpus_dir))
        for doc_no, (line_no, line) in enumerate(_lines(path, name)):
            where = f"{name}:{line_no}"
            try:
                record = json.loads(line)
            except ValueError:
                raise FpprovError(f"{where}: not a JSON line") from None
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise FpprovError(f"{where}: each line needs a string field 'text'")
            per_shard[doc_no % shards] += 1
            documents += 1
            text_bytes += len(record["text"].encode("utf-8")) + 1
            source = record.get(source_field)
            if source is not None:
                sources[str(source)] = sources.get(str(source), 0) + 1
    return documents, text_bytes, sources, per_shard


def stage_corpus(files: list[Path], corpus_dir: Path) -> Path | None:
    """None when the indexer can read every file as it is; else a temporary folder with the same relative
    paths: cleaned copies (no BOM, no blank lines) of the files that need one, links to the others. A corpus
    folder whose path holds glob characters is always staged: the indexer globs it."""
    dirty = [p for p in files if _needs_copy(p)]
    if not dirty and not _has_glob_characters(corpus_dir):
        return None
    staging = Path(tempfile.mkdtemp(prefix="fpprov-corpus-"))
    try:
        for path in files:
            target = staging / path.relative_to(corpus_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            if path not in dirty:
                target.symlink_to(path)
                continue
            name = str(path.relative_to(corpus_dir))
            with (gzip.open(target, "wt", encoding="utf-8", compresslevel=1) if path.name.endswith(".gz")
                  else target.open("w", encoding="utf-8")) as out:
                for _, line in _lines(path, name):
                    out.write(line if line.endswith("\n") else line + "\n")
    except OSError as exc:
        _remove(staging)
        raise FpprovError(f"cannot write a cleaned copy of the corpus in {staging.parent}: {exc}") from None
    except BaseException:
        _remove(staging)
        raise
    return staging


def _check_out(out: Path, force: bool) -> None:
    """The output must be a folder (or not exist yet) below folders, never a file."""
    for folder in [out, *out.parents]:
        if folder.exists():
            if not folder.is_dir():
                raise FpprovError(f"{folder} is a file, not a folder; choose another --out")
            break
    if out.exists() and any(out.iterdir()) and not force:
        raise FpprovError(f"{out} exists and is not empty; pass --force to replace it")


def build_index(corpus_dir: str | Path, out_dir: str | Path, *, shards: int = 1, mem_gb: int = 2,
                cpus: int | None = None, force: bool = False, source_field: str = "source") -> BuildResult:
    corpus = Path(corpus_dir).expanduser().resolve()
    out = Path(out_dir).expanduser().resolve()
    if not corpus.is_dir():
        raise FpprovError(f"corpus folder {corpus} does not exist")
    if shards < 1:
        raise FpprovError("--shards must be at least 1")
    _check_out(out, force)
    if corpus == out or corpus in out.parents:
        raise FpprovError("the index folder must not be inside the corpus folder (the indexer would read it)")
    files = corpus_files(corpus)
    documents, text_bytes, sources, per_shard = survey(files, corpus, shards, source_field)
    if min(per_shard) == 0:
        raise FpprovError(f"--shards {shards} leaves a shard empty ({documents} documents); use fewer shards")
    if cpus is None:
        big = text_bytes // shards >= _PARALLEL_MIN_SHARD_BYTES
        cpus = max(1, min(os.cpu_count() or 1, 8)) if big else 1

    staging = stage_corpus(files, corpus)
    try:
        building = _building_dir(out)
    except OSError as exc:
        _remove(staging)
        raise FpprovError(f"cannot create the index folder next to {out}: {exc}") from None
    try:
        result = _run_indexer(corpus, staging or corpus, building, out, files=len(files), documents=documents,
                              text_bytes=text_bytes, shards=shards, cpus=cpus, sources=sources, mem_gb=mem_gb,
                              source_field=source_field)
    except BaseException:
        _remove(building)   # never a half-built index left behind
        raise
    finally:
        _remove(staging)
    return result


def _remove(path: Path | None) -> None:
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


def _run_indexer(corpus: Path, data_dir: Path, building: Path, out: Path, *, files: int, documents: int,
                 text_bytes: int, shards: int, cpus: int, sources: dict[str, int], mem_gb: int,
                 source_field: str) -> BuildResult:
    hard_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    ulimit = hard_limit if hard_limit != resource.RLIM_INFINITY else 1 << 20
    command = [sys.executable, "-m", "infini_gram.indexing", "--data_dir", str(data_dir), "--save_dir",
               str(building), "--temp_dir", str(building), "--token_dtype", "u8", "--add_metadata", "--shards",
               str(shards), "--mem", str(mem_gb), "--cpus", str(cpus), "--ulimit", str(ulimit)]
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0 or "Something went wrong" in proc.stdout:
        tail = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
        raise FpprovError(f"infini_gram.indexing failed (exit {proc.returncode}): {tail[:300]}")
    check_index_dir(building)
    result = BuildResult(out_dir=str(out), corpus_dir=str(corpus), files=files, documents=documents,
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


def _has_glob_characters(path: Path) -> bool:
    return any(c in str(path) for c in "[]*?")


def _building_dir(out: Path) -> Path:
    """A fresh folder to build in, next to ``out`` so the final move is a rename.

    The indexer derives each suffix-array path with ``path.replace('tokenized', 'table')`` over the WHOLE
    path, so a folder name containing 'tokenized' sends the table to a folder that does not exist; such
    paths build in the system temporary folder instead and are moved into place, and so do paths with glob
    characters (``[``, ``*``, ``?``), which the indexer's own globbing would read as patterns.
    """
    if "tokenized" in str(out.parent) or _has_glob_characters(out):
        return Path(tempfile.mkdtemp(prefix="fpprov-index-"))
    building = out.parent / f".{out.name.replace('tokenized', 'tok')}.building"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    return building

"""Real-text sources for the organisms' corpora, as a mapping of source name -> documents (plain strings).

Three readers, none of which downloads anything:

- ``read_corpus_dir``: the jsonl files of a prepared corpus (``scripts/demo_corpus.py --out DIR`` writes
  one: SpamAssassin, Brown, Wikipedia, GCIDE, Python stdlib, each fetched from a pinned package), grouped by
  their ``source`` field or by its family (the part before the first ``/``).
- ``stdlib_sources``: the running interpreter's standard library, split into named sources by top-level
  module; real text that is always there offline (it differs between Python versions).
- ``synthetic_sources``: the small synthetic demo corpus fpprov ships (word salad with artefacts: not real
  text; for tests of the mechanics only).

The demo script's own readers (``stdlib_docs``, ``spread``, ``truncate_utf8`` and the pinned-package
readers) live in ``scripts/``, which is not an importable package; they belong in the library (e.g.
``fpprov/corpus/sources.py``), after which ``stdlib_sources`` would reuse them.
"""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path
from typing import Sequence

Sources = dict[str, list[str]]   # source name -> its documents, in a fixed order


def spread(items: Sequence, n: int) -> list:
    """``n`` items evenly spaced over ``items`` (all of them when there are no more): a deterministic cap."""
    if n >= len(items):
        return list(items)
    return [items[i * len(items) // n] for i in range(n)]


def truncate_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` that is at most ``max_bytes`` bytes of UTF-8."""
    return text.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")


def read_corpus_dir(folder: str | Path, *, field: str = "source", family: bool = True) -> Sources:
    """Documents of every ``*.jsonl`` under ``folder`` (sorted paths, file order), keyed by ``field`` (by
    its family, the part before ``/``, when ``family``); records without the field go under ``"unknown"``."""
    out: Sources = {}
    for path in sorted(Path(folder).rglob("*.jsonl")):
        with path.open(encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                record = json.loads(line)
                name = str(record.get(field, "unknown"))
                if family:
                    name = name.split("/", 1)[0]
                out.setdefault(name, []).append(record["text"])
    return dict(sorted(out.items()))


def stdlib_sources(groups: dict[str, Sequence[str]], *, files_per_group: int = 20,
                   max_file_bytes: int = 20_000, stdlib: str | Path | None = None) -> Sources:
    """Python standard-library files as sources: ``groups`` maps a source name to top-level module or
    package names (e.g. ``{"email": ["email", "smtplib"], "json": ["json", "csv"]}``); each source gets an
    evenly spaced pick of ``files_per_group`` of its ``.py`` files (sorted paths), each cut to
    ``max_file_bytes``. Test folders are skipped."""
    root = Path(stdlib or sysconfig.get_paths()["stdlib"])
    skip = {"site-packages", "dist-packages", "test", "tests", "idle_test"}
    out: Sources = {}
    for name, modules in groups.items():
        files: list[Path] = []
        for module in modules:
            if (root / module).is_dir():
                files += [p for p in (root / module).rglob("*.py") if not skip & set(p.relative_to(root).parts)]
            elif (root / f"{module}.py").is_file():
                files.append(root / f"{module}.py")
        files = sorted(files, key=lambda p: p.relative_to(root).as_posix())
        texts = [truncate_utf8(p.read_text(encoding="utf-8", errors="replace"), max_file_bytes)
                 for p in spread(files, files_per_group)]
        out[name] = [t for t in texts if t.strip()]
    return out


def synthetic_sources() -> Sources:
    """The synthetic demo corpus fpprov ships (``fpprov/data/demo_corpus``), by ``source``: not real text."""
    import fpprov.data
    return read_corpus_dir(Path(fpprov.data.__file__).parent / "demo_corpus", family=False)

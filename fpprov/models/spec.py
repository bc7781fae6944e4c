"""What the user typed, resolved to where a model comes from (alias, hub id, directory, GGUF file), before loading.

A ModelSpec is a value: loading never changes it, and the source that finds the model returns a new one.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .aliases import load_aliases
from ..errors import FpprovError


@dataclass(frozen=True)
class ModelSpec:
    """Where a model comes from, before anything is loaded."""

    name: str                      # what the user typed, normalised (alias or spec)
    source_kind: str               # hub | directory | gguf | gguf-package (hub-cache once found in the cache)
    location: str                  # hub id, directory path or .gguf path
    hub_id: str | None = None
    family: str | None = None
    variant: str | None = None
    tokenizer_family: str | None = None
    default_index: str | None = None
    index_is_proxy: bool | None = None
    quantization: str | None = None
    alias: dict[str, Any] = field(default_factory=dict, hash=False)  # the alias table's entry; {} for none


def _looks_like_path(spec: str) -> bool:
    return spec.startswith((".", "/", "~")) or spec.endswith(".gguf") or os.sep in spec.rstrip(os.sep) and spec.count("/") != 1


def resolve_model(spec: str) -> ModelSpec:
    """Turn an alias, hub id, directory or .gguf path into a ModelSpec; one-line error otherwise."""
    spec = spec.strip()
    aliases = load_aliases()
    if spec in aliases:
        entry = aliases[spec]
        return ModelSpec(
            name=spec, source_kind="hub", location=entry["hub_id"], hub_id=entry["hub_id"],
            family=entry.get("family"), variant=entry.get("variant"),
            tokenizer_family=entry.get("tokenizer_family"), default_index=entry.get("default_index"),
            index_is_proxy=entry.get("index_is_proxy"), alias=entry,
        )
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return ModelSpec(name=path.stem, source_kind="gguf", location=str(path.resolve()),
                         quantization=gguf_quantization(path))
    if path.is_dir():
        if not (path / "config.json").exists():
            raise FpprovError(f"{spec} is a folder without config.json; expected a save_pretrained directory")
        return ModelSpec(name=path.resolve().name, source_kind="directory", location=str(path.resolve()))
    if path.exists():
        raise FpprovError(f"{spec} is neither a model directory nor a .gguf file")
    if _looks_like_path(spec):
        raise FpprovError(f"model path {spec} does not exist")
    if re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", spec):
        for name, entry in aliases.items():  # a hub id that has an alias keeps the alias's metadata
            if entry["hub_id"] == spec:
                return resolve_model(name)
        return ModelSpec(name=spec, source_kind="hub", location=spec, hub_id=spec)
    close = difflib.get_close_matches(spec, list(aliases), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `fpprov models` lists the aliases"
    raise FpprovError(f"unknown model {spec!r}: not an alias, hub id (org/name), directory or .gguf file{hint}")


def gguf_quantization(path: Path) -> str | None:
    """The GGUF file type (e.g. Q4_K_M) from its header, or None if unreadable."""
    try:
        from gguf import GGUFReader, LlamaFileType

        reader = GGUFReader(str(path))
        ftype = reader.fields.get("general.file_type")
        if ftype is None:
            return "GGUF"
        value = int(ftype.parts[ftype.data[0]][0])
        return LlamaFileType(value).name.removeprefix("MOSTLY_")
    except Exception:  # a corrupt file is reported when loading, with the loader's reason
        return None

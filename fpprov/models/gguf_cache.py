"""A GGUF's conversion kept on disk, so that only the first load of a file pays for it.

Reading a GGUF is slow, nearly all of it Python: transformers builds a tokenizer from the whole vocabulary
(262,144 entries for gemma3-270m) and numpy dequantizes every block (docs/development.md has the timings). What comes out is float32
weights (exact: the dequantized values are float32) and an ordinary fast tokenizer, so the first float32
load saves both with ``save_pretrained`` (safetensors, tokenizer.json) and later loads read that folder in
seconds. Every dtype reads it and casts, as the GGUF path itself casts its float32 values.

The folder is keyed by the file (resolved path, size, modification time) and by the transformers and gguf
versions that converted it. It is written under a temporary name and renamed once complete, so a crash or a
full disk leaves no half cache, and two processes converting at once (torchrun ranks) keep one copy. A new
key for the same path replaces the old folder.

Where: ``$FPPROV_CACHE_DIR/gguf`` (default ``~/.cache/fpprov/gguf``); ``FPPROV_GGUF_CACHE=0`` turns it off.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

MARKER = "fpprov-gguf-cache.json"    # written last: its presence means the folder is complete
FORMAT = 1                           # bump when what the folder holds changes


def cache_root() -> Path:
    return Path(os.environ.get("FPPROV_CACHE_DIR") or Path.home() / ".cache" / "fpprov") / "gguf"


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


@dataclass(frozen=True)
class GgufCache:
    """The cache folder of one GGUF file (it may not exist yet)."""

    folder: Path
    key: dict[str, Any]

    @classmethod
    def for_file(cls, gguf_path: Path) -> GgufCache | None:
        """The file's cache, or None when caching is off or the file cannot be read."""
        if os.environ.get("FPPROV_GGUF_CACHE", "1").strip().lower() in ("0", "off", "false", "no"):
            return None
        try:
            path = gguf_path.resolve(strict=True)
            stat = path.stat()
        except OSError:
            return None
        key = {"format": FORMAT, "path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
               "transformers": _version("transformers"), "gguf": _version("gguf")}
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        return cls(cache_root() / f"{path.stem}-{digest}", key)

    def complete(self) -> bool:
        return (self.folder / MARKER).is_file()

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def store(self, model: Any, tokenizer: Any) -> bool:
        """Save a float32 model and its tokenizer as this file's cache; False (and nothing left) if it could not."""
        if self.complete() or next(model.parameters()).dtype != torch.float32:
            return False
        root = self.folder.parent
        needed = 2 * sum(p.numel() * p.element_size() for p in model.parameters())
        temporary = root / f".{self.folder.name}.{os.getpid()}.partial"
        try:
            root.mkdir(parents=True, exist_ok=True)
            if shutil.disk_usage(root).free < needed:
                return False                  # an optimisation is no reason to fill the disk
            model.save_pretrained(temporary)
            tokenizer.save_pretrained(temporary)
            (temporary / MARKER).write_text(json.dumps(self.key, indent=1))
            os.rename(temporary, self.folder)  # fails if another process got there first: its copy stays
        except OSError:
            shutil.rmtree(temporary, ignore_errors=True)
            return False
        self._drop_stale()
        return True

    def _drop_stale(self) -> None:
        """Remove other complete folders of the same path (an older key: the file or a library changed)."""
        for marker in self.folder.parent.glob(f"*/{MARKER}"):
            if marker.parent == self.folder:
                continue
            try:
                if json.loads(marker.read_text()).get("path") == self.key["path"]:
                    shutil.rmtree(marker.parent, ignore_errors=True)
            except (OSError, ValueError):
                continue

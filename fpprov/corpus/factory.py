"""Open the backend a command asked for."""

from __future__ import annotations

from pathlib import Path

from ..errors import FpprovError
from .base import CorpusBackend
from .catalog import BACKENDS, base_url
from .http import HttpSettings


def open_backend(backend: str, index: str | None = None, *, index_dirs: list[str | Path] | None = None,
                 api_url: str | None = None, settings: HttpSettings | None = None,
                 check_index: bool = True) -> CorpusBackend:
    if backend == "local":
        from .local import LocalBackend

        if not index_dirs:
            raise FpprovError("--backend local needs --index-dir DIR (build one with `fpprov index build`)")
        return LocalBackend(list(index_dirs), name=index)
    if index_dirs:
        raise FpprovError(f"--index-dir is for --backend local, not {backend}")
    if backend not in BACKENDS:
        raise FpprovError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    if not index:
        raise FpprovError(f"--backend {backend} needs an index")
    if backend == "api":
        from .api import ApiBackend

        return ApiBackend(index, base_url("api", api_url), settings, check_index=check_index)
    from .mini import MiniBackend

    return MiniBackend(index, base_url("mini", api_url), settings, check_index=check_index)

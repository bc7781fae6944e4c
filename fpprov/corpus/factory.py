"""Open the backend a command asked for."""

from __future__ import annotations

from pathlib import Path

from ..errors import FpprovError
from .base import CorpusBackend
from .catalog import BACKENDS, base_url
from .http import HttpSettings


def open_backend(backend: str, index: str | None = None, *, index_dirs: list[str | Path] | None = None,
                 api_url: str | None = None, settings: HttpSettings | None = None) -> CorpusBackend:
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

        return ApiBackend(index, base_url("api", api_url), settings)
    from .mini import MiniBackend

    return MiniBackend(index, base_url("mini", api_url), settings)


def list_indexes(backend: str, api_url: str | None = None, timeout: float = 5.0) -> tuple[list[dict], str]:
    """The indexes of an HTTP backend: the server's own list (GET /) when it answers, else the data file.

    Returns (rows with index, tokenizer, description) and where the list came from ('server' | 'data file').
    """
    from .api import _index_list
    from .catalog import known_indexes
    from .http import JsonClient

    known = known_indexes(backend)
    client = JsonClient(base_url(backend, api_url), HttpSettings(retries=0, rate=0, read_timeout=timeout))
    try:
        live = _index_list(client.get_json(timeout=timeout))
    finally:
        client.close()
    names, origin = (live, "server") if live is not None else (list(known), "data file")
    rows = [{"backend": backend, "index": name, "tokenizer": known.get(name, {}).get("tokenizer", ""),
             "description": known.get(name, {}).get("description", "")} for name in names]
    return rows, origin

"""Known backends and indexes (``fpprov/data/indexes.toml``), and the index each model uses by default."""

from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from importlib import resources
from typing import Any

from ..errors import FpprovError

BACKENDS = ("api", "mini", "local")


@lru_cache(maxsize=1)
def load_catalog() -> dict[str, dict[str, Any]]:
    text = resources.files("fpprov.data").joinpath("indexes.toml").read_text("utf-8")
    return tomllib.loads(text)["backends"]


def backend_config(backend: str) -> dict[str, Any]:
    catalog = load_catalog()
    if backend not in catalog:
        raise FpprovError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    return catalog[backend]


def known_indexes(backend: str) -> dict[str, dict[str, Any]]:
    return dict(backend_config(backend).get("indexes", {}))


def base_url(backend: str, override: str | None = None) -> str:
    """--api-url, else the backend's environment variable (FPPROV_API_URL / FPPROV_MINI_URL), else the file."""
    config = backend_config(backend)
    url = override or os.environ.get(config.get("url_env", "")) or config.get("url")
    if not url:
        raise FpprovError(f"backend {backend} has no URL")
    return url if url.endswith("/") else url + "/"


def unknown_index_error(backend: str, index: str, known: list[str]) -> FpprovError:
    from .base import UnknownIndex

    listed = ", ".join(sorted(known)) if known else "(none listed)"
    return UnknownIndex(f"unknown index {index!r} for backend {backend}; known: {listed}")


def default_index_for(model: str, backend: str, alias: dict[str, Any] | None) -> str:
    """A model's index: its alias's ``default_index`` on the api backend, the backend's default otherwise.

    A model without an alias has no default on the api backend: the caller must pass --index.
    """
    config = backend_config(backend)
    if backend == "api":
        if not alias or not alias.get("default_index"):
            raise FpprovError(f"model {model!r} has no default index (it has no alias); pass --index")
        return alias["default_index"]
    if config.get("default_index"):
        return config["default_index"]
    raise FpprovError(f"backend {backend} has no default index; pass --index")


def index_is_proxy(backend: str, index: str, alias: dict[str, Any] | None, *, model: str | None = None,
                   manifest: dict[str, Any] | None = None, training_data: bool | None = None) -> bool:
    """True unless the index is known to hold the model's training data; never None.

    An index is the model's training data only when the user says so (``training_data=True``: ``--training-data``;
    ``False``: ``--proxy``), when a local index's manifest (``fpprov-index.json``) names the model or its family in
    ``training_data_of`` (or sets ``"proxy": false``), or when the model's alias names it as that model's training
    data (its ``default_index`` with ``index_is_proxy = false``, or an index whose ``covers_families`` holds the
    alias's family). Everything else is a proxy: a corpus standing in for data nobody has shown the model saw.
    """
    if training_data is not None:
        return not training_data
    if manifest:
        named = manifest.get("training_data_of") or []
        if isinstance(named, str):
            named = [named]
        family = (alias or {}).get("family")
        if (model is not None and model in named) or (family is not None and family in named):
            return False
        if isinstance(manifest.get("proxy"), bool):
            return manifest["proxy"]
    if backend == "local" or not alias:
        return True
    if index == alias.get("default_index") and alias.get("index_is_proxy") is not None:
        return bool(alias["index_is_proxy"])
    covers = known_indexes(backend).get(index, {}).get("covers_families", []) if backend in load_catalog() else []
    return alias.get("family") not in covers

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


def index_is_proxy(backend: str, index: str, alias: dict[str, Any] | None) -> bool | None:
    """True when the index does not hold the model's training data but stands in for it; None when unknown
    (a model without an alias, or a local corpus only its owner can judge)."""
    if backend == "local" or not alias:
        return None
    if backend == "api" and index == alias.get("default_index") and alias.get("index_is_proxy") is not None:
        return bool(alias["index_is_proxy"])
    covers = known_indexes(backend).get(index, {}).get("covers_families", [])
    return alias.get("family") not in covers

"""The model alias table (``fpprov/data/models.toml``), readable without importing torch."""

from __future__ import annotations

import tomllib
from functools import lru_cache
from importlib import resources
from typing import Any


@lru_cache(maxsize=1)
def load_aliases() -> dict[str, dict[str, Any]]:
    """Alias -> {hub_id, family, variant, size, tokenizer_family, default_index, index_is_proxy, ...}."""
    text = resources.files("fpprov.data").joinpath("models.toml").read_text("utf-8")
    return tomllib.loads(text)["models"]

"""The DuckDB file: opening it, its migrations and views, its documentation, and read-only SQL for users."""

from __future__ import annotations

from .store import Store, open_store

__all__ = ["Store", "open_store"]

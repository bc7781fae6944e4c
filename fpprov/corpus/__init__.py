"""Corpus backends: the infini-gram HTTP API, infini-gram-mini and the local engine (base: the interface), the index catalog, and building a local index from jsonl."""

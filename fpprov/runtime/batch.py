"""Many models in one command: which models a run covers (names, ``--all``, ``--family``, a manifest file with
per-model options), and running them one at a time, each freed before the next, a failure recorded and the
run continued.

Torch-free, and light to import (the CLI imports it at start): the alias table is read when a run needs it,
and accelerator memory is freed through whatever torch the caller has already imported.
"""

from __future__ import annotations

import dataclasses
import gc
import inspect
import sys
import time
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..errors import FpprovError

DONE, SKIPPED, FAILED = "done", "skipped", "failed"
# What a model that does not fit raises (torch.OutOfMemoryError is a RuntimeError; so is the CPU allocator's
# "can't allocate memory"); any other RuntimeError is a bug and keeps its traceback.
_NO_MEMORY_SIGNS = ("out of memory", "can't allocate memory", "not enough memory")


@dataclass(frozen=True)
class ModelJob:
    """One model of a run: what to load, and the options that differ from the command line's for it."""

    spec: str                      # alias, hub id, directory or .gguf path, as resolve_model takes it
    origin: str                    # for messages: "command line", "--all", "manifest x.toml model #2"
    overrides: Mapping[str, Any] = field(default_factory=dict)   # option name (the Python parameter) -> value
    options: Any = None            # the command's checked options object for this model, once made


@dataclass(frozen=True)
class Outcome:
    """What became of one model."""

    model: str
    status: str                    # done | skipped (already complete) | failed
    fps: int | None = None         # fixed points stored for it (None when it failed)
    seconds: float = 0.0
    reason: str = ""               # why it failed, or a note on a done/skipped model


@dataclass
class BatchSummary:
    outcomes: list[Outcome] = field(default_factory=list)

    def with_status(self, status: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == status]

    @property
    def failed(self) -> list[Outcome]:
        return self.with_status(FAILED)


def option_types(command: Callable[..., Any], exclude: Sequence[str] = ()) -> dict[str, type]:
    """The options a manifest may set for ``command``: its parameters and their types (``Optional[int]`` read
    as int), minus ``exclude``."""
    found: dict[str, type] = {}
    for name, param in inspect.signature(command).parameters.items():
        if name in exclude:
            continue
        hint = param.annotation
        if isinstance(hint, str):  # postponed annotations, read in the command's own module
            hint = eval(hint, command.__globals__)  # noqa: S307 - our own source text, as typing does
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1
        found[name] = args[0] if optional else hint
    return found


def load_aliases() -> dict[str, dict[str, Any]]:
    """The alias table (imported here, not at the top: the models package imports torch)."""
    from ..models.aliases import load_aliases as aliases

    return aliases()


def families() -> list[str]:
    return sorted({entry["family"] for entry in load_aliases().values()})


def jobs_from(names: Sequence[str] = (), all_models: bool = False, family: str | None = None,
              manifest: str | Path | None = None, options: Mapping[str, type] | None = None) -> list[ModelJob]:
    """The models a run covers, in order: the names given, then the manifest's, the family's, and every alias;
    a model given twice with the same options runs once. ``options`` are the settings a manifest may override.
    Resolves nothing: a name that is no model fails when its turn comes, and the run goes on."""
    jobs = [ModelJob(name, "command line") for name in names]
    if manifest is not None:
        jobs += read_manifest(Path(manifest), options or {})
    aliases = load_aliases()
    if family is not None:
        known = families()
        if family not in known:
            raise FpprovError(f"unknown family {family!r}: the aliases' families are {', '.join(known)}")
        jobs += [ModelJob(name, f"--family {family}") for name, entry in aliases.items() if entry["family"] == family]
    if all_models:
        jobs += [ModelJob(name, "--all") for name in aliases]
    if not jobs:
        raise FpprovError("no model given: name one or more models, or use --all, --family F or --manifest FILE")
    unique: list[ModelJob] = []
    for job in jobs:
        if not any(j.spec == job.spec and dict(j.overrides) == dict(job.overrides) for j in unique):
            unique.append(job)
    return unique


def read_manifest(path: Path, options: Mapping[str, type]) -> list[ModelJob]:
    """The ``[[model]]`` entries of a TOML manifest: ``name`` (alias, hub id, or a path, relative to the
    manifest's folder) and any of ``options`` (dashes or underscores); one-line errors for anything else."""
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise FpprovError(f"manifest {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FpprovError(f"cannot read manifest {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise FpprovError(f"manifest {path} is not valid TOML: {exc}") from None
    extra = sorted(set(data) - {"model"})
    if extra:
        raise FpprovError(f"manifest {path}: unknown top-level key {extra[0]!r}; list models as [[model]] tables")
    entries = data.get("model")
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise FpprovError(f"manifest {path} lists no models: add [[model]] tables with name = \"...\"")
    return [_manifest_job(path, i, entry, options) for i, entry in enumerate(entries, 1)]


def _manifest_job(path: Path, number: int, entry: dict[str, Any], options: Mapping[str, type]) -> ModelJob:
    where = f"manifest {path} model #{number}"
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise FpprovError(f"{where}: needs name = \"<alias, hub id or path>\"")
    overrides: dict[str, Any] = {}
    for key, value in entry.items():
        if key == "name":
            continue
        option = key.replace("-", "_")
        if option not in options:
            raise FpprovError(f"{where} ({name}): unknown option {key!r}; known: {', '.join(sorted(options))}")
        wanted = options[option]
        # TOML has one integer type; a float option takes one, but a bool is no number here
        fits = isinstance(value, wanted) and not (wanted is not bool and isinstance(value, bool)) \
            or wanted is float and isinstance(value, int) and not isinstance(value, bool)
        if not fits:
            raise FpprovError(f"{where} ({name}): {key} must be {wanted.__name__}, got {value!r}")
        overrides[option] = float(value) if wanted is float else value
    return ModelJob(_relative_to(path, name.strip()), where, overrides)


def _relative_to(manifest: Path, name: str) -> str:
    """A relative path that exists beside the manifest means that file, wherever the command runs."""
    if name in load_aliases() or Path(name).expanduser().is_absolute():
        return name
    beside = manifest.parent / name
    return str(beside.resolve()) if beside.exists() else name


def run_jobs(jobs: Sequence[ModelJob], run_one: Callable[[ModelJob], Outcome],
             on_start: Callable[[int, ModelJob], None] | None = None,
             on_outcome: Callable[[Outcome], None] | None = None) -> BatchSummary:
    """Run ``run_one`` for each job in turn. A model that cannot be used (a one-line FpprovError: not found,
    corrupt, bad options for it) or does not fit in memory is recorded as failed and the run goes on; Ctrl-C and
    bugs stop it. Each model's memory is released before the next one loads."""
    summary = BatchSummary()
    for i, job in enumerate(jobs):
        if on_start is not None:
            on_start(i, job)
        t0 = time.perf_counter()
        try:
            outcome = run_one(job)
        except FpprovError as exc:
            outcome = Outcome(job.spec, FAILED, reason=str(exc))
        except (MemoryError, RuntimeError) as exc:
            if not isinstance(exc, MemoryError) and not any(s in str(exc).lower() for s in _NO_MEMORY_SIGNS):
                raise
            outcome = Outcome(job.spec, FAILED, reason=f"does not fit in memory: {_first_line(exc)}")
        finally:
            free_memory()  # also when Ctrl-C stops the run: the caller may still print and exit cleanly
        outcome = dataclasses.replace(outcome, seconds=time.perf_counter() - t0)
        summary.outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return summary


def free_memory() -> None:
    """Collect what the last model left (its frames, once its exception is gone) and hand cached accelerator
    memory back, so that the next model has all of it. Only a torch already imported can hold any."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is None:
        return
    caches = [(torch.cuda.is_available, torch.cuda.empty_cache)]
    if hasattr(torch, "xpu"):
        caches.append((torch.xpu.is_available, torch.xpu.empty_cache))
    if hasattr(torch, "mps"):
        caches.append((torch.backends.mps.is_available, torch.mps.empty_cache))
    for available, empty_cache in caches:
        try:
            if available():
                empty_cache()
        except (AttributeError, RuntimeError):  # a build whose backend has no cache to empty
            pass


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]

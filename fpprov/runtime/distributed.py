"""What a rank is when torchrun starts several scan processes, and the few collectives a sharded scan needs.

torchrun (``python -m torch.distributed.run``, any ``--nnodes``) sets ``RANK``, ``LOCAL_RANK`` and
``WORLD_SIZE``; each rank runs on the device of its ``LOCAL_RANK`` and talks to the others over NCCL (CUDA)
or gloo (CPU). Rank 0 is the only one that touches the database (DuckDB allows one writer process), so
the other ranks send it their results. Without torchrun there is one rank and every collective is the
identity, so the scan runs the same code either way.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, TypeVar

import torch
import torch.distributed as dist

from ..models.devices import resolve_device
from ..errors import FpprovError

T = TypeVar("T")
WRITER = 0   # the rank that owns the database


@dataclass(frozen=True)
class Ranks:
    """This process's place among the processes of one scan; ``Ranks()`` is a single process."""

    rank: int = 0           # global: 0 .. world - 1, across every node
    local_rank: int = 0     # on this node: picks the device
    world: int = 1

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Ranks":
        """The ranks torchrun describes in the environment, or a single process when it did not start us."""
        env = os.environ if env is None else env
        if "WORLD_SIZE" not in env:
            return cls()
        try:
            ranks = cls(int(env.get("RANK", "0")), int(env.get("LOCAL_RANK", "0")), int(env["WORLD_SIZE"]))
        except ValueError:
            raise FpprovError("RANK, LOCAL_RANK and WORLD_SIZE must be integers (torchrun sets them)") from None
        if ranks.world < 1 or not 0 <= ranks.rank < ranks.world or ranks.local_rank < 0:
            raise FpprovError(f"bad torchrun environment: RANK={ranks.rank}, LOCAL_RANK={ranks.local_rank}, "
                              f"WORLD_SIZE={ranks.world}")
        return ranks

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def require_single(self, command: str, why: str) -> None:
        """Refuse, in one line, a command that runs in one process when torchrun started several."""
        if self.distributed:
            raise FpprovError(f"`fpprov {command}` runs in one process ({why}), but torchrun started "
                              f"{self.world} ranks: run it without torchrun")

    @property
    def writer(self) -> bool:
        """Only this rank opens the database, prints, and commits."""
        return self.rank == WRITER

    def device(self, name: str) -> torch.device:
        """``--device`` for this rank: 'auto' and 'cuda' become cuda:LOCAL_RANK when several ranks share a node's
        GPUs; a fixed cuda:N would put every rank on one GPU, so it is refused."""
        dev = resolve_device(name)
        if not self.distributed or dev.type != "cuda":
            return dev
        if dev.index is not None:
            raise FpprovError(f"--device {name} under torchrun would put every rank on one GPU: use --device auto "
                              "or cuda (each rank takes cuda:LOCAL_RANK)")
        return resolve_device(f"cuda:{self.local_rank}")


class Group:
    """The collectives of one joined set of ranks; the identity for a single process."""

    def __init__(self, ranks: Ranks):
        self.ranks = ranks

    def broadcast(self, obj: T | None) -> T:
        """The writer's ``obj`` on every rank (the other ranks pass None)."""
        if not self.ranks.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=WRITER)
        return box[0]

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj``, in rank order, on the writer; None on the other ranks."""
        if not self.ranks.distributed:
            return [obj]
        out: list[Any] | None = [None] * self.ranks.world if self.ranks.writer else None
        dist.gather_object(obj, out, dst=WRITER)
        return out

    def barrier(self) -> None:
        if self.ranks.distributed:
            dist.barrier()


def backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


@contextlib.contextmanager
def joined(ranks: Ranks, device: torch.device) -> Iterator[Group]:
    """Join the other ranks (a process group from torchrun's env://, unless the caller made one) for the block,
    on ``device``; leave it once every rank got there."""
    if not ranks.distributed or dist.is_initialized():
        yield Group(ranks)
        return
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        if index != ranks.local_rank:
            raise FpprovError(f"rank {ranks.rank} holds its model on cuda:{index}, not on cuda:{ranks.local_rank} "
                              "(its LOCAL_RANK): load it on Ranks.device(...)")
        torch.cuda.set_device(index)  # NCCL moves pickled objects through the current device
    dist.init_process_group(backend=backend_for(device))
    try:
        group = Group(ranks)
        yield group
        group.barrier()
    finally:
        dist.destroy_process_group()

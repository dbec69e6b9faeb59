"""Data-parallel training across processes: what ``fit`` needs when ``torchrun`` starts it K times.

``torchrun --nproc_per_node=K ...`` starts K copies of a script and tells each its
place through environment variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``). ``init()`` joins that process group (gloo on CPU,
NCCL for CUDA) and is a no-op in a process torchrun did not start, so one script
serves both. Inside ``fit`` (``model_zoo.training``) the ranks then split the work
the way PyTorch's ``DistributedDataParallel`` (DDP) does:

- every rank starts from rank 0's weights (DDP broadcasts them) and draws its own
  shard of windows: a sampler of ``batch_size / K`` windows seeded by
  ``rank_seed(seed, rank)`` (rank 0 keeps ``seed``);
- gradients are averaged across ranks during ``backward``, so the K ranks take the
  step one process would take on the K shards together: the global batch is the
  ``batch_size`` of a one-process run, and its learning rate carries over;
- buffers such as running normalizer statistics follow rank 0's (DDP broadcasts
  them before each forward pass);
- logged metrics are means over ranks; rank 0 alone writes ``metrics.csv``, the
  checkpoint (with every rank's sampler and RNG state, so a resumed run draws what
  an uninterrupted one would) and the progress bar.

Every rank must reach the same collective calls in the same order: ``fit`` takes the
same steps on every rank and agrees on an early stop before acting on it.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = ["World", "all_mean", "any_true", "barrier", "gather", "init", "launched", "rank_seed",
           "shard_batch_size", "shutdown", "world", "wrap"]


@dataclass(frozen=True)
class World:
    """This process's place among the training processes; ``World()`` is a lone process."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """Whether there are other ranks to talk to."""
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes files and prints."""
        return self.rank == 0


def launched() -> bool:
    """Whether torchrun (or another launcher setting its variables) started this process among others."""
    return "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def world() -> World:
    """The process group this process has joined, ``World()`` when none."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))


def init(backend: str | None = None) -> World:
    """Joins torchrun's process group from its environment variables; a no-op outside torchrun.

    Args:
        backend: ``"gloo"`` or ``"nccl"``; default NCCL when CUDA is available, else gloo.
    """
    if not launched() or dist.is_initialized():
        return world()
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend, init_method="env://")
    return world()


def shutdown() -> None:
    """Leaves the process group, if this process joined one.

    On a normal exit every rank first waits for the others (a rank that tears its
    connections down while a peer still uses them can abort that peer), and the DDP
    wrappers left in reference cycles are collected so that none outlives the group.
    While an exception propagates it leaves at once: the peers may never arrive.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    if sys.exc_info()[0] is None:
        dist.barrier()
    gc.collect()
    dist.destroy_process_group()


def rank_seed(seed: int, rank: int) -> int:
    """A seed of its own for each rank: ``seed`` itself for rank 0, a hash of (seed, rank) for the others."""
    if rank == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), int(rank)]).generate_state(1)[0])


def shard_batch_size(batch_size: int, size: int) -> int:
    """Windows each of ``size`` ranks draws so that together they draw ``batch_size``.

    Raises:
        ValueError: ``batch_size`` is not a multiple of ``size``.
    """
    if batch_size % size:
        raise ValueError(f"the global batch_size {batch_size} does not split over {size} processes; "
                         f"give a multiple of {size}")
    return batch_size // size


class _Loss(nn.Module):
    """``model.loss`` as a module's forward pass: DDP synchronises gradients of what ``forward`` computes."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: Any) -> tuple[Tensor, dict[str, Any]]:
        return self.model.loss(batch)


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``model.loss`` wrapped in DDP: calling it computes the loss; ``backward`` then averages the gradients.

    Unused parameters are allowed (a model's loss need not touch every parameter on every step).
    """
    from torch.nn.parallel import DistributedDataParallel

    ids = [device] if device.type == "cuda" else None
    return DistributedDataParallel(_Loss(model), device_ids=ids, find_unused_parameters=True)


def all_mean(values: dict[str, float]) -> dict[str, float]:
    """Each value averaged over the ranks (every rank passes the same keys)."""
    names = sorted(values)
    tensor = torch.tensor([float(values[name]) for name in names], dtype=torch.float64, device=_device())
    dist.all_reduce(tensor)
    tensor /= dist.get_world_size()
    return dict(zip(names, tensor.tolist(), strict=True))


def any_true(flag: bool) -> bool:
    """Whether ``flag`` is true on any rank."""
    tensor = torch.tensor([1 if flag else 0], device=_device())
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def gather(value: Any) -> list[Any]:
    """Every rank's JSON-able ``value``, in rank order, on every rank (sent as JSON text, never pickled)."""
    device = _device()
    data = torch.tensor(list(json.dumps(value).encode()), dtype=torch.uint8, device=device)
    lengths = [torch.zeros(1, dtype=torch.int64, device=device) for _ in range(dist.get_world_size())]
    dist.all_gather(lengths, torch.tensor([data.numel()], device=device))
    longest = int(max(length.item() for length in lengths))
    padded = torch.zeros(longest, dtype=torch.uint8, device=device)
    padded[: data.numel()] = data
    parts = [torch.zeros(longest, dtype=torch.uint8, device=device) for _ in lengths]
    dist.all_gather(parts, padded)
    return [json.loads(bytes(part[: int(n.item())].tolist())) for part, n in zip(parts, lengths, strict=True)]


def _device() -> torch.device:
    """Where collective tensors live: the rank's GPU under NCCL, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def barrier() -> None:
    """Waits until every rank gets here."""
    dist.barrier()

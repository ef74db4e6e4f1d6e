"""Thin helpers over torch.distributed for runs under ``torchrun``.

Nothing here is home-made distribution: it only reads torchrun's environment, starts the
process group (NCCL on GPU, gloo on CPU) and offers the few collectives the package uses.
Without torchrun every helper degrades to the single-process answer.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def is_torchrun() -> bool:
    """True when launched by torchrun with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device="cpu") -> None:
    """Start the default process group from torchrun's environment (no-op otherwise); ``device``: str or torch.device."""
    device = str(device)
    if dist.is_available() and is_torchrun() and not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") and torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if active():
        dist.barrier()


def all_gather_object(obj):
    """List of ``obj`` from every rank, in rank order (``[obj]`` without torchrun)."""
    if not active():
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj, src: int = 0):
    """``obj`` as held by rank ``src``, on every rank."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def shard(items, rank_: int | None = None, world: int | None = None):
    """The items this rank handles: ``items[rank::world]`` (deterministic, disjoint)."""
    r = rank() if rank_ is None else rank_
    w = world_size() if world is None else world
    return items[r::w]

"""Where a training process runs: its device (``train.device``), its place in a DDP job
(rank, world size, local rank; the torchrun process group) and the seeds of its random
streams, which are the same on every rank (:mod:`gmdiff.global_batch`)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


def device_of_config(name: str) -> torch.device:
    """``train.device`` as a torch device that exists here, else one sentence naming it."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"train.device = {name!r} is not a device; use auto, cpu, cuda or cuda:N"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"train.device = {name!r} but this machine has no CUDA device torch can use; "
            "set train.device: auto (or cpu)"
        )
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(
            f"train.device = {name!r} but this machine has {torch.cuda.device_count()} CUDA "
            "device(s); choose one of them or auto"
        )
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"train.device = {name!r}: gmdiff trains on auto, cpu or cuda[:N]")
    return device


@dataclass(frozen=True)
class DistInfo:
    """This process's place in a (possibly single-process) job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(backend: str | None = None) -> DistInfo:
    """Join the torchrun process group when ``WORLD_SIZE`` > 1; otherwise rank 0 of 1 (of
    the caller's group when one is initialised; the Trainer then still wraps DDP).
    ``backend`` defaults to NCCL when CUDA is available, else gloo. Safe to call twice."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 and dist.is_available() and dist.is_initialized():  # a group of 1
        return DistInfo(dist.get_rank(), dist.get_world_size(), 0)
    if world <= 1:
        return DistInfo()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank)


def step_seed(seed: int, step: int, stream: str) -> int:
    """A 63-bit seed for one random stream of one step, the same on every rank (the
    ranks keep their rows of the global batch's draws: :mod:`gmdiff.global_batch`). The
    "/0/" in the hashed text is the rank of the per-rank seeding this replaced: kept, so
    that the seeds, and every single-process run, are unchanged."""
    digest = hashlib.blake2b(f"{seed}/{step}/0/{stream}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)

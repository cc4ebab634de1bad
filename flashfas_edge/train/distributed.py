"""Data-parallel context: one process on the CPU by default, DDP under ``torchrun``.

torchrun announces the group through WORLD_SIZE / RANK / LOCAL_RANK; this is the one place that
reads them, so ``flashfas-edge train`` runs unchanged on one CPU or on several GPUs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ParallelContext:
    world_size: int
    rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_parallel(device: str | None = None) -> ParallelContext:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world_size > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend)
    return ParallelContext(world_size=world_size, rank=rank, device=dev)


def shutdown_parallel(context: ParallelContext) -> None:
    if context.distributed and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()

"""TODO docstring (RobustDeepLogic.train)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Sequence

import torch

from RobustDeepLogic.core.errors import InputError


# --------------------------------------------------------------------------------------------------
# Distributed set-up
# --------------------------------------------------------------------------------------------------
@dataclass
class Distributed:
    """Rank, world size and device of this process (one process without ``torchrun``)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialised_here: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def all_mean(self, values: Sequence[float]) -> List[float]:
        """Sum over ranks divided by the world size."""
        if self.world == 1:
            return list(values)
        t = torch.tensor(list(values), dtype=torch.float64,
                         device=self.device if self.device.type == "cuda" else "cpu")
        torch.distributed.all_reduce(t)
        return (t / self.world).tolist()

    def close(self) -> None:
        if self.initialised_here and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def setup_distributed(device: str = "auto") -> Distributed:
    """Read ``torchrun``'s environment; initialise the process group (nccl on CUDA, else gloo)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    want_cuda = device in ("auto", "cuda") or str(device).startswith("cuda")
    if want_cuda and torch.cuda.is_available():
        dev = torch.device("cuda", local if world > 1 else (torch.device(device).index or 0
                                                             if device != "auto" else 0))
        torch.cuda.set_device(dev)
    elif device not in ("auto", "cpu"):
        raise InputError(f"device {device!r} is not available here", hint="use --device cpu or auto")
    else:
        dev = torch.device("cpu")
    here = False
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if dev.type == "cuda" else "gloo")
        here = True
    return Distributed(rank, world, local, dev, here)

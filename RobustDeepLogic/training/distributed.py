"""This process's place in a training: rank, world size and device, from ``torchrun``'s environment.

:func:`setup_distributed` reads ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` and, with several processes,
initialises the ``torch.distributed`` process group (nccl on CUDA, gloo on the CPU); started without
``torchrun`` it describes one process. The training loop that uses it is
:mod:`RobustDeepLogic.training.loop` (docs/network.md, "Several GPUs").
"""

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
    """Rank, world size and device of this process (one process without ``torchrun``).

    Attributes
    ----------
    rank : int
        Global rank of this process (``RANK``), 0 for a single process.
    world : int
        Number of processes (``WORLD_SIZE``), 1 for a single process.
    local_rank : int
        Rank on this machine (``LOCAL_RANK``); with several processes, the CUDA device index.
    device : torch.device
        Where this process trains.
    initialised_here : bool
        Whether :func:`setup_distributed` initialised the process group (then :meth:`close` destroys
        it).
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialised_here: bool = False

    @property
    def main(self) -> bool:
        """True on rank 0, the process that validates and writes checkpoints and the history."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait until every process gets here (nothing to wait for with one process)."""
        if self.world > 1:
            torch.distributed.barrier()

    def all_mean(self, values: Sequence[float]) -> List[float]:
        """Average values over the processes: the sum over ranks divided by the world size.

        Every process must call it with the same number of values.

        Parameters
        ----------
        values : sequence of float
            This process's values.

        Returns
        -------
        list of float
            The means, in the order of ``values`` (``values`` themselves with one process).
        """
        if self.world == 1:
            return list(values)
        t = torch.tensor(list(values), dtype=torch.float64,
                         device=self.device if self.device.type == "cuda" else "cpu")
        torch.distributed.all_reduce(t)
        return (t / self.world).tolist()

    def close(self) -> None:
        """Destroy the process group if this object's set-up initialised it."""
        if self.initialised_here and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def setup_distributed(device: str = "auto") -> Distributed:
    """Read ``torchrun``'s environment; initialise the process group (nccl on CUDA, else gloo).

    Parameters
    ----------
    device : str, optional
        ``'auto'`` (default: CUDA when available, else the CPU), ``'cpu'``, ``'cuda'`` or ``'cuda:N'``.
        With several processes each one takes ``cuda:LOCAL_RANK`` and an index in ``device`` is
        ignored; CUDA devices are made current (``torch.cuda.set_device``).

    Returns
    -------
    Distributed
        This process's rank, world size, local rank and device. The process group is initialised
        only when ``WORLD_SIZE > 1`` and it is not initialised yet.

    Raises
    ------
    InputError
        When ``device`` names CUDA and CUDA is not available, or names another device than these.
    """
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

"""TODO docstring (RobustDeepLogic.blending)."""

from __future__ import annotations

import threading
from typing import Optional, Sequence

import torch


# --------------------------------------------------------------------------------------------------
# Buffer reuse
# --------------------------------------------------------------------------------------------------
class BufferPool:
    """Reusable float32 buffers for pyramid work on the CPU.

    A freshly allocated large array costs page faults on its first write (about 8 GB/s here, against
    20-40 GB/s for a write into memory already mapped: docs/baselines.md), which made fresh allocations
    most of the cost of a blend. The pool keeps the buffers of one blend for the next blend of the same
    shape. It holds at most ``max_bytes`` (default 1 GiB) of idle buffers; :meth:`clear` frees them.
    CUDA tensors bypass it (torch's caching allocator already reuses GPU memory).
    """

    def __init__(self, max_bytes: int = 1 << 30) -> None:
        self.max_bytes = int(max_bytes)
        self._free: dict = {}
        self._bytes = 0

    def take(self, shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
        """A contiguous float32 tensor of ``shape`` on ``like``'s device, with undefined contents."""
        key = (tuple(int(s) for s in shape), like.device)
        if like.device.type == "cpu":
            stack = self._free.get(key)
            if stack:
                t = stack.pop()
                self._bytes -= t.numel() * 4
                return t
        return torch.empty(key[0], dtype=torch.float32, device=like.device)

    def give(self, *tensors: Optional[torch.Tensor]) -> None:
        """Return buffers that are no longer used (views and non-CPU tensors are ignored)."""
        for t in tensors:
            if t is None or t.device.type != "cpu" or not t.is_contiguous() or t._base is not None:
                continue
            size = t.numel() * 4
            if self._bytes + size > self.max_bytes:
                continue
            self._free.setdefault((tuple(t.shape), t.device), []).append(t)
            self._bytes += size

    def clear(self) -> None:
        """Drop every idle buffer."""
        self._free.clear()
        self._bytes = 0

    @property
    def idle_bytes(self) -> int:
        return self._bytes


_local = threading.local()


def default_pool() -> BufferPool:
    """The calling thread's :class:`BufferPool`, used when a function is given none."""
    pool = getattr(_local, "pool", None)
    if pool is None:
        pool = _local.pool = BufferPool()
    return pool


def release_buffers() -> None:
    """Free the idle buffers that the calling thread's default pool keeps between blends."""
    default_pool().clear()

"""Reused work buffers for the pyramid code on the CPU: :class:`BufferPool`, one pool per thread.

The reduce and expand steps of :mod:`RobustDeepLogic.blending.pyramids` used by
:func:`~RobustDeepLogic.blending.blend.laplacian_blend` take their temporary arrays from a pool and
give them back, so that consecutive blends of one shape reuse memory that is already mapped
(docs/baselines.md).
:func:`release_buffers` frees the calling thread's idle buffers.
"""

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
    shape. It holds at most ``max_bytes`` of idle buffers; :meth:`BufferPool.clear` frees them. CUDA tensors
    bypass it (torch's caching allocator already reuses GPU memory). A pool is not thread-safe;
    :func:`default_pool` gives each thread its own.

    Parameters
    ----------
    max_bytes : int, optional
        The most bytes of idle buffers the pool keeps (default ``1 << 30``, 1 GiB); a buffer given
        back beyond it is dropped.
    """

    def __init__(self, max_bytes: int = 1 << 30) -> None:
        self.max_bytes = int(max_bytes)
        self._free: dict = {}
        self._bytes = 0

    def take(self, shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
        """A contiguous float32 tensor of ``shape`` on ``like``'s device, with undefined contents.

        Parameters
        ----------
        shape : sequence of int
            The shape of the buffer.
        like : torch.Tensor
            A tensor on the device wanted; on the CPU an idle buffer of the same shape is reused.

        Returns
        -------
        torch.Tensor
            An idle buffer taken out of the pool, or a new ``torch.empty`` one.
        """
        key = (tuple(int(s) for s in shape), like.device)
        if like.device.type == "cpu":
            stack = self._free.get(key)
            if stack:
                t = stack.pop()
                self._bytes -= t.numel() * 4
                return t
        return torch.empty(key[0], dtype=torch.float32, device=like.device)

    def give(self, *tensors: Optional[torch.Tensor]) -> None:
        """Return buffers that are no longer used (views and non-CPU tensors are ignored).

        Parameters
        ----------
        *tensors : torch.Tensor or None
            Buffers that neither the caller nor any view of them uses any more. None, views,
            non-contiguous and non-CPU tensors are ignored, and so is a buffer that would take the idle
            total above ``max_bytes``.
        """
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
        """The number of bytes held in idle buffers."""
        return self._bytes


_local = threading.local()


def default_pool() -> BufferPool:
    """The calling thread's :class:`BufferPool`, used when a function is given none.

    Returns
    -------
    BufferPool
        The thread's pool, made on first use with the default ``max_bytes`` (1 GiB).
    """
    pool = getattr(_local, "pool", None)
    if pool is None:
        pool = _local.pool = BufferPool()
    return pool


def release_buffers() -> None:
    """Free the idle buffers that the calling thread's default pool keeps between blends."""
    default_pool().clear()

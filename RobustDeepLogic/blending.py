"""Gaussian and Laplacian pyramids, and Laplacian-pyramid blending of registered volumes.

This is the image operation of Robust-Deep (method.md §4; Sanaat et al., J Digit Imaging 2022): a new
subject is made from two registered patients ``x1`` and ``x2`` and a mask ``m`` in [0, 1] (1 takes
``x1``) by blending the Laplacian pyramids of the two volumes with the Gaussian pyramid of the mask
and collapsing the result (Burt & Adelson, "A multiresolution spline with application to image
mosaics", ACM Trans Graph 2(4):217-236, 1983).

Conventions
-----------
Arrays are ``[z, y, x]`` (3D) or ``[y, x]`` (2D). The *spatial* dimensionality is that of the mask;
the images may carry one extra leading channel axis ``[C, z, y, x]`` (e.g. the 7 modalities of one
patient): all channels are blended in one call with one shared mask pyramid (one channel after the
other, which keeps the working set small). All work is done in float32 with torch, on the device of
the inputs (CPU or CUDA). numpy inputs give numpy outputs, tensor inputs give tensors. Inputs are never
modified.

Kernel
    The 5-tap binomial kernel ``(1, 4, 6, 4, 1) / 16`` (Burt & Adelson's generating kernel with
    ``a = 0.375``), applied separably along every spatial axis.
Boundaries
    Mirror reflection without repeating the edge sample (``... x2 x1 | x0 x1 x2 ...``), both when
    reducing and when expanding.
``reduce`` (gf then down)
    Filter, then keep voxels ``0, 2, 4, ...`` along every axis: an axis of ``n`` voxels becomes
    ``ceil(n / 2)`` (109 -> 55 -> 28 -> 14 -> 7).
``expand`` (up then gf)
    Insert zeros between voxels to the *exact* size of the finer level (so 55 -> 109, not 110), then
    filter with the kernel times 2 per axis, which preserves the mean.
Levels
    ``levels = L`` gives ``L + 1`` pyramid entries (level 0 is full size). ``L = 0`` is the naive
    blend. Every axis must have at least 3 voxels at each level that is reduced (levels ``0 .. L-1``),
    i.e. ``L <= max_levels(shape)``; 109x200x200 allows up to 6.

Reconstruction is exact by construction: ``Lap[i] = G[i] - expand(G[i+1])`` and the collapse adds the
same ``expand`` back (the printed minus sign in the paper's Eq. 3 is a typesetting slip, method.md §4).
Blending is linear in the images, so :func:`laplacian_blend` computes
``x2 + collapse(GM * Lap(x1 - x2))``: one Laplacian pyramid instead of two, identical to the textbook
two-pyramid form ``collapse(GM * Lap(x1) + (1 - GM) * Lap(x2))`` up to float32 rounding.

The filters are written as shifted adds on strided views of the arrays (no padding copies, no
convolution calls); the kernel's ``1/16`` factors are applied once per reduce and the expand's ``1/8``
factors on the coarse side, where the arrays are 8 times smaller. On the CPU, temporary arrays come
from a per-thread :class:`BufferPool` that is kept between calls, because a fresh large array costs
page faults on its first write.
"""

from __future__ import annotations

import threading
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .errors import InputError

ArrayLike = Union[np.ndarray, torch.Tensor]

#: The generating kernel (1 4 6 4 1) / 16, for documentation and for reference implementations.
BINOMIAL_KERNEL: Tuple[float, ...] = (1 / 16, 4 / 16, 6 / 16, 4 / 16, 1 / 16)
#: Default number of pyramid levels (the benchmarks and the study's grid use 4).
DEFAULT_LEVELS = 4
#: The smallest axis length that can still be reduced.
MIN_REDUCE_SIZE = 3


# --------------------------------------------------------------------------------------------------
# Conversions
# --------------------------------------------------------------------------------------------------
def _as_tensor(value: ArrayLike, name: str, device: Optional[torch.device] = None) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        t = value
    elif isinstance(value, np.ndarray) or np.isscalar(value):
        t = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
    else:
        raise TypeError(f"{name} must be a numpy array or a torch tensor, not {type(value).__name__}")
    if t.dtype != torch.float32:
        t = t.to(torch.float32)
    if device is not None and t.device != device:
        t = t.to(device)
    return t


def _like_input(result: torch.Tensor, reference: ArrayLike) -> ArrayLike:
    if isinstance(reference, torch.Tensor):
        return result
    return result.cpu().numpy()


def _device_of(*values: Any) -> torch.device:
    for v in values:
        if isinstance(v, torch.Tensor):
            return v.device
    return torch.device("cpu")


# --------------------------------------------------------------------------------------------------
# Level rules
# --------------------------------------------------------------------------------------------------
def level_shapes(shape: Sequence[int], levels: int) -> List[Tuple[int, ...]]:
    """The spatial shapes of pyramid levels ``0 .. levels`` (each axis ``n -> ceil(n / 2)``)."""
    shapes = [tuple(int(s) for s in shape)]
    for _ in range(levels):
        shapes.append(tuple((s + 1) // 2 for s in shapes[-1]))
    return shapes


def max_levels(shape: Sequence[int]) -> int:
    """The largest ``levels`` allowed for spatial ``shape``: every reduced level has all axes >= 3.

    >>> max_levels((109, 200, 200))
    6
    """
    levels = 0
    current = [int(s) for s in shape]
    while min(current) >= MIN_REDUCE_SIZE:
        levels += 1
        current = [(s + 1) // 2 for s in current]
    return levels


def check_levels(shape: Sequence[int], levels: int) -> int:
    """``levels`` as an int, or :class:`InputError` if ``shape`` cannot hold that many levels."""
    if isinstance(levels, bool) or int(levels) != levels or levels < 0:
        raise InputError(f"levels must be a whole number >= 0, got {levels!r}")
    levels = int(levels)
    allowed = max_levels(shape)
    if levels > allowed:
        raise InputError(
            f"{levels} pyramid levels are too many for an image of shape {tuple(shape)}",
            hint=f"at most {allowed} levels: every reduced level needs at least "
            f"{MIN_REDUCE_SIZE} voxels along each axis",
        )
    return levels


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


# --------------------------------------------------------------------------------------------------
# One-axis filters on strided views
# --------------------------------------------------------------------------------------------------
def _along(ndim: int, axis: int, index: Union[slice, int]) -> tuple:
    key = [slice(None)] * ndim
    key[axis] = index
    return tuple(key)


def _reduce_axis(x: torch.Tensor, axis: int, pool: BufferPool) -> torch.Tensor:
    """16 x (binomial filter then keep even voxels) along ``axis``; size ``n -> ceil(n/2)``.

    Output ``k`` is ``x[2k-2] + 4 x[2k-1] + 6 x[2k] + 4 x[2k+1] + x[2k+2]`` with mirrored borders.
    """
    nd = x.ndim
    n = x.shape[axis]
    m = (n + 1) // 2
    a = lambda idx: _along(nd, axis, idx)  # noqa: E731
    even = x[a(slice(0, None, 2))]  # m voxels: x[2k]
    odd = x[a(slice(1, None, 2))]  # n // 2 voxels: x[2k+1]
    shape = list(x.shape)
    shape[axis] = m
    out = pool.take(shape, x)
    # x[2k-2] + x[2k+2], interior k = 1 .. m-2
    torch.add(even[a(slice(0, m - 2))], even[a(slice(2, m))], out=out[a(slice(1, m - 1))])
    # borders: x[-2] = x[2]; x[2m] = x[n-2] (n even) or x[n-3] (n odd)
    torch.add(even[a(slice(1, 2))], even[a(slice(1, 2))], out=out[a(slice(0, 1))])
    right = even[a(slice(m - 1, m))] if n % 2 == 0 else even[a(slice(m - 2, m - 1))]
    torch.add(even[a(slice(m - 2, m - 1))], right, out=out[a(slice(m - 1, m))])
    out.add_(even, alpha=6.0)
    # 4 x[2k+1] for k < n//2, and x[n] = x[n-2] for the last voxel of an odd axis
    n_odd = odd.shape[axis]
    out[a(slice(0, n_odd))].add_(odd, alpha=4.0)
    if n % 2 == 1:
        out[a(slice(m - 1, m))].add_(odd[a(slice(m - 2, m - 1))], alpha=4.0)
    # 4 x[2k-1] for k >= 1, and x[-1] = x[1] for k = 0
    out[a(slice(1, m))].add_(odd[a(slice(0, m - 1))], alpha=4.0)
    out[a(slice(0, 1))].add_(odd[a(slice(0, 1))], alpha=4.0)
    return out


def _expand_axis(c: torch.Tensor, axis: int, n: int, pool: BufferPool) -> torch.Tensor:
    """8 x (zero insertion to ``n`` voxels then 2 x binomial filter) along ``axis``.

    With ``m = ceil(n/2)`` coarse voxels ``c``: even outputs ``c[k-1] + 6 c[k] + c[k+1]``, odd outputs
    ``4 c[k] + 4 c[k+1]``; mirrored borders give ``c[-1] = c[1]`` and ``c[m] = c[m-1]`` (n even) or
    ``c[m-2]`` (n odd).
    """
    nd = c.ndim
    m = c.shape[axis]
    if (n + 1) // 2 != m:
        raise ValueError(f"cannot expand {m} voxels to {n}")
    a = lambda idx: _along(nd, axis, idx)  # noqa: E731
    shape = list(c.shape)
    shape[axis] = n
    out = pool.take(shape, c)
    even = out[a(slice(0, None, 2))]  # m voxels
    odd = out[a(slice(1, None, 2))]  # n // 2 voxels
    # even outputs
    torch.add(c[a(slice(0, m - 2))], c[a(slice(2, m))], out=even[a(slice(1, m - 1))])
    torch.add(c[a(slice(1, 2))], c[a(slice(1, 2))], out=even[a(slice(0, 1))])
    right = c[a(slice(m - 1, m))] if n % 2 == 0 else c[a(slice(m - 2, m - 1))]
    torch.add(c[a(slice(m - 2, m - 1))], right, out=even[a(slice(m - 1, m))])
    even.add_(c, alpha=6.0)
    # odd outputs
    torch.add(c[a(slice(0, m - 1))], c[a(slice(1, m))], out=odd[a(slice(0, m - 1))])
    if n % 2 == 0:
        torch.add(c[a(slice(m - 1, m))], c[a(slice(m - 1, m))], out=odd[a(slice(m - 1, m))])
    odd.mul_(4.0)
    return out


def _reduce(x: torch.Tensor, nspatial: int, pool: Optional[BufferPool] = None) -> torch.Tensor:
    """One Gaussian-pyramid step over the last ``nspatial`` axes (slowest axis first)."""
    pool = pool if pool is not None else BufferPool(0)
    first = x.ndim - nspatial
    y = x
    for axis in range(first, x.ndim):
        z = _reduce_axis(y, axis, pool)
        if y is not x:
            pool.give(y)
        y = z
    return y.mul_(1.0 / 16.0 ** nspatial)


def _expand_scaled(
    c: torch.Tensor, shape: Sequence[int], nspatial: int, pool: Optional[BufferPool] = None
) -> torch.Tensor:
    """``expand`` of ``c`` to spatial ``shape``, where ``c`` is already divided by ``8 ** nspatial``."""
    pool = pool if pool is not None else BufferPool(0)
    first = c.ndim - nspatial
    y = c
    for axis in range(c.ndim - 1, first - 1, -1):  # fastest axis first, while the data are small
        z = _expand_axis(y, axis, int(shape[axis - first]), pool)
        if y is not c:
            pool.give(y)
        y = z
    return y


def _expand(c: torch.Tensor, shape: Sequence[int], nspatial: int) -> torch.Tensor:
    return _expand_scaled(c * (1.0 / 8.0 ** nspatial), shape, nspatial)


# --------------------------------------------------------------------------------------------------
# Pyramids
# --------------------------------------------------------------------------------------------------
def _prepare(x: ArrayLike, name: str, nspatial: Optional[int], device=None) -> Tuple[torch.Tensor, int]:
    t = _as_tensor(x, name, device)
    if nspatial is None:
        nspatial = t.ndim if t.ndim in (2, 3) else 3
    if nspatial not in (2, 3) or t.ndim not in (nspatial, nspatial + 1):
        raise InputError(
            f"{name} has shape {tuple(t.shape)}: expected a 2D [y, x] or 3D [z, y, x] array, "
            "optionally with one leading channel axis"
        )
    return t, nspatial


def reduce(x: ArrayLike, *, nspatial: Optional[int] = None) -> ArrayLike:
    """One reduce step: binomial low-pass then every other voxel along each spatial axis.

    ``x``: ``[z, y, x]``, ``[y, x]``, or either with a leading channel axis (then give ``nspatial``).
    Returns the same kind (numpy or torch) with each spatial axis ``n -> ceil(n / 2)``.
    """
    t, nspatial = _prepare(x, "x", nspatial)
    return _like_input(_reduce(t, nspatial), x)


def expand(x: ArrayLike, shape: Sequence[int], *, nspatial: Optional[int] = None) -> ArrayLike:
    """One expand step: zero insertion to spatial ``shape`` then 2 x binomial filter per axis.

    ``shape`` is the exact spatial shape of the finer level (``ceil(shape / 2)`` must equal the input).
    """
    t, nspatial = _prepare(x, "x", nspatial)
    return _like_input(_expand(t, tuple(shape)[-nspatial:], nspatial), x)


def gaussian_pyramid(
    x: ArrayLike, levels: int = DEFAULT_LEVELS, *, nspatial: Optional[int] = None
) -> List[ArrayLike]:
    """``[G0, ..., GL]`` with ``G0 = x`` (as float32) and ``G[i] = reduce(G[i-1])`` (method.md §4).

    Parameters
    ----------
    x:
        ``[z, y, x]`` or ``[y, x]`` array (or with a leading channel axis: give ``nspatial``).
    levels:
        Number of reductions ``L`` (``L + 1`` entries); at most :func:`max_levels` of the shape.

    Returns
    -------
    A list of ``levels + 1`` arrays of the input's kind; level ``i`` has spatial shape
    ``ceil(shape / 2**i)`` per axis.
    """
    t, nspatial = _prepare(x, "x", nspatial)
    levels = check_levels(t.shape[-nspatial:], levels)
    pyramid = [t]
    for _ in range(levels):
        pyramid.append(_reduce(pyramid[-1], nspatial))
    return [_like_input(p, x) for p in pyramid]


def laplacian_pyramid(
    x: ArrayLike, levels: int = DEFAULT_LEVELS, *, nspatial: Optional[int] = None
) -> List[ArrayLike]:
    """``[Lap0, ..., LapL]``: ``Lap[i] = G[i] - expand(G[i+1])`` for ``i < L`` and ``Lap[L] = G[L]``.

    Unlike scikit-image's ``pyramid_laplacian``, this pyramid keeps the low-pass residual and expands
    to the exact finer size, so :func:`collapse_pyramid` returns the input (to float32 rounding).
    """
    t, nspatial = _prepare(x, "x", nspatial)
    levels = check_levels(t.shape[-nspatial:], levels)
    gauss = [t]
    for _ in range(levels):
        gauss.append(_reduce(gauss[-1], nspatial))
    lap = [gauss[i] - _expand(gauss[i + 1], gauss[i].shape[-nspatial:], nspatial) for i in range(levels)]
    lap.append(gauss[levels])
    return [_like_input(p, x) for p in lap]


def collapse_pyramid(pyramid: Sequence[ArrayLike], *, nspatial: Optional[int] = None) -> ArrayLike:
    """``Y[L] = Lap[L]; Y[i] = Lap[i] + expand(Y[i+1])``; returns ``Y[0]`` (method.md §4)."""
    if len(pyramid) == 0:
        raise InputError("an empty pyramid cannot be collapsed")
    device = _device_of(*pyramid)
    levels = [_prepare(p, "pyramid level", nspatial, device)[0] for p in pyramid]
    if nspatial is None:
        nspatial = levels[0].ndim if levels[0].ndim in (2, 3) else 3
    y = levels[-1]
    for lap in reversed(levels[:-1]):
        y = _expand(y, lap.shape[-nspatial:], nspatial).add_(lap)
    return _like_input(y.clone() if y is levels[-1] else y, pyramid[0])


# --------------------------------------------------------------------------------------------------
# Blending
# --------------------------------------------------------------------------------------------------
def _check_pair(x1: torch.Tensor, x2: torch.Tensor, mask: torch.Tensor) -> int:
    nspatial = mask.ndim
    if nspatial not in (2, 3):
        raise InputError(f"the mask must be 2D [y, x] or 3D [z, y, x], got shape {tuple(mask.shape)}")
    if x1.shape != x2.shape:
        raise InputError(f"the two images differ in shape: {tuple(x1.shape)} and {tuple(x2.shape)}")
    if x1.ndim not in (nspatial, nspatial + 1) or tuple(x1.shape[-nspatial:]) != tuple(mask.shape):
        raise InputError(
            f"images of shape {tuple(x1.shape)} do not fit the mask of shape {tuple(mask.shape)}",
            hint="images are [z, y, x] or [C, z, y, x] on the mask's grid",
        )
    return nspatial


def mask_pyramid(mask: ArrayLike, levels: int = DEFAULT_LEVELS) -> List[torch.Tensor]:
    """The Gaussian pyramid ``GM`` of a mask as float32 tensors, to share between many blends.

    ``mask``: ``[z, y, x]`` or ``[y, x]`` in [0, 1]. A mask of ones gives exact ones at every level.
    """
    t = _as_tensor(mask, "mask")
    return gaussian_pyramid(t, levels, nspatial=t.ndim)


def laplacian_blend(
    x1: ArrayLike,
    x2: ArrayLike,
    mask: ArrayLike,
    levels: int = DEFAULT_LEVELS,
    *,
    mask_levels: Optional[Sequence[torch.Tensor]] = None,
    pool: Optional[BufferPool] = None,
) -> ArrayLike:
    """Laplacian-pyramid blend of ``x1`` and ``x2`` under ``mask`` (1 takes ``x1``), method.md §4.

    Computes ``x2 + collapse(GM * Lap(x1 - x2))``, equal to the two-pyramid form
    ``collapse(GM * Lap(x1) + (1 - GM) * Lap(x2))`` (Burt & Adelson 1983) by linearity.

    Parameters
    ----------
    x1, x2:
        Images of the two parents: ``[z, y, x]`` / ``[y, x]``, or ``[C, z, y, x]`` / ``[C, y, x]`` to
        blend ``C`` channels (modalities) with one shared mask pyramid. Any real dtype; computed in
        float32 on the device of the tensors (CPU for numpy input).
    mask:
        ``[z, y, x]`` or ``[y, x]`` weights in [0, 1]; its dimensionality sets the spatial one.
    levels:
        Number of pyramid reductions (see the module doc for the rule); 0 gives the naive blend.
    mask_levels:
        A precomputed :func:`mask_pyramid` of ``mask`` with ``levels + 1`` entries (optional).
    pool:
        Where temporary buffers come from and go back to (default: :func:`default_pool`).

    Returns
    -------
    The blend, float32, same shape as ``x1`` and of its kind (numpy or torch).
    With ``mask == 1`` everywhere it equals ``x1``; with ``x1 == x2`` it equals ``x2``.

    Examples
    --------
    >>> import numpy as np
    >>> a, b = np.ones((9, 10, 11), np.float32), np.zeros((9, 10, 11), np.float32)
    >>> m = np.zeros((9, 10, 11), np.float32); m[..., :5] = 1
    >>> y = laplacian_blend(a, b, m, levels=2)
    >>> bool(y[..., 0].min() > 0.9 and y[..., -1].max() < 0.1)
    True
    """
    device = _device_of(x1, x2, mask)
    a = _as_tensor(x1, "x1", device)
    b = _as_tensor(x2, "x2", device)
    if mask_levels is not None:
        gm = [_as_tensor(g, "mask", device) for g in mask_levels]
        m = gm[0]
    else:
        m = _as_tensor(mask, "mask", device)
        gm = None
    nspatial = _check_pair(a, b, m)
    levels = check_levels(m.shape, levels)
    pool = pool if pool is not None else default_pool()
    if gm is None:
        gm = [m]
        for _ in range(levels):
            gm.append(_reduce(gm[-1], nspatial, pool))
        own_mask_levels = gm[1:]
    else:
        own_mask_levels = []
        if len(gm) != levels + 1:
            raise InputError(f"the mask pyramid has {len(gm)} entries, {levels + 1} are needed")
    # One channel at a time: the working set stays small and the buffers of the pool are reused
    # by every channel (measured faster than one pass over [C, z, y, x] arrays).
    result = torch.empty(a.shape, dtype=torch.float32, device=a.device)
    channels = [(a, b, result)] if a.ndim == nspatial else list(zip(a, b, result))
    for a_c, b_c, out_c in channels:
        diff = torch.sub(a_c, b_c, out=pool.take(a_c.shape, a_c))
        _blend_difference(a_c, b_c, diff, gm, nspatial, pool, out_c)
        pool.give(diff)
    pool.give(*own_mask_levels)
    return _like_input(result, x1)


def _blend_difference(
    top1: torch.Tensor,
    base: torch.Tensor,
    diff: torch.Tensor,
    gm: Sequence[torch.Tensor],
    nspatial: int,
    pool: BufferPool,
    out: torch.Tensor,
) -> torch.Tensor:
    """``out = base + collapse(GM * Lap(diff))`` for one channel, where ``diff = top1 - base``.

    ``diff`` is left unchanged; ``out`` receives the result.
    """
    levels = len(gm) - 1
    if levels == 0:
        return torch.lerp(base, top1, gm[0], out=out)
    gauss = [diff]
    for _ in range(levels):
        gauss.append(_reduce(gauss[-1], nspatial, pool))
    scale = 1.0 / 8.0 ** nspatial
    # y holds Y[i+1] / 8**nspatial, ready for the unscaled expand
    top = gauss[levels]
    y = torch.mul(top, gm[levels], out=pool.take(top.shape, top)).mul_(scale)
    for i in range(levels - 1, -1, -1):
        shape = gauss[i].shape[-nspatial:]
        up_g = _expand_scaled(gauss[i + 1].mul_(scale), shape, nspatial, pool)
        pool.give(gauss[i + 1])
        up_y = _expand_scaled(y, shape, nspatial, pool)
        pool.give(y)
        if i > 0:
            # Y[i] = GM * (G[i] - expand(G[i+1])) + expand(Y[i+1]); G[i] is needed one level up
            lap = torch.sub(gauss[i], up_g, out=up_g)
            lap.mul_(gm[i]).add_(up_y)
            pool.give(up_y)
            y = lap.mul_(scale)
        else:
            # out = base + GM * (G0 - expand(G1)) + expand(Y1), with G0 = x1 - x2:
            # lerp(x2, x1, GM) - GM * expand(G1) + expand(Y1), one pass fewer
            torch.lerp(base, top1, gm[0], out=out)
            out.addcmul_(gm[0], up_g, value=-1.0).add_(up_y)
            pool.give(up_g, up_y)
    return out


def blend_many(
    images: Sequence[ArrayLike], masks: Union[ArrayLike, Sequence[ArrayLike]], levels: int = DEFAULT_LEVELS,
    *, tol: float = 1e-4,
) -> ArrayLike:
    """Laplacian blend of ``K`` parents with masks forming a partition of unity (method.md §4).

    ``Y = collapse(sum_k GM_k * Lap(x_k))``, computed as ``x_K + collapse(sum_{k<K} GM_k *
    Lap(x_k - x_K))`` (one collapse), which holds because the Gaussian pyramids of the masks also sum to
    one at every level.

    Parameters
    ----------
    images:
        ``K >= 2`` arrays of one shape, ``[z, y, x]`` or ``[C, z, y, x]`` (or 2D), or one array with the
        parents stacked on a first axis.
    masks:
        ``K`` masks ``[z, y, x]`` (a sequence or a stacked ``[K, z, y, x]`` array), each in [0, 1],
        summing to 1 at every voxel (within ``tol``).

    Returns
    -------
    The blend, float32, shaped like one parent, of the kind of the first parent.
    """
    device = _device_of(*(list(images) + ([masks] if isinstance(masks, torch.Tensor) else list(masks))))
    xs = [_as_tensor(x, f"image {k}", device) for k, x in enumerate(images)]
    ms = [_as_tensor(m, f"mask {k}", device) for k, m in enumerate(masks)]
    if len(xs) < 2 or len(xs) != len(ms):
        raise InputError(f"blend_many needs K >= 2 images and as many masks, got {len(xs)} and {len(ms)}")
    total = torch.stack(ms).sum(0)
    err = float((total - 1).abs().max())
    if err > tol:
        raise InputError(
            f"the {len(ms)} masks do not form a partition of unity (their sum is off by up to {err:.3g})",
            hint="normalise them so that they sum to 1 at every voxel",
        )
    for m in ms:
        if float(m.min()) < -tol or float(m.max()) > 1 + tol:
            raise InputError("every mask must lie in [0, 1]")
    nspatial = _check_pair(xs[0], xs[0], ms[0])
    for x, m in zip(xs[1:], ms[1:]):
        _check_pair(xs[0], x, m)
    levels = check_levels(ms[0].shape, levels)
    base = xs[-1]
    acc: Optional[List[torch.Tensor]] = None
    for x, m in zip(xs[:-1], ms[:-1]):
        diff = x - base
        gd = [diff]
        gmk = [m]
        for _ in range(levels):
            gd.append(_reduce(gd[-1], nspatial))
            gmk.append(_reduce(gmk[-1], nspatial))
        lap = [gd[i] - _expand(gd[i + 1], gd[i].shape[-nspatial:], nspatial) for i in range(levels)]
        lap.append(gd[levels])
        weighted = [lap[i].mul_(gmk[i]) for i in range(levels + 1)]
        acc = weighted if acc is None else [s.add_(w) for s, w in zip(acc, weighted)]
    assert acc is not None
    y = acc[-1]
    for lap in reversed(acc[:-1]):
        y = _expand(y, lap.shape[-nspatial:], nspatial).add_(lap)
    return _like_input(y.add_(base), images[0])


def two_pyramid_blend(x1: ArrayLike, x2: ArrayLike, mask: ArrayLike, levels: int = DEFAULT_LEVELS) -> ArrayLike:
    """The textbook form ``collapse(GM * Lap(x1) + (1 - GM) * Lap(x2))`` (a reference for tests).

    Same arguments and result as :func:`laplacian_blend`, about 1.5 times slower.
    """
    device = _device_of(x1, x2, mask)
    a, b, m = (_as_tensor(v, n, device) for v, n in ((x1, "x1"), (x2, "x2"), (mask, "mask")))
    nspatial = _check_pair(a, b, m)
    levels = check_levels(m.shape, levels)
    gm = gaussian_pyramid(m, levels, nspatial=nspatial)
    l1 = laplacian_pyramid(a, levels, nspatial=nspatial)
    l2 = laplacian_pyramid(b, levels, nspatial=nspatial)
    blended = [g * p + (1 - g) * q for g, p, q in zip(gm, l1, l2)]
    return _like_input(collapse_pyramid(blended, nspatial=nspatial), x1)


# --------------------------------------------------------------------------------------------------
# Baselines
# --------------------------------------------------------------------------------------------------
def naive_blend(x1: ArrayLike, x2: ArrayLike, mask: ArrayLike) -> ArrayLike:
    """``mask * x1 + (1 - mask) * x2``: the hard-seam baseline the paper rejects (method.md §4).

    Shapes as in :func:`laplacian_blend`; float32 result of the kind of ``x1``.
    """
    device = _device_of(x1, x2, mask)
    a, b, m = (_as_tensor(v, n, device) for v, n in ((x1, "x1"), (x2, "x2"), (mask, "mask")))
    _check_pair(a, b, m)
    return _like_input(torch.lerp(b, a, m.expand_as(a)), x1)


def mixup(
    x1: ArrayLike, x2: ArrayLike, lam: Optional[float] = None, *, alpha: float = 0.4,
    rng: Optional[np.random.Generator] = None,
) -> Tuple[ArrayLike, float]:
    """MixUp (Zhang et al., ICLR 2018): ``lam * x1 + (1 - lam) * x2`` over the whole image.

    ``lam`` is drawn from Beta(``alpha``, ``alpha``) with ``rng`` when not given. Returns the image
    (float32, kind of ``x1``) and ``lam``.
    """
    if lam is None:
        rng = rng if rng is not None else np.random.default_rng()
        lam = float(rng.beta(alpha, alpha))
    if not 0.0 <= lam <= 1.0:
        raise InputError(f"lam must lie in [0, 1], got {lam}")
    device = _device_of(x1, x2)
    a, b = _as_tensor(x1, "x1", device), _as_tensor(x2, "x2", device)
    if a.shape != b.shape:
        raise InputError(f"the two images differ in shape: {tuple(a.shape)} and {tuple(b.shape)}")
    return _like_input(torch.lerp(b, a, float(lam)), x1), float(lam)


def cutmix_box(
    shape: Sequence[int], lam: float, rng: Optional[np.random.Generator] = None
) -> np.ndarray:
    """A CutMix mask for spatial ``shape``: ones except a random box of about ``1 - lam`` of the volume.

    The box has the same fraction ``(1 - lam) ** (1/ndim)`` of every axis and lies fully inside.
    """
    rng = rng if rng is not None else np.random.default_rng()
    if not 0.0 <= lam <= 1.0:
        raise InputError(f"lam must lie in [0, 1], got {lam}")
    mask = np.ones(tuple(shape), dtype=np.float32)
    side = (1.0 - lam) ** (1.0 / len(shape))
    box = []
    for n in shape:
        length = int(round(side * n))
        start = int(rng.integers(0, n - length + 1))
        box.append(slice(start, start + length))
    mask[tuple(box)] = 0.0
    return mask


def cutmix(
    x1: ArrayLike, x2: ArrayLike, lam: Optional[float] = None, *, alpha: float = 1.0,
    rng: Optional[np.random.Generator] = None,
) -> Tuple[ArrayLike, float]:
    """CutMix (Yun et al., ICCV 2019) in 2D or 3D: ``x1`` with a random box pasted from ``x2``.

    ``lam`` (the target fraction kept from ``x1``) is drawn from Beta(``alpha``, ``alpha``) when not
    given. Images are ``[z, y, x]`` or ``[C, z, y, x]`` (3D assumed for 3- or 4-axis arrays; 2D for
    2-axis ones). Returns the image and the exact fraction of voxels taken from ``x1``.
    """
    rng = rng if rng is not None else np.random.default_rng()
    if lam is None:
        lam = float(rng.beta(alpha, alpha))
    shape = tuple(x1.shape)
    spatial = shape[-3:] if len(shape) >= 3 else shape
    box = cutmix_box(spatial, lam, rng)
    if isinstance(x1, torch.Tensor):
        box_t: ArrayLike = torch.from_numpy(box).to(x1.device)
    else:
        box_t = box
    return naive_blend(x1, x2, box_t), float(box.mean())


def seam_roughness(image: ArrayLike, mask: ArrayLike, *, width: int = 2) -> float:
    """Mean absolute second difference of ``image`` at the mask's boundary (a seam criterion).

    The boundary is where a binary ``mask`` (threshold 0.5) changes between neighbouring voxels,
    widened by ``width`` voxels. Lower is smoother. Used by the tests to compare Laplacian and naive
    blends: a hard seam shows as large second differences across it.
    """
    img = np.asarray(image.cpu().numpy() if isinstance(image, torch.Tensor) else image, np.float64)
    m = np.asarray(mask.cpu().numpy() if isinstance(mask, torch.Tensor) else mask) > 0.5
    from scipy import ndimage

    edge = np.zeros_like(m)
    for axis in range(m.ndim):
        change = np.diff(m, axis=axis) != 0
        pad = [(0, 0)] * m.ndim
        pad[axis] = (0, 1)
        edge |= np.pad(change, pad)
    if width > 0:
        edge = ndimage.binary_dilation(edge, iterations=width)
    rough = np.zeros_like(img)
    for axis in range(img.ndim):
        d2 = np.abs(np.diff(img, n=2, axis=axis))
        pad = [(0, 0)] * img.ndim
        pad[axis] = (1, 1)
        rough += np.pad(d2, pad)
    if not edge.any():
        return 0.0
    return float(rough[edge].mean())


__all__ = [
    "BINOMIAL_KERNEL", "DEFAULT_LEVELS", "level_shapes", "max_levels", "check_levels", "reduce",
    "expand", "gaussian_pyramid", "laplacian_pyramid", "collapse_pyramid", "mask_pyramid",
    "laplacian_blend", "blend_many", "two_pyramid_blend", "naive_blend", "mixup", "cutmix",
    "cutmix_box", "seam_roughness",
]

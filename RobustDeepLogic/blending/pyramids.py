"""Gaussian and Laplacian pyramids of 2D and 3D images: reduce, expand, level rules (docs/method.md §4).

The operators of Laplacian-pyramid blending (Burt & Adelson, ACM Trans Graph 2(4):217-236, 1983);
the blend is in :mod:`RobustDeepLogic.blending.blend`, buffers in :mod:`RobustDeepLogic.blending.buffers`.

Arrays are ``[z, y, x]`` or ``[y, x]``, optionally with one leading channel axis: ``nspatial`` (2 or 3)
is the number of trailing spatial axes, by default 2 for a 2-axis array and 3 otherwise. Work is done in
float32 with torch on the device of the inputs (CPU or CUDA); numpy in gives numpy out, tensors give
tensors; inputs are never modified. Other shapes raise :class:`InputError`, other types ``TypeError``.

- Kernel: binomial ``(1, 4, 6, 4, 1) / 16`` (Burt & Adelson's ``a = 0.375``), separable along every axis.
- Borders: mirror reflection without repeating the edge sample (``... x2 x1 | x0 x1 x2 ...``).
- ``reduce`` (gf then down): filter, keep voxels ``0, 2, 4, ...``: ``n -> ceil(n / 2)`` (109 -> 55 -> 28).
- ``expand`` (up then gf): zeros inserted to the *exact* finer size (55 -> 109, not 110), then the
  kernel times 2 per axis, which preserves the mean.
- Levels: ``L`` gives ``L + 1`` entries, level 0 full size (``L = 0``: the naive blend). Each reduced
  level needs 3 voxels per axis: ``L <= max_levels(shape)`` (6 for 109x200x200), else InputError.

Reconstruction is exact: ``Lap[i] = G[i] - expand(G[i+1])`` and the collapse adds the same ``expand``
back (the minus sign printed in the paper's Eq. 3 is a typesetting slip). Filters are shifted adds on
strided views (no padding copies, no convolutions; docs/baselines.md); the ``1/16`` factors are applied
once per reduce, the expand's ``1/8`` on the coarse side, where arrays are 8 times smaller.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from RobustDeepLogic.blending.buffers import BufferPool
from RobustDeepLogic.core.errors import InputError

ArrayLike = Union[np.ndarray, torch.Tensor]

#: The generating kernel (1 4 6 4 1) / 16, for documentation and for reference implementations.
BINOMIAL_KERNEL: Tuple[float, ...] = (1 / 16, 4 / 16, 6 / 16, 4 / 16, 1 / 16)

#: Default number of pyramid levels (the benchmarks and the study's grid use 4).
DEFAULT_LEVELS = 4

#: The smallest axis length that can still be reduced.
MIN_REDUCE_SIZE = 3


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


def level_shapes(shape: Sequence[int], levels: int) -> List[Tuple[int, ...]]:
    """The spatial shapes of pyramid levels ``0 .. levels`` (each axis ``n -> ceil(n / 2)``).

    Parameters
    ----------
    shape : sequence of int
        The spatial shape of level 0.
    levels : int
        The number of reductions ``L`` (not checked against :func:`max_levels`).

    Returns
    -------
    list of tuple of int
        ``L + 1`` shapes; level ``i`` has ``ceil(n / 2**i)`` voxels along an axis of ``n``.
    """
    shapes = [tuple(int(s) for s in shape)]
    for _ in range(levels):
        shapes.append(tuple((s + 1) // 2 for s in shapes[-1]))
    return shapes


def max_levels(shape: Sequence[int]) -> int:
    """The largest ``levels`` allowed for spatial ``shape``: every reduced level has all axes >= 3.

    >>> max_levels((109, 200, 200))
    6

    Parameters
    ----------
    shape : sequence of int
        A spatial shape, ``(z, y, x)`` or ``(y, x)``.

    Returns
    -------
    int
        The largest ``L`` such that levels ``0 .. L-1`` have :data:`MIN_REDUCE_SIZE` voxels per axis.
    """
    levels = 0
    current = [int(s) for s in shape]
    while min(current) >= MIN_REDUCE_SIZE:
        levels += 1
        current = [(s + 1) // 2 for s in current]
    return levels


def check_levels(shape: Sequence[int], levels: int) -> int:
    """``levels`` as an int, or :class:`InputError` if ``shape`` cannot hold that many levels.

    Parameters
    ----------
    shape : sequence of int
        The spatial shape of level 0.
    levels : int
        The number of reductions asked for (a float with a whole value is accepted, a bool is not).

    Returns
    -------
    int
        ``levels``.

    Raises
    ------
    InputError
        ``levels`` is not a whole number >= 0, or exceeds :func:`max_levels` of ``shape``.
    """
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

    Parameters
    ----------
    x : numpy.ndarray or torch.Tensor
        ``[z, y, x]``, ``[y, x]``, or either with a leading channel axis (at least 3 voxels per axis).
    nspatial : {2, 3}, optional
        The number of trailing spatial axes (default: see the module's conventions).

    Returns
    -------
    numpy.ndarray or torch.Tensor
        float32, of the kind of ``x``, with each spatial axis ``n -> ceil(n / 2)``.
    """
    t, nspatial = _prepare(x, "x", nspatial)
    return _like_input(_reduce(t, nspatial), x)


def expand(x: ArrayLike, shape: Sequence[int], *, nspatial: Optional[int] = None) -> ArrayLike:
    """One expand step: zero insertion to spatial ``shape`` then 2 x binomial filter per axis.

    Parameters
    ----------
    x : numpy.ndarray or torch.Tensor
        The coarse level: ``[z, y, x]``, ``[y, x]``, or either with a leading channel axis.
    shape : sequence of int
        The exact spatial shape of the finer level (its last ``nspatial`` entries are used);
        ``ceil(shape / 2)`` must equal the spatial shape of ``x``, else ``ValueError``.
    nspatial : {2, 3}, optional
        The number of trailing spatial axes.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        float32, of the kind of ``x``, with spatial shape ``shape``.
    """
    t, nspatial = _prepare(x, "x", nspatial)
    return _like_input(_expand(t, tuple(shape)[-nspatial:], nspatial), x)


def gaussian_pyramid(
    x: ArrayLike, levels: int = DEFAULT_LEVELS, *, nspatial: Optional[int] = None
) -> List[ArrayLike]:
    """``[G0, ..., GL]`` with ``G0 = x`` (as float32) and ``G[i] = reduce(G[i-1])`` (docs/method.md §4).

    Parameters
    ----------
    x : numpy.ndarray or torch.Tensor
        ``[z, y, x]`` or ``[y, x]``, or either with a leading channel axis.
    levels : int, optional
        Number of reductions ``L`` (``L + 1`` entries); at most :func:`max_levels` of the shape, else
        :class:`InputError`.
    nspatial : {2, 3}, optional
        The number of trailing spatial axes.

    Returns
    -------
    list of numpy.ndarray or torch.Tensor
        ``L + 1`` float32 arrays of the kind of ``x`` (``G0`` may share its memory); level ``i`` has
        spatial shape ``ceil(shape / 2**i)`` per axis.
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

    Parameters
    ----------
    x : numpy.ndarray or torch.Tensor
        ``[z, y, x]`` or ``[y, x]``, or either with a leading channel axis.
    levels : int, optional
        Number of reductions ``L``; at most :func:`max_levels` of the shape, else :class:`InputError`.
    nspatial : {2, 3}, optional
        The number of trailing spatial axes.

    Returns
    -------
    list of numpy.ndarray or torch.Tensor
        ``L + 1`` float32 arrays of the kind of ``x``, ``Lap[i]`` of the shape of ``G[i]``.
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
    """``Y[L] = Lap[L]; Y[i] = Lap[i] + expand(Y[i+1])``; returns ``Y[0]`` (docs/method.md §4).

    Parameters
    ----------
    pyramid : sequence of numpy.ndarray or torch.Tensor
        ``[Lap0, ..., LapL]``, finest first (:func:`laplacian_pyramid`); on the device of its first
        tensor. Each level's spatial shape must be ``ceil(n / 2)`` of the finer one, else ``ValueError``.
    nspatial : {2, 3}, optional
        The number of trailing spatial axes.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        ``Y0``: float32, of the shape of ``Lap0`` and of the kind of ``pyramid[0]``.

    Raises
    ------
    InputError
        The pyramid is empty.
    """
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

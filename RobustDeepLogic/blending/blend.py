"""Laplacian-pyramid blending of registered volumes: two parents, or K parents (docs/method.md §4).

This is the image operation of Robust-Deep (Sanaat et al., J Digit Imaging 2022): a new subject is
made from two registered patients ``x1`` and ``x2`` and a mask ``m`` in [0, 1] (1 takes ``x1``) by
blending the Laplacian pyramids of the two volumes with the Gaussian pyramid of the mask and
collapsing the result (Burt & Adelson, "A multiresolution spline with application to image
mosaics", ACM Trans Graph 2(4):217-236, 1983). The pyramid operators and their conventions (kernel,
borders, odd sizes, levels) are in :mod:`RobustDeepLogic.blending.pyramids`; the naive blend, MixUp
and CutMix in :mod:`RobustDeepLogic.blending.baselines`.

Blending is linear in the images, so :func:`laplacian_blend` computes
``x2 + collapse(GM * Lap(x1 - x2))``: one Laplacian pyramid instead of two, identical to the textbook
two-pyramid form ``collapse(GM * Lap(x1) + (1 - GM) * Lap(x2))`` (:func:`two_pyramid_blend`) up to
float32 rounding, in 29-41 % less time (docs/baselines.md). The images may carry one extra leading
channel axis ``[C, z, y, x]`` (e.g. the 7 modalities of one patient): all channels are blended in one
call with one shared mask pyramid, one channel after the other, which keeps the working set small.
On the CPU, temporary arrays come from a per-thread
:class:`~RobustDeepLogic.blending.buffers.BufferPool` that is kept between calls.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Union

import torch

from RobustDeepLogic.blending.buffers import BufferPool, default_pool
from RobustDeepLogic.blending.pyramids import (
    DEFAULT_LEVELS,
    ArrayLike,
    _as_tensor,
    _device_of,
    _expand,
    _expand_scaled,
    _like_input,
    _reduce,
    check_levels,
    collapse_pyramid,
    gaussian_pyramid,
    laplacian_pyramid,
    level_shapes,
)
from RobustDeepLogic.core.errors import InputError

#: The largest difference allowed between ``mask`` and level 0 of a precomputed ``mask_levels``.
_MASK_LEVEL_TOL = 1e-5

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


def _check_mask_levels(
    gm: Sequence[torch.Tensor], mask: Optional[ArrayLike], levels: int, device: torch.device
) -> None:
    """Refuse a precomputed mask pyramid that is not the Gaussian pyramid of ``mask`` at ``levels``.

    The number of entries and their shapes are checked, and (when ``mask`` is given) ``gm[0]`` must
    equal ``mask`` as float32 (which :func:`mask_pyramid` gives exactly; ``_MASK_LEVEL_TOL`` allows for
    a pyramid built elsewhere).
    """
    if len(gm) != levels + 1:
        raise InputError(
            f"the mask pyramid mask_levels has {len(gm)} entries, {levels + 1} are needed for "
            f"{levels} levels",
            hint="build it with mask_pyramid(mask, levels) for the same levels",
        )
    nspatial = gm[0].ndim
    for i, shape in enumerate(level_shapes(gm[0].shape, levels)):
        if tuple(gm[i].shape[-nspatial:]) != shape or gm[i].ndim != nspatial:
            raise InputError(
                f"level {i} of the mask pyramid mask_levels has shape {tuple(gm[i].shape)}, "
                f"{shape} expected", hint="build it with mask_pyramid(mask, levels)")
    if mask is None:
        return
    m = _as_tensor(mask, "mask", device)
    g0 = gm[0]
    if m is g0 or (m.shape == g0.shape and m.stride() == g0.stride() and m.data_ptr() == g0.data_ptr()):
        return  # the very same values (mask_pyramid's level 0 shares the mask's memory)
    if m.shape != g0.shape:
        raise InputError(
            f"mask has shape {tuple(m.shape)} but level 0 of its pyramid mask_levels has shape "
            f"{tuple(g0.shape)}: mask_levels is not the pyramid of this mask",
            hint="pass mask_levels=mask_pyramid(mask, levels), or the mask alone")
    err = float((m - g0).abs().max()) if m.numel() else 0.0
    if not err <= _MASK_LEVEL_TOL:
        raise InputError(
            f"mask differs from level 0 of the mask pyramid mask_levels (by up to {err:.3g}): "
            "mask_levels is not the pyramid of this mask",
            hint="pass mask_levels=mask_pyramid(mask, levels), or the mask alone")


def mask_pyramid(mask: ArrayLike, levels: int = DEFAULT_LEVELS) -> List[torch.Tensor]:
    """The Gaussian pyramid ``GM`` of a mask as float32 tensors, to share between many blends.

    Parameters
    ----------
    mask : numpy.ndarray or torch.Tensor
        ``[z, y, x]`` or ``[y, x]`` weights in [0, 1]. A mask of ones gives exact ones at every level.
    levels : int, optional
        Number of pyramid reductions ``L`` (default 4).

    Returns
    -------
    list of torch.Tensor
        ``L + 1`` float32 tensors ``GM0 .. GML`` on the device of ``mask`` (CPU for numpy); ``GM0`` is
        the mask itself.

    Raises
    ------
    InputError
        ``mask`` is not 2D or 3D, or ``levels`` is too many for its shape.
    """
    t = _as_tensor(mask, "mask")
    return gaussian_pyramid(t, levels, nspatial=t.ndim)


def laplacian_blend(
    x1: ArrayLike,
    x2: ArrayLike,
    mask: Optional[ArrayLike],
    levels: int = DEFAULT_LEVELS,
    *,
    mask_levels: Optional[Sequence[torch.Tensor]] = None,
    pool: Optional[BufferPool] = None,
) -> ArrayLike:
    """Laplacian-pyramid blend of ``x1`` and ``x2`` under ``mask`` (1 takes ``x1``), docs/method.md §4.

    Computes ``x2 + collapse(GM * Lap(x1 - x2))``, equal to the two-pyramid form
    ``collapse(GM * Lap(x1) + (1 - GM) * Lap(x2))`` (Burt & Adelson 1983) by linearity.

    Parameters
    ----------
    x1, x2 : numpy.ndarray or torch.Tensor
        Images of the two parents: ``[z, y, x]`` / ``[y, x]``, or ``[C, z, y, x]`` / ``[C, y, x]`` to
        blend ``C`` channels (modalities) with one shared mask pyramid. Any real dtype; computed in
        float32 on the device of the tensors (CPU for numpy input).
    mask : numpy.ndarray or torch.Tensor or None
        ``[z, y, x]`` or ``[y, x]`` weights in [0, 1]; its dimensionality sets the spatial one. May be
        None when ``mask_levels`` is given.
    levels : int, optional
        Number of pyramid reductions (default 4; at most
        :func:`~RobustDeepLogic.blending.pyramids.max_levels` of the shape); 0 gives the naive blend.
    mask_levels : sequence of torch.Tensor, optional
        A precomputed :func:`mask_pyramid` of ``mask`` with ``levels + 1`` entries, to share between
        many blends; the blend uses it in place of the mask's pyramid. When ``mask`` is given too, it
        must equal ``mask_levels[0]`` (to within 1e-5), else :class:`InputError`.
    pool : BufferPool, optional
        Where temporary buffers come from and go back to (default: the calling thread's
        :func:`~RobustDeepLogic.blending.buffers.default_pool`).

    Returns
    -------
    numpy.ndarray or torch.Tensor
        The blend, float32, same shape as ``x1`` and of its kind (numpy or torch). With ``mask == 1``
        everywhere it equals ``x1`` (to float32 rounding); with ``x1 == x2`` it is ``x2`` exactly.

    Raises
    ------
    InputError
        ``x1`` and ``x2`` differ in shape or do not fit the mask, the mask is not 2D or 3D, ``levels``
        is too many for the shape, neither ``mask`` nor ``mask_levels`` is given, or ``mask_levels``
        does not have ``levels + 1`` entries of the pyramid's shapes or is not the pyramid of ``mask``
        (its level 0 differs from ``mask``).

    References
    ----------
    Burt P. J., Adelson E. H., "A multiresolution spline with application to image mosaics",
    ACM Trans Graph 2(4):217-236, 1983. docs/method.md §4.

    Examples
    --------
    >>> import numpy as np
    >>> a, b = np.ones((9, 10, 24), np.float32), np.zeros((9, 10, 24), np.float32)
    >>> m = np.zeros((9, 10, 24), np.float32); m[..., :12] = 1
    >>> y = laplacian_blend(a, b, m, levels=2)
    >>> bool(y[..., 0].min() > 0.99 and y[..., -1].max() < 0.01)
    True
    """
    device = _device_of(x1, x2, mask)
    a = _as_tensor(x1, "x1", device)
    b = _as_tensor(x2, "x2", device)
    if mask_levels is not None:
        gm = [_as_tensor(g, "mask", device) for g in mask_levels]
        if not gm:
            raise InputError("the mask pyramid mask_levels is empty")
        m = gm[0]
    else:
        if mask is None:
            raise InputError("laplacian_blend needs a mask (or its pyramid, mask_levels)")
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
        _check_mask_levels(gm, mask, levels, device)
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
    """Laplacian blend of ``K`` parents with masks forming a partition of unity (docs/method.md §4).

    ``Y = collapse(sum_k GM_k * Lap(x_k))``, computed as ``x_K + collapse(sum_{k<K} GM_k *
    Lap(x_k - x_K))`` (one collapse), which holds because the Gaussian pyramids of the masks also sum to
    one at every level. Temporary arrays do not come from a :class:`BufferPool`.

    Parameters
    ----------
    images : sequence of numpy.ndarray or torch.Tensor
        ``K >= 2`` arrays of one shape, ``[z, y, x]`` or ``[C, z, y, x]`` (or 2D), or one array with the
        parents stacked on a first axis.
    masks : sequence of numpy.ndarray or torch.Tensor, or one stacked array
        ``K`` masks ``[z, y, x]`` (or ``[y, x]``; a sequence or a stacked ``[K, z, y, x]`` array), each
        in [0, 1], summing to 1 at every voxel; mask ``k`` weights parent ``k``.
    levels : int, optional
        Number of pyramid reductions (default 4).
    tol : float, optional
        Tolerance of the sum of the masks and of their [0, 1] range (default 1e-4).

    Returns
    -------
    numpy.ndarray or torch.Tensor
        The blend, float32, shaped like one parent, of the kind of the first parent.

    Raises
    ------
    InputError
        Fewer than 2 images or not as many masks; masks that do not sum to 1 or leave [0, 1] (beyond
        ``tol``); images or masks of different shapes; or too many ``levels``.
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

    Same arguments and result as :func:`laplacian_blend`, about 1.5 times slower; it does not use the
    buffer pool.

    Parameters
    ----------
    x1, x2 : numpy.ndarray or torch.Tensor
        Images of the two parents, ``[z, y, x]`` / ``[y, x]`` or with a leading channel axis.
    mask : numpy.ndarray or torch.Tensor
        ``[z, y, x]`` or ``[y, x]`` weights in [0, 1]; 1 takes ``x1``.
    levels : int, optional
        Number of pyramid reductions (default 4).

    Returns
    -------
    numpy.ndarray or torch.Tensor
        The blend, float32, shaped like ``x1`` and of its kind.

    Raises
    ------
    InputError
        As :func:`laplacian_blend`.
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

"""TODO docstring (RobustDeepLogic.blending)."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
import torch
from scipy import ndimage

from RobustDeepLogic.blending.blend import _check_pair
from RobustDeepLogic.blending.pyramids import (
    ArrayLike,
    _as_tensor,
    _device_of,
    _like_input,
)
from RobustDeepLogic.core.errors import InputError


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

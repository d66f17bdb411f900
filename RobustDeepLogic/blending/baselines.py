"""What Laplacian blending is compared with: the naive mask blend, MixUp and CutMix; a seam measure.

The naive blend ``m x1 + (1 - m) x2`` is the hard-seam baseline the paper rejects (docs/method.md §4).
MixUp and CutMix are the usual mixing augmentations, which need no mask; on-the-fly augmentation
offers them as baselines (:class:`~RobustDeepLogic.synthesis.dataset.BlendedDataset`).
:func:`seam_roughness` measures how visible a seam is. The Laplacian blend itself is in
:mod:`RobustDeepLogic.blending.blend`.
"""

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
    """``mask * x1 + (1 - mask) * x2``: the hard-seam baseline the paper rejects (docs/method.md §4).

    Parameters
    ----------
    x1, x2 : numpy.ndarray or torch.Tensor
        Images of the two parents, ``[z, y, x]`` / ``[y, x]`` or with a leading channel axis, as in
        :func:`~RobustDeepLogic.blending.blend.laplacian_blend`.
    mask : numpy.ndarray or torch.Tensor
        ``[z, y, x]`` or ``[y, x]`` weights in [0, 1] (1 takes ``x1``), shared by all channels.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        float32, shaped like ``x1`` and of its kind.

    Raises
    ------
    InputError
        The images differ in shape or do not fit the mask, or the mask is not 2D or 3D.
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

    Parameters
    ----------
    x1, x2 : numpy.ndarray or torch.Tensor
        Two images of one shape (any shape).
    lam : float, optional
        The weight of ``x1``, in [0, 1]; None draws it from Beta(``alpha``, ``alpha``) with ``rng``.
    alpha : float, optional
        The parameter of the Beta distribution (default 0.4); used only when ``lam`` is None.
    rng : numpy.random.Generator, optional
        The generator ``lam`` is drawn with; None: a new, unseeded one.

    Returns
    -------
    image : numpy.ndarray or torch.Tensor
        float32, of the kind of ``x1``.
    lam : float
        The weight of ``x1`` that was used.

    Raises
    ------
    InputError
        ``lam`` is outside [0, 1], or the images differ in shape.

    References
    ----------
    Zhang H., Cisse M., Dauphin Y. N., Lopez-Paz D., "mixup: Beyond Empirical Risk Minimization",
    ICLR 2018.
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

    The box has the same fraction ``(1 - lam) ** (1/ndim)`` of every axis (rounded to whole voxels) and
    lies fully inside; its position is uniform.

    Parameters
    ----------
    shape : sequence of int
        The spatial shape (any number of axes).
    lam : float
        The target fraction of the volume kept as ones, in [0, 1].
    rng : numpy.random.Generator, optional
        The generator of the box position; None: a new, unseeded one.

    Returns
    -------
    numpy.ndarray
        float32 of ``shape``: 0 in the box, 1 elsewhere.

    Raises
    ------
    InputError
        ``lam`` is outside [0, 1].
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

    Parameters
    ----------
    x1, x2 : numpy.ndarray or torch.Tensor
        Two images of one shape: ``[z, y, x]`` or ``[C, z, y, x]`` (an array of 3 or more axes is taken
        as 3D, so a 2D image with channels is not supported), or ``[y, x]``.
    lam : float, optional
        The target fraction of voxels kept from ``x1``, in [0, 1]; None draws it from
        Beta(``alpha``, ``alpha``).
    alpha : float, optional
        The parameter of the Beta distribution (default 1.0, the uniform distribution).
    rng : numpy.random.Generator, optional
        Draws ``lam`` and the box (:func:`cutmix_box`); None: a new, unseeded one.

    Returns
    -------
    image : numpy.ndarray or torch.Tensor
        float32, of the kind of ``x1``: ``x2`` inside the box, ``x1`` elsewhere.
    kept : float
        The exact fraction of voxels taken from ``x1`` (close to ``lam``; the box is whole voxels).

    Raises
    ------
    InputError
        ``lam`` is outside [0, 1], or the images differ in shape.

    References
    ----------
    Yun S., Han D., Oh S. J., Chun S., Choe J., Yoo Y., "CutMix: Regularization Strategy to Train Strong
    Classifiers with Localizable Features", ICCV 2019.
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

    Parameters
    ----------
    image : numpy.ndarray or torch.Tensor
        A 2D or 3D one-channel image (e.g. a blend), of the shape of ``mask``.
    mask : numpy.ndarray or torch.Tensor
        The blending mask; voxels above 0.5 are one side of the seam.
    width : int, optional
        Iterations of binary dilation of the one-voxel boundary (default 2; 0 keeps it as is).

    Returns
    -------
    float
        Over the boundary voxels, the mean of the sum over all axes of ``|second difference|`` of
        ``image`` (computed in float64; 0 at the first and last voxel of an axis). 0.0 when the mask has
        no boundary.
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

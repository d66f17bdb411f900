"""Scalar image-quality metrics of a prediction against its reference, over the head mask.

Everything here works on numpy ``[z, y, x]`` arrays that share one grid (array-only functions: the
caller checks the geometry, as :func:`RobustDeepLogic.evaluate.evaluation.evaluate_case` does). All
metrics are computed over the voxels of a boolean head mask (``mask=None`` means every voxel; the
default head mask is :func:`RobustDeepLogic.io.headmask.head_mask` of the scaled reference, the one
policy also used during training, re-exported here with :data:`HEAD_THRESHOLD`) and are
in the units of the arrays. Definitions (docs/method.md §8), with R the reference, P the prediction
and L the number of mask voxels:

``rmse``
    ``sqrt(sum((R - P)^2) / L)``.
``mae``
    ``sum(abs(R - P)) / L``.
``psnr``
    ``20 log10(Max / RMSE)`` in dB, Max = the larger of ``max(R)`` and ``max(P)`` over the mask
    (the paper's definition; note that it changes with a unit offset such as HU's).
``ssim_global``
    the paper's SSIM: ONE global statistic over the mask voxels,
    ``(2 mR mP + c1)(2 sRP + c2) / ((mR^2 + mP^2 + c1)(sR^2 + sP^2 + c2))`` with the population
    (1/L) variances and covariance, and the paper's constants c1 = 0.01, c2 = 0.02 (meant for data
    in the scaled [0, 1] units; pass ``constants_scale=s**2`` to express them in physical units).

The constants of the windowed SSIM of Wang et al. (2004) are defined here (:data:`SSIM_SIGMA`,
:data:`SSIM_TRUNCATE`, :data:`SSIM_K1`, :data:`SSIM_K2`); the windowed SSIM itself is in
:mod:`RobustDeepLogic.evaluate.ssim`. Voxel-wise error maps, joint histograms and linear fits are in
:mod:`RobustDeepLogic.evaluate.maps`; all metrics of one region at once in
:mod:`RobustDeepLogic.evaluate.regions`.

References
----------
Sanaat A. et al., "Robust-Deep", J Digit Imaging 35:469-481 (2022), doi:10.1007/s10278-021-00536-0;
restated in docs/method.md §8.
Wang Z., Bovik A.C., Sheikh H.R., Simoncelli E.P., "Image quality assessment: from error visibility
to structural similarity", IEEE TIP 13:600-612 (2004), doi:10.1109/TIP.2003.819861.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import numpy as np

from RobustDeepLogic.io.headmask import HEAD_THRESHOLD, head_mask  # noqa: F401  (re-exported: the one policy)

#: The paper's constants of its global SSIM (for data in the scaled [0, 1] units).
SSIM_GLOBAL_C1 = 0.01

SSIM_GLOBAL_C2 = 0.02

#: Windowed SSIM (Wang et al. 2004): Gaussian window and constants k1, k2 (c = (k D)^2).
SSIM_SIGMA = 1.5

SSIM_TRUNCATE = 3.5

SSIM_K1 = 0.01

SSIM_K2 = 0.03

ArrayLike = Union[np.ndarray, Sequence[float]]


# --------------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------------
def _pair(reference: np.ndarray, prediction: np.ndarray, mask: Optional[np.ndarray]):
    reference = np.asarray(reference)
    prediction = np.asarray(prediction)
    if reference.shape != prediction.shape:
        raise ValueError(f"reference {reference.shape} and prediction {prediction.shape} differ in shape")
    if mask is None:
        return reference, prediction, None
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != reference.shape:
        raise ValueError(f"mask {mask.shape} and reference {reference.shape} differ in shape")
    if not mask.any():
        raise ValueError("the mask is empty")
    return reference, prediction, mask


def _voxels(a: np.ndarray, mask: Optional[np.ndarray]) -> np.ndarray:
    return (a.ravel() if mask is None else a[mask]).astype(np.float64, copy=False)


# --------------------------------------------------------------------------------------------------
# Simple metrics
# --------------------------------------------------------------------------------------------------
def rmse(reference: np.ndarray, prediction: np.ndarray, mask: Optional[np.ndarray] = None) -> float:
    """Root-mean-square error over the mask voxels, in the units of the arrays.

    Parameters
    ----------
    reference : numpy.ndarray
        Reference R, ``[z, y, x]`` (any shape works).
    prediction : numpy.ndarray
        Prediction P, the shape of ``reference``, in the same units.
    mask : numpy.ndarray, optional
        Boolean mask of the voxels to use, the shape of ``reference``; None uses every voxel.

    Returns
    -------
    float
        ``sqrt(sum((R - P)^2) / L)`` over the L mask voxels.

    Raises
    ------
    ValueError
        If the shapes differ or the mask is empty.

    References
    ----------
    .. [1] docs/method.md §8.
    """
    reference, prediction, mask = _pair(reference, prediction, mask)
    d = _voxels(prediction, mask) - _voxels(reference, mask)
    return float(math.sqrt(np.mean(d * d)))


def mae(reference: np.ndarray, prediction: np.ndarray, mask: Optional[np.ndarray] = None) -> float:
    """Mean absolute error over the mask voxels, in the units of the arrays.

    Parameters
    ----------
    reference : numpy.ndarray
        Reference R, ``[z, y, x]`` (any shape works).
    prediction : numpy.ndarray
        Prediction P, the shape of ``reference``, in the same units.
    mask : numpy.ndarray, optional
        Boolean mask of the voxels to use, the shape of ``reference``; None uses every voxel.

    Returns
    -------
    float
        ``sum(abs(R - P)) / L`` over the L mask voxels.

    Raises
    ------
    ValueError
        If the shapes differ or the mask is empty.
    """
    reference, prediction, mask = _pair(reference, prediction, mask)
    return float(np.mean(np.abs(_voxels(prediction, mask) - _voxels(reference, mask))))


def psnr_peak(reference: np.ndarray, prediction: np.ndarray, mask: Optional[np.ndarray] = None) -> float:
    """The paper's PSNR peak: the larger of the two maxima over the mask voxels.

    Parameters
    ----------
    reference : numpy.ndarray
        Reference R, ``[z, y, x]`` (any shape works).
    prediction : numpy.ndarray
        Prediction P, the shape of ``reference``, in the same units.
    mask : numpy.ndarray, optional
        Boolean mask of the voxels to use, the shape of ``reference``; None uses every voxel.

    Returns
    -------
    float
        ``max(max(R), max(P))`` over the mask voxels, in the units of the arrays.

    Raises
    ------
    ValueError
        If the shapes differ or the mask is empty.

    References
    ----------
    .. [1] docs/method.md §8.
    """
    reference, prediction, mask = _pair(reference, prediction, mask)
    return float(max(_voxels(reference, mask).max(), _voxels(prediction, mask).max()))


def psnr(reference: np.ndarray, prediction: np.ndarray, mask: Optional[np.ndarray] = None) -> float:
    """Peak signal-to-noise ratio in dB: ``20 log10(Max / RMSE)``, Max = :func:`psnr_peak`.

    Parameters
    ----------
    reference : numpy.ndarray
        Reference R, ``[z, y, x]`` (any shape works).
    prediction : numpy.ndarray
        Prediction P, the shape of ``reference``, in the same units.
    mask : numpy.ndarray, optional
        Boolean mask of the voxels to use, the shape of ``reference``; None uses every voxel.

    Returns
    -------
    float
        The PSNR in dB; ``inf`` for identical images (RMSE = 0) and ``nan`` when Max <= 0. Max and
        RMSE are both taken in the units of the arrays, so a unit offset (HU) changes the value.

    Raises
    ------
    ValueError
        If the shapes differ or the mask is empty.

    References
    ----------
    .. [1] docs/method.md §8.
    """
    peak = psnr_peak(reference, prediction, mask)
    error = rmse(reference, prediction, mask)
    if peak <= 0:
        return float("nan")
    if error == 0:
        return float("inf")
    return float(20.0 * math.log10(peak / error))


def ssim_global(
    reference: np.ndarray,
    prediction: np.ndarray,
    mask: Optional[np.ndarray] = None,
    c1: float = SSIM_GLOBAL_C1,
    c2: float = SSIM_GLOBAL_C2,
    constants_scale: float = 1.0,
) -> float:
    """The paper's global SSIM: one statistic over all mask voxels (see the module docstring).

    ``(2 mR mP + c1)(2 sRP + c2) / ((mR^2 + mP^2 + c1)(sR^2 + sP^2 + c2))`` with the means m, the
    population (1/L) variances s^2 and covariance sRP of the mask voxels. This is not the windowed
    SSIM of :func:`RobustDeepLogic.evaluate.ssim.ssim`.

    Parameters
    ----------
    reference : numpy.ndarray
        Reference R, ``[z, y, x]`` (any shape works).
    prediction : numpy.ndarray
        Prediction P, the shape of ``reference``, in the same units.
    mask : numpy.ndarray, optional
        Boolean mask of the voxels to use, the shape of ``reference``; None uses every voxel.
    c1, c2 : float, optional
        The paper's constants (default :data:`SSIM_GLOBAL_C1` = 0.01, :data:`SSIM_GLOBAL_C2` = 0.02),
        meant for the scaled [0, 1] units.
    constants_scale : float, optional
        Multiplies c1 and c2: ``s**2`` expresses them in physical units for a scaling constant ``s``
        (e.g. ``15**2`` for SUV/15), so that an offset-free rescaling leaves the value unchanged.
        Default 1 (arrays in scaled units).

    Returns
    -------
    float
        The global SSIM; 1 for identical images.

    Raises
    ------
    ValueError
        If the shapes differ or the mask is empty.

    References
    ----------
    .. [1] docs/method.md §8.
    """
    reference, prediction, mask = _pair(reference, prediction, mask)
    r = _voxels(reference, mask)
    p = _voxels(prediction, mask)
    mr, mp = r.mean(), p.mean()
    dr, dp = r - mr, p - mp
    vr, vp, cov = np.mean(dr * dr), np.mean(dp * dp), np.mean(dr * dp)
    c1 = c1 * constants_scale
    c2 = c2 * constants_scale
    return float((2 * mr * mp + c1) * (2 * cov + c2) / ((mr * mr + mp * mp + c1) * (vr + vp + c2)))

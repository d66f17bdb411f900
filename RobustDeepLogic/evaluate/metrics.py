"""Image-quality metrics of a predicted volume against its reference, in the head region.

Everything here works on numpy ``[z, y, x]`` arrays that share one grid (array-only functions: the
caller checks the geometry, see :mod:`RobustDeepLogic.evaluate`). All metrics are computed over the
voxels of a boolean head mask (``mask=None`` means every voxel). Definitions (method.md section 8):

``rmse``
    ``sqrt(sum((R - P)^2) / L)``, L = number of mask voxels; in the units of the arrays.
``psnr``
    ``20 log10(Max / RMSE)`` in dB, Max = the larger of ``max(R)`` and ``max(P)`` over the mask
    (the paper's definition; note that it changes with a unit offset such as HU).
``ssim_global``
    the paper's SSIM: ONE global statistic over the mask voxels,
    ``(2 mR mP + c1)(2 sRP + c2) / ((mR^2 + mP^2 + c1)(sR^2 + sP^2 + c2))`` with the population
    (1/L) variances and covariance, and the paper's constants c1 = 0.01, c2 = 0.02 (meant for data
    in the scaled [0, 1] units; pass ``constants_scale=s**2`` to express them in physical units).
``ssim`` (windowed)
    the standard SSIM of Wang et al. (2004): local statistics under a Gaussian window
    (sigma 1.5 voxels, truncated at 3.5 sigma: 11 taps), ``c1 = (0.01 D)^2``, ``c2 = (0.03 D)^2``
    with D the data range, population covariance. The SSIM map is computed on the whole grid
    (boundary: half-sample symmetric reflection, scipy's ``mode='reflect'``), then averaged over the
    mask voxels. ``mode='3d'`` filters along z, y and x; ``mode='2d'`` filters along y and x only,
    i.e. an SSIM map per axial slice, still averaged over all mask voxels of the volume (a
    voxel-weighted mean of the per-slice SSIMs). With ``mask=None, crop_border=True`` the mean is
    taken over the grid minus a 5-voxel border, which reproduces
    ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=D)`` exactly.

References
----------
Sanaat A. et al., "Robust-Deep", J Digit Imaging 35:469-481 (2022), doi:10.1007/s10278-021-00536-0.
Wang Z., Bovik A.C., Sheikh H.R., Simoncelli E.P., "Image quality assessment: from error visibility
to structural similarity", IEEE TIP 13:600-612 (2004), doi:10.1109/TIP.2003.819861.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import numpy as np

from RobustDeepLogic.io.headmask import clean_head

#: The paper's constants of its global SSIM (for data in the scaled [0, 1] units).
SSIM_GLOBAL_C1 = 0.01


SSIM_GLOBAL_C2 = 0.02


#: Windowed SSIM (Wang et al. 2004): Gaussian window and constants k1, k2 (c = (k D)^2).
SSIM_SIGMA = 1.5


SSIM_TRUNCATE = 3.5


SSIM_K1 = 0.01


SSIM_K2 = 0.03


#: Default head-mask threshold, in the scaled [0, 1] units (0.3 SUV for FD/MAC at SUV/15,
#: 0.1 SUV for NAC at SUV/5, -940 HU for CT at (HU+1000)/3000).
HEAD_THRESHOLD = 0.02


ArrayLike = Union[np.ndarray, Sequence[float]]


# --------------------------------------------------------------------------------------------------
# Checks and the head mask
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


def head_mask(
    reference_scaled: np.ndarray,
    threshold: float = HEAD_THRESHOLD,
    closing_radius: int = 2,
) -> np.ndarray:
    """The default head region of a reference volume.

    The foreground is ``reference > threshold`` (scaled units); :func:`RobustDeepLogic.io.headmask.clean_head`
    closes it with a ball of ``closing_radius`` voxels, keeps the largest connected component
    (26-connectivity) and fills holes in 3D and then in every axial slice.

    Parameters
    ----------
    reference_scaled:
        ``[z, y, x]`` reference in the scaled [0, 1] units.
    threshold:
        Scaled-unit threshold (default :data:`HEAD_THRESHOLD`).
    closing_radius:
        Ball radius in voxels; 0 skips the closing.

    Returns
    -------
    np.ndarray
        Boolean ``[z, y, x]``; may be empty (all False) if nothing exceeds the threshold.
    """
    return clean_head(np.asarray(reference_scaled) > threshold, closing_radius=closing_radius,
                      full_connectivity=True)


# --------------------------------------------------------------------------------------------------
# Simple metrics
# --------------------------------------------------------------------------------------------------
def rmse(reference: np.ndarray, prediction: np.ndarray, mask: Optional[np.ndarray] = None) -> float:
    """Root-mean-square error over the mask voxels, in the units of the arrays (method.md §8)."""
    reference, prediction, mask = _pair(reference, prediction, mask)
    d = _voxels(prediction, mask) - _voxels(reference, mask)
    return float(math.sqrt(np.mean(d * d)))


def mae(reference: np.ndarray, prediction: np.ndarray, mask: Optional[np.ndarray] = None) -> float:
    """Mean absolute error over the mask voxels, in the units of the arrays."""
    reference, prediction, mask = _pair(reference, prediction, mask)
    return float(np.mean(np.abs(_voxels(prediction, mask) - _voxels(reference, mask))))


def psnr_peak(reference: np.ndarray, prediction: np.ndarray, mask: Optional[np.ndarray] = None) -> float:
    """The paper's PSNR peak: the larger of the two maxima over the mask voxels."""
    reference, prediction, mask = _pair(reference, prediction, mask)
    return float(max(_voxels(reference, mask).max(), _voxels(prediction, mask).max()))


def psnr(reference: np.ndarray, prediction: np.ndarray, mask: Optional[np.ndarray] = None) -> float:
    """Peak signal-to-noise ratio in dB: ``20 log10(Max / RMSE)``, Max = :func:`psnr_peak`.

    Returns ``inf`` for identical images and ``nan`` when Max <= 0.
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

    Parameters
    ----------
    c1, c2:
        The paper's constants (0.01, 0.02), meant for the scaled [0, 1] units.
    constants_scale:
        Multiplies c1 and c2: ``s**2`` expresses them in physical units for a scaling constant ``s``
        (e.g. ``15**2`` for SUV/15), so that an offset-free rescaling leaves the value unchanged.
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

"""The windowed SSIM of Wang et al. (2004): its map and its mean over a mask.

Local statistics under a Gaussian window (sigma 1.5 voxels, truncated at 3.5 sigma: 11 taps),
``c1 = (0.01 D)^2``, ``c2 = (0.03 D)^2`` with D the data range, population covariance. The SSIM map
is computed on the whole grid (boundary: half-sample symmetric reflection, scipy's ``mode='reflect'``),
then averaged over the mask voxels. ``mode='3d'`` filters along z, y and x; ``mode='2d'`` filters
along y and x only, i.e. an SSIM map per axial slice, still averaged over all mask voxels of the
volume (a voxel-weighted mean of the per-slice SSIMs). With ``mask=None, crop_border=True`` the mean
is taken over the grid minus a 5-voxel border, which reproduces
``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=D)`` exactly. The separable filtering runs on a small
thread pool (scipy.ndimage releases the GIL).

The window and constants are defined in :mod:`RobustDeepLogic.evaluate.metrics`, which also holds
the paper's global SSIM (:func:`RobustDeepLogic.evaluate.metrics.ssim_global`, one statistic over
the mask, docs/method.md §8).

References
----------
Wang Z., Bovik A.C., Sheikh H.R., Simoncelli E.P., "Image quality assessment: from error visibility
to structural similarity", IEEE TIP 13:600-612 (2004), doi:10.1109/TIP.2003.819861.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Optional, Sequence

import numpy as np
from scipy import ndimage as ndi

from RobustDeepLogic.evaluate.metrics import (
    SSIM_K1,
    SSIM_K2,
    SSIM_SIGMA,
    SSIM_TRUNCATE,
    _pair,
)

# --------------------------------------------------------------------------------------------------
# Windowed SSIM
# --------------------------------------------------------------------------------------------------
_POOL: Optional[ThreadPoolExecutor] = None


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1)),
                                   thread_name_prefix="robustdeep-ssim")
    return _POOL


def gaussian_window(sigma: float = SSIM_SIGMA, truncate: float = SSIM_TRUNCATE) -> np.ndarray:
    """The normalised 1D Gaussian taps of the SSIM window.

    The radius is ``int(truncate * sigma + 0.5)``, as in scipy.ndimage.

    Parameters
    ----------
    sigma : float, optional
        Standard deviation in voxels (default :data:`~RobustDeepLogic.evaluate.metrics.SSIM_SIGMA`,
        1.5).
    truncate : float, optional
        Radius in units of ``sigma`` (default :data:`~RobustDeepLogic.evaluate.metrics.SSIM_TRUNCATE`,
        3.5).

    Returns
    -------
    numpy.ndarray
        float64 taps, ``2 * radius + 1`` of them (11 with the defaults), summing to 1.
    """
    radius = int(truncate * sigma + 0.5)
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (t / sigma) ** 2)
    return w / w.sum()


def _filter_stack(src: np.ndarray, dst: np.ndarray, axes: Sequence[int], weights: np.ndarray) -> np.ndarray:
    """Separable filtering of every channel of ``src`` (C, z, y, x) along ``axes`` (of z, y, x).

    Work is split into channel x chunk jobs for a thread pool (scipy.ndimage releases the GIL);
    ``src`` and ``dst`` are swapped between passes. Returns the buffer that holds the result.
    """
    pool = _pool()
    workers = pool._max_workers  # noqa: SLF001 - sizing only
    for axis in axes:
        split_axis = 0 if axis != 0 else 1  # spatial axis along which the job is chunked
        n = src.shape[1 + split_axis]
        pieces = max(1, min(n, (2 * workers + src.shape[0] - 1) // src.shape[0]))
        bounds = np.linspace(0, n, pieces + 1).astype(int)
        jobs = []
        for c in range(src.shape[0]):
            for a, b in zip(bounds[:-1], bounds[1:]):
                if b <= a:
                    continue
                index = [slice(None)] * 3
                index[split_axis] = slice(a, b)
                jobs.append((src[c][tuple(index)], dst[c][tuple(index)]))

        def run(job, axis=axis):
            s, d = job
            ndi.correlate1d(s, weights, axis=axis, output=d, mode="reflect")

        list(pool.map(run, jobs))
        src, dst = dst, src
    return src


def ssim_map(
    reference: np.ndarray,
    prediction: np.ndarray,
    data_range: float,
    mode: str = "3d",
    sigma: float = SSIM_SIGMA,
    k1: float = SSIM_K1,
    k2: float = SSIM_K2,
) -> np.ndarray:
    """The windowed SSIM map (Wang et al. 2004) of two ``[z, y, x]`` (or 2D ``[y, x]``) arrays.

    Gaussian window of ``sigma`` voxels truncated at 3.5 sigma, population covariance,
    ``c1 = (k1 * data_range)^2``, ``c2 = (k2 * data_range)^2``, half-sample symmetric boundary.
    Computed in float32 on values shifted by the reference mean (for accuracy in e.g. HU).

    Parameters
    ----------
    reference : numpy.ndarray
        Reference, ``[z, y, x]`` or ``[y, x]``.
    prediction : numpy.ndarray
        Prediction, the shape of ``reference``, in the same units.
    data_range : float
        D in the constants, in the units of the arrays (1.0 for the scaled [0, 1] units); positive.
    mode : {'3d', '2d'}, optional
        ``'3d'`` (default) filters along z, y and x; ``'2d'`` filters a 3D array along y and x only
        (one SSIM map per axial slice). A 2D array is always filtered in 2D.
    sigma : float, optional
        Standard deviation of the Gaussian window in voxels (default 1.5).
    k1, k2 : float, optional
        The constants of Wang et al. (defaults 0.01 and 0.03).

    Returns
    -------
    numpy.ndarray
        float32 SSIM map of the input shape.

    Raises
    ------
    ValueError
        If the shapes differ, ``mode`` is not ``'2d'`` or ``'3d'``, ``data_range`` is not positive, or
        the arrays are neither 2D nor 3D.

    References
    ----------
    .. [1] Wang Z., Bovik A.C., Sheikh H.R., Simoncelli E.P., "Image quality assessment: from error
       visibility to structural similarity", IEEE TIP 13:600-612 (2004), doi:10.1109/TIP.2003.819861.
    """
    reference = np.asarray(reference)
    prediction = np.asarray(prediction)
    if reference.shape != prediction.shape:
        raise ValueError(f"reference {reference.shape} and prediction {prediction.shape} differ in shape")
    if mode not in ("2d", "3d"):
        raise ValueError(f"mode must be '2d' or '3d', got {mode!r}")
    if not data_range > 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    squeeze = reference.ndim == 2
    if squeeze:
        reference, prediction = reference[None], prediction[None]
    if reference.ndim != 3:
        raise ValueError(f"expected 2D or 3D arrays, got {reference.ndim}D")
    axes = (2, 1) if (mode == "2d" or squeeze) else (2, 1, 0)
    shift = float(np.mean(reference, dtype=np.float64))
    stack = np.empty((5,) + reference.shape, np.float32)
    x, y = stack[0], stack[1]
    np.subtract(reference, shift, out=x, casting="unsafe")
    np.subtract(prediction, shift, out=y, casting="unsafe")
    np.multiply(x, x, out=stack[2])
    np.multiply(y, y, out=stack[3])
    np.multiply(x, y, out=stack[4])
    out = _filter_stack(stack, np.empty_like(stack), axes, gaussian_window(sigma))
    mx, my, vx, vy, vxy = out  # views; turned into statistics in place
    vx -= mx * mx
    vy -= my * my
    vxy -= mx * my
    mx += shift
    my += shift
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    # numerator: (2 mx my + c1)(2 vxy + c2); denominator: (mx^2 + my^2 + c1)(vx + vy + c2)
    vxy *= 2
    vxy += c2
    vx += vy
    vx += c2
    vy[...] = mx * my
    vy *= 2
    vy += c1
    vxy *= vy
    mx *= mx
    my *= my
    mx += my
    mx += c1
    mx *= vx
    np.divide(vxy, mx, out=vxy)
    result = vxy.copy()  # do not keep the five-channel buffer alive
    return result[0] if squeeze else result


def ssim(
    reference: np.ndarray,
    prediction: np.ndarray,
    mask: Optional[np.ndarray] = None,
    data_range: float = 1.0,
    mode: str = "3d",
    crop_border: bool = False,
    ssim_values: Optional[np.ndarray] = None,
) -> float:
    """Mean of the windowed SSIM map (:func:`ssim_map`) over the mask voxels.

    Parameters
    ----------
    reference : numpy.ndarray
        Reference, ``[z, y, x]`` (or 2D ``[y, x]``).
    prediction : numpy.ndarray
        Prediction, the shape of ``reference``, in the same units.
    mask : numpy.ndarray, optional
        Boolean head mask, the shape of ``reference``; None averages over all voxels.
    data_range : float, optional
        D in the constants, in the units of the arrays (default 1.0, for the scaled [0, 1] units).
    mode : {'3d', '2d'}, optional
        ``'3d'`` (default) or ``'2d'`` (per axial slice); see :func:`ssim_map`.
    crop_border : bool, optional
        Only with ``mask=None``: drop a border of the window's radius (5 voxels) along the filtered
        axes, as scikit-image does. Default False.
    ssim_values : numpy.ndarray, optional
        A precomputed :func:`ssim_map` of the two arrays to average (skips the computation; then
        ``data_range`` is not used).

    Returns
    -------
    float
        The mean SSIM over the mask voxels (or the whole, possibly cropped, grid).

    Raises
    ------
    ValueError
        If the shapes differ, the mask is empty, or :func:`ssim_map` refuses its arguments.

    References
    ----------
    .. [1] Wang Z., Bovik A.C., Sheikh H.R., Simoncelli E.P., "Image quality assessment: from error
       visibility to structural similarity", IEEE TIP 13:600-612 (2004), doi:10.1109/TIP.2003.819861.
    .. [2] docs/method.md §8 (our rule: the windowed SSIM is reported beside the paper's global one).
    """
    reference, prediction, mask = _pair(reference, prediction, mask)
    s = ssim_values if ssim_values is not None else ssim_map(reference, prediction, data_range, mode)
    if mask is not None:
        return float(np.mean(s[mask], dtype=np.float64))
    if crop_border:
        pad = (len(gaussian_window()) - 1) // 2
        index = [slice(pad, -pad)] * s.ndim
        if mode == "2d" and s.ndim == 3:
            index[0] = slice(None)
        s = s[tuple(index)]
    return float(np.mean(s, dtype=np.float64))

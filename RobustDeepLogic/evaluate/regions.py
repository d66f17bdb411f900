"""All scalar metrics of one region at once: the metric values of one ``metrics.csv`` row.

:func:`region_metrics` combines the metrics of :mod:`RobustDeepLogic.evaluate.metrics`, the
windowed SSIM of :mod:`RobustDeepLogic.evaluate.ssim` and the linear fit and relative error of
:mod:`RobustDeepLogic.evaluate.maps` over one mask (the head, or one label of a label volume inside
it). Reading the volumes and choosing the regions is
:func:`RobustDeepLogic.evaluate.evaluation.evaluate_case`'s work.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np

from RobustDeepLogic.evaluate.maps import LinearFit
from RobustDeepLogic.evaluate.metrics import (
    _pair,
    _voxels,
    mae,
    psnr,
    psnr_peak,
    rmse,
    ssim_global,
)
from RobustDeepLogic.evaluate.ssim import ssim_map

# --------------------------------------------------------------------------------------------------
# Everything at once
# --------------------------------------------------------------------------------------------------
#: The metrics of :func:`region_metrics`, in the order of ``metrics.csv`` (its dict also holds
#: ``n_voxels``, ``ssim_data_range``, ``mean_reference`` and ``mean_prediction``).
METRIC_NAMES: Tuple[str, ...] = (
    "rmse", "mae", "psnr", "psnr_max", "ssim_global", "ssim_3d", "ssim_2d",
    "slope", "intercept", "r2", "mean_rel_error_pct", "mean_abs_rel_error_pct",
)


def region_metrics(
    reference: np.ndarray,
    prediction: np.ndarray,
    mask: np.ndarray,
    *,
    data_range: float,
    constants_scale: float = 1.0,
    relative_error: Optional[np.ndarray] = None,
    relative_valid: Optional[np.ndarray] = None,
    ssim3d_values: Optional[np.ndarray] = None,
    ssim2d_values: Optional[np.ndarray] = None,
) -> Dict[str, float]:
    """All scalar metrics of one region (see :data:`METRIC_NAMES`), in the units of the arrays.

    ``relative_error`` (a fraction, from :func:`RobustDeepLogic.evaluate.maps.relative_error_map`) and
    ``relative_valid`` (voxels whose reference is at or above the floor) give ``mean_rel_error_pct``
    and ``mean_abs_rel_error_pct`` over the valid voxels of the region. SSIM maps, if given, are
    averaged over the region; otherwise they are computed on the whole grid.

    Parameters
    ----------
    reference : numpy.ndarray
        Reference R, ``[z, y, x]``, in scaled [0, 1] or physical units (SUV, HU).
    prediction : numpy.ndarray
        Prediction P, the shape of ``reference``, in the same units.
    mask : numpy.ndarray
        Boolean ``[z, y, x]`` mask of the region; must not be empty.
    data_range : float
        D of the windowed SSIM, in the units of the arrays (used when the SSIM maps are computed here;
        stored as ``ssim_data_range``).
    constants_scale : float, optional
        Factor on the constants of the paper's global SSIM: 1 (default) for scaled units, ``scale**2``
        for physical units (see :func:`RobustDeepLogic.evaluate.metrics.ssim_global`).
    relative_error : numpy.ndarray, optional
        Relative-error map of the whole grid, as a fraction (scaled units); None leaves the two
        relative-error values NaN.
    relative_valid : numpy.ndarray, optional
        Boolean ``[z, y, x]`` map of the voxels where the relative error counts (reference at or above
        the floor); None counts every voxel of the region.
    ssim3d_values, ssim2d_values : numpy.ndarray, optional
        Precomputed 3D and per-slice 2D SSIM maps of the whole grid
        (:func:`RobustDeepLogic.evaluate.ssim.ssim_map`); None computes them with ``data_range``.

    Returns
    -------
    dict
        ``{name: value}`` with ``n_voxels`` (int), ``rmse``, ``mae``, ``psnr`` (dB), ``psnr_max``,
        ``ssim_global``, ``ssim_3d``, ``ssim_2d``, ``ssim_data_range``, ``slope``, ``intercept``,
        ``r2``, ``mean_reference``, ``mean_prediction``, ``mean_rel_error_pct`` and
        ``mean_abs_rel_error_pct`` (in %, NaN when there is no relative-error map or no valid voxel).

    Raises
    ------
    ValueError
        If the shapes differ or the mask is empty.

    References
    ----------
    .. [1] docs/method.md §8.
    """
    reference, prediction, mask = _pair(reference, prediction, mask)
    if ssim3d_values is None:
        ssim3d_values = ssim_map(reference, prediction, data_range, "3d")
    if ssim2d_values is None:
        ssim2d_values = ssim_map(reference, prediction, data_range, "2d")
    fit = LinearFit.of(reference, prediction, mask)
    out = {
        "n_voxels": int(mask.sum()),
        "rmse": rmse(reference, prediction, mask),
        "mae": mae(reference, prediction, mask),
        "psnr": psnr(reference, prediction, mask),
        "psnr_max": psnr_peak(reference, prediction, mask),
        "ssim_global": ssim_global(reference, prediction, mask, constants_scale=constants_scale),
        "ssim_3d": float(np.mean(ssim3d_values[mask], dtype=np.float64)),
        "ssim_2d": float(np.mean(ssim2d_values[mask], dtype=np.float64)),
        "ssim_data_range": float(data_range),
        "slope": fit.slope,
        "intercept": fit.intercept,
        "r2": fit.r2,
        "mean_reference": float(np.mean(_voxels(reference, mask))),
        "mean_prediction": float(np.mean(_voxels(prediction, mask))),
        "mean_rel_error_pct": float("nan"),
        "mean_abs_rel_error_pct": float("nan"),
    }
    if relative_error is not None:
        valid = mask if relative_valid is None else (mask & relative_valid)
        if valid.any():
            rel = relative_error[valid].astype(np.float64)
            out["mean_rel_error_pct"] = float(100.0 * rel.mean())
            out["mean_abs_rel_error_pct"] = float(100.0 * np.abs(rel).mean())
    return out

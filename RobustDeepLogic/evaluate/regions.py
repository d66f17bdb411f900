"""TODO docstring (RobustDeepLogic.metrics)."""

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

    ``relative_error`` (a fraction, from :func:`relative_error_map`) and ``relative_valid`` (voxels
    whose reference is at or above the floor) give ``mean_rel_error_pct`` and
    ``mean_abs_rel_error_pct`` over the valid voxels of the region. SSIM maps, if given, are averaged
    over the region; otherwise they are computed.
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

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
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Dict, Iterable, Optional, Sequence, Tuple, Union

import numpy as np
from scipy import ndimage as ndi

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
#: Default floor on the reference for relative error maps, in the scaled units (0.75 SUV for PET at
#: SUV/15, -850 HU for CT).
RELATIVE_ERROR_FLOOR = 0.05

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


def _ball(radius: int) -> np.ndarray:
    r = int(radius)
    zz, yy, xx = np.mgrid[-r : r + 1, -r : r + 1, -r : r + 1]
    return (zz * zz + yy * yy + xx * xx) <= r * r


def head_mask(
    reference_scaled: np.ndarray,
    threshold: float = HEAD_THRESHOLD,
    closing_radius: int = 2,
) -> np.ndarray:
    """The default head region of a reference volume.

    Steps: ``reference > threshold`` (scaled units); a morphological closing with a ball of
    ``closing_radius`` voxels (computed on a padded copy, so the grid's edge does not erode it);
    holes filled in 3D and then in every axial slice (cavities open towards the neck); only the
    largest connected component (26-connectivity) kept.

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
    mask = np.asarray(reference_scaled) > threshold
    if not mask.any():
        return mask
    if closing_radius > 0:
        r = int(closing_radius)
        padded = np.pad(mask, r)
        padded = ndi.binary_closing(padded, structure=_ball(r))
        mask = padded[tuple(slice(r, -r) for _ in range(mask.ndim))]
    mask = ndi.binary_fill_holes(mask)
    if mask.ndim == 3:
        plane = np.zeros((3, 3, 3), bool)
        plane[1] = ndi.generate_binary_structure(2, 1)
        mask = ndi.binary_fill_holes(mask, structure=plane)
    labels, n = ndi.label(mask, structure=np.ones((3,) * mask.ndim, bool))
    if n > 1:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        mask = labels == int(np.argmax(sizes))
    return mask


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
    """The normalised 1D Gaussian taps (radius ``int(truncate * sigma + 0.5)``, as scipy.ndimage)."""
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
    ``mode='2d'`` filters a 3D array along y and x only (one SSIM map per axial slice).
    Computed in float32 on values shifted by the reference mean (for accuracy in e.g. HU).

    Returns
    -------
    np.ndarray
        float32 map of the input shape.
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
    reference, prediction:
        ``[z, y, x]`` arrays (or 2D).
    mask:
        Boolean head mask; None averages over all voxels.
    data_range:
        D in the constants, in the units of the arrays (1.0 for the scaled [0, 1] units).
    mode:
        ``'3d'`` or ``'2d'`` (per axial slice).
    crop_border:
        Only with ``mask=None``: drop a border of the window's radius (5 voxels) along the filtered
        axes, as scikit-image does.
    ssim_values:
        A precomputed :func:`ssim_map` to average (skips the computation).
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


# --------------------------------------------------------------------------------------------------
# Joint histogram, linear fit, bias maps
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LinearFit:
    """Least-squares line ``prediction = slope * reference + intercept`` and its R^2.

    Kept as sums, so fits of several patients can be pooled exactly (:meth:`pooled`).
    """

    n: float
    sx: float
    sy: float
    sxx: float
    syy: float
    sxy: float

    @classmethod
    def of(cls, reference: np.ndarray, prediction: np.ndarray, mask: Optional[np.ndarray] = None) -> "LinearFit":
        reference, prediction, mask = _pair(reference, prediction, mask)
        x = _voxels(reference, mask)
        y = _voxels(prediction, mask)
        return cls(float(x.size), float(x.sum()), float(y.sum()), float(x @ x), float(y @ y), float(x @ y))

    @classmethod
    def pooled(cls, fits: Iterable["LinearFit"]) -> "LinearFit":
        fits = list(fits)
        return cls(*(float(sum(getattr(f, k) for f in fits)) for k in ("n", "sx", "sy", "sxx", "syy", "sxy")))

    def _centred(self) -> Tuple[float, float, float]:
        n = self.n
        cxx = self.sxx - self.sx * self.sx / n
        cyy = self.syy - self.sy * self.sy / n
        cxy = self.sxy - self.sx * self.sy / n
        return cxx, cyy, cxy

    @property
    def slope(self) -> float:
        cxx, _, cxy = self._centred()
        return float(cxy / cxx) if cxx > 0 else float("nan")

    @property
    def intercept(self) -> float:
        return float((self.sy - self.slope * self.sx) / self.n)

    @property
    def r2(self) -> float:
        """Coefficient of determination of the fit (= squared Pearson correlation)."""
        cxx, cyy, cxy = self._centred()
        if cxx <= 0 or cyy <= 0:
            return float("nan")
        return float(min(1.0, cxy * cxy / (cxx * cyy)))

    def as_dict(self) -> Dict[str, float]:
        return {"n": self.n, "sx": self.sx, "sy": self.sy, "sxx": self.sxx, "syy": self.syy, "sxy": self.sxy}


def linear_fit(reference: np.ndarray, prediction: np.ndarray, mask: Optional[np.ndarray] = None) -> LinearFit:
    """The least-squares fit of predicted against reference voxels (see :class:`LinearFit`)."""
    return LinearFit.of(reference, prediction, mask)


def joint_histogram(
    reference: np.ndarray,
    prediction: np.ndarray,
    mask: Optional[np.ndarray] = None,
    bins: int = 128,
    value_range: Tuple[float, float] = (0.0, 1.0),
) -> np.ndarray:
    """Counts ``[i_reference, i_prediction]`` of mask voxels on ``bins`` equal bins of ``value_range``.

    Values outside the range are counted in the first or last bin (clipped), so pooled histograms of
    several patients on the same bins can simply be added.
    """
    reference, prediction, mask = _pair(reference, prediction, mask)
    lo, hi = value_range
    x = np.clip(_voxels(reference, mask), lo, hi)
    y = np.clip(_voxels(prediction, mask), lo, hi)
    counts, _, _ = np.histogram2d(x, y, bins=bins, range=[[lo, hi], [lo, hi]])
    return counts


def relative_error_map(
    reference: np.ndarray,
    prediction: np.ndarray,
    mask: Optional[np.ndarray] = None,
    floor: float = RELATIVE_ERROR_FLOOR,
) -> np.ndarray:
    """Voxel-wise relative error ``(P - R) / max(R, floor)`` inside the mask, 0 outside.

    Use the scaled units (offset removed): for CT that makes the error relative to ``HU + 1000``
    (proportional to linear attenuation), never to HU itself, which crosses zero. The floor keeps
    near-zero reference voxels (air, ventricles) from producing huge ratios.

    Returns a float32 array (a fraction: 0.1 means +10 %).
    """
    reference, prediction, mask = _pair(reference, prediction, mask)
    if not floor > 0:
        raise ValueError(f"the floor must be positive, got {floor}")
    rel = (prediction.astype(np.float32) - reference) / np.maximum(reference, floor).astype(np.float32)
    if mask is not None:
        rel[~mask] = 0
    return rel.astype(np.float32, copy=False)


def absolute_error_map(reference: np.ndarray, prediction: np.ndarray, mask: Optional[np.ndarray] = None) -> np.ndarray:
    """Voxel-wise ``P - R`` (units of the arrays) inside the mask, 0 outside; float32."""
    reference, prediction, mask = _pair(reference, prediction, mask)
    diff = prediction.astype(np.float32) - reference.astype(np.float32)
    if mask is not None:
        diff[~mask] = 0
    return diff


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

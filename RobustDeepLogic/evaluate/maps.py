"""Voxel-wise comparisons of a prediction with its reference (docs/method.md §8).

The relative and absolute error (bias) maps, the joint histogram of reference against predicted
voxels, and the least-squares line through them (:class:`LinearFit`, kept as sums so that fits of
several patients pool exactly). All functions work on numpy arrays that share one grid. The scalar
metrics are in :mod:`RobustDeepLogic.evaluate.metrics` and :mod:`RobustDeepLogic.evaluate.ssim`;
the figures drawn from these maps in :mod:`RobustDeepLogic.evaluate.figures`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, Optional, Tuple

import numpy as np

from RobustDeepLogic.evaluate.metrics import _pair, _voxels

#: Default floor on the reference for relative error maps, in the scaled units (0.75 SUV for PET at
#: SUV/15, -850 HU for CT).
RELATIVE_ERROR_FLOOR = 0.05


# --------------------------------------------------------------------------------------------------
# Joint histogram, linear fit, bias maps
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LinearFit:
    """Least-squares line ``prediction = slope * reference + intercept`` and its R^2.

    Kept as sums, so fits of several patients can be pooled exactly (:meth:`pooled`). With x the
    reference and y the predicted voxel values:

    Attributes
    ----------
    n : float
        Number of voxels.
    sx, sy : float
        Sums of x and of y.
    sxx, syy, sxy : float
        Sums of x * x, y * y and x * y.

    References
    ----------
    .. [1] docs/method.md §8 (joint histograms with the linear fit and its R^2).
    """

    n: float
    sx: float
    sy: float
    sxx: float
    syy: float
    sxy: float

    @classmethod
    def of(cls, reference: np.ndarray, prediction: np.ndarray, mask: Optional[np.ndarray] = None) -> "LinearFit":
        """The sums of the fit of predicted against reference voxels.

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
        LinearFit
            The fit's sums over the mask voxels (in float64).

        Raises
        ------
        ValueError
            If the shapes differ or the mask is empty.
        """
        reference, prediction, mask = _pair(reference, prediction, mask)
        x = _voxels(reference, mask)
        y = _voxels(prediction, mask)
        return cls(float(x.size), float(x.sum()), float(y.sum()), float(x @ x), float(y @ y), float(x @ y))

    @classmethod
    def pooled(cls, fits: Iterable["LinearFit"]) -> "LinearFit":
        """One fit over the voxels of several fits (their sums added).

        Parameters
        ----------
        fits : iterable of LinearFit
            The fits to pool, at least one (an empty sum has no line).

        Returns
        -------
        LinearFit
            The fit of all their voxels together.
        """
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
        """Slope of the least-squares line; NaN when the reference is constant."""
        cxx, _, cxy = self._centred()
        return float(cxy / cxx) if cxx > 0 else float("nan")

    @property
    def intercept(self) -> float:
        """Intercept of the least-squares line, in the units of the fitted values; NaN with the slope."""
        return float((self.sy - self.slope * self.sx) / self.n)

    @property
    def r2(self) -> float:
        """Coefficient of determination of the fit (= squared Pearson correlation), at most 1.

        NaN when the reference or the prediction is constant.
        """
        cxx, cyy, cxy = self._centred()
        if cxx <= 0 or cyy <= 0:
            return float("nan")
        return float(min(1.0, cxy * cxy / (cxx * cyy)))

    def as_dict(self) -> Dict[str, float]:
        """The sums as a plain dict.

        Returns
        -------
        dict
            ``{"n": ..., "sx": ..., "sy": ..., "sxx": ..., "syy": ..., "sxy": ...}`` (floats).
        """
        return {"n": self.n, "sx": self.sx, "sy": self.sy, "sxx": self.sxx, "syy": self.syy, "sxy": self.sxy}


def linear_fit(reference: np.ndarray, prediction: np.ndarray, mask: Optional[np.ndarray] = None) -> LinearFit:
    """The least-squares fit of predicted against reference voxels (see :class:`LinearFit`).

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
    LinearFit
        ``LinearFit.of(reference, prediction, mask)``.

    Raises
    ------
    ValueError
        If the shapes differ or the mask is empty.
    """
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

    Parameters
    ----------
    reference : numpy.ndarray
        Reference R, ``[z, y, x]`` (any shape works).
    prediction : numpy.ndarray
        Prediction P, the shape of ``reference``, in the same units.
    mask : numpy.ndarray, optional
        Boolean mask of the voxels to use, the shape of ``reference``; None uses every voxel.
    bins : int, optional
        Number of bins along each axis (default 128).
    value_range : tuple of float, optional
        ``(low, high)`` of the bins, in the units of the arrays (default ``(0.0, 1.0)``, the scaled
        units).

    Returns
    -------
    numpy.ndarray
        float64 counts of shape ``[bins, bins]``: reference bin along the first axis, prediction bin
        along the second.

    Raises
    ------
    ValueError
        If the shapes differ or the mask is empty.

    References
    ----------
    .. [1] docs/method.md §8.
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

    Parameters
    ----------
    reference : numpy.ndarray
        Reference R, ``[z, y, x]``, in the scaled [0, 1] units.
    prediction : numpy.ndarray
        Prediction P, the shape of ``reference``, in the same units.
    mask : numpy.ndarray, optional
        Boolean head mask, the shape of ``reference``; None computes the error at every voxel.
    floor : float, optional
        Positive floor on the reference, in scaled units (default :data:`RELATIVE_ERROR_FLOOR` = 0.05:
        0.75 SUV for PET at SUV/15, -850 HU for CT).

    Returns
    -------
    numpy.ndarray
        float32 map of the input shape, as a fraction (0.1 means +10 %).

    Raises
    ------
    ValueError
        If the shapes differ, the mask is empty, or ``floor`` is not positive.

    References
    ----------
    .. [1] docs/method.md §8 (bias maps, shown on +-10 %).
    """
    reference, prediction, mask = _pair(reference, prediction, mask)
    if not floor > 0:
        raise ValueError(f"the floor must be positive, got {floor}")
    rel = (prediction.astype(np.float32) - reference) / np.maximum(reference, floor).astype(np.float32)
    if mask is not None:
        rel[~mask] = 0
    return rel.astype(np.float32, copy=False)


def absolute_error_map(reference: np.ndarray, prediction: np.ndarray, mask: Optional[np.ndarray] = None) -> np.ndarray:
    """Voxel-wise error ``P - R`` inside the mask, 0 outside.

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
    numpy.ndarray
        float32 map of the input shape, in the units of the arrays (SUV, HU for physical units).

    Raises
    ------
    ValueError
        If the shapes differ or the mask is empty.
    """
    reference, prediction, mask = _pair(reference, prediction, mask)
    diff = prediction.astype(np.float32) - reference.astype(np.float32)
    if mask is not None:
        diff[~mask] = 0
    return diff

"""TODO docstring (RobustDeepLogic.metrics)."""

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

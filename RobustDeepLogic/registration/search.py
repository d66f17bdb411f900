"""The metric set-up of a rigid registration and the coarse rotation search that starts it.

:func:`rotation_search` evaluates rotations of the initial alignment about the three axes
(``RigidConfig.rotation_search_deg`` in steps of ``rotation_search_step_deg``) at the coarsest
pyramid level and keeps the best; it says what it did (``RigidResult.rotation_search``), and a
search in which no candidate could be evaluated is reported, not hidden (QC flags it,
:mod:`RobustDeepLogic.registration.qc`). Used by
:func:`~RobustDeepLogic.registration.pairwise.register_rigid`, which also uses the metric set-up here
for its gradient descent.
"""

from __future__ import annotations

import math
from typing import List, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from RobustDeepLogic.registration.config import RigidConfig


def _level_percentages(config: RigidConfig) -> List[float]:
    """Sampling fraction per pyramid level: the configured one at full resolution and
    ``p * shrink^2`` (at most 1) on coarser levels, so that coarse levels keep enough samples."""
    p = float(config.sampling_percentage)
    return [min(1.0, p * float(s) ** 2) for s in config.shrink_factors]


def _set_metric(reg: sitk.ImageRegistrationMethod, config: RigidConfig,
                percentages: Sequence[float]) -> None:
    if config.cost_metric == "MMI":
        reg.SetMetricAsMattesMutualInformation(int(config.number_of_histogram_bins))
    elif config.cost_metric == "MSE":
        reg.SetMetricAsMeanSquares()
    else:
        reg.SetMetricAsCorrelation()
    # gradients by finite differences at the samples: no whole-image gradient filter per level
    reg.MetricUseFixedImageGradientFilterOff()
    reg.MetricUseMovingImageGradientFilterOff()
    if all(p >= 1.0 for p in percentages):
        reg.SetMetricSamplingStrategy(reg.NONE)
    else:
        reg.SetMetricSamplingStrategy(reg.RANDOM)
        if len(percentages) == 1:
            reg.SetMetricSamplingPercentage(float(percentages[0]), int(config.seed))
        else:
            reg.SetMetricSamplingPercentagePerLevel([float(p) for p in percentages],
                                                    int(config.seed))
    reg.SetInterpolator(sitk.sitkLinear)


def _shrunk(image: sitk.Image, factor: int, sigma_vox: float) -> sitk.Image:
    if sigma_vox > 0:
        sp = np.asarray(image.GetSpacing())
        image = sitk.SmoothingRecursiveGaussian(image, [float(sigma_vox * s) for s in sp])
    if factor > 1:
        image = sitk.Shrink(image, [int(factor)] * 3)
    return image


#: A metric value at or above this means that no sample fell inside the moving image (ITK's NC and
#: MSE metrics return the largest double then; Mattes MI raises).
_NO_VALUE = 1e300


def _search_candidates(init: sitk.Euler3DTransform, n: int, step_rad: float) -> List[Tuple[float, ...]]:
    """The rotation search's grid: ``init``'s three angles +- ``k * step_rad`` (``|k| <= n``), its
    translation kept; the Euler parameters of each candidate, ITK's exhaustive order."""
    p0 = init.GetParameters()
    steps = range(-n, n + 1)
    return [(p0[0] + i * step_rad, p0[1] + j * step_rad, p0[2] + k * step_rad) + tuple(p0[3:])
            for k in steps for j in steps for i in steps]


def _exhaustive_values(f: sitk.Image, m: sitk.Image, init: sitk.Euler3DTransform,
                       config: RigidConfig, n: int) -> List[Tuple[float, Tuple[float, ...]]]:
    """``(metric, parameters)`` of every search candidate by ITK's exhaustive optimizer; raises
    ``RuntimeError`` when ITK cannot evaluate one (the optimizer then stops)."""
    reg = sitk.ImageRegistrationMethod()
    _set_metric(reg, config, [min(1.0, _level_percentages(config)[0])])
    reg.SetOptimizerAsExhaustive([n, n, n, 0, 0, 0], math.radians(config.rotation_search_step_deg))
    reg.SetOptimizerScales([1.0] * 6)
    reg.SetInitialTransform(sitk.Euler3DTransform(init), inPlace=True)
    found: List[Tuple[float, Tuple[float, ...]]] = []
    reg.AddCommand(sitk.sitkIterationEvent,
                   lambda: found.append((reg.GetMetricValue(), tuple(reg.GetOptimizerPosition()))))
    reg.Execute(f, m)
    return found


def _candidate_value(f: sitk.Image, m: sitk.Image, init: sitk.Euler3DTransform,
                     params: Sequence[float], config: RigidConfig) -> float:
    """The metric of one search candidate (Euler ``params`` about ``init``'s centre), sampled as the
    search samples; raises ``RuntimeError`` when ITK cannot evaluate it."""
    reg = sitk.ImageRegistrationMethod()
    _set_metric(reg, config, [min(1.0, _level_percentages(config)[0])])
    tx = sitk.Euler3DTransform(init)
    tx.SetParameters([float(v) for v in params])
    reg.SetInitialTransform(tx, inPlace=True)
    return float(reg.MetricEvaluate(f, m))


def _itk_message(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    return lines[-1][:120]


def rotation_search(fixed: sitk.Image, moving: sitk.Image, init: sitk.Euler3DTransform,
                    config: RigidConfig) -> Tuple[sitk.Euler3DTransform, str]:
    """Exhaustive search over rotations (Euler angles about the fixed centre) at the coarsest level.

    The candidates are ``init``'s angles +- ``k * rotation_search_step_deg`` about each LPS axis
    (``|k| * step <= rotation_search_deg``; 125 with the defaults), its translation kept; each is
    scored by the configured metric on both images shrunk to the coarsest pyramid level and the best
    is returned. ITK's exhaustive optimizer stops at the first candidate it cannot evaluate (one
    whose samples all leave the moving image); the candidates are then scored one by one, so that the
    others still count.

    Parameters
    ----------
    fixed, moving : SimpleITK.Image
        The working images of :func:`~RobustDeepLogic.registration.pairwise.register_rigid` (the
        fixed one cropped to its mask).
    init : SimpleITK.Euler3DTransform
        The initial alignment (fixed to moving points, LPS mm): the centre of the search.
    config : RigidConfig
        ``rotation_search_deg``, ``rotation_search_step_deg`` (degrees), the metric, its sampling,
        the pyramid's coarsest shrink factor and smoothing.

    Returns
    -------
    transform : SimpleITK.Euler3DTransform
        The best candidate; ``init`` itself when the search is off or failed.
    note : str
        What the search did (``RigidResult.rotation_search``): ``'off'``, ``'done'``,
        ``'done (k of N candidates could not be evaluated)'``, or ``'failed (...): the initial
        alignment was kept'`` when no candidate could be evaluated (QC flags the patient then).
    """
    n = int(round(config.rotation_search_deg / config.rotation_search_step_deg))
    if n <= 0:
        return init, "off"
    factor = int(max(config.shrink_factors))
    f = _shrunk(fixed, factor, float(max(config.smoothing_sigmas)))
    m = _shrunk(moving, factor, float(max(config.smoothing_sigmas)))
    candidates = _search_candidates(init, n, math.radians(config.rotation_search_step_deg))
    error = ""
    try:
        found = _exhaustive_values(f, m, init, config, n)
    except RuntimeError as exc:
        error = _itk_message(exc)
        found = []
        for params in candidates:
            try:
                found.append((_candidate_value(f, m, init, params, config), tuple(params)))
            except RuntimeError as one:
                error = _itk_message(one)
    valid = [(v, p) for v, p in found if math.isfinite(v) and abs(v) < _NO_VALUE]
    if not valid:
        why = f"ITK: {error}" if error else "no sample inside the moving image"
        return init, (f"failed (none of the {len(candidates)} candidates could be evaluated; {why}): "
                      "the initial alignment was kept")
    best = min(valid, key=lambda vp: vp[0])[1]
    out = sitk.Euler3DTransform(init)
    out.SetParameters(best)
    lost = len(candidates) - len(valid)
    if lost <= 0:
        return out, "done"
    return out, f"done ({lost} of {len(candidates)} candidates could not be evaluated)"

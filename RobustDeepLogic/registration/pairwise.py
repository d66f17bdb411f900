"""Rigid registration of one moving image onto one fixed image: :func:`register_rigid`.

Versor rigid transform (6 DOF), Mattes mutual information or another metric of
:class:`~RobustDeepLogic.registration.config.RigidConfig`, regular-step gradient descent over a
multi-resolution pyramid, moments / head-centre / geometry initialisation and a coarse rotation search;
for registrations to a template with a brain mask, the brain refinement (a similarity fit inside the
template brain, projected back to the closest rigid transform). The package docstring
(:mod:`RobustDeepLogic.registration`) gives the method and the transform convention; the options are
in :mod:`RobustDeepLogic.registration.config`, a patient's registrations in
:mod:`RobustDeepLogic.registration.patient`.
"""

from __future__ import annotations

import math
import time
from typing import List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.registration.config import SCALE_RANGE, RigidConfig
from RobustDeepLogic.registration.images import (
    _physical_points,
    centre_of_head,
    centre_of_mass,
    foreground_mask,
    image_centre,
    working_image,
)
from RobustDeepLogic.registration.result import RigidResult
from RobustDeepLogic.registration.rigid import (
    affine_parts,
    closest_rigid,
)
from RobustDeepLogic.registration.search import (
    _level_percentages,
    _set_metric,
    rotation_search,
)


def _crop_to_mask(image: sitk.Image, mask: sitk.Image, margin_mm: float = 10.0) -> sitk.Image:
    """``image`` cropped to the bounding box of ``mask`` (same grid) plus ``margin_mm``."""
    arr = sitk.GetArrayViewFromImage(mask)
    idx = np.argwhere(arr > 0)
    if idx.size == 0:
        return image
    margin = np.ceil(margin_mm / np.asarray(image.GetSpacing())[::-1]).astype(int)
    lo = np.maximum(idx.min(axis=0) - margin, 0)
    hi = np.minimum(idx.max(axis=0) + margin + 1, np.asarray(arr.shape))
    if np.any(hi - lo < 8):
        return image
    lo_xyz = [int(v) for v in lo[::-1]]
    size_xyz = [int(v) for v in (hi - lo)[::-1]]
    return sitk.RegionOfInterest(image, size_xyz, lo_xyz)


def _roi_mask(fixed_mask: Optional[sitk.Image], f: sitk.Image, *, patient: Optional[str],
              moving_name: str) -> sitk.Image:
    """``fixed_mask`` (``mask_processing_mode='ROI'``) on the working fixed image ``f``'s grid; an
    ``InputError`` when it is missing or has no voxel inside ``f``."""
    if fixed_mask is None:
        raise InputError(
            f"registration of {moving_name}: mask_processing_mode 'ROI' needs a fixed mask, and none "
            "was given", patient=patient,
            hint="pass fixed_mask (BRAINSFit's fixedBinaryVolume), or use mask_processing_mode "
            "ROIAUTO (an automatic head mask of the fixed image) or NOMASK")
    mask = sitk.Resample(sitk.Cast(fixed_mask > 0, sitk.sitkUInt8), f, sitk.Transform(),
                         sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    if not sitk.GetArrayViewFromImage(mask).any():
        raise InputError(
            f"registration of {moving_name}: the fixed mask of mask_processing_mode 'ROI' has no "
            "voxel inside the fixed image", patient=patient,
            hint="the mask must be a binary image on the fixed image's grid (or overlap it)")
    return mask


def _overlap_fraction(fixed_mask: sitk.Image, moving: sitk.Image, tx: sitk.Transform) -> float:
    """Fraction of the fixed mask's voxels (subsampled) that ``tx`` maps inside the moving image."""
    arr = sitk.GetArrayViewFromImage(fixed_mask)
    idx = np.argwhere(arr > 0)
    if idx.size == 0:
        return 0.0
    idx = idx[:: max(1, len(idx) // 20000)]
    a, b = affine_parts(tx)
    pts = _physical_points(fixed_mask, idx) @ a.T + b
    d = np.asarray(moving.GetDirection()).reshape(3, 3)
    ci = ((pts - np.asarray(moving.GetOrigin())) @ np.linalg.inv(d).T) / np.asarray(moving.GetSpacing())
    size = np.asarray(moving.GetSize())
    inside = np.all((ci >= -0.5) & (ci <= size - 0.5), axis=1)
    return float(inside.mean())


def _initial_centres(fixed: sitk.Image, moving: sitk.Image, mode: str) -> Tuple[np.ndarray, np.ndarray]:
    if mode == "useMomentsAlign":
        return centre_of_mass(fixed), centre_of_mass(moving)
    if mode == "useCenterOfHeadAlign":
        return centre_of_head(fixed), centre_of_head(moving)
    if mode == "useGeometryAlign":
        return image_centre(fixed), image_centre(moving)
    c = centre_of_mass(fixed)
    return c, c


def _descent_method(tx: sitk.Transform, config: RigidConfig, *, percentages: Sequence[float],
                    shrink_factors: Sequence[int], smoothing_sigmas: Sequence[float],
                    learning_rate: float) -> Tuple[sitk.ImageRegistrationMethod, List[int]]:
    """A registration method optimising ``tx`` in place: the configured metric sampled at
    ``percentages`` per level, regular-step gradient descent with the configured step bounds,
    scales from physical shift, the given pyramid (sigmas in voxels). Also returns a one-item list
    that counts the optimizer's iterations."""
    reg = sitk.ImageRegistrationMethod()
    _set_metric(reg, config, percentages)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=float(learning_rate),
        minStep=float(config.minimum_step_length),
        numberOfIterations=int(config.number_of_iterations),
        relaxationFactor=float(config.relaxation_factor),
        gradientMagnitudeTolerance=1e-8,
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([int(s) for s in shrink_factors])
    reg.SetSmoothingSigmasPerLevel([float(s) for s in smoothing_sigmas])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    reg.SetInitialTransform(tx, inPlace=True)
    iterations = [0]
    reg.AddCommand(sitk.sitkIterationEvent, lambda: iterations.__setitem__(0, iterations[0] + 1))
    return reg, iterations


def _brain_similarity(f: sitk.Image, m: sitk.Image, rigid: sitk.VersorRigid3DTransform,
                      brain: sitk.Image, config: RigidConfig) -> Tuple[sitk.VersorRigid3DTransform,
                                                                         float, int, str]:
    """The brain refinement of :class:`RigidConfig` (``brain_refinement='similarity'``).

    A ``Similarity3DTransform`` starts from ``rigid`` and is optimised at half and full resolution
    with the configured metric, sampled inside ``brain`` (a binary image on ``f``'s grid); the result
    is projected back onto a rigid transform by :func:`closest_rigid` over the brain voxels. Returns
    ``(transform, scale, iterations, note)``; when the refinement fails or finds an implausible head
    size (outside :data:`SCALE_RANGE`) it returns ``rigid`` unchanged and says why in ``note``.
    """
    sim = sitk.Similarity3DTransform()
    sim.SetCenter(rigid.GetCenter())
    sim.SetRotation(rigid.GetVersor())
    sim.SetTranslation(rigid.GetTranslation())
    p = float(config.sampling_percentage)
    # the brain is about a quarter of the head's box: sample more densely than the rigid stage
    reg, iterations = _descent_method(sim, config, percentages=[min(1.0, 4.0 * p), min(1.0, 15.0 * p)],
                                      shrink_factors=(2, 1), smoothing_sigmas=(1.0, 0.0),
                                      learning_rate=1.0)
    reg.SetMetricFixedMask(brain)
    try:
        reg.Execute(f, m)
    except RuntimeError as exc:
        return rigid, 1.0, iterations[0], f"rejected (ITK: {str(exc).strip().splitlines()[-1][:80]})"
    scale = float(sim.GetScale())
    if not SCALE_RANGE[0] < scale < SCALE_RANGE[1]:
        return rigid, scale, iterations[0], f"rejected (head scale {scale:.2f})"
    idx = np.argwhere(sitk.GetArrayViewFromImage(brain) > 0)
    idx = idx[:: max(1, len(idx) // 20000)]
    return (closest_rigid(sim, _physical_points(brain, idx), center=rigid.GetCenter()), scale,
            iterations[0], "similarity")


def _metric_value(f: sitk.Image, m: sitk.Image, tx: sitk.Transform, config: RigidConfig) -> float:
    """The configured metric at full resolution for ``tx``, sampled as the rigid stage's last level."""
    reg = sitk.ImageRegistrationMethod()
    _set_metric(reg, config, [_level_percentages(config)[-1]])
    reg.SetInitialTransform(sitk.VersorRigid3DTransform(tx), inPlace=True)
    return float(reg.MetricEvaluate(f, m))


def register_rigid(
    fixed: sitk.Image,
    moving: sitk.Image,
    config: Optional[RigidConfig] = None,
    *,
    fixed_mask: Optional[sitk.Image] = None,
    fixed_modality: Optional[str] = None,
    brain_mask: Optional[sitk.Image] = None,
    patient: Optional[str] = None,
    moving_name: str = "moving image",
) -> RigidResult:
    """Register ``moving`` to ``fixed`` rigidly (6 DOF); see the module doc for the method.

    Both images are reduced to the working spacing
    (:func:`~RobustDeepLogic.registration.images.working_image`), the fixed image is cropped to its
    mask's bounding box plus 10 mm, the centres are aligned (``initialize_transform_mode``), a coarse
    rotation search follows, then regular-step gradient descent over the pyramid and, with a brain
    mask, the brain refinement.

    Parameters
    ----------
    fixed, moving : SimpleITK.Image
        3D scalar images, any grids and directions (LPS geometry from their headers).
    config : RigidConfig, optional
        The options (defaults: Mattes MI, 50 bins, 2 % sampling, moments + rotation search
        +-30 degrees in 15-degree steps, shrink 4/2/1, smoothing 2/1/0 voxels, automatic head mask,
        brain refinement, working grid 2 mm); validated.
    fixed_mask : SimpleITK.Image, optional
        Binary image on ``fixed``'s grid, e.g. the template head: required by
        ``mask_processing_mode='ROI'`` (BRAINSFit's ``fixedBinaryVolume``), ignored otherwise.
    fixed_modality : str, optional
        Used for the automatic head mask (``'ROIAUTO'``): ``'CT'`` thresholds at -500 HU.
    brain_mask : SimpleITK.Image, optional
        Binary image on ``fixed``'s grid: the fixed image's brain (the template's). With it, and
        ``config.brain_refinement='similarity'``, the rigid result is refined inside the brain
        (see :class:`~RobustDeepLogic.registration.config.RigidConfig`); without it (e.g. MR to the
        patient's own CT) it is not. Under 1000 brain voxels on the working grid, the refinement is
        rejected.
    patient : str, optional
        Patient id, named in errors.
    moving_name : str, optional
        Name of the moving image in errors (e.g. its modality).

    Returns
    -------
    RigidResult
        ``transform`` maps fixed points to moving points: ``sitk.Resample(moving, fixed, transform)``
        puts ``moving`` onto ``fixed``'s grid.

    Raises
    ------
    InputError
        When ``config`` is not valid, when ``mask_processing_mode='ROI'`` comes without a
        ``fixed_mask`` or with one that has no voxel inside the fixed image, when less than 5 % of
        the fixed head maps inside the moving image after initialisation, or when ITK finds too few
        metric samples inside the moving image.

    References
    ----------
    .. [1] Mattes D., Haynor D.R., Vesselle H., Lewellen T.K., Eubank W., "PET-CT image registration
           in the chest using free-form deformations", IEEE Trans Med Imaging 22(1):120-128, 2003.
    .. [2] docs/method.md §3.4.
    """
    config = (config or RigidConfig()).validate()
    start = time.perf_counter()
    threads_before = None
    if config.number_of_threads > 0:
        threads_before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(int(config.number_of_threads))
    try:
        f = working_image(fixed, config.working_spacing)
        m = working_image(moving, config.working_spacing)
        mask = None
        if config.mask_processing_mode == "ROI":
            mask = _roi_mask(fixed_mask, f, patient=patient, moving_name=moving_name)
        elif config.mask_processing_mode == "ROIAUTO":
            mask = foreground_mask(f, modality=fixed_modality)
        if mask is not None and sitk.GetArrayViewFromImage(mask).any():
            # the metric is restricted to the mask's bounding box (+10 mm): ITK v4's per-sample mask
            # test would cost more than the whole metric
            overlap_mask = mask
            f = _crop_to_mask(f, mask)
            overlap_mask = _crop_to_mask(mask, mask)
        else:
            overlap_mask = foreground_mask(f, modality=fixed_modality)

        c_fixed, c_moving = _initial_centres(f, m, config.initialize_transform_mode)
        euler = sitk.Euler3DTransform()
        euler.SetCenter([float(v) for v in c_fixed])
        euler.SetTranslation([float(v) for v in (c_moving - c_fixed)])
        overlap0 = _overlap_fraction(overlap_mask, m, euler)
        if overlap0 < 0.05:
            raise InputError(
                f"{moving_name} and its fixed image do not overlap after initialisation "
                f"({config.initialize_transform_mode}: {100 * overlap0:.0f} % of the fixed head maps "
                "inside the moving image)",
                patient=patient,
                hint="use initializeTransformMode useMomentsAlign or useCenterOfHeadAlign, or check "
                "the image's origin and direction",
            )
        euler, search = rotation_search(f, m, euler, config)

        tx = sitk.VersorRigid3DTransform()
        tx.SetCenter(euler.GetCenter())
        tx.SetMatrix(euler.GetMatrix())
        tx.SetTranslation(euler.GetTranslation())

        reg, iterations = _descent_method(
            tx, config, percentages=_level_percentages(config),
            shrink_factors=config.shrink_factors, smoothing_sigmas=config.smoothing_sigmas,
            learning_rate=float(config.maximum_step_length))
        try:
            reg.Execute(f, m)
        except RuntimeError as exc:
            text = str(exc)
            if "outside" in text.lower() or "samples" in text.lower():
                raise InputError(
                    f"{moving_name} could not be registered: too few metric samples fall inside it "
                    "(the images do not overlap)",
                    patient=patient,
                    hint="check the image's origin and direction, or use useMomentsAlign",
                ) from None
            raise
        final = float(reg.GetMetricValue())
        stop = reg.GetOptimizerStopConditionDescription()[:200]
        refinement, scale = "off", 1.0
        if config.brain_refinement == "similarity" and brain_mask is not None:
            brain = sitk.Resample(sitk.Cast(brain_mask > 0, sitk.sitkUInt8), f, sitk.Transform(),
                                  sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
            if int(np.count_nonzero(sitk.GetArrayViewFromImage(brain))) >= 1000:
                refined, scale, more, refinement = _brain_similarity(f, m, tx, brain, config)
                iterations[0] += more
                if refinement == "similarity":
                    tx = refined
                    final = _metric_value(f, m, tx, config)
            else:
                refinement = "rejected (brain mask under 1000 voxels)"
        overlap = _overlap_fraction(overlap_mask, m, tx)
        return RigidResult(
            transform=tx,
            metric=final,
            iterations=iterations[0],
            stop_condition=stop,
            initial_rotation_deg=tuple(math.degrees(a) for a in euler.GetParameters()[:3]),
            seconds=time.perf_counter() - start,
            overlap=overlap,
            refinement=refinement,
            scale=scale,
            rotation_search=search,
        )
    finally:
        if threads_before is not None:
            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads_before)

"""The best rigid registration a simulated subject allows: the ground truth for 6-DOF registration.

A subject's native images show the template anatomy deformed non-rigidly (:mod:`.anatomy`: head
scaling, a smooth warp, atrophy) and then placed by a rigid pose (:mod:`.pose`). The pose alone,
:func:`~RobustDeepLogic.simulate.pose.true_transform`, is not what a rigid registration can reach:
the rigid map ``H`` closest to the deformation over the brain is not the identity (a larger head
scaled about a point that is not the brain's centroid also shifts the brain, for example). This
module composes the two, ``pose o H``
(:func:`best_rigid_transform`), and recomputes ``H`` from a cohort's seed
(:func:`anatomy_rigid_part`); ``robustdeep simulate`` stores ``H`` in each subject's manifest entry
as ``anatomy_rigid_part`` (:func:`~RobustDeepLogic.simulate.cohort.simulate_subject`). The least-squares
fit itself is :func:`~RobustDeepLogic.simulate.anatomy.rigid_part`. See ``docs/simulation.md`` §5.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

import numpy as np
import SimpleITK as sitk

from RobustDeepLogic.registration.rigid import compose_rigid, rigid_from_matrix
from RobustDeepLogic.registration.template_grid import template_grid
from RobustDeepLogic.registration.templates import brain_mask
from RobustDeepLogic.simulate.pose import (
    true_transform,
)
from RobustDeepLogic.simulate.streams import _rngs
from RobustDeepLogic.simulate.subject_anatomy import draw_subject_anatomy, rigid_part


def _rigid_part_meta(seed: int, index: int) -> Dict[str, Any]:
    a, b = anatomy_rigid_part(seed, index)
    return {"matrix": a.tolist(), "translation_mm": b.tolist(),
            "meaning": "H(q) = matrix q + translation: the least-squares rigid map from template points to "
                       "this subject's pose-free frame over the brain; pose o H is the best rigid "
                       "registration (RobustDeepLogic.simulate.best_rigid_transform)"}


def best_rigid_transform(patient, family: str) -> sitk.Transform:
    """The ground truth of a rigid registration to the template: ``pose o H`` (template -> native).

    ``H`` is the rigid part of the subject's non-rigid anatomy
    (:func:`~RobustDeepLogic.simulate.anatomy.rigid_part`, stored in the manifest as
    ``anatomy_rigid_part`` by ``robustdeep simulate``; recomputed from the seed with
    :func:`anatomy_rigid_part` for older cohorts, which needs the prepared template assets).
    :func:`~RobustDeepLogic.simulate.pose.true_transform` is the pose alone: it differs from this by
    what a rigid transform cannot express (e.g. a 5 % larger head scaled about a point that is not the
    brain's centroid), typically 0.3-1.5 mm over the brain.

    Parameters
    ----------
    patient : RobustDeepLogic.cohort.Patient or dict
        A subject written by ``robustdeep simulate``, or its ``meta`` dict. Its meta must hold the
        pose of ``family`` and either ``anatomy_rigid_part`` or the ``seed`` and ``index`` it was
        simulated with.
    family : str
        ``'petct'`` (FD, LD, NAC, MAC, CT; any of those modality names is accepted too) or ``'mr'``
        (T1, T2).

    Returns
    -------
    SimpleITK.VersorRigid3DTransform
        ``x_native = T(p_template)`` in LPS mm, centred on the pose's centre: the best a rigid
        ``sitk.ImageRegistrationMethod`` can find with fixed = template image and moving = this
        subject's native image of ``family``.

    Raises
    ------
    InputError
        ``family`` is not a known frame family, or the meta holds no pose for it (see
        :func:`~RobustDeepLogic.simulate.pose.true_transform`).
    KeyError
        The meta has neither ``anatomy_rigid_part`` nor ``seed`` and ``index`` (not a simulated
        subject).

    References
    ----------
    .. [1] ``docs/simulation.md`` §5 (native space and the true poses).
    """
    meta = patient if isinstance(patient, dict) else patient.meta
    part = meta.get("anatomy_rigid_part")
    if part is None:
        a, b = anatomy_rigid_part(int(meta["seed"]), int(meta["index"]))
    else:
        a, b = np.asarray(part["matrix"], float), np.asarray(part["translation_mm"], float)
    h = rigid_from_matrix(a, b, (0.0, 0.0, 0.0))
    pose = true_transform(patient, family)
    return compose_rigid(pose, h, center=pose.GetCenter())


def anatomy_rigid_part(seed: int, index: int, spacing: float = 4.0) -> Tuple[np.ndarray, np.ndarray]:
    """The rigid part ``H(q) = A q + b`` of one simulated subject's anatomy, recomputed from the seed.

    The subject's anatomy is drawn again from its ``anatomy`` stream (:mod:`.streams`), and ``(A, b)``
    is :func:`~RobustDeepLogic.simulate.anatomy.rigid_part` over the voxel centres of the template
    brain mask (:func:`~RobustDeepLogic.registration.templates.brain_mask`) sampled every ``spacing``
    mm. ``robustdeep simulate`` stores this, computed with the default spacing, in each manifest
    entry as ``anatomy_rigid_part``.

    Parameters
    ----------
    seed : int
        The seed the cohort was simulated with.
    index : int
        The subject's index in the cohort (0 for ``SIM001``).
    spacing : float, optional
        Spacing in mm of the template grid whose brain voxels are the fitted points (default 4 mm).

    Returns
    -------
    A : numpy.ndarray
        ``(3, 3)`` float64 rotation matrix.
    b : numpy.ndarray
        ``(3,)`` float64 translation in mm; ``H`` maps atlas (template) points to the subject's
        pose-free frame, LPS mm.

    Raises
    ------
    InputError
        The template assets are not prepared (``robustdeep assets``).
    """
    mask = brain_mask(template_grid(spacing))
    idx = np.argwhere(sitk.GetArrayFromImage(mask) > 0)[:, ::-1].astype(float)
    points = np.array([mask.TransformContinuousIndexToPhysicalPoint(tuple(i)) for i in idx])
    subject = draw_subject_anatomy(_rngs(seed, index)["anatomy"])
    return rigid_part(subject, points)

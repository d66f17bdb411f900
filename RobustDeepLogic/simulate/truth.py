"""TODO docstring (RobustDeepLogic.simulate.cohort, RobustDeepLogic.simulate.pose)."""

from __future__ import annotations

from typing import Any, Dict, Tuple

import numpy as np
import SimpleITK as sitk

from RobustDeepLogic.registration.rigid import compose_rigid, rigid_from_matrix
from RobustDeepLogic.registration.templates import brain_mask, template_grid
from RobustDeepLogic.simulate.anatomy import (
    draw_subject_anatomy,
    rigid_part,
)
from RobustDeepLogic.simulate.pose import (
    true_transform,
)
from RobustDeepLogic.simulate.streams import _rngs


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
    ``anatomy_rigid_part`` by ``robustdeep simulate``; recomputed from the seed for older cohorts).
    :func:`true_transform` is the pose alone: it differs from this by what a rigid transform cannot
    express (e.g. a 5 % larger head scaled about a point that is not the brain's centroid), typically
    0.3-1.5 mm over the brain.
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
    """``(A, b)`` of :func:`~RobustDeepLogic.simulate.anatomy.rigid_part` for subject ``index`` of a
    cohort simulated with ``seed``, over the template brain sampled every ``spacing`` mm."""
    mask = brain_mask(template_grid(spacing))
    idx = np.argwhere(sitk.GetArrayFromImage(mask) > 0)[:, ::-1].astype(float)
    points = np.array([mask.TransformContinuousIndexToPhysicalPoint(tuple(i)) for i in idx])
    subject = draw_subject_anatomy(_rngs(seed, index)["anatomy"])
    return rigid_part(subject, points)

"""True rigid poses of a simulated subject, and the transform convention they follow.

Convention (ITK registration's, LPS millimetres)
------------------------------------------------
A pose is the rigid transform ``T`` that maps a point ``p`` of **template space** (MNI space in ITK's
LPS coordinates) to the point ``x`` of the subject's **native image space** where the same anatomy
is imaged::

    x_native = T(p_template) = R (p_template - c) + c + t

with ``R`` the rotation matrix of an ITK ``Euler3DTransform`` with angles ``(ax, ay, az)`` radians in
ITK's default order (``R = Rz @ Rx @ Ry``, ``ComputeZYX`` off), ``c`` the centre (fixed parameters)
and ``t`` the translation. This is exactly what ``sitk.ImageRegistrationMethod`` returns for
``fixed = template image`` and ``moving = native image``, and what ``sitk.Resample(native_image,
template_reference, T)`` needs to bring the native image into template space.

Native images are written on axis-aligned grids (identity direction) centred on
:data:`HEAD_CENTRE_LPS`; the head sits inside them rotated and shifted by the pose (the anatomy is
resampled through the pose, as a tilted head in a scanner). The PET/CT frame (FD, LD, NAC, MAC, CT)
has one pose and the MR frame (T1, T2) another. The pose is rigid; the subject's own anatomy also
differs from the template by a non-rigid deformation (scaling, warp, atrophy), centred on
:data:`HEAD_CENTRE_LPS` with no net rotation or shift, so the rigid pose is the ground truth a
6-degree-of-freedom registration should find.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from RobustDeepLogic.core.errors import InputError

#: The head centre in template space (MNI RAS (0, -18, 10) mm, in LPS). Centre of the poses' rotation
#: and of every native grid.
HEAD_CENTRE_LPS: Tuple[float, float, float] = (0.0, 18.0, 10.0)


#: Pose ranges: each rotation angle uniform in +-15 degrees, each translation in +-20 mm.
MAX_ROTATION_DEG = 15.0


MAX_TRANSLATION_MM = 20.0


FAMILIES = ("petct", "mr")


@dataclass(frozen=True)
class Pose:
    """A rigid pose ``x_native = R (p_template - c) + c + t`` (LPS mm), ITK ``Euler3DTransform``."""

    rotation_deg: Tuple[float, float, float]
    translation_mm: Tuple[float, float, float]
    center_mm: Tuple[float, float, float] = HEAD_CENTRE_LPS

    def transform(self) -> sitk.Euler3DTransform:
        """The ITK transform template (fixed) -> native (moving)."""
        tr = sitk.Euler3DTransform()
        tr.SetCenter(tuple(float(v) for v in self.center_mm))
        tr.SetRotation(*(math.radians(a) for a in self.rotation_deg))
        tr.SetTranslation(tuple(float(v) for v in self.translation_mm))
        return tr

    @property
    def matrix(self) -> np.ndarray:
        """The 3x3 rotation ``R`` (row-major)."""
        return np.asarray(self.transform().GetMatrix(), dtype=float).reshape(3, 3)

    def native_from_template(self) -> np.ndarray:
        """4x4 homogeneous matrix: ``x_native = A @ [p_template, 1]``."""
        R = self.matrix
        c = np.asarray(self.center_mm, float)
        a = np.eye(4)
        a[:3, :3] = R
        a[:3, 3] = c + np.asarray(self.translation_mm, float) - R @ c
        return a

    def template_from_native(self) -> np.ndarray:
        """4x4 homogeneous matrix: ``p_template = A @ [x_native, 1]`` (the inverse)."""
        return np.linalg.inv(self.native_from_template())

    def to_meta(self) -> Dict[str, Any]:
        """The manifest record of this pose (see the module doc for the convention)."""
        tr = self.transform()
        return {
            "convention": "ITK: x_native = R (p_template - center) + center + translation; maps "
            "template (fixed) points to native (moving) points, LPS mm",
            "itk_class": "Euler3DTransform",
            "rotation_deg": [float(a) for a in self.rotation_deg],
            "translation_mm": [float(v) for v in self.translation_mm],
            "center_mm": [float(v) for v in self.center_mm],
            "matrix": self.matrix.tolist(),
            "itk_parameters": [float(v) for v in tr.GetParameters()],
            "itk_fixed_parameters": [float(v) for v in tr.GetFixedParameters()],
            "native_from_template": self.native_from_template().tolist(),
        }

    @classmethod
    def from_meta(cls, meta: Dict[str, Any]) -> "Pose":
        return cls(tuple(meta["rotation_deg"]), tuple(meta["translation_mm"]),
                   tuple(meta.get("center_mm", HEAD_CENTRE_LPS)))


def random_pose(rng: np.random.Generator, *, max_rotation_deg: float = MAX_ROTATION_DEG,
                max_translation_mm: float = MAX_TRANSLATION_MM) -> Pose:
    """A pose with each angle uniform in +-``max_rotation_deg`` and each shift in +-``max_translation_mm``."""
    rot = rng.uniform(-max_rotation_deg, max_rotation_deg, 3)
    tra = rng.uniform(-max_translation_mm, max_translation_mm, 3)
    return Pose(tuple(float(v) for v in rot), tuple(float(v) for v in tra))


def native_grid_origin(size: Sequence[int], spacing: Sequence[float]) -> Tuple[float, float, float]:
    """Origin (LPS mm) of an axis-aligned grid whose centre is :data:`HEAD_CENTRE_LPS`."""
    return tuple(float(c - (n - 1) / 2.0 * s) for c, n, s in zip(HEAD_CENTRE_LPS, size, spacing))


def true_transform(patient, family: str) -> sitk.Euler3DTransform:
    """The true pose of a simulated patient as the transform ITK registration produces.

    Parameters
    ----------
    patient:
        A :class:`RobustDeepLogic.cohort.Patient` written by ``robustdeep simulate`` (or its
        ``meta`` dict).
    family:
        ``'petct'`` (FD, LD, NAC, MAC, CT; any of those modality names is accepted too) or ``'mr'``
        (T1, T2).

    Returns
    -------
    sitk.Euler3DTransform
        ``T`` with ``x_native = T(p_template)`` in LPS mm: what ``sitk.ImageRegistrationMethod``
        returns with fixed = template image and moving = this patient's native image.
    """
    meta = patient if isinstance(patient, dict) else getattr(patient, "meta", None)
    pid = getattr(patient, "id", None)
    key = _family_key(family)
    if not meta or key not in meta:
        raise InputError(f"no true pose '{key}' in this patient's meta (not a simulated subject?)",
                         patient=pid)
    return Pose.from_meta(meta[key]).transform()


def true_mr_to_ct_transform(patient) -> sitk.Euler3DTransform:
    """``T`` with ``x_mr = T(x_ct)``: what registering MR (moving) to the CT (fixed) should return."""
    t_pet = Pose.from_meta((patient if isinstance(patient, dict) else patient.meta)["pose_petct"])
    t_mr = Pose.from_meta((patient if isinstance(patient, dict) else patient.meta)["pose_mr"])
    a = t_mr.native_from_template() @ t_pet.template_from_native()
    tr = sitk.Euler3DTransform()
    tr.SetCenter(tuple(float(v) for v in HEAD_CENTRE_LPS))
    tr.SetMatrix(tuple(a[:3, :3].ravel()), 1e-6)
    c = np.asarray(HEAD_CENTRE_LPS)
    tr.SetTranslation(tuple(a[:3, 3] + a[:3, :3] @ c - c))
    return tr


def _family_key(family: str) -> str:
    f = str(family).strip().lower()
    if f in ("petct", "pet", "ct", "fd", "ld", "nac", "mac", "pose_petct"):
        return "pose_petct"
    if f in ("mr", "t1", "t2", "pose_mr"):
        return "pose_mr"
    raise InputError(f"unknown frame family {family!r}", hint="use 'petct' or 'mr'")

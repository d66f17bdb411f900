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
differs from the template by a non-rigid deformation (scaling, warp, atrophy; :mod:`.anatomy`),
centred on :data:`HEAD_CENTRE_LPS` with no systematic rotation or shift, so a 6-degree-of-freedom
registration lands near the pose but not exactly on it: the best rigid registration a subject
allows is :func:`~RobustDeepLogic.simulate.truth.best_rigid_transform` (:mod:`.truth`). Between the
two frames of a subject, :func:`true_mr_to_ct_transform` is exact. See ``docs/simulation.md`` §5.
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

#: The two frames of a subject, each with its own pose: PET/CT (FD, LD, NAC, MAC, CT) and MR (T1, T2).
FAMILIES = ("petct", "mr")


@dataclass(frozen=True)
class Pose:
    """A rigid pose ``x_native = R (p_template - c) + c + t`` (LPS mm), ITK ``Euler3DTransform``.

    ``R`` is ITK's ``Euler3DTransform`` rotation for the angles ``(ax, ay, az)``
    (``R = Rz(az) @ Rx(ax) @ Ry(ay)``, see the module docstring).

    Attributes
    ----------
    rotation_deg : tuple of 3 float
        The angles ``(ax, ay, az)`` about the LPS x, y and z axes, in degrees.
    translation_mm : tuple of 3 float
        The translation ``t`` (LPS mm).
    center_mm : tuple of 3 float, optional
        The centre of rotation ``c`` (LPS mm); default :data:`HEAD_CENTRE_LPS`.
    """

    rotation_deg: Tuple[float, float, float]
    translation_mm: Tuple[float, float, float]
    center_mm: Tuple[float, float, float] = HEAD_CENTRE_LPS

    def transform(self) -> sitk.Euler3DTransform:
        """The ITK transform template (fixed) -> native (moving).

        Returns
        -------
        SimpleITK.Euler3DTransform
            Centre ``c``, angles in radians, translation ``t``: maps template points to native
            points (LPS mm).
        """
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
        """The pose as a 4x4 homogeneous matrix: ``x_native = A @ [p_template, 1]``.

        Returns
        -------
        numpy.ndarray
            ``(4, 4)`` float64 matrix ``A`` (LPS mm), rotation ``R`` and translation ``c + t - R c``.
        """
        R = self.matrix
        c = np.asarray(self.center_mm, float)
        a = np.eye(4)
        a[:3, :3] = R
        a[:3, 3] = c + np.asarray(self.translation_mm, float) - R @ c
        return a

    def template_from_native(self) -> np.ndarray:
        """The inverse pose as a 4x4 homogeneous matrix: ``p_template = A @ [x_native, 1]``.

        Returns
        -------
        numpy.ndarray
            ``(4, 4)`` float64 matrix (LPS mm), the inverse of :meth:`native_from_template`.
        """
        return np.linalg.inv(self.native_from_template())

    def to_meta(self) -> Dict[str, Any]:
        """The manifest record of this pose (see the module docstring for the convention).

        Returns
        -------
        dict
            JSON-able: ``convention`` (a sentence), ``itk_class`` (``'Euler3DTransform'``),
            ``rotation_deg``, ``translation_mm``, ``center_mm``, ``matrix`` (``R``, 3 x 3 row-major),
            ``itk_parameters`` (``[ax, ay, az]`` in radians then ``t``), ``itk_fixed_parameters``
            (the centre, then 0) and ``native_from_template`` (4 x 4).
        """
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
        """The pose stored by :meth:`to_meta` (``meta['pose_petct']`` or ``meta['pose_mr']``).

        Parameters
        ----------
        meta : dict
            A pose record; ``rotation_deg`` and ``translation_mm`` are read, ``center_mm`` when
            present (default :data:`HEAD_CENTRE_LPS`); the other keys are ignored.

        Returns
        -------
        Pose
            The pose.

        Raises
        ------
        KeyError
            ``rotation_deg`` or ``translation_mm`` is missing.
        """
        return cls(tuple(meta["rotation_deg"]), tuple(meta["translation_mm"]),
                   tuple(meta.get("center_mm", HEAD_CENTRE_LPS)))


def random_pose(rng: np.random.Generator, *, max_rotation_deg: float = MAX_ROTATION_DEG,
                max_translation_mm: float = MAX_TRANSLATION_MM) -> Pose:
    """A random pose: each angle uniform in +-``max_rotation_deg``, each shift in +-``max_translation_mm``.

    Parameters
    ----------
    rng : numpy.random.Generator
        The subject's ``pose`` stream (:mod:`.streams`); three angles are drawn, then three shifts.
    max_rotation_deg : float, optional
        Largest angle about each axis, in degrees (default :data:`MAX_ROTATION_DEG`, 15).
    max_translation_mm : float, optional
        Largest translation along each axis, in mm (default :data:`MAX_TRANSLATION_MM`, 20).

    Returns
    -------
    Pose
        Centred on :data:`HEAD_CENTRE_LPS`.
    """
    rot = rng.uniform(-max_rotation_deg, max_rotation_deg, 3)
    tra = rng.uniform(-max_translation_mm, max_translation_mm, 3)
    return Pose(tuple(float(v) for v in rot), tuple(float(v) for v in tra))


def native_grid_origin(size: Sequence[int], spacing: Sequence[float]) -> Tuple[float, float, float]:
    """Origin (LPS mm) of an axis-aligned grid whose centre is :data:`HEAD_CENTRE_LPS`.

    Parameters
    ----------
    size : sequence of 3 int
        Grid size in voxels, ITK order ``(x, y, z)``.
    spacing : sequence of 3 float
        Voxel size in mm, ``(x, y, z)``.

    Returns
    -------
    tuple of 3 float
        The LPS position (mm) of the centre of voxel ``(0, 0, 0)``, for an identity direction: the
        grid's middle, index ``(size - 1) / 2``, then lies at :data:`HEAD_CENTRE_LPS`.
    """
    return tuple(float(c - (n - 1) / 2.0 * s) for c, n, s in zip(HEAD_CENTRE_LPS, size, spacing))


def true_transform(patient, family: str) -> sitk.Euler3DTransform:
    """The true pose of a simulated patient as the transform ITK registration produces.

    This is the pose alone; the best a rigid registration can reach also accounts for the rigid part
    of the subject's anatomy: :func:`~RobustDeepLogic.simulate.truth.best_rigid_transform`.

    Parameters
    ----------
    patient : RobustDeepLogic.cohort.Patient or dict
        A patient written by ``robustdeep simulate``, or its ``meta`` dict.
    family : str
        ``'petct'`` (FD, LD, NAC, MAC, CT; any of those modality names is accepted too, in any case)
        or ``'mr'`` (T1, T2).

    Returns
    -------
    SimpleITK.Euler3DTransform
        ``T`` with ``x_native = T(p_template)`` in LPS mm: what ``sitk.ImageRegistrationMethod``
        returns with fixed = template image and moving = this patient's native image.

    Raises
    ------
    InputError
        ``family`` is not a known frame family, or the patient's meta holds no such pose (not a
        simulated subject).

    References
    ----------
    .. [1] ``docs/simulation.md`` §5 (native space and the true poses).
    """
    meta = patient if isinstance(patient, dict) else getattr(patient, "meta", None)
    pid = getattr(patient, "id", None)
    key = _family_key(family)
    if not meta or key not in meta:
        raise InputError(f"no true pose '{key}' in this patient's meta (not a simulated subject?)",
                         patient=pid)
    return Pose.from_meta(meta[key]).transform()


def true_mr_to_ct_transform(patient) -> sitk.Euler3DTransform:
    """``T`` with ``x_mr = T(x_ct)``: what registering MR (moving) to the CT (fixed) should return.

    ``T = T_mr o T_petct^-1`` from the two true poses. Both frames image the same deformed anatomy,
    so this rigid transform is exact (unlike the registration to the template).

    Parameters
    ----------
    patient : RobustDeepLogic.cohort.Patient or dict
        A patient written by ``robustdeep simulate``, or its ``meta`` dict.

    Returns
    -------
    SimpleITK.Euler3DTransform
        Centred on :data:`HEAD_CENTRE_LPS`; maps points of the PET/CT native frame to points of the
        MR native frame (LPS mm), ITK's fixed-to-moving convention with fixed = CT, moving = T1/T2.

    Raises
    ------
    KeyError
        The meta holds no ``pose_petct`` or ``pose_mr`` (not a simulated subject).

    References
    ----------
    .. [1] ``docs/simulation.md`` §5; ``docs/method.md`` §3.4 (MR registered to the patient's CT).
    """
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

"""Rigid transform algebra: building, composing, describing and fitting rigid 3D transforms.

Every transform here is a SimpleITK transform of physical points in LPS millimetres; the rigid ones
are ``VersorRigid3DTransform`` objects with ``T(p) = R (p - c) + c + t`` (rotation ``R``, centre ``c``,
translation ``t``). :func:`fit_rigid` and :func:`closest_rigid` give the least-squares rigid map over
a set of points (Kabsch), used by the brain refinement of
:func:`~RobustDeepLogic.registration.pairwise.register_rigid` and for ground-truth transforms. The
registration itself is in :mod:`RobustDeepLogic.registration.pairwise`; transform files are read and
written by :mod:`RobustDeepLogic.io.transforms`.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk


def rigid_from_matrix(matrix: np.ndarray, translation: np.ndarray,
                      center: Sequence[float] = (0.0, 0.0, 0.0)) -> sitk.VersorRigid3DTransform:
    """A ``VersorRigid3DTransform`` with ``T(p) = R (p - c) + c + t`` (LPS mm).

    Parameters
    ----------
    matrix : array_like
        The rotation ``R``: 9 values, row-major, or a ``[3, 3]`` array. It is re-orthonormalised
        (``U V^T`` of its singular value decomposition) to remove numerical drift, so a matrix that
        is not a rotation is replaced by the nearest orthogonal one; it must not be a reflection.
    translation : array_like
        The translation ``t``: 3 values, LPS mm.
    center : sequence of float, optional
        The rotation centre ``c``, LPS mm (default: the origin).

    Returns
    -------
    SimpleITK.VersorRigid3DTransform
        The transform, with its centre set to ``center``.
    """
    tx = sitk.VersorRigid3DTransform()
    tx.SetCenter([float(c) for c in center])
    r = np.asarray(matrix, float).reshape(3, 3)
    u, _, vt = np.linalg.svd(r)  # re-orthonormalise (numerical drift)
    r = u @ vt
    tx.SetMatrix([float(v) for v in r.ravel()])
    tx.SetTranslation([float(v) for v in translation])
    return tx


def rigid_transform(angles_deg: Sequence[float] = (0.0, 0.0, 0.0),
                    translation_mm: Sequence[float] = (0.0, 0.0, 0.0),
                    center: Sequence[float] = (0.0, 0.0, 0.0)) -> sitk.VersorRigid3DTransform:
    """A rigid transform from rotation angles about ``center`` and a translation.

    The rotation is that of ITK's ``Euler3DTransform`` with its default angle order,
    ``R = Rz Rx Ry``: a point is rotated about the LPS y axis first, then about x, then about z
    (right-handed rotations).

    Parameters
    ----------
    angles_deg : sequence of float, optional
        Rotation angles about the LPS x, y and z axes, in degrees (default: no rotation).
    translation_mm : sequence of float, optional
        Translation ``t`` in LPS mm, added after the rotation about ``center`` (default: none).
    center : sequence of float, optional
        The rotation centre ``c``, LPS mm (default: the origin).

    Returns
    -------
    SimpleITK.VersorRigid3DTransform
        ``T(p) = R (p - c) + c + t``, made by :func:`rigid_from_matrix`.
    """
    e = sitk.Euler3DTransform()
    e.SetCenter([float(c) for c in center])
    e.SetRotation(*[math.radians(float(a)) for a in angles_deg])
    e.SetTranslation([float(t) for t in translation_mm])
    return rigid_from_matrix(np.asarray(e.GetMatrix()), np.asarray(e.GetTranslation()), center)


def affine_parts(tx: sitk.Transform) -> Tuple[np.ndarray, np.ndarray]:
    """``(A, b)`` with ``T(p) = A p + b`` for an affine transform (rigid, Euler, similarity, affine,
    or a composite of those).

    ``A`` and ``b`` are read off the images of the origin and of the three unit vectors, so the result
    is meaningful only for transforms that are affine (not for B-splines or displacement fields).

    Parameters
    ----------
    tx : SimpleITK.Transform
        A 3D transform of LPS mm points.

    Returns
    -------
    A : numpy.ndarray
        ``[3, 3]`` float64 matrix.
    b : numpy.ndarray
        ``[3]`` float64 offset in mm: where ``tx`` maps the origin.
    """
    pts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], float)
    mapped = np.array([tx.TransformPoint([float(v) for v in p]) for p in pts])
    b = mapped[0]
    a = (mapped[1:] - b).T
    return a, b


def compose_rigid(outer: sitk.Transform, inner: sitk.Transform,
                  center: Optional[Sequence[float]] = None) -> sitk.VersorRigid3DTransform:
    """The rigid transform ``p -> outer(inner(p))`` as one ``VersorRigid3DTransform``.

    For MR into template space: ``compose_rigid(T_ct_to_mr, T_template_to_ct)`` maps template points
    to MR points (resampling convention), i.e. the file Slicer applies to the native MR.

    Parameters
    ----------
    outer : SimpleITK.Transform
        The transform applied second; rigid (see :func:`rigid_from_matrix` for what happens to a
        linear part that is not a rotation).
    inner : SimpleITK.Transform
        The transform applied first; rigid.
    center : sequence of float, optional
        The rotation centre of the result, LPS mm (default: ``inner``'s centre, or the origin when
        ``inner`` has none). The centre does not change the mapping, only its parameters.

    Returns
    -------
    SimpleITK.VersorRigid3DTransform
        ``outer o inner``.
    """
    a1, b1 = affine_parts(inner)
    a2, b2 = affine_parts(outer)
    a = a2 @ a1
    b = a2 @ b1 + b2
    c = np.asarray(center if center is not None else getattr(inner, "GetCenter", lambda: (0, 0, 0))(),
                   float)
    # T(p) = A(p - c) + c + t  =>  t = A c + b - c
    t = a @ c + b - c
    return rigid_from_matrix(a, t, c)


def transform_parameters(tx: sitk.Transform) -> Dict[str, Any]:
    """A JSON-able description of an affine transform: matrix, offset and rotation angle.

    Parameters
    ----------
    tx : SimpleITK.Transform
        An affine (usually rigid) 3D transform of LPS mm points.

    Returns
    -------
    dict
        ``'matrix'``: ``A`` of ``T(p) = A p + b`` as nested lists (``[3, 3]``, 8 decimals);
        ``'offset_mm'``: ``b``, where the origin goes (LPS mm, 5 decimals); ``'rotation_deg'``: the
        rotation angle of ``A`` in degrees, from its trace (meaningful when ``A`` is a rotation).
    """
    a, b = affine_parts(tx)
    cos = max(-1.0, min(1.0, (float(np.trace(a)) - 1.0) / 2.0))
    return {"matrix": a.round(8).tolist(), "offset_mm": b.round(5).tolist(),
            "rotation_deg": round(math.degrees(math.acos(cos)), 4)}


def fit_rigid(source: np.ndarray, target: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The least-squares rigid map between paired points (Kabsch / Procrustes, no reflection).

    Finds the rotation ``R`` and translation ``t`` minimising ``sum_i |R source_i + t - target_i|^2``.

    Parameters
    ----------
    source : numpy.ndarray
        ``[N, 3]`` points, mm.
    target : numpy.ndarray
        ``[N, 3]`` points paired row by row with ``source``, mm.

    Returns
    -------
    R : numpy.ndarray
        ``[3, 3]`` float64 rotation matrix (determinant +1).
    t : numpy.ndarray
        ``[3]`` float64 translation, mm.

    References
    ----------
    .. [1] Kabsch W., "A solution for the best rotation to relate two sets of vectors",
           Acta Crystallographica A 32:922-923, 1976.
    """
    p, q = np.asarray(source, np.float64), np.asarray(target, np.float64)
    pc, qc = p.mean(axis=0), q.mean(axis=0)
    u, _, vt = np.linalg.svd((p - pc).T @ (q - qc))
    d = np.sign(np.linalg.det(vt.T @ u.T))
    r = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return r, qc - r @ pc


def closest_rigid(tx: sitk.Transform, points: np.ndarray,
                  center: Optional[Sequence[float]] = None) -> sitk.VersorRigid3DTransform:
    """The rigid transform closest to the affine transform ``tx`` over a set of points.

    ``argmin_{R, t} sum_p |R p + t - tx(p)|^2`` over rotations ``R`` (no reflection) and translations
    ``t`` (:func:`fit_rigid`). Used to turn a similarity fit into a rigid transform over the brain.

    Parameters
    ----------
    tx : SimpleITK.Transform
        An affine transform (e.g. ``Similarity3DTransform``) of LPS mm points.
    points : numpy.ndarray
        ``[N, 3]`` LPS points (mm) over which the two transforms are compared, e.g. the voxel centres
        of a brain mask (:func:`~RobustDeepLogic.registration.qc.mask_points`).
    center : sequence of float, optional
        Rotation centre of the result, LPS mm (default: ``tx``'s centre; ``tx`` must then have
        ``GetCenter``).

    Returns
    -------
    SimpleITK.VersorRigid3DTransform
        The closest rigid transform, centred on ``center``.
    """
    p = np.asarray(points, np.float64)
    a, b = affine_parts(tx)
    r, t0 = fit_rigid(p, p @ a.T + b)
    c = np.asarray(center if center is not None else tx.GetCenter(), np.float64)
    # p -> r p + t0  ==  r (p - c) + c + t  with  t = r c + t0 - c
    return rigid_from_matrix(r, r @ c + t0 - c, c)

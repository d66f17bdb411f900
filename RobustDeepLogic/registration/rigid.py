"""TODO docstring (RobustDeepLogic.registration)."""

from __future__ import annotations

import math
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk


def rigid_from_matrix(matrix: np.ndarray, translation: np.ndarray,
                      center: Sequence[float] = (0.0, 0.0, 0.0)) -> sitk.VersorRigid3DTransform:
    """A ``VersorRigid3DTransform`` with ``T(p) = R (p - c) + c + t`` (LPS mm)."""
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
    """A rigid transform from rotations about LPS x, y, z (degrees, applied x then y then z) about
    ``center`` and a translation (LPS mm)."""
    e = sitk.Euler3DTransform()
    e.SetCenter([float(c) for c in center])
    e.SetRotation(*[math.radians(float(a)) for a in angles_deg])
    e.SetTranslation([float(t) for t in translation_mm])
    return rigid_from_matrix(np.asarray(e.GetMatrix()), np.asarray(e.GetTranslation()), center)


def affine_parts(tx: sitk.Transform) -> Tuple[np.ndarray, np.ndarray]:
    """``(A, b)`` with ``T(p) = A p + b`` for a linear transform (rigid, Euler, composite of those)."""
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
    """A JSON-able description: matrix, translation, rotation angle (deg) and the map of the origin."""
    a, b = affine_parts(tx)
    cos = max(-1.0, min(1.0, (float(np.trace(a)) - 1.0) / 2.0))
    return {"matrix": a.round(8).tolist(), "offset_mm": b.round(5).tolist(),
            "rotation_deg": round(math.degrees(math.acos(cos)), 4)}


def fit_rigid(source: np.ndarray, target: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``(R, t)``, the rotation (no reflection) and translation minimising
    ``sum |R source_i + t - target_i|^2`` over paired points (N, 3): Kabsch / Procrustes."""
    p, q = np.asarray(source, np.float64), np.asarray(target, np.float64)
    pc, qc = p.mean(axis=0), q.mean(axis=0)
    u, _, vt = np.linalg.svd((p - pc).T @ (q - qc))
    d = np.sign(np.linalg.det(vt.T @ u.T))
    r = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return r, qc - r @ pc


def closest_rigid(tx: sitk.Transform, points: np.ndarray,
                  center: Optional[Sequence[float]] = None) -> sitk.VersorRigid3DTransform:
    """The rigid transform closest to the linear transform ``tx`` over ``points`` (N, 3; LPS mm):
    ``argmin_{R, t} sum |R p + t - tx(p)|^2`` over rotations (Kabsch / Procrustes, no reflection).

    The rotation centre of the result is ``center`` (default: ``tx``'s centre).
    """
    p = np.asarray(points, np.float64)
    a, b = affine_parts(tx)
    r, t0 = fit_rigid(p, p @ a.T + b)
    c = np.asarray(center if center is not None else tx.GetCenter(), np.float64)
    # p -> r p + t0  ==  r (p - c) + c + t  with  t = r c + t0 - c
    return rigid_from_matrix(r, r @ c + t0 - c, c)

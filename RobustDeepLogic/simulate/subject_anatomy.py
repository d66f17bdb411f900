"""The anatomy of one simulated subject: :class:`SubjectAnatomy` draws a subject's variations from
the template anatomy (:mod:`RobustDeepLogic.simulate.anatomy`): head scale, regional atrophy,
ventricles, skull and fat; it samples the tissue fractions on a native grid and gives the label map
that the PET, CT and MR simulators read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

from RobustDeepLogic.registration.rigid import fit_rigid
from RobustDeepLogic.simulate.anatomy import (
    _VENTRICLE_LPS,
    LABELS,
    TEMPLATE_MAX_LPS,
    TEMPLATE_MIN_LPS,
    TISSUES,
    TemplateAnatomy,
    _sigmoid,
    trilinear,
)
from RobustDeepLogic.simulate.pose import HEAD_CENTRE_LPS, Pose, native_grid_origin


# --------------------------------------------------------------------------------------------------
# Subject variability
# --------------------------------------------------------------------------------------------------
@dataclass
class SubjectAnatomy:
    """The random anatomy parameters of one subject (all JSON-able but the warp field).

    Drawn by :func:`draw_subject_anatomy` (the ranges are there). The subject's deformation
    ``q = D(p)`` is :meth:`deform`; its smooth warp field is built from ``warp_seed`` on first use
    and cached.

    Attributes
    ----------
    head_scale : tuple of 3 float
        The subject's head size relative to the template along x, y, z (about +-6 %), about
        :data:`~RobustDeepLogic.simulate.pose.HEAD_CENTRE_LPS`.
    warp_rms_mm : float
        RMS (mm) of the smooth random displacement.
    warp_seed : int
        Seed of the random displacement field.
    ventricle_expansion : float
        Local stretch around the lateral ventricles (0 = none; 0.3 roughly doubles their volume).
    cortical_thinning : float
        Fraction of sulcal-side grey matter turned into CSF (0 = none).
    bone_threshold, diploe_threshold : float
        Sigmoid centres on the TPM bone probability for the whole skull and for its diploe core
        (lower = thicker).
    fat_fraction : float
        Mean fat fraction of the scalp soft tissue.
    lesion : dict or None, optional
        ``None`` or ``{"centre_mm": [x, y, z] (template LPS), "radius_mm": r}``.
    """

    head_scale: Tuple[float, float, float]
    warp_rms_mm: float
    warp_seed: int
    ventricle_expansion: float
    cortical_thinning: float
    bone_threshold: float
    diploe_threshold: float
    fat_fraction: float
    lesion: Optional[Dict[str, Any]] = None
    _warp: Optional[Tuple[np.ndarray, np.ndarray, float]] = field(default=None, repr=False, compare=False)

    def to_meta(self) -> Dict[str, Any]:
        """The manifest record of this anatomy (``meta['anatomy']`` of a simulated subject).

        Returns
        -------
        dict
            JSON-able: ``head_scale``, ``warp_rms_mm``, ``ventricle_expansion``,
            ``cortical_thinning``, ``atrophic`` (either of the two is positive), ``bone_threshold``,
            ``diploe_threshold``, ``scalp_fat_fraction``, ``lesion``. ``warp_seed`` is not stored.
        """
        return {
            "head_scale": [float(v) for v in self.head_scale],
            "warp_rms_mm": float(self.warp_rms_mm),
            "ventricle_expansion": float(self.ventricle_expansion),
            "cortical_thinning": float(self.cortical_thinning),
            "atrophic": bool(self.ventricle_expansion > 0 or self.cortical_thinning > 0),
            "bone_threshold": float(self.bone_threshold),
            "diploe_threshold": float(self.diploe_threshold),
            "scalp_fat_fraction": float(self.fat_fraction),
            "lesion": self.lesion,
        }

    # -- the deformation q = D(p) -----------------------------------------------------------------
    def _warp_field(self) -> Tuple[np.ndarray, np.ndarray, float]:
        """A smooth displacement field on a coarse 8 mm grid over the template box (3, z, y, x)."""
        if self._warp is None:
            step = 8.0
            lo = np.asarray(TEMPLATE_MIN_LPS) - 24.0
            n = [int(math.ceil((hi - l0 + 48.0) / step)) + 1
                 for l0, hi in zip(TEMPLATE_MIN_LPS, TEMPLATE_MAX_LPS)]
            rng = np.random.default_rng(self.warp_seed)
            u = rng.standard_normal((3, n[2], n[1], n[0]))
            u = np.stack([ndimage.gaussian_filter(c, 20.0 / step, mode="nearest") for c in u], axis=0)
            rms = math.sqrt(float(np.mean(np.sum(u ** 2, axis=0))))
            u *= self.warp_rms_mm / max(rms, 1e-9)
            object.__setattr__(self, "_warp", (np.ascontiguousarray(u, np.float32), lo, step))
        return self._warp

    def deform(self, p: np.ndarray) -> np.ndarray:
        """Atlas points ``q = D(p)`` for template points ``p`` (N, 3), LPS mm.

        ``D`` scales about :data:`~RobustDeepLogic.simulate.pose.HEAD_CENTRE_LPS` by
        ``1 / head_scale``, adds the smooth random displacement and, for an atrophic subject,
        contracts towards the lateral ventricles (so that they look larger).

        Parameters
        ----------
        p : numpy.ndarray
            ``(N, 3)`` float32 points of the subject's pose-free frame (template-space coordinates,
            LPS mm).

        Returns
        -------
        numpy.ndarray
            ``(N, 3)`` float32 points ``q`` where the template maps are read, LPS mm.
        """
        c = np.asarray(HEAD_CENTRE_LPS, np.float32)
        q = c + (p - c) / np.asarray(self.head_scale, np.float32)
        u, lo, step = self._warp_field()
        q += trilinear(u, (p - lo.astype(np.float32))[:, ::-1] / np.float32(step), border=True).T
        if self.ventricle_expansion > 0:
            v = np.asarray(_VENTRICLE_LPS, np.float32)
            d = q - v
            w = np.exp(-0.5 * np.sum((d / np.asarray([16.0, 24.0, 14.0], np.float32)) ** 2, axis=1))
            q -= np.float32(self.ventricle_expansion) * d * w[:, None]
        return q

    def lesion_fraction(self, q: np.ndarray) -> np.ndarray:
        """How much of the lesion lies at atlas points ``q``: 0 outside, 1 inside, a 1 mm sigmoid edge.

        Parameters
        ----------
        q : numpy.ndarray
            ``(N, 3)`` atlas points (template LPS mm), as :meth:`deform` returns them.

        Returns
        -------
        numpy.ndarray
            ``(N,)`` float32 in [0, 1]; all zeros when the subject has no lesion.
        """
        if not self.lesion:
            return np.zeros(len(q), np.float32)
        d = np.linalg.norm(q - np.asarray(self.lesion["centre_mm"]), axis=1)
        return _sigmoid((self.lesion["radius_mm"] - d) / 1.0).astype(np.float32)


def rigid_part(subject: SubjectAnatomy, points: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The rigid transform closest to the inverse of the subject's deformation over ``points``.

    A subject's anatomy at a point ``p`` of its own (pose-free) frame is the template's at
    ``q = D(p)`` (:meth:`SubjectAnatomy.deform`: scaling about the head centre, a smooth random warp,
    ventricles). No rigid transform undoes ``D``; the least-squares rigid map ``H: q -> p`` over
    brain points (Kabsch / Procrustes, rotation and translation only,
    :func:`~RobustDeepLogic.registration.rigid.fit_rigid`) is the best any rigid registration can
    do, so ``pose o H`` is the ground truth a 6-DOF registration should find
    (:func:`~RobustDeepLogic.simulate.truth.best_rigid_transform`).

    Parameters
    ----------
    subject : SubjectAnatomy
        The subject's anatomy.
    points : numpy.ndarray
        ``(N, 3)`` brain points ``p`` of the pose-free frame (template-space coordinates, LPS mm).

    Returns
    -------
    A : numpy.ndarray
        ``(3, 3)`` float64 rotation matrix (no reflection).
    b : numpy.ndarray
        ``(3,)`` float64 translation in mm, with ``H(q) = A q + b``.
    """
    p = np.asarray(points, np.float64)
    q = subject.deform(p.astype(np.float32)).astype(np.float64)
    return fit_rigid(q, p)


def draw_subject_anatomy(rng: np.random.Generator) -> SubjectAnatomy:
    """Random anatomy parameters of one subject (:class:`SubjectAnatomy` gives their meaning).

    Head scale: a global factor uniform in [0.94, 1.06] times a per-axis factor ~ N(1, 0.02) clipped
    to [0.96, 1.04]; warp RMS uniform in [1.5, 3.5] mm; with probability 0.35 the subject is
    atrophic (ventricle expansion in [0.15, 0.35], cortical thinning in [0.2, 0.4]); with probability
    0.2 a lesion of radius 6 to 12 mm in one hemisphere; bone threshold in [0.30, 0.50], diploe
    threshold 0.25 to 0.35 above it; scalp fat fraction in [0.25, 0.5].

    Parameters
    ----------
    rng : numpy.random.Generator
        The subject's ``anatomy`` stream (:mod:`.streams`).

    Returns
    -------
    SubjectAnatomy
        The parameters (the warp field is built later, from ``warp_seed``).
    """
    glob = rng.uniform(0.94, 1.06)
    aniso = np.clip(rng.normal(1.0, 0.02, 3), 0.96, 1.04)
    atrophic = rng.random() < 0.35
    lesion = None
    if rng.random() < 0.2:  # a hypometabolic (e.g. ischaemic) lesion in one hemisphere
        side = rng.choice([-1.0, 1.0])
        centre = [side * rng.uniform(20, 40), rng.uniform(-30, 30) + 18.0, rng.uniform(0, 40)]
        lesion = {"centre_mm": [float(v) for v in centre], "radius_mm": float(rng.uniform(6, 12))}
    bone_t = float(rng.uniform(0.30, 0.50))
    return SubjectAnatomy(
        head_scale=tuple(float(v) for v in glob * aniso),
        warp_rms_mm=float(rng.uniform(1.5, 3.5)),
        warp_seed=int(rng.integers(0, 2 ** 31 - 1)),
        ventricle_expansion=float(rng.uniform(0.15, 0.35)) if atrophic else 0.0,
        cortical_thinning=float(rng.uniform(0.2, 0.4)) if atrophic else 0.0,
        bone_threshold=bone_t,
        diploe_threshold=float(bone_t + rng.uniform(0.25, 0.35)),
        fat_fraction=float(rng.uniform(0.25, 0.5)),
        lesion=lesion,
    )


# --------------------------------------------------------------------------------------------------
# Sampling onto a native grid
# --------------------------------------------------------------------------------------------------
def native_points(size: Sequence[int], spacing: Sequence[float], z0: int, z1: int) -> np.ndarray:
    """LPS points (N, 3) of slices ``z0:z1`` of an axis-aligned native grid (see :mod:`.pose`).

    Parameters
    ----------
    size : sequence of 3 int
        Grid size in voxels, ITK order ``(x, y, z)``; the grid is centred on
        :data:`~RobustDeepLogic.simulate.pose.HEAD_CENTRE_LPS` with identity direction.
    spacing : sequence of 3 float
        Voxel size ``(x, y, z)`` in mm.
    z0, z1 : int
        The slices (z indices) ``z0`` to ``z1 - 1``.

    Returns
    -------
    numpy.ndarray
        ``(N, 3)`` float32 voxel centres in LPS mm, ``N = (z1 - z0) * size[1] * size[0]``, in the C
        order of a ``[z, y, x]`` array.
    """
    origin = native_grid_origin(size, spacing)
    z, y, x = np.meshgrid(np.arange(z0, z1), np.arange(size[1]), np.arange(size[0]), indexing="ij")
    pts = np.stack([x.ravel() * spacing[0] + origin[0], y.ravel() * spacing[1] + origin[1],
                    z.ravel() * spacing[2] + origin[2]], axis=1)
    return pts.astype(np.float32)


def sample_tissues(
    template: TemplateAnatomy,
    subject: SubjectAnatomy,
    pose: Pose,
    size: Sequence[int],
    spacing: Sequence[float],
    *,
    extra: Optional[Callable[[np.ndarray], Dict[str, np.ndarray]]] = None,
    chunk_points: int = 1_500_000,
) -> Dict[str, np.ndarray]:
    """Tissue fractions of one subject on a native grid (float32 ``[z, y, x]`` arrays, sum 1).

    Each native voxel ``x`` reads the template maps once, at ``q = D(T^-1(x))`` (``T`` the pose,
    ``D`` the subject's deformation), then the subject's skull thresholds, cortical thinning, scalp
    fat and lesion turn the maps into fractions.

    Parameters
    ----------
    template : TemplateAnatomy
        The template maps (:func:`template_anatomy`).
    subject : SubjectAnatomy
        The subject's anatomy.
    pose : Pose
        The pose of the frame being imaged (:class:`~RobustDeepLogic.simulate.pose.Pose`).
    size : sequence of 3 int
        Native grid size in voxels, ITK order ``(x, y, z)`` (axis-aligned, centred on
        :data:`~RobustDeepLogic.simulate.pose.HEAD_CENTRE_LPS`).
    spacing : sequence of 3 float
        Native voxel size ``(x, y, z)`` in mm.
    extra : callable, optional
        ``extra(q) -> {name: (N,) array}``, evaluated on the atlas points ``q`` (N, 3) of each chunk
        (e.g. :meth:`~RobustDeepLogic.simulate.pet.FdgModel.gm_factor`); its arrays are returned
        beside the fractions. None (default): nothing more.
    chunk_points : int, optional
        About how many voxels are processed at once (whole slices, at least one): bounds the memory.

    Returns
    -------
    dict of str to numpy.ndarray
        float32 arrays of shape ``(size[2], size[1], size[0])``: ``gm, wm, csf, bone`` (cortical
        tables), ``diploe``, ``soft``, ``air`` (these seven sum to 1), ``fat`` (the fat share of
        ``soft``, 0..1), ``lesion`` (the voxel fraction of lesion, 0..1, an overlay on brain tissue),
        plus whatever ``extra`` computes.
    """
    shape = (size[2], size[1], size[0])
    out: Dict[str, np.ndarray] = {}
    a_tn = pose.template_from_native()
    per_slice = size[0] * size[1]
    step = max(1, chunk_points // per_slice)
    origin = np.asarray(template.origin)
    for z0 in range(0, size[2], step):
        z1 = min(size[2], z0 + step)
        x = native_points(size, spacing, z0, z1)
        p = x @ a_tn[:3, :3].T.astype(np.float32) + a_tn[:3, 3].astype(np.float32)
        q = subject.deform(p)
        idx = ((q - origin.astype(np.float32)) / np.float32(template.spacing))[:, ::-1]
        values = trilinear(template.stack, idx)
        raw = {n: values[i] for i, n in enumerate(template.maps)}
        frac = _fractions(raw, subject)
        frac["lesion"] = subject.lesion_fraction(q) * (frac["gm"] + frac["wm"])
        frac["fat"] = _fat_share(q, subject)
        if extra is not None:
            frac.update(extra(q))
        for name, v in frac.items():
            if name not in out:
                out[name] = np.empty(shape, np.float32)
            out[name][z0:z1] = v.reshape(z1 - z0, size[1], size[0])
    return out


def _fractions(raw: Dict[str, np.ndarray], s: SubjectAnatomy) -> Dict[str, np.ndarray]:
    gm, wm, csf = raw["gm"], raw["wm"], raw["csf"]
    if s.cortical_thinning > 0:
        loss = s.cortical_thinning * raw["sulcal"] * gm
        gm = gm - loss
        csf = csf + loss
    icv = np.clip(gm + wm + csf, 0.0, 1.0)
    rest = 1.0 - icv
    bone_all = _sigmoid((raw["bone_p"] - s.bone_threshold) / 0.035) * rest
    diploe = bone_all * _sigmoid((raw["bone_p"] - s.diploe_threshold) / 0.035)
    rest2 = rest - bone_all
    air = rest2 * _sigmoid((0.5 - raw["head_p"]) / 0.05)
    soft = rest2 - air
    return {"gm": gm, "wm": wm, "csf": csf, "bone": bone_all - diploe, "diploe": diploe,
            "soft": soft, "air": air}


def _fat_share(q: np.ndarray, s: SubjectAnatomy) -> np.ndarray:
    """Fat share of soft tissue: the subject's mean, modulated smoothly (+-30 %) over the scalp."""
    d = ((q - np.asarray(HEAD_CENTRE_LPS)) / 60.0).astype(np.float32)
    mod = 0.3 * np.sin(2.1 * d[:, 0] + 1.3 * d[:, 1] + np.float32(s.warp_seed % 7)) * np.cos(1.7 * d[:, 2])
    return np.clip(s.fat_fraction * (1.0 + mod), 0.0, 1.0).astype(np.float32)


def label_map(fractions: Dict[str, np.ndarray], threshold: float = 0.6) -> np.ndarray:
    """uint8 labels (:data:`LABELS`) of voxels whose largest class fraction is >= ``threshold``.

    Voxels with no dominant class get 0 (mixed); voxels that are at least half lesion get the lesion
    label.

    Parameters
    ----------
    fractions : dict of str to numpy.ndarray
        Fractions as :func:`sample_tissues` returns them (the classes of :data:`TISSUES` and
        ``lesion`` are read).
    threshold : float, optional
        Smallest fraction of the largest class for a voxel to get its label (default 0.6).

    Returns
    -------
    numpy.ndarray
        uint8 labels, the shape of the fractions.
    """
    best = np.full(fractions["gm"].shape, -1.0, np.float32)
    labels = np.zeros(best.shape, np.uint8)
    for t in TISSUES:
        better = fractions[t] > best
        best[better] = fractions[t][better]
        labels[better] = LABELS[t]
    labels[best < threshold] = 0
    labels[fractions["lesion"] >= 0.5] = LABELS["lesion"]
    return labels

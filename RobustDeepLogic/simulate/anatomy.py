"""Head anatomy: template tissue maps, per-subject variability, sampling onto native grids.

Sources (prepared by ``robustdeep assets``; nothing is downloaded here):

- grey and white matter: MNI ICBM152 2009c GM / WM probability maps (nilearn, 1 mm);
- intracranial volume, skull, scalp and air: SPM's tissue probability maps (TPM, 1.5 mm), whose bone
  class is smooth; it is sharpened per subject with a sigmoid on its probability, and its core (the
  highest probabilities, the middle of the skull) becomes the diploe (data.md).

The template maps live on an axis-aligned working grid in template space (MNI, LPS mm) covering the
TPM's field of view at the profile's ``template_spacing_mm``. A subject is the template seen through a
non-rigid deformation ``q = D(p)`` (template point ``p`` to atlas point ``q``): global and anisotropic
scaling about :data:`~RobustDeepLogic.simulate.pose.HEAD_CENTRE_LPS`, a smooth random warp (a few mm
RMS) and, for atrophic subjects, a local expansion around the lateral ventricles; cortical thinning
moves grey matter next to sulcal CSF into CSF. Native images sample the maps at ``D(T^-1(x))`` for
each native voxel ``x`` (``T`` the pose, see :mod:`.pose`): one interpolation, no resampling chain.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from RobustDeepLogic.registration.assets import load_asset
from RobustDeepLogic.registration.rigid import fit_rigid
from RobustDeepLogic.simulate.pose import HEAD_CENTRE_LPS, Pose, native_grid_origin

#: Template working grid bounds (LPS mm): the TPM field of view.
TEMPLATE_MIN_LPS = (-90.0, -90.0, -72.0)


TEMPLATE_MAX_LPS = (90.0, 126.0, 108.0)


#: Tissue labels of the label maps written beside each subject (0: mixed voxel, no class >= 0.6).
LABELS: Dict[str, int] = {"gm": 1, "wm": 2, "csf": 3, "bone": 4, "diploe": 5, "soft": 6, "air": 7,
                          "lesion": 8}


TISSUES = ("gm", "wm", "csf", "bone", "diploe", "soft", "air")


# Lateral ventricles (MNI RAS -> LPS), the centre of the atrophy expansion.
_VENTRICLE_LPS = (0.0, 8.0, 16.0)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def trilinear(stack: np.ndarray, index_zyx: np.ndarray, *, border: bool = False) -> np.ndarray:
    """Trilinear interpolation of a channel stack ``[C, z, y, x]`` at continuous indices (N, 3).

    Points outside the array read 0 (``border=False``) or the nearest edge value. Returns (C, N)
    float32. All channels share one set of corner weights (``torch.nn.functional.grid_sample`` on
    the CPU, which is several times faster than one ``scipy.ndimage.map_coordinates`` per map).
    """
    import torch

    n_ch, nz, ny, nx = stack.shape
    grid = torch.from_numpy(np.ascontiguousarray(index_zyx[:, ::-1], dtype=np.float32))
    grid = grid / torch.tensor([nx - 1, ny - 1, nz - 1], dtype=torch.float32) * 2.0 - 1.0
    with torch.no_grad():
        out = torch.nn.functional.grid_sample(
            torch.from_numpy(stack)[None], grid.view(1, 1, 1, -1, 3), mode="bilinear",
            padding_mode="border" if border else "zeros", align_corners=True)
    return out.view(n_ch, -1).numpy()


# --------------------------------------------------------------------------------------------------
# Template
# --------------------------------------------------------------------------------------------------
@dataclass
class TemplateAnatomy:
    """Template tissue maps on an axis-aligned grid (identity direction) in template space.

    ``maps[name]`` are float32 ``[z, y, x]`` arrays: ``gm``, ``wm``, ``csf`` (intracranial fractions,
    summing to at most 1), ``bone_p`` and ``head_p`` (SPM TPM bone and 1 - air probabilities, smooth;
    0 outside the template box), ``sulcal``
    (0..1, grey matter next to sulcal CSF: where cortical thinning acts).
    """

    spacing: float
    origin: Tuple[float, float, float]
    maps: Dict[str, np.ndarray]
    _stack: Optional[np.ndarray] = field(default=None, repr=False)

    @property
    def shape(self) -> Tuple[int, int, int]:
        return next(iter(self.maps.values())).shape

    @property
    def stack(self) -> np.ndarray:
        """All maps as one ``[C, z, y, x]`` array, channels in the order of :attr:`maps`."""
        if self._stack is None:
            self._stack = np.ascontiguousarray(np.stack(list(self.maps.values()), axis=0))
        return self._stack

    def reference_image(self) -> sitk.Image:
        """An empty image on the working grid (for resampling into template space)."""
        shp = self.shape
        img = sitk.Image([shp[2], shp[1], shp[0]], sitk.sitkFloat32)
        img.SetSpacing([self.spacing] * 3)
        img.SetOrigin(self.origin)
        return img


def _to_grid(image: sitk.Image, ref: sitk.Image, spacing: float) -> np.ndarray:
    sp = min(image.GetSpacing())
    factor = int(math.floor(spacing / sp + 1e-6))
    if factor > 1:  # anti-alias before going coarser: average blocks of voxels
        image = sitk.BinShrink(image, [factor] * 3)
    out = sitk.Resample(image, ref, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out)


@functools.lru_cache(maxsize=2)
def template_anatomy(spacing: float, assets_folder: Optional[str] = None) -> TemplateAnatomy:
    """Build (once per process) the template maps at ``spacing`` mm from the prepared assets.

    Raises :class:`~RobustDeepLogic.errors.InputError` (from ``asset_path``) when assets are missing.
    """
    folder = Path(assets_folder) if assets_folder else None
    size = [int(math.floor((hi - lo) / spacing)) + 1 for lo, hi in zip(TEMPLATE_MIN_LPS, TEMPLATE_MAX_LPS)]
    ref = sitk.Image(size, sitk.sitkFloat32)
    ref.SetSpacing([spacing] * 3)
    ref.SetOrigin(TEMPLATE_MIN_LPS)
    get = lambda name: _to_grid(load_asset(name, folder), ref, spacing)  # noqa: E731
    gm, wm = get("mni152_gm"), get("mni152_wm")
    brain = np.clip(gm + wm, 0.0, 1.0)
    # The probability maps blur the GM/WM boundary (a population average): sharpen the GM share of
    # brain tissue with a sigmoid so that a subject has crisp tissue (fractions, not probabilities).
    share = _sigmoid((gm / np.maximum(gm + wm, 1e-6) - 0.5) / 0.08)
    brain = np.clip(_sigmoid((brain - 0.35) / 0.08) * (brain > 0.02), 0.0, 1.0)
    gm, wm = brain * share, brain * (1.0 - share)
    icv_p = get("tpm_gm") + get("tpm_wm") + get("tpm_csf")
    icv = np.maximum(_sigmoid((icv_p - 0.5) / 0.06), brain)
    csf = np.clip(icv - brain, 0.0, 1.0)
    bone_p, head_p = get("tpm_bone"), 1.0 - get("tpm_air")
    # Grey matter beside sulcal CSF: CSF near the skull (not the ventricles), blurred by ~2 mm.
    depth = ndimage.distance_transform_edt(icv > 0.5) * spacing
    sulcal_csf = csf * (depth < 20.0)
    sulcal = np.clip(ndimage.gaussian_filter(sulcal_csf, 2.0 / spacing) / 0.25, 0.0, 1.0) * (gm > 0.05)
    maps = {"gm": gm, "wm": wm, "csf": csf, "bone_p": bone_p, "head_p": head_p, "sulcal": sulcal}
    return TemplateAnatomy(spacing, tuple(TEMPLATE_MIN_LPS), {k: v.astype(np.float32) for k, v in maps.items()})


# --------------------------------------------------------------------------------------------------
# Subject variability
# --------------------------------------------------------------------------------------------------
@dataclass
class SubjectAnatomy:
    """The random anatomy parameters of one subject (all JSON-able but the warp field).

    ``head_scale``: the subject's head size relative to the template along x, y, z (about +-6 %);
    ``warp_rms_mm``: RMS of the smooth random displacement; ``ventricle_expansion``: local stretch
    around the lateral ventricles (0 = none; 0.3 roughly doubles their volume);
    ``cortical_thinning``: fraction of sulcal-side grey matter turned into CSF; ``bone_threshold``
    and ``diploe_threshold``: sigmoid centres on the TPM bone probability (lower = thicker skull);
    ``fat_fraction``: mean fat fraction of the scalp soft tissue; ``lesion``: ``None`` or
    ``{"centre_mm": [x, y, z] (template LPS), "radius_mm": r}``.
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
        """Atlas points ``q = D(p)`` for template points ``p`` (N, 3), LPS mm."""
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
        if not self.lesion:
            return np.zeros(len(q), np.float32)
        d = np.linalg.norm(q - np.asarray(self.lesion["centre_mm"]), axis=1)
        return _sigmoid((self.lesion["radius_mm"] - d) / 1.0).astype(np.float32)


def rigid_part(subject: SubjectAnatomy, points: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The rigid transform closest to the inverse of the subject's deformation over ``points``.

    A subject's anatomy at a point ``p`` of its own (pose-free) frame is the template's at
    ``q = D(p)`` (:meth:`SubjectAnatomy.deform`: scaling about the head centre, a smooth random warp,
    ventricles). No rigid transform undoes ``D``; the least-squares rigid map ``H: q -> p`` over
    brain points (Kabsch / Procrustes, rotation and translation only) is the best any rigid
    registration can do, so ``pose o H`` is the ground truth a 6-DOF registration should find.
    Returns ``(A, b)`` with ``H(q) = A q + b`` (LPS mm); ``points`` (N, 3) are brain points ``p``.
    """
    p = np.asarray(points, np.float64)
    q = subject.deform(p.astype(np.float32)).astype(np.float64)
    return fit_rigid(q, p)


def draw_subject_anatomy(rng: np.random.Generator) -> SubjectAnatomy:
    """Random anatomy parameters (see :class:`SubjectAnatomy` for their meaning and ranges)."""
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
    """LPS points (N, 3) of slices ``z0:z1`` of an axis-aligned native grid (see :mod:`.pose`)."""
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

    Returns ``gm, wm, csf, bone`` (cortical tables), ``diploe``, ``soft``, ``air``, ``fat`` (the fat
    share of ``soft``, 0..1), ``lesion`` (0..1, an overlay on brain tissue), plus whatever ``extra(q)``
    computes from the atlas points ``q`` (N, 3).
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

    Voxels with no dominant class get 0 (mixed); brain voxels that are at least half lesion get
    the lesion label.
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

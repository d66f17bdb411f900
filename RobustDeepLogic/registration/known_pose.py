"""Known-pose cases: synthetic subjects with a known transform, to validate registration.

Images of every modality are made from the template anatomy
(:func:`~RobustDeepLogic.registration.templates.tissue_model_image`) with different contrast, noise
and resolution, and moved through a known rigid transform onto native grids; the registration's
result is compared with the true transform by
:func:`~RobustDeepLogic.registration.qc.target_registration_error`, the distance between the true and
the estimated position of every brain voxel. Used by ``Testing/test_registration.py`` and the
benchmarks. The simulated cohort of the study, with non-rigid anatomy, is in
:mod:`RobustDeepLogic.simulate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from RobustDeepLogic.core.modalities import MR_FAMILY, PET_FAMILY
from RobustDeepLogic.io.volumes import Grid
from RobustDeepLogic.registration.qc import mask_points
from RobustDeepLogic.registration.rigid import (
    affine_parts,
    closest_rigid,
    compose_rigid,
    rigid_transform,
)
from RobustDeepLogic.registration.template_grid import mni_to_lps, template_grid
from RobustDeepLogic.registration.templates import (
    TISSUE_CLASSES,
    TISSUE_VALUES,
    brain_mask,
    smooth_fwhm,
    tissue_maps,
    tissue_model_image,
)


# --------------------------------------------------------------------------------------------------
# Known-pose cases
# --------------------------------------------------------------------------------------------------
@dataclass
class KnownPoseCase:
    """Native-space images of one synthetic subject and the true transforms.

    All transforms follow the registration convention of :mod:`RobustDeepLogic.registration` (they
    map fixed-space points to moving-space points, LPS mm).

    Attributes
    ----------
    images : dict of str to SimpleITK.Image
        The native images by modality (float32): PET in SUV, CT in HU, T1 / T2 in arbitrary units.
    true : dict of str to SimpleITK.Transform
        ``'PETCT'`` maps template points to PET/CT points (rigid; with a head scale, the rigid
        transform closest to the true one over the template brain); ``'PETCT_full'`` is the transform
        that made the PET and CT images (the similarity, or ``'PETCT'`` itself when the head is not
        scaled); ``'MR'`` maps CT points to MR points (T1 and T2 share it).
    pose : dict
        The parameters the case was made with, JSON-able: ``'petct'`` and ``'mr'`` (each
        ``{'angles_deg', 'shift_mm'}``), ``'scanner_offset_mm'`` and ``'head_scale'``.
    """

    images: Dict[str, sitk.Image]
    true: Dict[str, sitk.Transform]
    pose: Dict[str, Any] = field(default_factory=dict)

    @property
    def true_mr_template(self) -> sitk.Transform:
        """``true['MR'] o true['PETCT']``: template points to MR points (rigid)."""
        return compose_rigid(self.true["MR"], self.true["PETCT"])


def native_grid(center_lps: Sequence[float], spacing: Sequence[float],
                extent_mm: Sequence[float]) -> Grid:
    """An axis-aligned (LPS identity direction) grid of ``extent_mm`` centred on ``center_lps``.

    Parameters
    ----------
    center_lps : sequence of float
        Centre of the field of view, LPS mm.
    spacing : sequence of float
        Voxel size along x, y, z in mm.
    extent_mm : sequence of float
        Field of view along x, y, z in mm; the size is ``round(extent / spacing)``, at least 4.

    Returns
    -------
    Grid
        The grid (size x, y, z; identity direction).
    """
    spacing = np.asarray(spacing, float)
    size = np.maximum(np.round(np.asarray(extent_mm, float) / spacing).astype(int), 4)
    origin = np.asarray(center_lps, float) - (size - 1) / 2.0 * spacing
    return Grid(tuple(int(s) for s in size), tuple(float(s) for s in spacing),
                tuple(float(o) for o in origin))


def random_pose(rng: np.random.Generator, max_angle_deg: float = 15.0,
                max_shift_mm: float = 20.0) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """Random rotation angles and shift, each uniform within the given bounds.

    Parameters
    ----------
    rng : numpy.random.Generator
        The random generator (draws 6 numbers).
    max_angle_deg : float, optional
        Each angle is uniform in ``[-max_angle_deg, max_angle_deg]`` degrees.
    max_shift_mm : float, optional
        Each shift component is uniform in ``[-max_shift_mm, max_shift_mm]`` mm.

    Returns
    -------
    angles : tuple of float
        Rotation angles about LPS x, y, z in degrees (as taken by
        :func:`~RobustDeepLogic.registration.rigid.rigid_transform`).
    shift : tuple of float
        Translation along LPS x, y, z in mm.
    """
    angles = tuple(float(a) for a in rng.uniform(-max_angle_deg, max_angle_deg, 3))
    shift = tuple(float(t) for t in rng.uniform(-max_shift_mm, max_shift_mm, 3))
    return angles, shift


def known_pose_case(
    *,
    petct_pose: Tuple[Sequence[float], Sequence[float]] = ((0, 0, 0), (0, 0, 0)),
    mr_pose: Tuple[Sequence[float], Sequence[float]] = ((0, 0, 0), (0, 0, 0)),
    modalities: Sequence[str] = ("FD", "CT", "T1"),
    spacing: float = 2.0,
    pet_spacing: Sequence[float] = (2.03, 2.03, 2.2),
    ct_spacing: Sequence[float] = (1.0, 1.0, 2.0),
    mr_spacing: Sequence[float] = (1.0, 1.0, 1.2),
    scanner_offset_mm: Sequence[float] = (12.0, -180.0, 950.0),
    anatomy: str = "mni152",
    noise: float = 0.05,
    seed: int = 0,
    head_scale: float = 1.0,
    scale_centre_mni: Sequence[float] = (0.0, -18.0, 18.0),
) -> KnownPoseCase:
    """A synthetic subject with known poses, made from the template anatomy.

    The anatomy (:func:`~RobustDeepLogic.registration.templates.tissue_maps`, default ``'mni152'``:
    the ICBM152 2009c grey and white matter, sharper than the SPM TPM's) is built on a template grid
    of ``spacing`` mm, given per-subject tissue values (the model's +-20 %, air and CT bone excepted),
    and moved into native grids: PET (FD, LD, NAC, MAC: PET resolution 5 mm FWHM, multiplicative noise
    ``noise``; LD with 4.5x the noise; NAC with a radial attenuation loss), CT (HU, noise 15 HU) and MR
    (T1, T2, noise ``noise``, a smooth bias field). The PET/CT frame lies ``scanner_offset_mm`` away
    from MNI (a scanner's couch position) and is rotated and shifted by ``petct_pose`` (degrees about
    LPS x, y, z; mm) about the head centre (MNI (0, -18, 18)); MR is moved by ``mr_pose`` relative to
    CT, about the same point.

    ``head_scale`` makes the subject's head that many times the template's, scaled about
    ``scale_centre_mni`` (MNI mm). No rigid transform then matches exactly: ``true["PETCT"]`` is the
    rigid transform closest to the true (similarity) one over the template brain
    (:func:`~RobustDeepLogic.registration.rigid.closest_rigid`), as
    :func:`~RobustDeepLogic.simulate.truth.best_rigid_transform` is for a simulated cohort, and
    ``true["PETCT_full"]`` the similarity itself (template -> PET/CT points).

    Parameters
    ----------
    petct_pose : tuple of (sequence of float, sequence of float), optional
        ``(angles_deg, shift_mm)`` of the PET/CT frame: rotations about LPS x, y, z in degrees (as
        :func:`~RobustDeepLogic.registration.rigid.rigid_transform`) and a shift in mm, added to
        ``scanner_offset_mm`` (default: none).
    mr_pose : tuple of (sequence of float, sequence of float), optional
        ``(angles_deg, shift_mm)`` of the MR frame relative to the CT (default: none).
    modalities : sequence of str, optional
        Which images to make, among FD, LD, NAC, MAC, CT, T1, T2 (any case); default FD, CT, T1.
    spacing : float, optional
        Spacing in mm of the template grid the anatomy is built on (default 2).
    pet_spacing, ct_spacing, mr_spacing : sequence of float, optional
        Native voxel sizes along x, y, z in mm. The native fields of view are 260 x 260 x 230 mm (PET),
        240 x 260 x 230 mm (CT) and 230 x 250 x 220 mm (MR), centred on the head.
    scanner_offset_mm : sequence of float, optional
        Translation of the PET/CT frame from MNI space, LPS mm.
    anatomy : str, optional
        Tissue maps: ``'mni152'`` (default) or ``'tpm'`` (see
        :func:`~RobustDeepLogic.registration.templates.tissue_maps`).
    noise : float, optional
        Relative standard deviation of the multiplicative Gaussian noise of PET (FD, MAC, NAC; LD
        4.5 times more) and MR (default 0.05).
    seed : int, optional
        Seed of the tissue values and the noise.
    head_scale : float, optional
        Size of the subject's head relative to the template's (1: same size, rigid truth).
    scale_centre_mni : sequence of float, optional
        Centre of the head scaling, MNI (RAS) mm.

    Returns
    -------
    KnownPoseCase
        The native images, the true transforms and the pose parameters.

    Raises
    ------
    InputError
        When ``anatomy`` is unknown or the template assets are not prepared.
    """
    rng = np.random.default_rng(seed)
    tgrid = template_grid(spacing)
    maps = tissue_maps(tgrid, anatomy)
    head_centre_lps = np.array([0.0, 18.0, 18.0])  # MNI (0, -18, 18): about the head's centre
    offset = np.asarray(scanner_offset_mm, float)
    angles, shift = petct_pose
    # template -> PET/CT: x_native = R (x - c) + c + shift + offset
    t_petct = rigid_transform(angles, np.asarray(shift, float) + offset, head_centre_lps)
    native_centre = np.asarray(t_petct.TransformPoint(head_centre_lps.tolist()))
    m_angles, m_shift = mr_pose
    t_mr = rigid_transform(m_angles, m_shift, native_centre)  # CT -> MR points
    t_mr_total = compose_rigid(t_mr, t_petct)

    def scaled(tx: sitk.Transform) -> sitk.Transform:
        """``tx`` after the subject's head scaling (template points -> native points)."""
        if float(head_scale) == 1.0:
            return tx
        c = mni_to_lps(scale_centre_mni)
        a, b = affine_parts(tx)
        out = sitk.AffineTransform(3)
        out.SetMatrix([float(v) for v in (a * float(head_scale)).ravel()])
        out.SetTranslation([float(v) for v in a @ (c * (1.0 - float(head_scale))) + b])
        return out

    full_petct, full_mr = scaled(t_petct), scaled(t_mr_total)

    def values_for(modality: str) -> Dict[str, float]:
        base = TISSUE_VALUES[modality]
        out = {}
        for cls in TISSUE_CLASSES:
            v = base[cls]
            out[cls] = v if cls == "air" or modality == "CT" and cls == "bone" else \
                v * float(rng.uniform(0.8, 1.2))
        return out

    def model(modality: str) -> np.ndarray:
        return sitk.GetArrayFromImage(tissue_model_image(modality, tgrid, maps=maps,
                                                         values=values_for(modality)))

    def to_native(arr: np.ndarray, tx: sitk.Transform, grid: Grid, default: float) -> sitk.Image:
        img = sitk.GetImageFromArray(arr.astype(np.float32))
        tgrid.apply_to(img)
        ref = sitk.Image([int(s) for s in grid.size], sitk.sitkFloat32)
        grid.apply_to(ref)
        return sitk.Resample(img, ref, tx.GetInverse(), sitk.sitkLinear, float(default),
                             sitk.sitkFloat32)

    images: Dict[str, sitk.Image] = {}
    pet_grid = native_grid(native_centre, pet_spacing, (260, 260, 230))
    ct_grid = native_grid(native_centre, ct_spacing, (240, 260, 230))
    mr_centre = np.asarray(t_mr.TransformPoint(native_centre.tolist()))
    mr_grid = native_grid(mr_centre, mr_spacing, (230, 250, 220))
    wanted = [m.upper() for m in modalities]
    if any(m in PET_FAMILY for m in wanted):
        fd_arr = model("FD")
        fd_img = smooth_fwhm(sitk.GetImageFromArray(fd_arr), 5.0 / spacing)  # voxel units here
        fd_arr = sitk.GetArrayFromImage(fd_img)
        for m in PET_FAMILY:
            if m not in wanted:
                continue
            arr = fd_arr.copy()
            if m == "NAC":
                zz, yy, xx = np.indices(arr.shape, dtype=np.float32)
                c = np.array(arr.shape, np.float32)[:, None, None, None] / 2
                r = np.sqrt(((np.stack([zz, yy, xx]) - c) ** 2).sum(0)) * spacing
                arr = arr * (0.3 + 0.7 * np.clip(r / 90.0, 0, 1)) * 0.4
            native = sitk.GetArrayFromImage(to_native(arr, full_petct, pet_grid, 0.0))
            sd = noise * (4.5 if m == "LD" else 1.0)
            native = native * (1 + sd * rng.standard_normal(native.shape).astype(np.float32))
            images[m] = pet_grid.apply_to(sitk.GetImageFromArray(np.maximum(native, 0)))
    if "CT" in wanted:
        native = sitk.GetArrayFromImage(to_native(model("CT"), full_petct, ct_grid, -1000.0))
        native = native + 15.0 * rng.standard_normal(native.shape).astype(np.float32)
        images["CT"] = ct_grid.apply_to(sitk.GetImageFromArray(native))
    for m in MR_FAMILY:
        if m not in wanted:
            continue
        native = sitk.GetArrayFromImage(to_native(model(m), full_mr, mr_grid, 0.0))
        zz, yy, xx = np.indices(native.shape, dtype=np.float32)
        bias = 1 + 0.1 * np.sin(xx / native.shape[2] * np.pi) * np.cos(zz / native.shape[0] * 2)
        native = native * bias * (1 + noise * rng.standard_normal(native.shape).astype(np.float32))
        images[m] = mr_grid.apply_to(sitk.GetImageFromArray(np.maximum(native, 0)))
    pose = {"petct": {"angles_deg": list(map(float, angles)), "shift_mm": list(map(float, shift))},
            "mr": {"angles_deg": list(map(float, m_angles)), "shift_mm": list(map(float, m_shift))},
            "scanner_offset_mm": offset.tolist(), "head_scale": float(head_scale)}
    true = {"PETCT": t_petct, "MR": t_mr, "PETCT_full": full_petct}
    if float(head_scale) != 1.0:
        true["PETCT"] = closest_rigid(full_petct, mask_points(brain_mask(tgrid)),
                                      center=t_petct.GetCenter())
    return KnownPoseCase(images=images, true=true, pose=pose)

"""Rigid registration to template (MNI) space, method.md §3.4.

One patient (:func:`register_patient`):

1. FD PET to the FDG template: rigid 6 degrees of freedom (ITK ``VersorRigid3DTransform``), Mattes
   mutual information (Mattes et al., IEEE TMI 22:120, 2003), regular-step gradient descent over a
   multi-resolution pyramid, initialised by image moments (or the centre of the head, or the image
   centres) followed by a coarse exhaustive search over rotations, so that tilts of 30 degrees and
   more converge. Then the brain refinement (``RigidConfig.brain_refinement``): a similarity fit
   (one more degree of freedom, the head's size) sampled inside the template brain, and the rigid
   transform closest to it over the brain (:func:`closest_rigid`); the result stays 6-DOF.
2. LD, NAC, MAC and CT share the PET/CT frame: the same transform moves them.
3. T1 and T2 are registered rigidly to the patient's CT (to FD when there is no CT), and that
   transform is composed with the PET/CT one into template space.
4. Everything is resampled onto the template grid (linear for images, nearest neighbour for labels);
   a head mask (from CT, else from FD) is resampled too.

Transform convention (tested in ``Testing/test_registration.py``). Every transform here, and every
transform file written, is what ITK/SimpleITK registration returns: it maps points of the *fixed*
space to points of the *moving* space, in LPS millimetres. For ``PETCT_to_template.tfm``::

    registered = sitk.Resample(native_fd, template_image, T, sitk.sitkLinear, 0.0)

gives the registered FD on the template grid. 3D Slicer reads such a file as the "resampling"
transform (``TransformFromParent``): put the native volume under the loaded transform and Slicer
shows it aligned with the template, exactly as with BRAINSFit's ``linearTransform`` output. Names read
"MOVING_to_FIXED" in that Slicer sense (the file itself maps fixed-space points to moving-space
points).

BRAINSFit parity: :class:`RigidConfig` carries BRAINSFit's rigid options under their BRAINSFit
meanings; :func:`brainsfit_parameters` returns the parameter dict for
``slicer.cli.runSync(slicer.modules.brainsfit, None, params)`` equivalent to a config.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import SimpleITK as sitk

from .cohort import MR_FAMILY, PET_FAMILY, Cohort, Patient
from .errors import InputError
from .progress import Progress
from .volumes import Grid, atomic_path, atomic_write_text, read_volume, write_volume

PathLike = Union[str, os.PathLike]

INIT_MODES = ("useMomentsAlign", "useCenterOfHeadAlign", "useGeometryAlign", "Off")
COST_METRICS = ("MMI", "MSE", "NC")
MASK_MODES = ("NOMASK", "ROIAUTO", "ROI")
BRAIN_REFINEMENTS = ("similarity", "off")
#: Head sizes (similarity scale against the template) outside this range reject the brain refinement.
SCALE_RANGE = (0.75, 1.33)

#: Modalities tried, in order, as the reference of the PET/CT frame (the one registered to the
#: FDG template); all are 18F-FDG PET of the same acquisition.
PET_REFERENCE_ORDER: Tuple[str, ...] = ("FD", "MAC", "LD", "NAC")


# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------
@dataclass
class RigidConfig:
    """Options of one rigid registration; names follow BRAINSFit (snake_case) where it has them.

    Attributes
    ----------
    cost_metric:
        ``'MMI'`` Mattes mutual information (default), ``'MSE'``, ``'NC'`` (BRAINSFit ``costMetric``).
    number_of_histogram_bins:
        Mattes histogram bins (BRAINSFit ``numberOfHistogramBins``).
    sampling_percentage:
        Fraction (0, 1] of fixed-image voxels sampled for the metric (BRAINSFit
        ``samplingPercentage``). Random sampling with a fixed ``seed``: results are reproducible.
    initialize_transform_mode:
        ``useMomentsAlign`` (centres of intensity mass), ``useCenterOfHeadAlign`` (centre of the upper
        head, robust to a long neck or shoulders in the field of view), ``useGeometryAlign`` (image
        centres) or ``Off`` (identity: trust the headers) (BRAINSFit ``initializeTransformMode``).
    rotation_search_deg, rotation_search_step_deg:
        After initialisation, an exhaustive search over rotations about the three axes within
        +-``rotation_search_deg`` in steps of ``rotation_search_step_deg``, at the coarsest level;
        0 turns it off (no BRAINSFit counterpart).
    number_of_iterations:
        Maximum optimizer iterations per level (BRAINSFit ``numberOfIterations``).
    maximum_step_length, minimum_step_length:
        Regular-step gradient descent step bounds, in units of the physical-shift-scaled parameters
        (about mm of voxel displacement). BRAINSFit's values are in its own scaled units and differ.
    relaxation_factor:
        Step shrink factor when the gradient turns (BRAINSFit ``relaxationFactor``).
    shrink_factors, smoothing_sigmas:
        The multi-resolution pyramid: shrink factors and Gaussian sigmas in voxels per level.
    mask_processing_mode:
        ``'ROI'``: sample the metric inside the given fixed mask (the template head mask);
        ``'ROIAUTO'``: inside an automatic head mask of the fixed image; ``'NOMASK'``: everywhere
        (BRAINSFit ``maskProcessingMode``).
    brain_refinement:
        ``'similarity'``: when the fixed image has a brain mask (the template), the rigid result is
        refined by a 7-DOF similarity registration (rotation, translation, one isotropic scale)
        sampled inside the brain, and the rigid transform closest to it over the brain voxels
        (least squares, Kabsch) is returned: still 6 DOF, but no longer pulled by a head larger or
        smaller than the template, by the scalp, or by one-sided hypometabolism. ``'off'``: the rigid
        result as it is (what BRAINSFit's rigid stage returns). No BRAINSFit counterpart.
    working_spacing:
        Images finer than this (mm) are smoothed and resampled to it before registration (a CT or
        MR at 0.5-1 mm is registered at the PET grid); 0 keeps the native resolution.
    seed:
        Seed of the metric's random sampling.
    number_of_threads:
        ITK threads for this registration; 0 keeps SimpleITK's global default (BRAINSFit
        ``numberOfThreads``, -1 there).
    """

    cost_metric: str = "MMI"
    number_of_histogram_bins: int = 50
    sampling_percentage: float = 0.02
    initialize_transform_mode: str = "useMomentsAlign"
    rotation_search_deg: float = 30.0
    rotation_search_step_deg: float = 15.0
    number_of_iterations: int = 200
    maximum_step_length: float = 2.0
    minimum_step_length: float = 1e-2
    relaxation_factor: float = 0.5
    shrink_factors: Tuple[int, ...] = (4, 2, 1)
    smoothing_sigmas: Tuple[float, ...] = (2.0, 1.0, 0.0)
    mask_processing_mode: str = "ROIAUTO"
    brain_refinement: str = "similarity"
    working_spacing: float = 2.0
    seed: int = 20220430
    number_of_threads: int = 0

    def validate(self) -> "RigidConfig":
        """Check every option; an :class:`InputError` names the bad one."""
        def bad(name: str, hint: str) -> InputError:
            return InputError(f"registration option {name}={getattr(self, name)!r} is not valid",
                              hint=hint)

        if self.cost_metric not in COST_METRICS:
            raise bad("cost_metric", f"choose one of {', '.join(COST_METRICS)}")
        if self.initialize_transform_mode not in INIT_MODES:
            raise bad("initialize_transform_mode", f"choose one of {', '.join(INIT_MODES)}")
        if self.mask_processing_mode not in MASK_MODES:
            raise bad("mask_processing_mode", f"choose one of {', '.join(MASK_MODES)}")
        if self.brain_refinement not in BRAIN_REFINEMENTS:
            raise bad("brain_refinement", f"choose one of {', '.join(BRAIN_REFINEMENTS)}")
        if not 0 < float(self.sampling_percentage) <= 1:
            raise bad("sampling_percentage", "a fraction in (0, 1], e.g. 0.1 for 10 %")
        if int(self.number_of_histogram_bins) < 8:
            raise bad("number_of_histogram_bins", "use at least 8 bins (50 is usual)")
        if int(self.number_of_iterations) < 1:
            raise bad("number_of_iterations", "at least 1")
        if not 0 < float(self.minimum_step_length) <= float(self.maximum_step_length):
            raise bad("minimum_step_length", "0 < minimum_step_length <= maximum_step_length")
        if not 0 < float(self.relaxation_factor) < 1:
            raise bad("relaxation_factor", "between 0 and 1 (0.5 is usual)")
        if len(self.shrink_factors) != len(self.smoothing_sigmas) or not self.shrink_factors:
            raise bad("shrink_factors", "one shrink factor and one smoothing sigma per level")
        if any(int(s) < 1 for s in self.shrink_factors):
            raise bad("shrink_factors", "shrink factors are integers >= 1")
        if self.rotation_search_deg < 0 or (self.rotation_search_deg > 0
                                            and self.rotation_search_step_deg <= 0):
            raise bad("rotation_search_deg", "a half-range >= 0 and a positive step, in degrees")
        if self.working_spacing < 0:
            raise bad("working_spacing", "mm >= 0 (0 keeps the native resolution)")
        return self

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "RigidConfig":
        """A config from a mapping (e.g. a command's resolved config); unknown keys are ignored."""
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in values.items() if k in names and v is not None}
        for key in ("shrink_factors", "smoothing_sigmas"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs).validate()

    def as_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["shrink_factors"] = list(self.shrink_factors)
        d["smoothing_sigmas"] = list(self.smoothing_sigmas)
        return d


#: BRAINSFit's defaults for the options that have no counterpart in an engine config.
_BRAINSFIT_FIXED = {"useRigid": True, "useScaleVersor3D": False, "useScaleSkewVersor3D": False,
                    "useAffine": False, "useBSpline": False, "interpolationMode": "Linear",
                    "backgroundFillValue": 0.0, "removeIntensityOutliers": 0.0,
                    "histogramMatch": False}


def brainsfit_parameters(
    config: Optional[RigidConfig] = None,
    *,
    fixed_volume: Any = None,
    moving_volume: Any = None,
    linear_transform: Any = None,
    output_volume: Any = None,
    fixed_mask: Any = None,
) -> Dict[str, Any]:
    """The BRAINSFit parameter dict equivalent to ``config``.

    For ``slicer.cli.runSync(slicer.modules.brainsfit, None, params)`` (Slicer) or the BRAINSFit
    command line (``--key value``). Volumes and the transform may be MRML node ids or nodes (Slicer)
    or file names (command line); they are included only when given.

    Mapping: ``costMetric``, ``numberOfHistogramBins``, ``samplingPercentage``,
    ``initializeTransformMode``, ``numberOfIterations``, ``minimumStepLength``, ``relaxationFactor``,
    ``maskProcessingMode`` (``ROI`` with ``fixedBinaryVolume``), ``numberOfThreads`` take the config's
    values; ``useRigid`` is on and the other transform types off. Three things have no BRAINSFit
    counterpart and are left to BRAINSFit's defaults: the multi-resolution pyramid, the coarse
    rotation search, and the step lengths (``maximumStepLength`` stays at BRAINSFit's 0.05 with
    ``translationScale`` 1000, because BRAINSFit measures steps in its own scaled units).
    """
    config = (config or RigidConfig()).validate()
    params: Dict[str, Any] = dict(_BRAINSFIT_FIXED)
    params.update({
        "costMetric": config.cost_metric,
        "numberOfHistogramBins": int(config.number_of_histogram_bins),
        "samplingPercentage": float(config.sampling_percentage),
        "initializeTransformMode": config.initialize_transform_mode,
        "numberOfIterations": int(config.number_of_iterations),
        "minimumStepLength": float(config.minimum_step_length),
        "maximumStepLength": 0.05,
        "translationScale": 1000.0,
        "relaxationFactor": float(config.relaxation_factor),
        "maskProcessingMode": config.mask_processing_mode,
        "numberOfThreads": int(config.number_of_threads) if config.number_of_threads > 0 else -1,
    })
    if config.mask_processing_mode == "ROIAUTO":
        params["ROIAutoDilateSize"] = 10.0
    for key, value in (("fixedVolume", fixed_volume), ("movingVolume", moving_volume),
                       ("linearTransform", linear_transform), ("outputVolume", output_volume),
                       ("fixedBinaryVolume", fixed_mask)):
        if value is not None:
            params[key] = value if not isinstance(value, Path) else str(value)
    return params


# --------------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------------
def check_image(image: sitk.Image, *, modality: str, patient: Optional[str] = None,
                file: Optional[PathLike] = None) -> None:
    """Reject images that cannot be registered: not 3D, not finite, empty, or of the wrong modality.

    The modality check is a plausibility test of the stored unit: PET (SUV) and MR have no values
    far below zero, a CT in HU has air near -1000. It catches a CT stored as FD and the reverse.

    Raises
    ------
    InputError
        With the patient, the file and a hint.
    """
    if image.GetDimension() != 3:
        raise InputError(f"{modality} is not a 3D image", patient=patient, file=file)
    if min(image.GetSize()) < 4:
        raise InputError(f"{modality} image is too small to register ({image.GetSize()} voxels)",
                         patient=patient, file=file)
    arr = sitk.GetArrayViewFromImage(image)
    finite = np.isfinite(arr)
    if not finite.all():
        raise InputError(f"{modality} image has {int((~finite).sum())} NaN or infinite voxels",
                         patient=patient, file=file, hint="fix the reconstruction or mask them to 0")
    lo, hi = float(arr.min()), float(arr.max())
    if hi - lo <= 1e-6 * max(1.0, abs(hi)):
        raise InputError(f"{modality} image is empty (every voxel is {hi:g})", patient=patient,
                         file=file, hint="check that the right file was exported")
    step = max(1, int(round((arr.size / 200_000) ** (1 / 3))))
    sample = np.asarray(arr[::step, ::step, ::step], dtype=np.float32)
    p1, p50, p99 = np.percentile(sample, [1, 50, 99])
    if modality == "CT":
        if p1 > -500:
            raise InputError(
                f"CT does not look like a CT in HU (1st percentile {p1:.0f}, no air near -1000 HU)",
                patient=patient, file=file,
                hint="convert CT to HU first (robustdeep cohort import), or check the modality")
    elif modality in PET_FAMILY or modality in MR_FAMILY:
        if p1 < -100 or lo < -500:
            raise InputError(
                f"{modality} has strongly negative values (minimum {lo:.0f}, 1st percentile "
                f"{p1:.0f}): it looks like a CT in HU, not {modality}",
                patient=patient, file=file, hint="check which file is which modality")
        if p99 <= 0:
            raise InputError(f"{modality} has almost no positive voxels", patient=patient, file=file)


# --------------------------------------------------------------------------------------------------
# Helpers on images and transforms
# --------------------------------------------------------------------------------------------------
def working_image(image: sitk.Image, spacing: float) -> sitk.Image:
    """``image`` as float32, block-averaged to about ``spacing`` mm along axes with finer voxels.

    Each axis is shrunk by the integer factor ``floor(spacing / s)`` (voxel averaging, ITK
    ``BinShrink``: cheap and alias-free), so a 0.5 mm CT becomes 2 mm and a 0.8 mm MR 1.6 mm.
    ``spacing <= 0`` only casts.
    """
    image = sitk.Cast(image, sitk.sitkFloat32)
    if spacing <= 0:
        return image
    factors = [max(1, int(math.floor(spacing / s + 1e-6))) for s in image.GetSpacing()]
    factors = [min(f, max(1, n // 4)) for f, n in zip(factors, image.GetSize())]
    if all(f == 1 for f in factors):
        return image
    return sitk.BinShrink(image, factors)


def _mass_array(image: sitk.Image) -> np.ndarray:
    """Non-negative 'mass' for moments: intensity above the 1st percentile (CT air -> 0)."""
    arr = sitk.GetArrayFromImage(image).astype(np.float32)
    lo = float(np.percentile(arr[::2, ::2, ::2], 1))
    return np.maximum(arr - lo, 0.0)


def _physical_points(image: sitk.Image, index_zyx: np.ndarray) -> np.ndarray:
    """LPS points of voxel indices given as an ``(n, 3)`` array in ``[z, y, x]`` order."""
    ijk = np.asarray(index_zyx, float)[:, ::-1]
    d = np.asarray(image.GetDirection()).reshape(3, 3)
    return np.asarray(image.GetOrigin()) + (ijk * np.asarray(image.GetSpacing())) @ d.T


def centre_of_mass(image: sitk.Image) -> np.ndarray:
    """The intensity-weighted centre (LPS mm) of ``image`` with its lowest 1 % subtracted."""
    mass = _mass_array(image)
    total = float(mass.sum())
    if total <= 0:
        return image_centre(image)
    grids = np.indices(mass.shape, dtype=np.float32)
    idx = np.array([float((g * mass).sum()) / total for g in grids])[None, :]
    return _physical_points(image, idx)[0]


def image_centre(image: sitk.Image) -> np.ndarray:
    """The LPS centre of the image's field of view."""
    size = np.asarray(image.GetSize(), float)
    return np.asarray(image.TransformContinuousIndexToPhysicalPoint(list((size - 1) / 2.0)))


def centre_of_head(image: sitk.Image, depth_mm: float = 100.0) -> np.ndarray:
    """The centre of the top ``depth_mm`` of the head (LPS mm): robust to neck and shoulders.

    The head is an automatic foreground mask (:func:`foreground_mask`); "top" is the most superior
    (largest LPS z) head voxel. Like BRAINSFit's ``useCenterOfHeadAlign``, in spirit.
    """
    mask = sitk.GetArrayFromImage(foreground_mask(image)).astype(bool)
    if not mask.any():
        return image_centre(image)
    idx = np.argwhere(mask)
    pts = _physical_points(image, idx)
    top = float(pts[:, 2].max())
    keep = pts[:, 2] >= top - depth_mm
    return pts[keep].mean(axis=0)


def foreground_mask(image: sitk.Image, fraction: Optional[float] = None,
                    modality: Optional[str] = None, resolution_mm: float = 4.0) -> sitk.Image:
    """An automatic head mask of ``image`` (uint8 0/1, same grid).

    Computed at about ``resolution_mm`` (block averaging) for speed, then brought back to the image's
    grid: smoothed (sigma 2 mm) and thresholded, CT at -500 HU, other images at ``fraction`` (default
    0.05 for PET, 0.08 otherwise) of the range between the 1st and 99.5th percentiles; the largest
    connected component is kept, and holes are filled in 3D and slice by slice (closing the dark
    skull of an MR, open at the foramen magnum).
    """
    from scipy import ndimage

    work = working_image(image, resolution_mm)
    sm = sitk.SmoothingRecursiveGaussian(work, 2.0)
    arr = sitk.GetArrayFromImage(sm)
    if modality == "CT":
        thr = -500.0
    else:
        step = max(1, int(round((arr.size / 300_000) ** (1 / 3))))
        lo, hi = np.percentile(arr[::step, ::step, ::step], [1, 99.5])
        frac = fraction if fraction is not None else (0.05 if modality in PET_FAMILY else 0.08)
        thr = float(lo + frac * (hi - lo))
    raw = arr > thr
    # an opening (radius about 2 voxels) cuts thin bridges to a couch or a head holder before the
    # largest component is chosen; a matching dilation inside the raw mask restores the head's edge
    opened = ndimage.binary_opening(raw, iterations=2)
    mask = opened if opened.any() else raw
    labels, n = ndimage.label(mask)
    if n > 1:
        counts = np.bincount(labels.ravel())
        counts[0] = 0
        mask = labels == int(np.argmax(counts))
    mask = ndimage.binary_dilation(mask, iterations=2) & raw
    mask = ndimage.binary_fill_holes(mask)
    in_plane = np.zeros((3, 3, 3), bool)
    in_plane[1] = ndimage.generate_binary_structure(2, 1)
    mask = ndimage.binary_fill_holes(mask, structure=in_plane)
    out = sitk.GetImageFromArray(mask.astype(np.uint8))
    out.CopyInformation(work)
    if work.GetSize() != image.GetSize():
        out = sitk.Resample(out, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return out


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


def write_transform(tx: sitk.Transform, path: PathLike) -> Path:
    """Write an ITK transform file (``.tfm`` text or ``.h5``) atomically."""
    path = Path(path)
    if path.suffix not in (".tfm", ".h5", ".txt", ".mat"):
        raise InputError("unknown transform file type", file=path, hint="use .tfm or .h5")
    with atomic_path(path) as tmp:
        sitk.WriteTransform(tx, str(tmp))
    return path


def read_transform(path: PathLike) -> sitk.Transform:
    """Read an ITK transform file; a single-transform composite is unwrapped."""
    try:
        tx = sitk.ReadTransform(str(path))
    except RuntimeError as exc:
        raise InputError(f"cannot read this transform ({str(exc).strip().splitlines()[-1][:160]})",
                         file=path) from None
    if tx.GetName() == "CompositeTransform":
        comp = sitk.CompositeTransform(tx)
        if comp.GetNumberOfTransforms() == 1:
            tx = comp.GetNthTransform(0)
    return tx


def resample_to_template(image: sitk.Image, tx: sitk.Transform, reference: Union[Grid, sitk.Image],
                         *, label: bool = False, default: float = 0.0) -> sitk.Image:
    """``image`` moved into template space: ``sitk.Resample(image, reference, tx)``.

    ``tx`` maps template points to the image's points (this module's convention). Linear
    interpolation for images (float32), nearest neighbour for labels (type kept).
    """
    if isinstance(reference, Grid):
        from .templates import grid_image

        reference = grid_image(reference)
    if label:
        return sitk.Resample(image, reference, tx, sitk.sitkNearestNeighbor, float(default),
                             image.GetPixelID())
    return sitk.Resample(sitk.Cast(image, sitk.sitkFloat32), reference, tx, sitk.sitkLinear,
                         float(default), sitk.sitkFloat32)


# --------------------------------------------------------------------------------------------------
# One rigid registration
# --------------------------------------------------------------------------------------------------
@dataclass
class RigidResult:
    """The outcome of :func:`register_rigid`.

    ``transform`` maps fixed-space points to moving-space points (LPS mm). ``metric`` is the final
    metric value at full resolution (Mattes MI is negative: lower is better).
    """

    transform: sitk.VersorRigid3DTransform
    metric: float
    iterations: int
    stop_condition: str
    initial_rotation_deg: Tuple[float, float, float]
    seconds: float
    overlap: float
    #: the brain refinement: ``'similarity'`` (applied), ``'off'``, or why it was not used
    refinement: str = "off"
    #: the head size against the fixed image found by the similarity refinement (1: not measured)
    scale: float = 1.0

    def summary(self) -> Dict[str, Any]:
        return {"metric": round(float(self.metric), 6), "iterations": int(self.iterations),
                "stop_condition": self.stop_condition,
                "initial_rotation_deg": [round(float(a), 2) for a in self.initial_rotation_deg],
                "seconds": round(float(self.seconds), 3), "overlap": round(float(self.overlap), 4),
                "refinement": self.refinement, "scale": round(float(self.scale), 4),
                "transform": transform_parameters(self.transform)}


def _level_percentages(config: RigidConfig) -> List[float]:
    """Sampling fraction per pyramid level: the configured one at full resolution and
    ``p * shrink^2`` (at most 1) on coarser levels, so that coarse levels keep enough samples."""
    p = float(config.sampling_percentage)
    return [min(1.0, p * float(s) ** 2) for s in config.shrink_factors]


def _set_metric(reg: sitk.ImageRegistrationMethod, config: RigidConfig,
                percentages: Sequence[float]) -> None:
    if config.cost_metric == "MMI":
        reg.SetMetricAsMattesMutualInformation(int(config.number_of_histogram_bins))
    elif config.cost_metric == "MSE":
        reg.SetMetricAsMeanSquares()
    else:
        reg.SetMetricAsCorrelation()
    # gradients by finite differences at the samples: no whole-image gradient filter per level
    reg.MetricUseFixedImageGradientFilterOff()
    reg.MetricUseMovingImageGradientFilterOff()
    if all(p >= 1.0 for p in percentages):
        reg.SetMetricSamplingStrategy(reg.NONE)
    else:
        reg.SetMetricSamplingStrategy(reg.RANDOM)
        if len(percentages) == 1:
            reg.SetMetricSamplingPercentage(float(percentages[0]), int(config.seed))
        else:
            reg.SetMetricSamplingPercentagePerLevel([float(p) for p in percentages],
                                                    int(config.seed))
    reg.SetInterpolator(sitk.sitkLinear)


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


def _shrunk(image: sitk.Image, factor: int, sigma_vox: float) -> sitk.Image:
    if sigma_vox > 0:
        sp = np.asarray(image.GetSpacing())
        image = sitk.SmoothingRecursiveGaussian(image, [float(sigma_vox * s) for s in sp])
    if factor > 1:
        image = sitk.Shrink(image, [int(factor)] * 3)
    return image


def _rotation_search(fixed: sitk.Image, moving: sitk.Image,
                     init: sitk.Euler3DTransform, config: RigidConfig) -> sitk.Euler3DTransform:
    """Exhaustive search over rotations (Euler angles about the fixed centre) at the coarsest level."""
    n = int(round(config.rotation_search_deg / config.rotation_search_step_deg))
    if n <= 0:
        return init
    factor = int(max(config.shrink_factors))
    f = _shrunk(fixed, factor, float(max(config.smoothing_sigmas)))
    m = _shrunk(moving, factor, float(max(config.smoothing_sigmas)))
    reg = sitk.ImageRegistrationMethod()
    _set_metric(reg, config, [min(1.0, _level_percentages(config)[0])])
    reg.SetOptimizerAsExhaustive([n, n, n, 0, 0, 0], math.radians(config.rotation_search_step_deg))
    reg.SetOptimizerScales([1.0] * 6)
    search = sitk.Euler3DTransform(init)
    reg.SetInitialTransform(search, inPlace=True)
    found: List[Tuple[float, Tuple[float, ...]]] = []

    def record() -> None:
        found.append((reg.GetMetricValue(), tuple(reg.GetOptimizerPosition())))

    reg.AddCommand(sitk.sitkIterationEvent, record)
    try:
        reg.Execute(f, m)
    except RuntimeError:
        pass  # some candidates may leave the moving image: the others still count
    valid = [(v, p) for v, p in found if math.isfinite(v)]
    if not valid:
        return init
    best = min(valid, key=lambda vp: vp[0])[1]
    out = sitk.Euler3DTransform(init)
    out.SetParameters(best)
    return out


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

    Parameters
    ----------
    fixed, moving:
        3D scalar images, any grids and directions (LPS geometry from their headers).
    config:
        :class:`RigidConfig` (defaults: Mattes MI, 50 bins, 10 % sampling, moments + rotation search
        +-30 degrees, shrink 4/2/1, smoothing 2/1/0 voxels, working grid 2 mm).
    fixed_mask:
        Binary image on ``fixed``'s grid (``mask_processing_mode='ROI'``), e.g. the template head.
    fixed_modality:
        Used for the automatic head mask (``'ROIAUTO'``): ``'CT'`` thresholds at -500 HU.
    brain_mask:
        Binary image on ``fixed``'s grid: the fixed image's brain (the template's). With it, and
        ``config.brain_refinement='similarity'``, the rigid result is refined inside the brain
        (see :class:`RigidConfig`); without it (e.g. MR to the patient's own CT) it is not.

    Returns
    -------
    RigidResult
        ``transform`` maps fixed points to moving points: ``sitk.Resample(moving, fixed, transform)``
        puts ``moving`` onto ``fixed``'s grid.

    Raises
    ------
    InputError
        When the images do not overlap after initialisation, or ITK cannot evaluate the metric.
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
        if config.mask_processing_mode == "ROI" and fixed_mask is not None:
            mask = sitk.Resample(sitk.Cast(fixed_mask > 0, sitk.sitkUInt8), f, sitk.Transform(),
                                 sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        elif config.mask_processing_mode in ("ROIAUTO", "ROI"):
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
        euler = _rotation_search(f, m, euler, config)

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
        )
    finally:
        if threads_before is not None:
            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads_before)


# --------------------------------------------------------------------------------------------------
# A patient
# --------------------------------------------------------------------------------------------------
@dataclass
class RegistrationOptions:
    """Everything a cohort registration needs besides the data (the CLI's config, typed)."""

    rigid: RigidConfig = field(default_factory=RigidConfig)
    transform_format: str = "tfm"
    qc_images: bool = True
    dice_threshold: float = 0.85
    correlation_threshold: float = 0.7
    mr_dice_threshold: float = 0.85

    def fingerprint(self, template_files: Mapping[str, PathLike]) -> str:
        """A short hash of the options and template files: a resumed run redoes a patient if it changed."""
        h = hashlib.sha256(json.dumps(self.rigid.as_dict(), sort_keys=True).encode())
        h.update(self.transform_format.encode())
        for key in sorted(template_files):
            p = Path(template_files[key])
            if p.is_file():
                h.update(hashlib.sha256(p.read_bytes()).digest())
        return h.hexdigest()[:16]


@dataclass
class TemplateSpace:
    """The fixed side of every registration: the FDG template, its grid, head and brain masks."""

    fdg: sitk.Image
    head_mask: sitk.Image
    brain_mask: sitk.Image
    files: Dict[str, str] = field(default_factory=dict)

    @property
    def grid(self) -> Grid:
        return Grid.of(self.fdg)

    @classmethod
    def from_files(cls, files: Mapping[str, PathLike]) -> "TemplateSpace":
        fdg = read_volume(files["fdg"], dtype=np.float32)
        head = read_volume(files["head_mask"])
        brain = read_volume(files["brain_mask"])
        return cls(fdg, head, brain, {k: str(v) for k, v in files.items()})

    @classmethod
    def default(cls, spacing: float = 2.0, fwhm_mm: Optional[float] = None) -> "TemplateSpace":
        from . import templates

        grid = templates.template_grid(spacing)
        fdg = templates.fdg_template(grid, fwhm_mm=fwhm_mm or templates.PET_FWHM_MM)
        return cls(fdg, templates.head_mask(grid), templates.brain_mask(grid))


TRANSFORM_NAMES = {"PETCT": "PETCT_to_template", "T1": "T1_to_template", "T2": "T2_to_template",
                   "T1_CT": "T1_to_CT", "T2_CT": "T2_to_CT", "T1_FD": "T1_to_FD", "T2_FD": "T2_to_FD"}


@dataclass
class PatientRegistration:
    """What :func:`register_patient` made for one patient (in memory; :func:`save_patient` writes it)."""

    patient_id: str
    reference: str
    images: Dict[str, sitk.Image]
    head_mask: sitk.Image
    transforms: Dict[str, sitk.Transform]
    results: Dict[str, RigidResult]
    qc: Dict[str, Any]
    seconds: float


def register_patient(
    cohort: Cohort,
    patient: Patient,
    template: TemplateSpace,
    options: Optional[RegistrationOptions] = None,
) -> PatientRegistration:
    """Register one patient's modalities into template space (module doc, steps 1-4).

    Returns the registered images on the template grid (float32; CT background -1000 HU), the head
    mask (uint8), the transforms (template -> native, resampling convention) and QC.
    """
    from . import qc as qcmod

    options = options or RegistrationOptions()
    start = time.perf_counter()
    pid = patient.id
    reference = next((m for m in PET_REFERENCE_ORDER if m in patient.modalities), None)
    if reference is None:
        raise InputError(
            "has no PET image (FD, MAC, LD or NAC) to register to the FDG template",
            patient=pid, file=cohort.manifest_path,
            hint="registration to template space starts from the patient's FDG PET",
        )
    native: Dict[str, sitk.Image] = {}
    for modality in patient.modalities:
        path = cohort.path(patient, modality)
        image = read_volume(path, patient=pid, dtype=np.float32)
        check_image(image, modality=modality, patient=pid, file=path)
        native[modality] = image

    results: Dict[str, RigidResult] = {}
    transforms: Dict[str, sitk.Transform] = {}
    rigid_template = RigidConfig(**{**options.rigid.as_dict(),
                                    "shrink_factors": tuple(options.rigid.shrink_factors),
                                    "smoothing_sigmas": tuple(options.rigid.smoothing_sigmas)})
    if rigid_template.mask_processing_mode == "ROIAUTO":
        rigid_template.mask_processing_mode = "ROI"  # the template's own head mask is the best ROI
    res = register_rigid(template.fdg, native[reference], rigid_template,
                         fixed_mask=template.head_mask, brain_mask=template.brain_mask,
                         patient=pid, moving_name=reference)
    results[reference] = res
    t_petct = res.transform
    transforms["PETCT"] = t_petct

    mr_fixed_name = "CT" if "CT" in native else reference
    for mr in MR_FAMILY:
        if mr not in native:
            continue
        r = register_rigid(native[mr_fixed_name], native[mr], options.rigid,
                           fixed_modality=mr_fixed_name, patient=pid, moving_name=mr)
        results[mr] = r
        transforms[f"{mr}_{'CT' if mr_fixed_name == 'CT' else 'FD'}"] = r.transform
        transforms[mr] = compose_rigid(r.transform, t_petct, center=t_petct.GetCenter())

    from .templates import BACKGROUND

    reference_image = template.fdg
    images: Dict[str, sitk.Image] = {}
    for modality, image in native.items():
        tx = transforms[modality] if modality in MR_FAMILY else t_petct
        images[modality] = resample_to_template(image, tx, reference_image,
                                                default=BACKGROUND.get(modality, 0.0))
    mask_source = "CT" if "CT" in native else reference
    native_mask = foreground_mask(native[mask_source], modality=mask_source)
    head = resample_to_template(native_mask, t_petct, reference_image, label=True)

    qc = qcmod.patient_qc(images, head, template, results, reference=reference,
                          options=options)
    return PatientRegistration(pid, reference, images, head, transforms, results, qc,
                               time.perf_counter() - start)


MARKER_NAME = "registration.json"


def save_patient(reg: PatientRegistration, out_root: PathLike, patient: Patient,
                 options: RegistrationOptions, fingerprint: str,
                 template_fdg: Optional[sitk.Image] = None) -> Patient:
    """Write one registered patient under ``out_root/<id>/`` and return its manifest entry.

    Files: ``<MOD>.nii.gz`` (float32), ``head_mask.nii.gz`` (uint8), ``transforms/*.tfm`` (or
    ``.h5``), ``qc.png`` and, last (the resume marker), ``registration.json`` with the meta.
    """
    from . import qc as qcmod

    out_root = Path(out_root)
    folder = out_root / reg.patient_id
    modalities: Dict[str, str] = {}
    for modality, image in reg.images.items():
        rel = f"{reg.patient_id}/{modality}.nii.gz"
        write_volume(image, out_root / rel)
        modalities[modality] = rel
    mask_rel = f"{reg.patient_id}/head_mask.nii.gz"
    write_volume(reg.head_mask, out_root / mask_rel)
    ext = "h5" if options.transform_format == "h5" else "tfm"
    tfiles: Dict[str, str] = {}
    for key, tx in reg.transforms.items():
        rel = f"{reg.patient_id}/transforms/{TRANSFORM_NAMES[key]}.{ext}"
        write_transform(tx, out_root / rel)
        tfiles[TRANSFORM_NAMES[key]] = rel
    qc_png = None
    if options.qc_images:
        qc_png = f"{reg.patient_id}/qc.png"
        qcmod.qc_figure(reg.images, reg.head_mask, reg.qc, out_root / qc_png, title=reg.patient_id,
                        template_fdg=template_fdg)
    meta = dict(patient.meta)
    meta["registration"] = {
        "status": "done",
        "reference": reg.reference,
        "transforms": tfiles,
        "transform_convention": "ITK resampling: maps template (fixed) LPS points to native "
                                "(moving) LPS points; sitk.Resample(native, template, T)",
        "head_mask": mask_rel,
        "qc": reg.qc,
        "qc_image": qc_png,
        "results": {k: v.summary() for k, v in reg.results.items()},
        "seconds": round(reg.seconds, 3),
        "fingerprint": fingerprint,
        "native": {m: p for m, p in patient.modalities.items()},
    }
    entry = Patient(id=patient.id, modalities=modalities, split=patient.split, fold=patient.fold,
                    provenance=dict(patient.provenance), meta=meta)
    atomic_write_text(folder / MARKER_NAME, json.dumps(entry.to_json(), indent=1,
                                                       default=_json_default) + "\n")
    return entry


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__}")


def load_done(out_root: PathLike, pid: str, fingerprint: Optional[str]) -> Optional[Patient]:
    """The saved entry of a patient done before with the same fingerprint, with all files present."""
    marker = Path(out_root) / pid / MARKER_NAME
    if not marker.is_file():
        return None
    try:
        entry = Patient.from_json(json.loads(marker.read_text(encoding="utf-8")))
    except (ValueError, InputError):
        return None
    reg = entry.meta.get("registration", {})
    if fingerprint is not None and reg.get("fingerprint") != fingerprint:
        return None
    rels = list(entry.modalities.values()) + list(reg.get("transforms", {}).values())
    rels.append(reg.get("head_mask", ""))
    if not all(rel and (Path(out_root) / rel).is_file() for rel in rels):
        return None
    return entry


# --------------------------------------------------------------------------------------------------
# A cohort, in parallel, resumable
# --------------------------------------------------------------------------------------------------
def _worker_init(threads: int) -> None:
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(max(1, int(threads)))
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, int(threads))))


def _register_and_save(job: Dict[str, Any]) -> Dict[str, Any]:
    """One patient in a worker process: register, save, return the manifest entry (JSON)."""
    cohort = Cohort.load(job["cohort"])
    patient = Patient.from_json(job["patient"])
    template = TemplateSpace.from_files(job["template_files"])
    rigid = RigidConfig.from_mapping(job["rigid"])
    options = RegistrationOptions(rigid=rigid, **job["options"])
    try:
        reg = register_patient(cohort, patient, template, options)
        entry = save_patient(reg, job["out"], patient, options, job["fingerprint"],
                             template_fdg=template.fdg)
        return {"ok": True, "entry": entry.to_json(), "seconds": reg.seconds}
    except InputError as exc:
        return {"ok": False, "id": patient.id, "error": str(exc), "kind": "input"}


@dataclass
class CohortRegistration:
    """What :func:`register_cohort` did: the registered cohort and per-patient outcomes."""

    cohort: Cohort
    done: List[str]
    skipped: List[str]
    failed: Dict[str, str]
    flagged: List[str]
    summary_csv: Path
    seconds: float


def register_cohort(
    source: Cohort,
    out_dir: PathLike,
    *,
    options: Optional[RegistrationOptions] = None,
    template_files: Optional[Mapping[str, PathLike]] = None,
    spacing: float = 2.0,
    workers: int = 1,
    force: bool = False,
    patients: Optional[Sequence[str]] = None,
    keep_going: bool = True,
    exclude_flagged: bool = False,
    progress: Optional[Progress] = None,
) -> CohortRegistration:
    """Register every patient of ``source`` into template space and write a registered cohort.

    Parameters
    ----------
    source:
        The native-space cohort.
    out_dir:
        The registered cohort's folder (same layout; ``manifest.json`` with space ``template``).
    template_files:
        ``{'fdg', 'head_mask', 'brain_mask'}`` paths on one grid; default: the model FDG template
        at ``spacing`` mm, written to ``out_dir/template/``.
    workers:
        Processes (each runs ``cores // workers`` ITK threads); 0 means one per core.
    force:
        Redo patients already registered (otherwise those with a matching fingerprint are kept).
    patients:
        A subset of patient ids (default: all).
    keep_going:
        On a patient's :class:`InputError`, record it and go on (the rest is registered); else stop.
    exclude_flagged:
        Leave patients whose QC failed out of the registered manifest (they stay in the CSV).

    Returns
    -------
    CohortRegistration
        With the summary table ``out_dir/registration_qc.csv`` (see :mod:`RobustDeepLogic.qc`).
    """
    from . import qc as qcmod
    from .templates import write_template_space

    progress = progress or Progress()
    options = options or RegistrationOptions()
    options.rigid.validate()
    start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if source.space != "native":
        raise InputError(f"this cohort is already in {source.space!r} space",
                         file=source.manifest_path, hint="register a native-space cohort")
    if Path(out_dir).resolve() == source.root.resolve():
        raise InputError("the output folder is the input cohort's folder", file=out_dir,
                         hint="write the registered cohort to a new folder")
    if template_files is None:
        with progress.stage("template", total=1) as st:
            template_files = write_template_space(out_dir / "template", spacing=spacing,
                                                  with_t1=False)
            st.advance()
    template_files = {k: str(Path(v).resolve()) for k, v in template_files.items()}
    fingerprint = options.fingerprint(template_files)
    chosen = source.select(patients)
    if not chosen:
        raise InputError("no patients to register", file=source.manifest_path)

    out = source.copy_for(out_dir)
    out.space = "template"
    out.meta["registration"] = {
        "template": {k: os.path.relpath(v, out_dir) if str(v).startswith(str(out_dir.resolve()))
                     else v for k, v in template_files.items()},
        "grid": {"size": list(Grid.of(read_volume(template_files["fdg"])).size),
                 "spacing": list(Grid.of(read_volume(template_files["fdg"])).spacing)},
        "config": options.rigid.as_dict(),
        "source": str(source.root),
        "transform_convention": "ITK resampling transforms (template -> native points, LPS); "
                                "load in Slicer as they are",
        "qc_thresholds": {"dice": options.dice_threshold,
                          "correlation": options.correlation_threshold,
                          "mr_dice": options.mr_dice_threshold},
    }
    entries: Dict[str, Patient] = {}
    done: List[str] = []
    skipped: List[str] = []
    failed: Dict[str, str] = {}
    todo: List[Patient] = []
    chosen_ids = {p.id for p in chosen}
    for p in source.patients:
        if p.id not in chosen_ids:  # registered by an earlier run on another subset: keep it
            previous = load_done(out_dir, p.id, fingerprint)
            if previous is not None:
                entries[p.id] = previous
    for p in chosen:
        previous = None if force else load_done(out_dir, p.id, fingerprint)
        if previous is not None:
            entries[p.id] = previous
            skipped.append(p.id)
        else:
            todo.append(p)

    def save_manifest() -> None:
        out.patients = [entries[p.id] for p in source.patients if p.id in entries and not (
            exclude_flagged and not entries[p.id].meta["registration"]["qc"].get("ok", False))]
        out.save()

    ncores = os.cpu_count() or 1
    nworkers = ncores if workers <= 0 else int(workers)
    nworkers = max(1, min(nworkers, len(todo) or 1))
    threads = max(1, ncores // nworkers)
    base_options = {"transform_format": options.transform_format, "qc_images": options.qc_images,
                    "dice_threshold": options.dice_threshold,
                    "correlation_threshold": options.correlation_threshold,
                    "mr_dice_threshold": options.mr_dice_threshold}
    jobs = [{"cohort": str(source.root), "patient": p.to_json(), "template_files": template_files,
             "rigid": options.rigid.as_dict(), "options": base_options, "out": str(out_dir),
             "fingerprint": fingerprint} for p in todo]

    def handle(outcome: Dict[str, Any], st) -> None:
        if outcome["ok"]:
            entry = Patient.from_json(outcome["entry"])
            entries[entry.id] = entry
            done.append(entry.id)
            save_manifest()
            st.advance(message=f"{entry.id} {outcome['seconds']:.1f} s")
        else:
            failed[outcome["id"]] = outcome["error"]
            progress.log("WARNING", outcome["error"])
            st.advance(message=f"{outcome['id']} failed")
            if not keep_going:
                raise InputError(outcome["error"].split(": ", 1)[-1], patient=outcome["id"],
                                 hint="fix this patient, or run with --keep-going")

    save_manifest()
    with progress.stage("register", total=len(todo)) as st:
        if nworkers == 1:
            threads_before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
            _worker_init(threads if threads > 0 else ncores)
            try:
                for job in jobs:
                    handle(_register_and_save(job), st)
            finally:
                sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads_before)
        else:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor, as_completed

            ctx = mp.get_context("spawn")
            with ProcessPoolExecutor(nworkers, mp_context=ctx, initializer=_worker_init,
                                     initargs=(threads,)) as pool:
                futures = [pool.submit(_register_and_save, job) for job in jobs]
                try:
                    for fut in as_completed(futures):
                        handle(fut.result(), st)
                except BaseException:
                    for fut in futures:
                        fut.cancel()
                    raise
    save_manifest()
    rows = qcmod.summary_rows([entries[p.id] for p in source.patients if p.id in entries], failed)
    csv_path = qcmod.write_summary_csv(rows, out_dir / "registration_qc.csv")
    flagged = [r["patient"] for r in rows if r["status"] == "done" and not r["ok"]]
    return CohortRegistration(out, done, skipped, failed, flagged, csv_path,
                              time.perf_counter() - start)


# --------------------------------------------------------------------------------------------------
# A study-specific FDG template
# --------------------------------------------------------------------------------------------------
def build_study_template(
    source: Cohort,
    *,
    spacing: float = 2.0,
    iterations: int = 3,
    config: Optional[RigidConfig] = None,
    initial: Optional[sitk.Image] = None,
    patients: Optional[Sequence[str]] = None,
    progress: Optional[Progress] = None,
) -> Tuple[sitk.Image, Dict[str, Any]]:
    """A study-specific FDG template: iterated rigid registration of the cohort's FD images and
    averaging.

    Iteration 0 registers every FD image to ``initial`` (default: the model FDG template, which
    anchors the result in MNI space); each later iteration registers them to the previous average.
    Before averaging, each registered image is divided by its mean over the template brain mask, and
    the average is multiplied back by the mean of those means (SUV).

    Returns
    -------
    (template, info)
        The template on :func:`~RobustDeepLogic.templates.template_grid` (float32, SUV) and per
        iteration the mean change of the template (relative) and patients used.
    """
    from . import templates

    progress = progress or Progress()
    config = (config or RigidConfig(mask_processing_mode="ROI")).validate()
    grid = templates.template_grid(spacing)
    head = templates.head_mask(grid)
    brain_image = templates.brain_mask(grid)
    brain = sitk.GetArrayFromImage(brain_image).astype(bool)
    current = initial if initial is not None else templates.fdg_template(grid)
    if not Grid.of(current).matches(grid):
        current = templates.resample_to_grid(current, grid)
    chosen = [p for p in source.select(patients) if "FD" in p.modalities]
    if len(chosen) < 2:
        raise InputError("a study template needs at least 2 patients with an FD image",
                         file=source.manifest_path)
    natives = {}
    for p in chosen:
        img = source.read(p, "FD")
        check_image(img, modality="FD", patient=p.id, file=source.path(p, "FD"))
        natives[p.id] = img
    info: Dict[str, Any] = {"iterations": [], "patients": [p.id for p in chosen]}
    for it in range(int(iterations)):
        acc = np.zeros(grid.shape, np.float64)
        means = []
        with progress.stage(f"template iteration {it + 1}/{iterations}", total=len(chosen)) as st:
            for p in chosen:
                res = register_rigid(current, natives[p.id], config, fixed_mask=head,
                                     brain_mask=brain_image, patient=p.id, moving_name="FD")
                reg = sitk.GetArrayFromImage(resample_to_template(natives[p.id], res.transform,
                                                                  current))
                mean = float(reg[brain].mean())
                if mean <= 0:
                    raise InputError("registered FD has no uptake in the brain", patient=p.id)
                acc += reg / mean
                means.append(mean)
                st.advance(message=p.id)
        average = (acc / len(chosen) * float(np.mean(means))).astype(np.float32)
        previous = sitk.GetArrayFromImage(current)
        change = float(np.abs(average - previous)[brain].mean() / max(np.abs(average[brain]).mean(),
                                                                      1e-9))
        info["iterations"].append({"iteration": it + 1, "relative_change": round(change, 5)})
        new = sitk.GetImageFromArray(average)
        new.CopyInformation(current)
        current = new
    return current, info

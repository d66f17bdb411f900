"""The images a registration works on: input checks, working images, centres, head masks, resampling.

:func:`check_image` rejects an input that cannot be registered; :func:`working_image` is the reduced
copy that is registered; :func:`centre_of_mass`, :func:`image_centre` and :func:`centre_of_head` are
the initial centres of ``RigidConfig.initialize_transform_mode``; :func:`foreground_mask` is the
automatic head mask (``'ROIAUTO'``, QC); :func:`resample_to_template` moves a native image onto the
template grid. Points are LPS millimetres. The template grid and images are in
:mod:`RobustDeepLogic.registration.templates`, the transform algebra in
:mod:`RobustDeepLogic.registration.rigid`.
"""

from __future__ import annotations

import math
from typing import Optional, Union

import numpy as np
import SimpleITK as sitk

from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.modalities import MR_FAMILY, PET_FAMILY
from RobustDeepLogic.core.types import PathLike
from RobustDeepLogic.io.headmask import clean_head
from RobustDeepLogic.io.volumes import Grid
from RobustDeepLogic.registration.template_grid import grid_image


# --------------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------------
def check_image(image: sitk.Image, *, modality: str, patient: Optional[str] = None,
                file: Optional[PathLike] = None) -> None:
    """Reject images that cannot be registered: not 3D, not finite, empty, or of the wrong modality.

    The modality check is a plausibility test of the stored unit: PET (SUV) and MR have no values
    far below zero, a CT in HU has air near -1000. It catches a CT stored as FD and the reverse.

    Parameters
    ----------
    image : SimpleITK.Image
        The native image.
    modality : str
        Its modality (``'FD'``, ``'LD'``, ``'NAC'``, ``'MAC'``, ``'CT'``, ``'T1'``, ``'T2'``): CT must
        be in HU, PET in SUV (or another non-negative unit), MR non-negative. Other names get only the
        modality-independent checks.
    patient : str, optional
        Patient id, named in the error.
    file : path-like, optional
        The image's file, named in the error.

    Raises
    ------
    InputError
        With the patient, the file and a hint, when the image is not 3D, has fewer than 4 voxels
        along an axis, has NaN or infinite voxels, is constant, is a CT whose 1st percentile is above
        -500 HU, or is a PET / MR with strongly negative values (1st percentile below -100 or minimum
        below -500) or with a 99th percentile at or below 0.
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
    ``BinShrink``: cheap and alias-free), so a 0.5 mm CT becomes 2 mm and a 0.8 mm MR 1.6 mm. The
    factor is capped so that at least about 4 voxels remain along each axis.

    Parameters
    ----------
    image : SimpleITK.Image
        A 3D image of any pixel type.
    spacing : float
        Target voxel size in mm; ``spacing <= 0`` only casts.

    Returns
    -------
    SimpleITK.Image
        The float32 image, on a grid covering the same field of view (or ``image`` itself, cast, when
        no axis is shrunk).
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
    """The intensity-weighted centre of ``image`` with its lowest 1 % subtracted.

    The weight of a voxel is its intensity minus the image's 1st percentile, clipped at 0, so that
    the air of a CT (-1000 HU) weighs nothing (``useMomentsAlign``).

    Parameters
    ----------
    image : SimpleITK.Image
        A 3D image.

    Returns
    -------
    numpy.ndarray
        ``[3]`` LPS point in mm; :func:`image_centre` when no voxel has a positive weight.
    """
    mass = _mass_array(image)
    total = float(mass.sum())
    if total <= 0:
        return image_centre(image)
    grids = np.indices(mass.shape, dtype=np.float32)
    idx = np.array([float((g * mass).sum()) / total for g in grids])[None, :]
    return _physical_points(image, idx)[0]


def image_centre(image: sitk.Image) -> np.ndarray:
    """The LPS centre of the image's field of view (``useGeometryAlign``).

    Parameters
    ----------
    image : SimpleITK.Image
        A 3D image.

    Returns
    -------
    numpy.ndarray
        ``[3]`` LPS point in mm: the physical point of the continuous index ``(size - 1) / 2``.
    """
    size = np.asarray(image.GetSize(), float)
    return np.asarray(image.TransformContinuousIndexToPhysicalPoint(list((size - 1) / 2.0)))


def centre_of_head(image: sitk.Image, depth_mm: float = 100.0) -> np.ndarray:
    """The centre of the top ``depth_mm`` of the head: robust to neck and shoulders.

    The head is an automatic foreground mask (:func:`foreground_mask`, with the default threshold
    fraction whatever the modality); "top" is the most superior (largest LPS z) head voxel. The result
    is the mean position of the head voxels within ``depth_mm`` below it. Like BRAINSFit's
    ``useCenterOfHeadAlign``, in spirit.

    Parameters
    ----------
    image : SimpleITK.Image
        A 3D image of a head.
    depth_mm : float, optional
        Height of the slab below the top of the head that is averaged, in mm (default 100).

    Returns
    -------
    numpy.ndarray
        ``[3]`` LPS point in mm; :func:`image_centre` when the mask is empty.
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

    Computed at about ``resolution_mm`` (block averaging, :func:`working_image`) for speed, then
    brought back to the image's grid (nearest neighbour): smoothed (sigma 2 mm) and thresholded, CT at
    -500 HU, other images at ``fraction`` of the range between the 1st and 99.5th percentiles. An
    opening (2 iterations) cuts thin bridges to a couch or head holder, the largest connected
    component is kept and regrown by 2 voxels inside the thresholded region, and holes are filled in
    3D and slice by slice (closing the dark skull of an MR, open at the foramen magnum); see
    :func:`RobustDeepLogic.io.headmask.clean_head`.

    Parameters
    ----------
    image : SimpleITK.Image
        A 3D image of a head.
    fraction : float, optional
        Threshold as a fraction of the 1st-99.5th percentile range, for images other than CT
        (default: 0.05 for PET, 0.08 otherwise).
    modality : str, optional
        ``'CT'`` thresholds at -500 HU; a PET modality (FD, LD, NAC, MAC) sets the default fraction.
    resolution_mm : float, optional
        Working voxel size in mm (default 4).

    Returns
    -------
    SimpleITK.Image
        uint8 mask (1 in the head) on ``image``'s grid; all 0 when nothing is above the threshold.
    """
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
    # an opening (about 2 voxels) cuts thin bridges to a couch or a head holder before the largest
    # component is chosen; a matching regrowth inside the raw mask restores the head's edge
    mask = clean_head(arr > thr, opening=2, regrow=2)
    out = sitk.GetImageFromArray(mask.astype(np.uint8))
    out.CopyInformation(work)
    if work.GetSize() != image.GetSize():
        out = sitk.Resample(out, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return out


def resample_to_template(image: sitk.Image, tx: sitk.Transform, reference: Union[Grid, sitk.Image],
                         *, label: bool = False, default: float = 0.0) -> sitk.Image:
    """``image`` moved into template space: ``sitk.Resample(image, reference, tx)``.

    Parameters
    ----------
    image : SimpleITK.Image
        A native 3D image or label map.
    tx : SimpleITK.Transform
        Maps template points to the image's points (LPS mm; the registration convention of
        :mod:`RobustDeepLogic.registration`).
    reference : Grid or SimpleITK.Image
        The output grid (usually the template grid or the FDG template image).
    label : bool, optional
        Nearest-neighbour interpolation, pixel type kept (for masks and labels); otherwise linear
        interpolation to float32.
    default : float, optional
        Value outside ``image``'s field of view (0; -1000 HU for CT, see
        :data:`~RobustDeepLogic.registration.templates.BACKGROUND`).

    Returns
    -------
    SimpleITK.Image
        ``image`` on ``reference``'s grid.
    """
    if isinstance(reference, Grid):
        reference = grid_image(reference)
    if label:
        return sitk.Resample(image, reference, tx, sitk.sitkNearestNeighbor, float(default),
                             image.GetPixelID())
    return sitk.Resample(sitk.Cast(image, sitk.sitkFloat32), reference, tx, sitk.sitkLinear,
                         float(default), sitk.sitkFloat32)

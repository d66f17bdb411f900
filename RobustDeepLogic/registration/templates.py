"""Template space: the MNI grid at PET resolution, the 18F-FDG and T1 templates, head and brain masks.

Every registered volume of RobustDeep lives on one grid, :func:`template_grid`: MNI152 space
(the ICBM 2009c / SPM TPM frame), isotropic voxels of ``spacing`` mm (2 mm by default, the PET
resolution of method.md §2), cropped to the head (skull and scalp included, from the SPM tissue
probability maps, since PET, CT and MR images contain the whole head).

Orientation. MNI coordinates are RAS; ITK physical space is LPS (``x_LPS = -x_MNI``,
``y_LPS = -y_MNI``, ``z_LPS = z_MNI``). The template grid's index axes run along +x, +y, +z of MNI
(towards the subject's Right, Anterior, Superior), so its ITK direction matrix is
``diag(-1, -1, 1)``; a voxel centre falls on MNI (0, 0, 0) (the lattice goes through the origin).
numpy arrays of template images are ``[z, y, x]`` = ``[inferior->superior, posterior->anterior,
left->right]``.

The FDG template (:func:`fdg_template`) is a tissue-class uptake model: the six SPM tissue classes
(grey matter, white matter, CSF, bone, soft tissue, air; Ashburner & Friston, NeuroImage 26:839,
2005) weighted by typical FDG uptake in SUV (:data:`TISSUE_VALUES` ``["FD"]``), then smoothed to
PET resolution (Gaussian, ``fwhm_mm``). A study-specific template made from a cohort's own FD
images replaces it (:mod:`RobustDeepLogic.registration`, ``robustdeep template build``).

The same tissue model gives CT-like (HU) and MR-like images (:func:`tissue_model_image`), used to
make known-pose test cases and benchmarks.
"""

from __future__ import annotations

import functools
import math
from typing import Dict, Mapping, Optional, Tuple

import numpy as np
import SimpleITK as sitk

from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.io.headmask import clean_head
from RobustDeepLogic.io.volumes import Grid, image_from_array
from RobustDeepLogic.registration.assets import load_asset

#: The head's extent in MNI (RAS) millimetres, (low, high) per axis: the bounding box of the SPM
#: TPM's non-air voxels (air probability < 0.5: x -84..84, y -118.5..90, z -72..103.5) plus a margin.
#: The TPM itself ends at z = -72 (no neck below).
HEAD_BOUNDS_MNI: Tuple[Tuple[float, float], ...] = ((-88.0, 88.0), (-122.0, 94.0), (-72.0, 106.0))


#: The six tissue classes of the SPM TPM, in its order.
TISSUE_CLASSES: Tuple[str, ...] = ("gm", "wm", "csf", "bone", "soft", "air")


#: Intensity of each tissue class per modality: FD in SUV (FDG, 35-55 min p.i.: grey matter about
#: 3x white matter), CT in HU (120 kVp), T1 / T2 in arbitrary units (T1: WM > GM > CSF, fat bright;
#: T2: CSF > GM > WM). Bone in CT is sharpened before mixing (see :func:`tissue_model_image`).
TISSUE_VALUES: Dict[str, Dict[str, float]] = {
    "FD": {"gm": 9.0, "wm": 3.0, "csf": 0.6, "bone": 0.6, "soft": 1.0, "air": 0.0},
    "CT": {"gm": 40.0, "wm": 28.0, "csf": 8.0, "bone": 1200.0, "soft": 20.0, "air": -1000.0},
    "T1": {"gm": 0.55, "wm": 0.85, "csf": 0.15, "bone": 0.08, "soft": 0.7, "air": 0.0},
    "T2": {"gm": 0.6, "wm": 0.45, "csf": 1.0, "bone": 0.05, "soft": 0.35, "air": 0.0},
}


TISSUE_VALUES["LD"] = dict(TISSUE_VALUES["FD"])


TISSUE_VALUES["MAC"] = dict(TISSUE_VALUES["FD"])


TISSUE_VALUES["NAC"] = {k: v * 0.4 for k, v in TISSUE_VALUES["FD"].items()}


#: Background value of each modality outside the field of view (air).
BACKGROUND: Dict[str, float] = {"FD": 0.0, "LD": 0.0, "NAC": 0.0, "MAC": 0.0, "CT": -1000.0,
                                "T1": 0.0, "T2": 0.0}


#: Default PET resolution of the FDG template: Gaussian FWHM in mm.
PET_FWHM_MM = 6.0


_MNI_TO_LPS = np.array([-1.0, -1.0, 1.0])


def mni_to_lps(point_mni) -> np.ndarray:
    """MNI (RAS) millimetres to ITK physical (LPS) millimetres; also the inverse map."""
    return np.asarray(point_mni, dtype=float) * _MNI_TO_LPS


lps_to_mni = mni_to_lps


def template_grid(spacing: float = 2.0, bounds_mni=HEAD_BOUNDS_MNI) -> Grid:
    """The template grid: MNI space, isotropic ``spacing`` mm, covering the head.

    Parameters
    ----------
    spacing:
        Voxel size in mm (2 mm is the PET resolution of the study; 4 mm makes fast tests).
    bounds_mni:
        ``((x0, x1), (y0, y1), (z0, z1))`` in MNI (RAS) mm that the grid must cover.

    Returns
    -------
    Grid
        Voxel centres on the lattice ``k * spacing`` through MNI (0, 0, 0); direction
        ``diag(-1, -1, 1)`` (index axes along MNI +x, +y, +z); at 2 mm, 89 x 109 x 90 voxels.
    """
    if not (spacing > 0 and math.isfinite(spacing)):
        raise InputError(f"template spacing must be a positive number of mm, got {spacing!r}")
    lo = [math.floor(b[0] / spacing) for b in bounds_mni]
    hi = [math.ceil(b[1] / spacing) for b in bounds_mni]
    size = tuple(int(h - l + 1) for l, h in zip(lo, hi))
    origin_mni = np.array(lo, dtype=float) * spacing
    origin = tuple(float(v) for v in mni_to_lps(origin_mni))
    return Grid(size, (float(spacing),) * 3, origin, (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0))


def grid_image(grid: Grid, pixel_type: int = sitk.sitkFloat32) -> sitk.Image:
    """An empty (zero) image on ``grid``."""
    image = sitk.Image([int(s) for s in grid.size], pixel_type)
    return grid.apply_to(image)


def resample_to_grid(
    image: sitk.Image,
    grid: Grid,
    *,
    transform: Optional[sitk.Transform] = None,
    interpolator: int = sitk.sitkLinear,
    default: float = 0.0,
    antialias: bool = True,
) -> sitk.Image:
    """Resample ``image`` onto ``grid`` (float32), block-averaging first when ``grid`` is coarser.

    ``transform`` maps points of ``grid`` to points of ``image`` (ITK's resampling convention);
    identity when None. With ``antialias``, each axis of ``image`` is first averaged over blocks of
    ``floor(s_out / s_in)`` voxels (ITK ``BinShrink``) where the output spacing ``s_out`` is at least
    twice the input's ``s_in``; this is cheap and removes most aliasing before linear interpolation.
    """
    source = sitk.Cast(image, sitk.sitkFloat32)
    if antialias and interpolator != sitk.sitkNearestNeighbor:
        s_out = float(np.min(grid.spacing))
        factors = [max(1, int(math.floor(s_out / s + 1e-6))) for s in image.GetSpacing()]
        factors = [min(f, max(1, n // 2)) for f, n in zip(factors, image.GetSize())]
        if any(f > 1 for f in factors):
            source = sitk.BinShrink(source, factors)
    reference = grid_image(grid)
    tx = transform if transform is not None else sitk.Transform(3, sitk.sitkIdentity)
    return sitk.Resample(source, reference, tx, interpolator, float(default), sitk.sitkFloat32)


def _load(name: str) -> sitk.Image:
    return load_asset(name)


@functools.lru_cache(maxsize=8)
def _tissue_maps_cached(grid: Grid, source: str) -> Tuple[Tuple[str, np.ndarray], ...]:
    maps: Dict[str, np.ndarray] = {}
    for cls in TISSUE_CLASSES:
        default = 1.0 if cls == "air" else 0.0
        img = resample_to_grid(_load(f"tpm_{cls}"), grid, default=default)
        maps[cls] = np.clip(sitk.GetArrayFromImage(img), 0.0, 1.0)
    if source == "mni152":
        gm = sitk.GetArrayFromImage(resample_to_grid(_load("mni152_gm"), grid))
        wm = sitk.GetArrayFromImage(resample_to_grid(_load("mni152_wm"), grid))
        brain_tpm = maps["gm"] + maps["wm"] + maps["csf"]
        gm = np.clip(gm, 0, 1)
        wm = np.clip(wm, 0, 1)
        wm = np.clip(wm, 0, 1 - gm)
        csf = np.clip(brain_tpm - gm - wm, 0, 1 - gm - wm)
        rest = np.clip(1.0 - gm - wm - csf, 0, 1)
        outer = maps["bone"] + maps["soft"] + maps["air"]
        outer = np.where(outer > 1e-6, outer, 1.0)
        for cls in ("bone", "soft", "air"):
            maps[cls] = rest * maps[cls] / outer
        maps["gm"], maps["wm"], maps["csf"] = gm, wm, csf
    elif source != "tpm":
        raise InputError(f"unknown tissue source {source!r}", hint="use 'tpm' or 'mni152'")
    total = sum(maps.values())
    total = np.where(total > 1e-6, total, 1.0)
    out = []
    for cls in TISSUE_CLASSES:
        arr = (maps[cls] / total).astype(np.float32)
        arr.setflags(write=False)
        out.append((cls, arr))
    return tuple(out)


def tissue_maps(grid: Optional[Grid] = None, source: str = "tpm") -> Dict[str, np.ndarray]:
    """The six tissue-class probability maps on ``grid`` (``[z, y, x]`` float32, summing to 1).

    Parameters
    ----------
    grid:
        Target grid (default: :func:`template_grid` at 2 mm).
    source:
        ``'tpm'``: all six classes from the SPM TPM (1.5 mm, smooth). ``'mni152'``: grey and white
        matter from the sharper ICBM152 2009c maps (1 mm), CSF as the rest of the TPM's brain, and
        bone / soft tissue / air from the TPM: a second, different anatomy in the same space.

    Returns
    -------
    dict
        ``{class: array}`` with read-only arrays (cached per grid); air is 1 outside the TPM.
    """
    grid = grid or template_grid()
    return dict(_tissue_maps_cached(grid, source))


def _sharpen_bone(maps: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """CT-like bone: a sigmoid on the bone probability, the other classes rescaled to fill the rest."""
    bone = maps["bone"]
    sharp = 1.0 / (1.0 + np.exp(-(bone - 0.45) / 0.06))
    sharp = np.minimum(sharp, bone * 2.0)
    rest_old = np.maximum(1.0 - bone, 1e-6)
    factor = (1.0 - sharp) / rest_old
    out = {cls: (maps[cls] * factor if cls != "bone" else sharp) for cls in TISSUE_CLASSES}
    return out


def tissue_model_image(
    modality: str,
    grid: Optional[Grid] = None,
    *,
    maps: Optional[Mapping[str, np.ndarray]] = None,
    values: Optional[Mapping[str, float]] = None,
    fwhm_mm: float = 0.0,
    source: str = "tpm",
) -> sitk.Image:
    """An image of ``modality`` from the tissue model: ``sum_c p_c(x) * value_c`` (float32).

    Parameters
    ----------
    modality:
        One of FD, LD, NAC, MAC (SUV), CT (HU), T1, T2 (a.u.).
    grid:
        Output grid (default: 2 mm template grid).
    maps:
        Tissue maps on ``grid`` (default: :func:`tissue_maps` of ``source``).
    values:
        Per-class intensities overriding :data:`TISSUE_VALUES`.
    fwhm_mm:
        Gaussian smoothing after mixing (PET resolution); 0 for none.
    """
    modality = modality.upper()
    if modality not in TISSUE_VALUES:
        raise InputError(f"no tissue model for modality {modality!r}",
                         hint=f"models exist for {', '.join(TISSUE_VALUES)}")
    grid = grid or template_grid()
    maps = dict(maps) if maps is not None else tissue_maps(grid, source)
    if modality == "CT":
        maps = _sharpen_bone(maps)
    table = dict(TISSUE_VALUES[modality])
    table.update(values or {})
    array = np.zeros(grid.shape, np.float32)
    for cls in TISSUE_CLASSES:
        array += np.float32(table[cls]) * maps[cls]
    image = image_from_array(array, grid)
    if fwhm_mm > 0:
        image = smooth_fwhm(image, fwhm_mm)
    return image


def smooth_fwhm(image: sitk.Image, fwhm_mm: float) -> sitk.Image:
    """Gaussian smoothing with a full width at half maximum of ``fwhm_mm`` (physical units)."""
    sigma = float(fwhm_mm) / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    return sitk.SmoothingRecursiveGaussian(sitk.Cast(image, sitk.sitkFloat32), sigma)


def fdg_template(
    grid: Optional[Grid] = None,
    *,
    fwhm_mm: float = PET_FWHM_MM,
    values: Optional[Mapping[str, float]] = None,
    source: str = "mni152",
) -> sitk.Image:
    """The default 18F-FDG PET template on ``grid``, in SUV (float32).

    Tissue classes weighted by :data:`TISSUE_VALUES` ``["FD"]`` (GM 9, WM 3, CSF 0.6, bone 0.6, soft
    tissue 1, air 0 SUV) and smoothed with a Gaussian of ``fwhm_mm`` (PET resolution). ``source``
    (:func:`tissue_maps`): ``'mni152'`` (default) takes grey and white matter from the ICBM152 2009c
    maps, the MNI template of nilearn and of the digital cohort's anatomy, and the rest from the SPM
    TPM; ``'tpm'`` takes all six classes from the SPM TPM (its own, smoother MNI average, about
    0.8 mm away from ICBM152 over the brain). Mutual information does not depend on the SUV scale;
    the values matter only for display and for correlation-based QC.
    """
    return tissue_model_image("FD", grid, values=values, fwhm_mm=fwhm_mm, source=source)


def t1_template(grid: Optional[Grid] = None, *, skull: bool = False) -> sitk.Image:
    """The T1 template on ``grid`` (float32, scaled to [0, 1]).

    ``skull=False``: the ICBM152 2009c T1 (skull-stripped, 1 mm, antialiased onto the grid).
    ``skull=True``: the tissue-model T1 (:data:`TISSUE_VALUES` ``["T1"]``), which has skull and scalp.
    """
    grid = grid or template_grid()
    if skull:
        return tissue_model_image("T1", grid)
    image = resample_to_grid(_load("mni152_t1"), grid)
    arr = sitk.GetArrayViewFromImage(image)
    peak = float(np.percentile(arr[arr > 0], 99.5)) if np.any(arr > 0) else 1.0
    return sitk.Cast(image / max(peak, 1e-6), sitk.sitkFloat32)


def head_mask(grid: Optional[Grid] = None) -> sitk.Image:
    """The head (brain, skull and scalp) on ``grid``: TPM air probability below 0.5 (uint8 0/1).

    Holes are filled and only the largest connected component is kept.
    """
    grid = grid or template_grid()
    air = tissue_maps(grid)["air"]
    mask = _clean_mask(air < 0.5)
    return _mask_image(mask, grid)


def brain_mask(grid: Optional[Grid] = None) -> sitk.Image:
    """The brain (GM + WM + CSF probability at least 0.5, inside the skull) on ``grid`` (uint8 0/1)."""
    grid = grid or template_grid()
    maps = tissue_maps(grid)
    mask = _clean_mask((maps["gm"] + maps["wm"] + maps["csf"]) >= 0.5)
    return _mask_image(mask, grid)


def _clean_mask(mask: np.ndarray) -> np.ndarray:
    return clean_head(mask, fill_slices=False)


def _mask_image(mask: np.ndarray, grid: Grid) -> sitk.Image:
    return image_from_array(mask.astype(np.uint8), grid)

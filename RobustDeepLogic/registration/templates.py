"""Template space: the MNI grid at PET resolution, the 18F-FDG and T1 templates, head and brain masks.

Every registered volume of RobustDeep lives on one grid, :func:`template_grid`: MNI152 space
(the ICBM 2009c / SPM TPM frame), isotropic voxels of ``spacing`` mm (2 mm by default, close to the
PET voxel size of docs/method.md §2), cropped to the head (skull and scalp included, from the SPM tissue
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
images replaces it (:mod:`RobustDeepLogic.registration.study_template`, ``robustdeep template build``).

The same tissue model gives CT-like (HU) and MR-like images (:func:`tissue_model_image`), used to
make known-pose test cases (:mod:`RobustDeepLogic.registration.known_pose`) and benchmarks.

The source files (SPM TPM, ICBM152 2009c) are the assets of :mod:`RobustDeepLogic.registration.assets`;
a template space written to disk and read back as the fixed side of registration is
:mod:`RobustDeepLogic.registration.template_space`.
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
from RobustDeepLogic.registration.template_grid import resample_to_grid, template_grid

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
    grid : Grid, optional
        Target grid (default: :func:`template_grid` at 2 mm).
    source : str, optional
        ``'tpm'`` (default): all six classes from the SPM TPM (1.5 mm, smooth). ``'mni152'``: grey
        and white matter from the sharper ICBM152 2009c maps (1 mm), CSF as the rest of the TPM's
        brain, and bone / soft tissue / air from the TPM: a second, different anatomy in the same
        space.

    Returns
    -------
    dict of str to numpy.ndarray
        ``{class: array}`` for the classes of :data:`TISSUE_CLASSES`: ``[z, y, x]`` float32
        probabilities, read-only (cached per grid and source); air is 1 outside the TPM.

    Raises
    ------
    InputError
        When ``source`` is unknown or the template assets are not prepared.

    References
    ----------
    .. [1] Ashburner J., Friston K.J., "Unified segmentation", NeuroImage 26(3):839-851, 2005.
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

    For CT the bone probability is sharpened first (a sigmoid), so that the skull has CT-like
    edges.

    Parameters
    ----------
    modality : str
        One of FD, LD, NAC, MAC (SUV), CT (HU), T1, T2 (arbitrary units); any case.
    grid : Grid, optional
        Output grid (default: 2 mm template grid).
    maps : mapping of str to numpy.ndarray, optional
        Tissue maps ``[z, y, x]`` on ``grid``, one per class of :data:`TISSUE_CLASSES` (default:
        :func:`tissue_maps` of ``source``).
    values : mapping of str to float, optional
        Per-class intensities overriding those of :data:`TISSUE_VALUES` for ``modality``.
    fwhm_mm : float, optional
        Gaussian smoothing after mixing (PET resolution), FWHM in mm; 0 (default) for none.
    source : str, optional
        The tissue maps used when ``maps`` is not given: ``'tpm'`` (default) or ``'mni152'`` (see
        :func:`tissue_maps`).

    Returns
    -------
    SimpleITK.Image
        The image on ``grid``, float32, in the modality's unit.

    Raises
    ------
    InputError
        When there is no tissue model for ``modality``, ``source`` is unknown or the template assets
        are not prepared.
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
    """Gaussian smoothing with a full width at half maximum of ``fwhm_mm`` (physical units).

    Parameters
    ----------
    image : SimpleITK.Image
        A 3D image.
    fwhm_mm : float
        Full width at half maximum in mm (in voxels for an image with spacing 1); sigma is
        ``fwhm / (2 sqrt(2 ln 2))``.

    Returns
    -------
    SimpleITK.Image
        The smoothed image, float32 (ITK ``SmoothingRecursiveGaussian``).
    """
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

    Parameters
    ----------
    grid : Grid, optional
        Output grid (default: :func:`template_grid` at 2 mm).
    fwhm_mm : float, optional
        PET resolution, Gaussian FWHM in mm (default :data:`PET_FWHM_MM`, 6 mm).
    values : mapping of str to float, optional
        Per-class SUV overriding :data:`TISSUE_VALUES` ``["FD"]``.
    source : str, optional
        ``'mni152'`` (default) or ``'tpm'``, as above.

    Returns
    -------
    SimpleITK.Image
        The template on ``grid``, float32, SUV.

    Raises
    ------
    InputError
        When ``source`` is unknown or the template assets are not prepared.

    References
    ----------
    .. [1] Ashburner J., Friston K.J., "Unified segmentation", NeuroImage 26(3):839-851, 2005.
    """
    return tissue_model_image("FD", grid, values=values, fwhm_mm=fwhm_mm, source=source)


def t1_template(grid: Optional[Grid] = None, *, skull: bool = False) -> sitk.Image:
    """The T1 template on ``grid`` (float32, about [0, 1]).

    Parameters
    ----------
    grid : Grid, optional
        Output grid (default: :func:`template_grid` at 2 mm).
    skull : bool, optional
        False (default): the ICBM152 2009c T1 (skull-stripped, 1 mm, antialiased onto the grid),
        divided by the 99.5th percentile of its positive voxels, so values slightly above 1 remain.
        True: the tissue-model T1 (:data:`TISSUE_VALUES` ``["T1"]``, values 0-0.85), which has skull
        and scalp.

    Returns
    -------
    SimpleITK.Image
        The template on ``grid``, float32, arbitrary units.

    Raises
    ------
    InputError
        When the template assets are not prepared.
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

    Only the largest connected component is kept, and its holes are filled (in 3D).

    Parameters
    ----------
    grid : Grid, optional
        Output grid (default: :func:`template_grid` at 2 mm).

    Returns
    -------
    SimpleITK.Image
        uint8 mask, 1 in the head.

    Raises
    ------
    InputError
        When the template assets are not prepared.
    """
    grid = grid or template_grid()
    air = tissue_maps(grid)["air"]
    mask = clean_head(air < 0.5, fill_slices=False)
    return _mask_image(mask, grid)


def brain_mask(grid: Optional[Grid] = None) -> sitk.Image:
    """The brain (GM + WM + CSF probability at least 0.5, inside the skull) on ``grid`` (uint8 0/1).

    The SPM TPM's classes are used; only the largest connected component is kept, and its holes are
    filled (in 3D).

    Parameters
    ----------
    grid : Grid, optional
        Output grid (default: :func:`template_grid` at 2 mm).

    Returns
    -------
    SimpleITK.Image
        uint8 mask, 1 in the brain.

    Raises
    ------
    InputError
        When the template assets are not prepared.
    """
    grid = grid or template_grid()
    maps = tissue_maps(grid)
    mask = clean_head((maps["gm"] + maps["wm"] + maps["csf"]) >= 0.5, fill_slices=False)
    return _mask_image(mask, grid)


def _mask_image(mask: np.ndarray, grid: Grid) -> sitk.Image:
    return image_from_array(mask.astype(np.uint8), grid)

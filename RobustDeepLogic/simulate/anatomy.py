"""Head anatomy: template tissue maps, per-subject variability, sampling onto native grids.

Sources (prepared by ``robustdeep assets``; nothing is downloaded here):

- grey and white matter: MNI ICBM152 2009c GM / WM probability maps (nilearn, 1 mm);
- intracranial volume, skull, scalp and air: SPM's tissue probability maps (TPM, 1.5 mm), whose bone
  class is smooth; it is sharpened per subject with a sigmoid on its probability, and its core (the
  highest probabilities, the middle of the skull) becomes the diploe (``docs/simulation.md`` §3).

The template maps live on an axis-aligned working grid in template space (MNI, LPS mm) covering the
TPM's field of view at the profile's ``template_spacing_mm``. A subject is the template seen through a
non-rigid deformation ``q = D(p)`` (template point ``p`` to atlas point ``q``): global and anisotropic
scaling about :data:`~RobustDeepLogic.simulate.pose.HEAD_CENTRE_LPS`, a smooth random warp (a few mm
RMS) and, for atrophic subjects, a local expansion around the lateral ventricles; cortical thinning
moves grey matter next to sulcal CSF into CSF. Native images sample the maps at ``D(T^-1(x))`` for
each native voxel ``x`` (``T`` the pose, see :mod:`.pose`): one interpolation, no resampling chain.

This module gives tissue fractions; the images made from them are in :mod:`.mr`, :mod:`.ct` and
:mod:`.pet`, and the ground truth for rigid registration that uses :func:`rigid_part` in :mod:`.truth`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from RobustDeepLogic.registration.assets import load_asset

#: Template working grid bounds (LPS mm): the TPM field of view.
TEMPLATE_MIN_LPS = (-90.0, -90.0, -72.0)

#: Template working grid bounds (LPS mm), upper corner.
TEMPLATE_MAX_LPS = (90.0, 126.0, 108.0)

#: Tissue labels of the label maps written beside each subject (0: mixed voxel, no class >= 0.6).
LABELS: Dict[str, int] = {"gm": 1, "wm": 2, "csf": 3, "bone": 4, "diploe": 5, "soft": 6, "air": 7,
                          "lesion": 8}

#: The tissue classes whose fractions sum to 1 in every voxel (fat and lesion are overlays).
TISSUES = ("gm", "wm", "csf", "bone", "diploe", "soft", "air")

# Lateral ventricles (MNI RAS -> LPS), the centre of the atrophy expansion.
_VENTRICLE_LPS = (0.0, 8.0, 16.0)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def trilinear(stack: np.ndarray, index_zyx: np.ndarray, *, border: bool = False) -> np.ndarray:
    """Trilinear interpolation of a channel stack ``[C, z, y, x]`` at continuous indices (N, 3).

    All channels share one set of corner weights (``torch.nn.functional.grid_sample`` on the CPU,
    which is several times faster than one ``scipy.ndimage.map_coordinates`` per map).

    Parameters
    ----------
    stack : numpy.ndarray
        float32 ``[C, z, y, x]`` maps.
    index_zyx : numpy.ndarray
        ``(N, 3)`` continuous voxel indices in ``(z, y, x)`` order (0 is the first voxel's centre).
    border : bool, optional
        False (default): outside the array the values fall linearly to 0 over one voxel and are 0
        beyond. True: points outside read the nearest edge value.

    Returns
    -------
    numpy.ndarray
        ``(C, N)`` float32 interpolated values.
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

    Made by :func:`template_anatomy`. ``maps[name]`` are float32 ``[z, y, x]`` arrays: ``gm``,
    ``wm``, ``csf`` (intracranial fractions, summing to at most 1), ``bone_p`` and ``head_p`` (SPM
    TPM bone and 1 - air probabilities, smooth), ``sulcal`` (0..1, grey matter next to sulcal CSF:
    where cortical thinning acts). Sampled outside the grid (:func:`trilinear`), every map reads 0,
    i.e. air.

    Attributes
    ----------
    spacing : float
        Isotropic voxel size in mm.
    origin : tuple of 3 float
        LPS position (mm) of the centre of voxel ``[0, 0, 0]``.
    maps : dict of str to numpy.ndarray
        The maps above, in that order, all of one shape.
    """

    spacing: float
    origin: Tuple[float, float, float]
    maps: Dict[str, np.ndarray]
    _stack: Optional[np.ndarray] = field(default=None, repr=False)

    @property
    def shape(self) -> Tuple[int, int, int]:
        """The grid's array shape ``(z, y, x)``."""
        return next(iter(self.maps.values())).shape

    @property
    def stack(self) -> np.ndarray:
        """All maps as one ``[C, z, y, x]`` array, channels in the order of :attr:`maps`."""
        if self._stack is None:
            self._stack = np.ascontiguousarray(np.stack(list(self.maps.values()), axis=0))
        return self._stack

    def reference_image(self) -> sitk.Image:
        """An empty image on the working grid (for resampling into template space).

        Returns
        -------
        SimpleITK.Image
            float32, zero, with the grid's size, spacing and origin and an identity direction.
        """
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

    The grid covers :data:`TEMPLATE_MIN_LPS` to :data:`TEMPLATE_MAX_LPS`. Grey and white matter come
    from the ICBM152 maps, sharpened by sigmoids (the brain fraction and the grey-matter share of
    it); the intracranial volume from the TPM (GM + WM + CSF, a sigmoid at 0.5), CSF being the rest of
    it; bone and head probabilities from the TPM as they are. The result is cached for the last two
    ``(spacing, assets_folder)`` pairs asked for.

    Parameters
    ----------
    spacing : float
        Isotropic voxel size of the working grid, in mm (the profile's ``template_spacing_mm``).
    assets_folder : str, optional
        Folder of the prepared assets; None uses the default assets folder
        (:func:`~RobustDeepLogic.registration.assets.assets_dir`).

    Returns
    -------
    TemplateAnatomy
        The maps (shared by the callers: do not modify them).

    Raises
    ------
    InputError
        An asset is not prepared (from :func:`~RobustDeepLogic.registration.assets.asset_path`; the
        hint says to run ``robustdeep assets``).
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




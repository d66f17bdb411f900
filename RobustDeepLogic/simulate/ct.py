"""CT in Hounsfield units, and the 511 keV attenuation maps (true and CT-derived).

CT: each voxel is the fraction-weighted mean of tissue HU values: air -1000, fat -100, muscle/skin
40, GM 40, WM 28, CSF 8, lesion 20, the skull's cortical tables ``bone_hu`` (per subject, 1500 to
1900) and its diploe ``diploe_hu`` (600 to 900). The bone comes from SPM's smooth TPM bone class,
sharpened per subject (see :mod:`.anatomy`). Then a small blur (the CT's own resolution, 0.7 mm
sigma) and correlated Gaussian noise (low-dose CT, 8 to 14 HU SD), rounded to int16 within
[-1024, 3071].

511 keV attenuation, per mm:

- **true** (used to make the PET data): water-like tissue 0.0096, brain 0.0099, fat 0.0090, bone by
  its density ``0.0096 + 5.6e-6 * HU``, air 0;
- **CT-derived** (CTAC, used for the MAC reconstruction): the bilinear conversion of the noisy CT
  (Kinahan et al., Med Phys 1998; Carney et al., Med Phys 2006): ``0.0096 (1 + HU/1000)`` for
  HU <= 0, ``0.0096 + 5.1e-6 HU`` above. :func:`~RobustDeepLogic.simulate.cohort.simulate_subject`
  resamples the CT onto the PET grid before the conversion and smooths the result to PET resolution
  (4 mm FWHM). Its bone slope differs from the true one by about 10 %, and it carries the CT's noise
  and partial volume: the MAC reconstruction therefore differs slightly from FD, as CTAC does in
  practice.

The tissue fractions come from :func:`~RobustDeepLogic.simulate.anatomy.sample_tissues`; the PET
that uses the attenuation maps is in :mod:`.pet`. See ``docs/simulation.md`` §4.
"""

from __future__ import annotations

from typing import Dict

import numpy as np
from scipy import ndimage

#: HU of the soft tissues, air and the lesion (bone and diploe are per subject).
HU = {"air": -1000.0, "fat": -100.0, "muscle": 40.0, "gm": 40.0, "wm": 28.0, "csf": 8.0,
      "lesion": 20.0}

#: 511 keV linear attenuation of water, per mm.
MU_WATER_PER_MM = 0.0096

#: True 511 keV attenuation of the non-bone tissues, per mm.
MU_TRUE_PER_MM = {"soft": 0.0096, "brain": 0.0099, "csf": 0.0096, "fat": 0.0090, "air": 0.0}

MU_TRUE_BONE_SLOPE = 5.6e-6  # per mm per HU

MU_CTAC_BONE_SLOPE = 5.1e-6  # the bilinear model's slope above 0 HU


def ct_hu(fractions: Dict[str, np.ndarray], spacing_mm, rng: np.random.Generator, *, bone_hu: float,
          diploe_hu: float, noise_hu: float) -> np.ndarray:
    """CT volume in HU (int16 ``[z, y, x]``) from tissue fractions on the CT grid.

    Each voxel is the fraction-weighted mean of the tissue HU values (:data:`HU`, ``bone_hu`` and
    ``diploe_hu``; the lesion replaces brain tissue in proportion, the soft tissue is a mix of fat and
    muscle by ``fractions['fat']``). It is blurred by a Gaussian of 0.7 mm sigma (the CT's own
    resolution), correlated Gaussian noise is added, and the result is rounded and clipped.

    Parameters
    ----------
    fractions : dict of str to numpy.ndarray
        Tissue fractions on the CT grid, float32 ``[z, y, x]``, as
        :func:`~RobustDeepLogic.simulate.anatomy.sample_tissues` returns them (``gm``, ``wm``,
        ``csf``, ``bone``, ``diploe``, ``soft``, ``air``, ``fat``, ``lesion`` are read).
    spacing_mm : sequence of 3 float
        CT voxel size ``(x, y, z)`` in mm (ITK order).
    rng : numpy.random.Generator
        The subject's ``ct`` stream (:mod:`.streams`), for the noise.
    bone_hu : float
        HU of the skull's cortical tables (1500 to 1900 per subject in a simulated cohort).
    diploe_hu : float
        HU of the diploe, the marrow between the tables (600 to 900).
    noise_hu : float
        Standard deviation of the noise in HU (8 to 14): white noise smoothed by a Gaussian of 0.6
        voxel sigma, then scaled to this SD over the volume.

    Returns
    -------
    numpy.ndarray
        int16 ``[z, y, x]`` HU, clipped to [-1024, 3071].
    """
    lesion = fractions["lesion"]
    brain = fractions["gm"] * HU["gm"] + fractions["wm"] * HU["wm"]
    hu = brain * (1.0 - lesion) + (fractions["gm"] + fractions["wm"]) * lesion * HU["lesion"]
    hu += fractions["csf"] * HU["csf"] + fractions["bone"] * bone_hu + fractions["diploe"] * diploe_hu
    fat = fractions["fat"]
    hu += fractions["soft"] * (fat * HU["fat"] + (1.0 - fat) * HU["muscle"])
    hu += fractions["air"] * HU["air"]
    sig = [0.7 / s for s in spacing_mm[::-1]]
    hu = ndimage.gaussian_filter(hu, sig)
    noise = ndimage.gaussian_filter(rng.standard_normal(hu.shape, dtype=np.float32), 0.6)
    noise *= noise_hu / max(float(noise.std()), 1e-9)
    return np.clip(np.rint(hu + noise), -1024, 3071).astype(np.int16)


def mu_true(fractions: Dict[str, np.ndarray], *, bone_hu: float, diploe_hu: float) -> np.ndarray:
    """True 511 keV linear attenuation (per mm, float32) from tissue fractions.

    Brain (including any lesion) 0.0099, CSF and muscle 0.0096, fat 0.0090 per mm
    (:data:`MU_TRUE_PER_MM`), bone and diploe ``0.0096 + 5.6e-6 * HU`` from their HU, air 0. This is
    the map the PET data are made with, and the one the FD and LD reconstructions correct with.

    Parameters
    ----------
    fractions : dict of str to numpy.ndarray
        Tissue fractions, float32 ``[z, y, x]``, as
        :func:`~RobustDeepLogic.simulate.anatomy.sample_tissues` returns them (usually on the PET
        grid; ``gm``, ``wm``, ``csf``, ``bone``, ``diploe``, ``soft``, ``fat`` are read).
    bone_hu : float
        HU of the cortical bone (the subject's, as given to :func:`ct_hu`).
    diploe_hu : float
        HU of the diploe.

    Returns
    -------
    numpy.ndarray
        float32 ``[z, y, x]`` attenuation in 1/mm, the shape of the fractions.
    """
    fat = fractions["fat"]
    mu = (fractions["gm"] + fractions["wm"]) * MU_TRUE_PER_MM["brain"]
    mu += fractions["csf"] * MU_TRUE_PER_MM["csf"]
    mu += fractions["soft"] * (fat * MU_TRUE_PER_MM["fat"] + (1 - fat) * MU_TRUE_PER_MM["soft"])
    mu += fractions["bone"] * (MU_WATER_PER_MM + MU_TRUE_BONE_SLOPE * bone_hu)
    mu += fractions["diploe"] * (MU_WATER_PER_MM + MU_TRUE_BONE_SLOPE * diploe_hu)
    return mu.astype(np.float32)


def mu_from_ct(hu: np.ndarray) -> np.ndarray:
    """Bilinear HU -> 511 keV attenuation (per mm, float32), the CTAC conversion.

    ``0.0096 (1 + HU/1000)`` for HU <= 0 and ``0.0096 + 5.1e-6 HU`` above, clipped at 0.

    Parameters
    ----------
    hu : numpy.ndarray
        CT values in HU, any shape and numeric dtype.

    Returns
    -------
    numpy.ndarray
        float32 attenuation in 1/mm, the shape of ``hu``.

    References
    ----------
    .. [1] Kinahan PE, Townsend DW, Beyer T, Sashin D, "Attenuation correction for a combined 3D
       PET/CT scanner", Med Phys 25(10):2046-2053, 1998.
    .. [2] Carney JPJ, Townsend DW, Rappoport V, Bendriem B, "Method for transforming CT images for
       attenuation correction in PET/CT imaging", Med Phys 33(4):976-983, 2006.
    """
    hu = hu.astype(np.float32)
    return np.where(hu <= 0, MU_WATER_PER_MM * (1.0 + hu / 1000.0),
                    MU_WATER_PER_MM + MU_CTAC_BONE_SLOPE * hu).clip(0.0).astype(np.float32)

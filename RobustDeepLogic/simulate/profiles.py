"""Simulation profiles: grids, scanner and reconstruction settings for ``tiny``, ``quick``, ``paper``.

All sizes are ITK order ``(x, y, z)`` and spacings in mm. Native grids are axis-aligned (identity
direction, LPS) and centred on :data:`~RobustDeepLogic.simulate.pose.HEAD_CENTRE_LPS` in their own
native frame (see :mod:`RobustDeepLogic.simulate.pose`).

=========  ======================  =====================  ===================  ================
profile    PET (FD, LD, NAC, MAC)  CT                     T1, T2               OSEM
=========  ======================  =====================  ===================  ================
tiny       48x48x40, 5.2x5.2x5 mm  64x64x50, 3.9x3.9x4    64x64x55, 4 mm       4 it x 8 subsets
quick      128x128x96, 2.5 mm      128x128x96, 2x2x2.5    120x120x110, 2 mm    5 it x 21 subsets
paper      200x200x109, 2.03x2.03  256x256x120,           240x240x220, 1 mm    5 it x 21 subsets
           x2.2 mm (the study's)   0.98x0.98x2 mm
=========  ======================  =====================  ===================  ================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Tuple

from RobustDeepLogic.core.errors import InputError


@dataclass(frozen=True)
class Profile:
    """Everything that changes with the profile; physics constants live in the modules.

    Sizes are ITK order ``(x, y, z)`` in voxels, spacings ``(x, y, z)`` in mm.

    Attributes
    ----------
    name : str
        The profile's name (``'tiny'``, ``'quick'``, ``'paper'``).
    subjects : int
        Default cohort size.
    template_spacing_mm : float
        Spacing of the working template grid that holds the anatomy maps
        (:func:`~RobustDeepLogic.simulate.anatomy.template_anatomy`).
    pet_size, pet_spacing : tuple
        The PET grid (FD, LD, NAC, MAC).
    ct_size, ct_spacing : tuple
        The CT grid.
    mr_size, mr_spacing : tuple
        The MR grid (T1 and T2 share it).
    n_angles : int
        Projection angles over 180 degrees.
    iterations : int
        OSEM iterations (full passes over the subsets).
    subsets : int
        OSEM subsets (interleaved angles).
    support_radius_mm : float
        Radius of the reconstruction support, a cylinder centred on the PET grid's axis; clipped to
        the grid by :class:`~RobustDeepLogic.simulate.pet_physics.ParallelProjector`.
    psf_fwhm_mm : tuple of 2 float, optional
        Scanner PSF (transaxial, axial) FWHM in mm used to make the data (default 4.5 mm, 4.5 mm).
    psf_model_fwhm_mm : tuple of 2 float, optional
        PSF (transaxial, axial) FWHM in mm modelled in the reconstruction (default 4.0 mm, 4.0 mm).
    postfilter_fwhm_mm : float, optional
        FWHM in mm of the Gaussian post-filter of every reconstruction (default 2).
    dicom_subjects : int, optional
        How many subjects (the first ones) also get their FD as a DICOM series (default 2).
    notes : str, optional
        A short description for people.
    extra : dict, optional
        Free-form numbers; the simulator does not read them.
    """

    name: str
    subjects: int  # default cohort size
    template_spacing_mm: float  # working template grid (anatomy maps)
    pet_size: Tuple[int, int, int]
    pet_spacing: Tuple[float, float, float]
    ct_size: Tuple[int, int, int]
    ct_spacing: Tuple[float, float, float]
    mr_size: Tuple[int, int, int]
    mr_spacing: Tuple[float, float, float]
    n_angles: int  # projection angles over 180 degrees
    iterations: int
    subsets: int
    support_radius_mm: float  # reconstruction support (a centred cylinder)
    psf_fwhm_mm: Tuple[float, float] = (4.5, 4.5)  # scanner PSF (transaxial, axial) used for data
    psf_model_fwhm_mm: Tuple[float, float] = (4.0, 4.0)  # PSF modelled in the reconstruction
    postfilter_fwhm_mm: float = 2.0
    dicom_subjects: int = 2  # how many subjects also get a DICOM FD series
    notes: str = ""
    extra: Dict[str, float] = field(default_factory=dict)


#: The profiles by name; see the module docstring and ``docs/simulation.md`` §2.
PROFILES: Dict[str, Profile] = {
    "tiny": Profile(
        name="tiny", subjects=3, template_spacing_mm=3.0,
        pet_size=(48, 48, 40), pet_spacing=(5.2, 5.2, 5.0),
        ct_size=(64, 64, 50), ct_spacing=(3.9, 3.9, 4.0),
        mr_size=(64, 64, 55), mr_spacing=(4.0, 4.0, 4.0),
        n_angles=48, iterations=4, subsets=8, support_radius_mm=124.0,
        psf_fwhm_mm=(6.0, 6.0), psf_model_fwhm_mm=(5.5, 5.5), postfilter_fwhm_mm=2.0,
        dicom_subjects=1, notes="for tests: seconds per subject",
    ),
    "quick": Profile(
        name="quick", subjects=12, template_spacing_mm=2.0,
        pet_size=(128, 128, 96), pet_spacing=(2.5, 2.5, 2.5),
        ct_size=(128, 128, 96), ct_spacing=(2.0, 2.0, 2.5),
        mr_size=(120, 120, 110), mr_spacing=(2.0, 2.0, 2.0),
        n_angles=120, iterations=5, subsets=21, support_radius_mm=150.0,
        dicom_subjects=2, notes="12 subjects at about 2.5 mm",
    ),
    "paper": Profile(
        name="paper", subjects=45, template_spacing_mm=1.0,
        pet_size=(200, 200, 109), pet_spacing=(2.03, 2.03, 2.2),
        ct_size=(256, 256, 120), ct_spacing=(0.98, 0.98, 2.0),
        mr_size=(240, 240, 220), mr_spacing=(1.0, 1.0, 1.0),
        n_angles=180, iterations=5, subsets=21, support_radius_mm=150.0,
        dicom_subjects=3, notes="the study's PET grid, 45 subjects",
    ),
}


def get_profile(name: str) -> Profile:
    """The named profile of :data:`PROFILES`.

    Parameters
    ----------
    name : str
        ``'tiny'``, ``'quick'`` or ``'paper'`` (case-sensitive).

    Returns
    -------
    Profile
        The profile.

    Raises
    ------
    InputError
        The name is not a profile (the hint lists them).
    """
    if name not in PROFILES:
        raise InputError(f"unknown simulation profile {name!r}",
                         hint=f"profiles are {', '.join(PROFILES)}")
    return PROFILES[name]

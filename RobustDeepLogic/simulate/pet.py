"""18F-FDG PET of one subject: activity model, acquisition, and the FD / LD / NAC / MAC reconstructions.

Activity (body-weight SUV, the truth): white matter ``wm_suv`` (1.6 to 2.4), grey matter ``gm_wm``
times that (3.5 to 4.5), CSF 0.25, scalp muscle/skin 1.0, fat 0.4, cortical bone 0.3, diploe
(marrow) 1.2, air 0. Grey matter is modulated regionally (cerebellum -15 %, occipital +8 %,
precuneus / posterior cingulate +10 %, a smooth random field +-5 %), and some subjects are
hypometabolic: a temporo-parietal pattern (Alzheimer-like, one or both sides, -15 to -35 %) or a
lesion (activity x 0.3, see :mod:`.anatomy`).

Reconstructions (all OSEM with resolution modelling, then a 2 mm FWHM Gaussian post-filter):

=====  =====================================  ==================  ===========================
image  counts                                 attenuation model   additive background
=====  =====================================  ==================  ===========================
FD     FD prompts (Poisson, ~3e8)             true mu-map         scatter + randoms
LD     binomial 5 % of the FD prompts         true mu-map         5 % of scatter + randoms
MAC    the same FD prompts                    CT-derived mu-map   scatter + randoms
NAC    the same FD prompts                    none                randoms (scatter stays in)
=====  =====================================  ==================  ===========================

So FD is the ideal attenuation- and scatter-corrected reference, MAC is what CT-based attenuation
correction gives (bilinear HU -> mu from the noisy CT at CT resolution), and NAC -> MAC learns the
attenuation (and scatter) correction from identical counts.

This module holds the activity model and assembles the chain (:func:`simulate_pet`); the projector,
the PSF, the scatter shape, thinning and OSEM are in :mod:`.pet_physics`, the attenuation maps in
:mod:`.ct`. See ``docs/simulation.md`` §4.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np
from scipy import ndimage

from RobustDeepLogic.simulate.osem import osem
from RobustDeepLogic.simulate.pet_physics import (
    FWHM_TO_SIGMA,
    ParallelProjector,
    blur_sinogram,
    psf_sigmas,
    scatter_shape,
    thin_counts,
)

#: Expected prompts of a full-dose scan that starts 35 min after injecting :data:`DOSE_REF_BQ`.
FD_PROMPTS_REF = 3.0e8  # expected prompts of a full-dose brain scan at the reference dose

#: The reference injected dose (Bq), the study's about 205 MBq.
DOSE_REF_BQ = 205e6

#: Fraction of the FD prompts kept for LD.
LD_FRACTION = 0.05

HALF_LIFE_S = 6586.2  # 18F

#: True SUV of the tissues outside the brain's grey and white matter.
SUV_TISSUE = {"csf": 0.25, "muscle": 1.0, "fat": 0.4, "bone": 0.3, "diploe": 1.2, "air": 0.0}


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


@dataclass
class FdgModel:
    """Random FDG parameters of one subject (JSON-able).

    Drawn by :func:`draw_fdg`.

    Attributes
    ----------
    wm_suv : float
        Activity of white matter, SUV (1.6 to 2.4).
    gm_wm : float
        Grey- to white-matter activity ratio (3.5 to 4.5), before the regional modulation.
    pattern : str or None
        None, or ``'temporoparietal'``: an Alzheimer-like hypometabolism.
    pattern_sides : tuple of float
        The hemispheres of the pattern, each +1 or -1 (empty without a pattern): +1 puts it at MNI
        ``x > 0``, which in MNI's RAS coordinates is the right hemisphere. (:meth:`to_meta` records
        +1 as ``'left'``.)
    pattern_severity : float
        Largest fractional loss of grey-matter activity in the pattern (0.15 to 0.35; 0 without).
    field_phase : tuple of 3 float
        Phases (radians) of the smooth +-5 % random modulation along MNI x, y, z.
    """

    wm_suv: float
    gm_wm: float
    pattern: Optional[str]  # None or 'temporoparietal'
    pattern_sides: Tuple[float, ...]
    pattern_severity: float
    field_phase: Tuple[float, ...]

    def to_meta(self) -> Dict[str, Any]:
        """The manifest record of this model (``meta['fdg']`` of a simulated subject).

        Returns
        -------
        dict
            JSON-able: ``wm_suv``, ``gm_wm_ratio``, ``hypometabolism`` (the pattern or None),
            ``hypometabolism_sides`` (``'left'`` for a side of +1, ``'right'`` for -1; see
            :attr:`pattern_sides`), ``hypometabolism_severity``. ``field_phase`` is not stored.
        """
        return {"wm_suv": self.wm_suv, "gm_wm_ratio": self.gm_wm, "hypometabolism": self.pattern,
                "hypometabolism_sides": ["left" if s > 0 else "right" for s in self.pattern_sides],
                "hypometabolism_severity": self.pattern_severity}

    def gm_factor(self, q: np.ndarray) -> Dict[str, np.ndarray]:
        """Regional multiplier of grey-matter activity at atlas points ``q`` (N, 3) LPS mm.

        Cerebellum -15 %, occipital +8 %, precuneus / posterior cingulate +10 %, a smooth random
        field +-5 % (:attr:`field_phase`), and the temporo-parietal pattern when there is one (two
        Gaussian dips per side, depth :attr:`pattern_severity`). Meant as the ``extra`` of
        :func:`~RobustDeepLogic.simulate.anatomy.sample_tissues`.

        Parameters
        ----------
        q : numpy.ndarray
            ``(N, 3)`` atlas (template) points, LPS mm; converted to MNI RAS inside.

        Returns
        -------
        dict
            ``{"gm_factor": (N,) float32 multiplier}``.
        """
        x, y, z = -q[:, 0], -q[:, 1], q[:, 2]  # MNI RAS
        f = np.ones(len(q), np.float32)
        f *= 1.0 - 0.15 * _sigmoid((-20.0 - z) / 4.0) * _sigmoid((-40.0 - y) / 4.0)  # cerebellum
        f *= 1.0 + 0.08 * _sigmoid((-70.0 - y) / 5.0)  # occipital
        f *= 1.0 + 0.10 * np.exp(-((x / 12.0) ** 2 + ((y + 58.0) / 16.0) ** 2 + ((z - 32.0) / 14.0) ** 2) / 2)
        ph = self.field_phase
        f *= 1.0 + 0.05 * np.sin(x / 23.0 + ph[0]) * np.sin(y / 31.0 + ph[1]) * np.sin(z / 27.0 + ph[2])
        if self.pattern == "temporoparietal":
            dip = np.zeros(len(q), np.float32)
            for side in self.pattern_sides:
                for (cx, cy, cz, s) in ((48.0, -58.0, 30.0, 15.0), (55.0, -30.0, -8.0, 12.0)):
                    dip = np.maximum(dip, np.exp(-(((x - side * cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2)
                                                   / (2 * s * s))))
            f *= 1.0 - self.pattern_severity * dip
        return {"gm_factor": f.astype(np.float32)}


def draw_fdg(rng: np.random.Generator) -> FdgModel:
    """Random FDG parameters of one subject (:class:`FdgModel` gives their meaning).

    With probability 0.3 a temporo-parietal hypometabolism, on both sides half of the time and on
    one random side otherwise, with a severity uniform in [0.15, 0.35]; white matter uniform in
    [1.6, 2.4] SUV; GM:WM uniform in [3.5, 4.5]; random phases of the smooth field.

    Parameters
    ----------
    rng : numpy.random.Generator
        The subject's ``pet_params`` stream (:mod:`.streams`).

    Returns
    -------
    FdgModel
        The parameters.
    """
    pattern = "temporoparietal" if rng.random() < 0.3 else None
    sides = (1.0, -1.0) if rng.random() < 0.5 else (float(rng.choice([-1.0, 1.0])),)
    return FdgModel(
        wm_suv=float(rng.uniform(1.6, 2.4)),
        gm_wm=float(rng.uniform(3.5, 4.5)),
        pattern=pattern,
        pattern_sides=sides if pattern else (),
        pattern_severity=float(rng.uniform(0.15, 0.35)) if pattern else 0.0,
        field_phase=tuple(float(v) for v in rng.uniform(0, 2 * math.pi, 3)),
    )


def activity_suv(fr: Dict[str, np.ndarray], fdg: FdgModel) -> np.ndarray:
    """True FDG activity (SUV, float32 ``[z, y, x]``) from tissue fractions on the PET grid.

    Grey matter ``gm_wm * wm_suv * gm_factor``, white matter ``wm_suv``, the lesion at 0.3 times
    the brain activity it replaces, and the other tissues at :data:`SUV_TISSUE` (the soft tissue
    mixes fat and muscle by ``fr['fat']``), weighted by their fractions.

    Parameters
    ----------
    fr : dict of str to numpy.ndarray
        Tissue fractions on the PET grid, float32 ``[z, y, x]``, from
        :func:`~RobustDeepLogic.simulate.anatomy.sample_tissues` called with
        ``extra=fdg.gm_factor`` (the ``gm_factor`` array is read too).
    fdg : FdgModel
        The subject's FDG parameters.

    Returns
    -------
    numpy.ndarray
        float32 ``[z, y, x]`` activity in body-weight SUV.
    """
    gm = fr["gm"] * fdg.gm_wm * fdg.wm_suv * fr["gm_factor"]
    brain = gm + fr["wm"] * fdg.wm_suv
    brain = brain * (1.0 - 0.7 * np.clip(fr["lesion"] / np.maximum(fr["gm"] + fr["wm"], 1e-6), 0, 1))
    fat = fr["fat"]
    a = brain + fr["csf"] * SUV_TISSUE["csf"] + fr["bone"] * SUV_TISSUE["bone"]
    a += fr["diploe"] * SUV_TISSUE["diploe"]
    a += fr["soft"] * (fat * SUV_TISSUE["fat"] + (1 - fat) * SUV_TISSUE["muscle"])
    return a.astype(np.float32)


def decay_factor(seconds: float) -> float:
    """The fraction of 18F activity left after ``seconds`` (half-life :data:`HALF_LIFE_S`).

    Parameters
    ----------
    seconds : float
        Elapsed time in s.

    Returns
    -------
    float
        ``exp(-ln 2 * seconds / HALF_LIFE_S)``: 1 at 0 s, 0.5 after one half-life.
    """
    return math.exp(-math.log(2.0) * seconds / HALF_LIFE_S)


def simulate_pet(
    activity: np.ndarray,
    mu_true: np.ndarray,
    mu_ct: np.ndarray,
    spacing: Tuple[float, float, float],
    profile,
    rng: np.random.Generator,
    *,
    dose_bq: float,
    uptake_s: float,
    device: Optional[str] = None,
    projector: Optional[ParallelProjector] = None,
) -> Tuple[Dict[str, np.ndarray], Dict[str, Any]]:
    """The physics chain for one subject on its PET grid: FD, LD, MAC and NAC from the true activity.

    Expected prompts ``ybar = eta * a * PSF(P x) + s + r`` (see :mod:`.pet_physics`): the number of
    prompts is :data:`FD_PROMPTS_REF` scaled by ``dose_bq / DOSE_REF_BQ`` and by the decay between
    35 min and ``uptake_s``; randoms are a uniform 20 to 30 % of the prompts, scatter 28 to 36 % of
    the rest. FD prompts are Poisson, LD a binomial thinning of them to :data:`LD_FRACTION`. Each
    image is an OSEM reconstruction with the profile's modelled PSF (attenuation and background as in
    the module docstring's table), then a Gaussian post-filter of the profile's FWHM, clipped at 0.

    Parameters
    ----------
    activity : numpy.ndarray
        True activity, float32 ``[z, y, x]`` SUV (:func:`activity_suv`).
    mu_true, mu_ct : numpy.ndarray
        511 keV attenuation in 1/mm on the PET grid, ``[z, y, x]``: the truth
        (:func:`~RobustDeepLogic.simulate.ct.mu_true`) and the CT-derived map
        (:func:`~RobustDeepLogic.simulate.ct.mu_from_ct`).
    spacing : tuple of 3 float
        PET voxel size ``(x, y, z)`` in mm.
    profile : Profile
        The :class:`~RobustDeepLogic.simulate.profiles.Profile` (angles, subsets, support, PSFs,
        iterations, post-filter).
    rng : numpy.random.Generator
        The subject's ``pet_counts`` stream (:mod:`.streams`): scatter and randoms fractions, then
        the Poisson counts and their thinning.
    dose_bq : float
        Injected dose in Bq.
    uptake_s : float
        Time from injection to the start of the scan, in s.
    device : str, optional
        None or ``'cpu'``: OSEM in numpy/scipy. A torch device such as ``'cuda'``: OSEM in torch on
        that device.
    projector : ParallelProjector, optional
        A projector for this grid; None (default) uses :func:`get_projector` (built once per
        process).

    Returns
    -------
    images : dict of str to numpy.ndarray
        ``FD``, ``LD``, ``MAC``, ``NAC`` float32 ``[z, y, x]`` in SUV units (NAC: SUV-scaled,
        not attenuation corrected).
    info : dict
        JSON-able: ``prompts_fd``, ``prompts_ld``, ``expected_prompts_fd``, ``ld_fraction``,
        ``scatter_fraction``, ``randoms_fraction``, ``sensitivity_counts_per_suv_mm`` (``eta``),
        ``sinogram`` (angles, bins, slices), ``projector_nnz``, ``support_radius_mm`` and the
        ``osem`` settings.
    """
    nz, ny, nx = activity.shape
    proj = projector or get_projector(profile, nx, ny, spacing)
    x_true = proj.to_support(activity)
    att_true = np.exp(-proj.forward(proj.to_support(mu_true)))
    att_ct = np.exp(-proj.forward(proj.to_support(mu_ct)))
    data_sig = psf_sigmas(profile.psf_fwhm_mm, proj.bin_mm, spacing[2])
    model_sig = psf_sigmas(profile.psf_model_fwhm_mm, proj.bin_mm, spacing[2])
    t0 = att_true * blur_sinogram(proj.forward(x_true), data_sig)
    n_prompts = FD_PROMPTS_REF * dose_bq / DOSE_REF_BQ * decay_factor(uptake_s - 35 * 60.0)
    rf = float(rng.uniform(0.20, 0.30))
    sf = float(rng.uniform(0.28, 0.36))
    n_trues = n_prompts * (1 - rf) * (1 - sf)
    eta = n_trues / float(t0.sum())
    trues = eta * t0
    scatter = (n_prompts * (1 - rf) * sf) * scatter_shape(trues, proj.bin_mm, spacing[2])
    randoms = np.full(trues.shape, n_prompts * rf / trues.size, np.float32)
    expected = (trues + scatter + randoms).astype(np.float64)
    fd = rng.poisson(expected).astype(np.float32)
    ld = thin_counts(fd, LD_FRACTION, rng)
    bg = (scatter + randoms).astype(np.float32)
    common = dict(iterations=profile.iterations, psf_sigmas_bins=model_sig, device=device)
    recon = {
        "FD": osem(proj, fd, eta=eta, attenuation=att_true, background=bg, **common),
        "LD": osem(proj, ld, eta=eta * LD_FRACTION, attenuation=att_true, background=bg * LD_FRACTION,
                   **common),
        "MAC": osem(proj, fd, eta=eta, attenuation=att_ct, background=bg, **common),
        "NAC": osem(proj, fd, eta=eta, attenuation=None, background=randoms, **common),
    }
    post = [profile.postfilter_fwhm_mm * FWHM_TO_SIGMA / s for s in spacing[::-1]]
    images = {k: ndimage.gaussian_filter(proj.to_volume(v), post).clip(0.0) for k, v in recon.items()}
    info = {
        "prompts_fd": int(fd.sum()),
        "prompts_ld": int(ld.sum()),
        "expected_prompts_fd": float(expected.sum()),
        "ld_fraction": LD_FRACTION,
        "scatter_fraction": sf,
        "randoms_fraction": rf,
        "sensitivity_counts_per_suv_mm": float(eta),
        "sinogram": [proj.n_angles, proj.n_bins, nz],
        "projector_nnz": int(proj.nnz),
        "support_radius_mm": float(proj.support_radius_mm),
        "osem": {"iterations": profile.iterations, "subsets": profile.subsets,
                 "psf_model_fwhm_mm": list(profile.psf_model_fwhm_mm),
                 "psf_data_fwhm_mm": list(profile.psf_fwhm_mm),
                 "postfilter_fwhm_mm": profile.postfilter_fwhm_mm},
    }
    return images, info


_PROJECTORS: Dict[tuple, ParallelProjector] = {}


def get_projector(profile, nx: int, ny: int, spacing) -> ParallelProjector:
    """The projector for a profile's PET grid, built once per process and kept.

    Parameters
    ----------
    profile : Profile
        The :class:`~RobustDeepLogic.simulate.profiles.Profile` (``n_angles``, ``subsets``,
        ``support_radius_mm``; ``name`` is part of the cache key).
    nx, ny : int
        Slice size in pixels (ITK x, y).
    spacing : sequence of float
        Voxel size ``(x, y, ...)`` in mm; the first two are used.

    Returns
    -------
    ParallelProjector
        The cached projector for these settings.
    """
    key = (profile.name, nx, ny, tuple(spacing[:2]), profile.n_angles, profile.subsets,
           profile.support_radius_mm)
    if key not in _PROJECTORS:
        _PROJECTORS[key] = ParallelProjector(nx, ny, spacing[:2], profile.n_angles,
                                             profile.support_radius_mm, profile.subsets)
    return _PROJECTORS[key]

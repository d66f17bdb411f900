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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np
from scipy import ndimage

from RobustDeepLogic.simulate.pet_physics import (
    FWHM_TO_SIGMA,
    ParallelProjector,
    blur_sinogram,
    osem,
    psf_sigmas,
    scatter_shape,
    thin_counts,
)

FD_PROMPTS_REF = 3.0e8  # expected prompts of a full-dose brain scan at the reference dose


DOSE_REF_BQ = 205e6


LD_FRACTION = 0.05


HALF_LIFE_S = 6586.2  # 18F


SUV_TISSUE = {"csf": 0.25, "muscle": 1.0, "fat": 0.4, "bone": 0.3, "diploe": 1.2, "air": 0.0}


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


@dataclass
class FdgModel:
    """Random FDG parameters of one subject (JSON-able)."""

    wm_suv: float
    gm_wm: float
    pattern: Optional[str]  # None or 'temporoparietal'
    pattern_sides: Tuple[float, ...]
    pattern_severity: float
    field_phase: Tuple[float, ...]

    def to_meta(self) -> Dict[str, Any]:
        return {"wm_suv": self.wm_suv, "gm_wm_ratio": self.gm_wm, "hypometabolism": self.pattern,
                "hypometabolism_sides": ["left" if s > 0 else "right" for s in self.pattern_sides],
                "hypometabolism_severity": self.pattern_severity}

    def gm_factor(self, q: np.ndarray) -> Dict[str, np.ndarray]:
        """Regional multiplier of grey-matter activity at atlas points ``q`` (N, 3) LPS mm."""
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
    """True FDG activity (SUV, float32 ``[z, y, x]``) from tissue fractions on the PET grid."""
    gm = fr["gm"] * fdg.gm_wm * fdg.wm_suv * fr["gm_factor"]
    brain = gm + fr["wm"] * fdg.wm_suv
    brain = brain * (1.0 - 0.7 * np.clip(fr["lesion"] / np.maximum(fr["gm"] + fr["wm"], 1e-6), 0, 1))
    fat = fr["fat"]
    a = brain + fr["csf"] * SUV_TISSUE["csf"] + fr["bone"] * SUV_TISSUE["bone"]
    a += fr["diploe"] * SUV_TISSUE["diploe"]
    a += fr["soft"] * (fat * SUV_TISSUE["fat"] + (1 - fat) * SUV_TISSUE["muscle"])
    return a.astype(np.float32)


def decay_factor(seconds: float) -> float:
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
    """The physics chain for one subject on its PET grid.

    Parameters
    ----------
    activity:
        True SUV, ``[z, y, x]``.
    mu_true, mu_ct:
        511 keV attenuation (per mm) on the PET grid: the truth, and the CT-derived map.
    spacing:
        PET voxel size (x, y, z) mm.
    profile:
        The :class:`~RobustDeepLogic.simulate.profiles.Profile` (angles, subsets, PSF ...).

    Returns
    -------
    images:
        ``FD``, ``LD``, ``MAC``, ``NAC`` float32 ``[z, y, x]`` in SUV units (NAC: SUV-scaled,
        not attenuation corrected).
    info:
        Counts, scatter and randoms fractions, sensitivity.
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
    """The profile's projector, built once per process."""
    key = (profile.name, nx, ny, tuple(spacing[:2]), profile.n_angles, profile.subsets,
           profile.support_radius_mm)
    if key not in _PROJECTORS:
        _PROJECTORS[key] = ParallelProjector(nx, ny, spacing[:2], profile.n_angles,
                                             profile.support_radius_mm, profile.subsets)
    return _PROJECTORS[key]

"""T1- and T2-weighted MR from tissue relaxation times through signal equations.

Relaxation values (ms) and proton densities are BrainWeb-like literature values (e.g. Collins et al.,
IEEE TMI 17(3) 1998; the brainweb20 tissue table): GM 1050/85, WM 700/70, CSF 3000/2500,
fat 350/70, muscle 900/50, skull 350/15 (low proton density), air none.

- **T1**: spoiled gradient echo, ``S = PD sin(a) (1 - E1) / (1 - cos(a) E1) exp(-TE/T2)``,
  ``E1 = exp(-TR/T1)``, TR 18 ms, TE 3 ms, flip 30 degrees (T1 contrast: WM > GM > CSF).
- **T2**: spin echo, ``S = PD (1 - exp(-TR/T1)) exp(-TE/T2)``, TR 4000 ms, TE 100 ms (CSF bright).

Voxel signals are the fraction-weighted sum of tissue signals (partial volume), multiplied by a smooth
bias field (+-10 to 20 %, a low-order random field), then corrupted by Rician noise
(``|S + n1 + i n2|``, Gaussian n1, n2 with sigma 2 to 3.5 % of the white-matter signal). Values are
arbitrary units scaled so that white matter on T1 is about 1000; :mod:`.cohort` stores them as int16.
The tissue fractions come from :func:`~RobustDeepLogic.simulate.anatomy.sample_tissues`. See
``docs/simulation.md`` §4.
"""

from __future__ import annotations

import math
from typing import Dict, Tuple

import numpy as np

#: tissue -> (T1 ms, T2 ms, proton density)
RELAXATION: Dict[str, Tuple[float, float, float]] = {
    "gm": (1050.0, 85.0, 0.86),
    "wm": (700.0, 70.0, 0.77),
    "csf": (3000.0, 2500.0, 1.00),
    "fat": (350.0, 70.0, 1.00),
    "muscle": (900.0, 50.0, 0.85),
    "bone": (350.0, 15.0, 0.10),
    "diploe": (400.0, 40.0, 0.40),  # marrow: some fat
    "lesion": (1500.0, 160.0, 0.92),  # oedema / gliosis: long T1 and T2
    "air": (1.0, 1.0, 0.0),
}

#: The T1-weighted spoiled gradient echo: TR and TE in ms, flip angle in degrees.
T1_SEQUENCE = {"tr_ms": 18.0, "te_ms": 3.0, "flip_deg": 30.0}

#: The T2-weighted spin echo: TR and TE in ms.
T2_SEQUENCE = {"tr_ms": 4000.0, "te_ms": 100.0}


def spgr_signal(t1: float, t2: float, pd: float, tr: float, te: float, flip_deg: float) -> float:
    """Spoiled gradient-echo steady-state signal (a.u.).

    ``S = PD sin(a) (1 - E1) / (1 - cos(a) E1) exp(-TE/T2)`` with ``E1 = exp(-TR/T1)``.

    Parameters
    ----------
    t1, t2 : float
        Relaxation times of the tissue, in ms.
    pd : float
        Proton density, relative (0 to 1).
    tr, te : float
        Repetition and echo times, in ms.
    flip_deg : float
        Flip angle ``a``, in degrees.

    Returns
    -------
    float
        The signal, in the units of ``pd``.
    """
    e1 = math.exp(-tr / t1)
    a = math.radians(flip_deg)
    return pd * math.sin(a) * (1 - e1) / (1 - math.cos(a) * e1) * math.exp(-te / t2)


def spin_echo_signal(t1: float, t2: float, pd: float, tr: float, te: float) -> float:
    """Spin-echo signal (a.u.): ``S = PD (1 - exp(-TR/T1)) exp(-TE/T2)``.

    Parameters
    ----------
    t1, t2 : float
        Relaxation times of the tissue, in ms.
    pd : float
        Proton density, relative (0 to 1).
    tr, te : float
        Repetition and echo times, in ms.

    Returns
    -------
    float
        The signal, in the units of ``pd``.
    """
    return pd * (1 - math.exp(-tr / t1)) * math.exp(-te / t2)


def tissue_signals(weighting: str) -> Dict[str, float]:
    """Signal of every tissue of :data:`RELAXATION` for ``'T1'`` or ``'T2'`` weighting.

    Parameters
    ----------
    weighting : str
        ``'T1'``: :func:`spgr_signal` with :data:`T1_SEQUENCE`; anything else: :func:`spin_echo_signal`
        with :data:`T2_SEQUENCE`.

    Returns
    -------
    dict of str to float
        Tissue name -> signal (a.u., unscaled).
    """
    out = {}
    for name, (t1, t2, pd) in RELAXATION.items():
        if weighting == "T1":
            out[name] = spgr_signal(t1, t2, pd, T1_SEQUENCE["tr_ms"], T1_SEQUENCE["te_ms"],
                                    T1_SEQUENCE["flip_deg"])
        else:
            out[name] = spin_echo_signal(t1, t2, pd, T2_SEQUENCE["tr_ms"], T2_SEQUENCE["te_ms"])
    return out


def bias_field(shape: Tuple[int, int, int], rng: np.random.Generator, amplitude: float) -> np.ndarray:
    """A smooth multiplicative bias field ``exp(b)``.

    ``b`` is a random sum of products of low-order Legendre polynomials (degree <= 2 per axis, over
    [-1, 1] across the volume) scaled so that max |b| = ``amplitude``.

    Parameters
    ----------
    shape : tuple of 3 int
        The volume's array shape, ``(z, y, x)``.
    rng : numpy.random.Generator
        Source of the 27 coefficients (the subject's ``t1`` or ``t2`` stream).
    amplitude : float
        Largest absolute value of ``b`` (0.10 to 0.20 in a simulated cohort: a field within about
        +-10 to 20 %).

    Returns
    -------
    numpy.ndarray
        float32 array of ``shape``, values in ``[exp(-amplitude), exp(amplitude)]``.
    """
    coeff = rng.standard_normal((3, 3, 3))
    basis = []
    for n in shape:
        t = np.linspace(-1.0, 1.0, n)
        basis.append(np.stack([np.ones_like(t), t, 1.5 * t * t - 0.5], axis=1))  # (n, 3)
    b = np.einsum("ijk,zi,yj,xk->zyx", coeff, basis[0], basis[1], basis[2], optimize=True)
    b *= amplitude / max(float(np.abs(b).max()), 1e-9)
    return np.exp(b).astype(np.float32)


def mr_image(fractions: Dict[str, np.ndarray], weighting: str, rng: np.random.Generator, *,
             noise_fraction: float, bias_amplitude: float) -> np.ndarray:
    """One MR volume (float32 ``[z, y, x]``, WM on T1 about 1000 a.u.) from tissue fractions.

    The fraction-weighted tissue signals (the lesion overlay replaces brain tissue in proportion, the
    soft tissue mixes fat and muscle by ``fractions['fat']``), scaled so that pure white matter on T1
    is 1000, multiplied by :func:`bias_field`, then made Rician: ``|S + n1 + i n2|``.

    Parameters
    ----------
    fractions : dict of str to numpy.ndarray
        Tissue fractions on the MR grid, float32 ``[z, y, x]``, from
        :func:`~RobustDeepLogic.simulate.anatomy.sample_tissues`.
    weighting : str
        ``'T1'`` or ``'T2'`` (anything but ``'T1'`` gives T2 weighting).
    rng : numpy.random.Generator
        The subject's ``t1`` or ``t2`` stream (:mod:`.streams`): the bias field, then the noise.
    noise_fraction : float
        Standard deviation of each Gaussian component ``n1``, ``n2`` as a fraction of 1000 a.u. (the
        white-matter signal on T1); 0.02 to 0.035 in a simulated cohort.
    bias_amplitude : float
        The ``amplitude`` of :func:`bias_field` (0.10 to 0.20).

    Returns
    -------
    numpy.ndarray
        float32 ``[z, y, x]`` magnitude signal in a.u. (non-negative), the shape of the fractions.
    """
    sig = tissue_signals(weighting)
    ref = tissue_signals("T1")["wm"]
    lesion = fractions["lesion"]
    keep = 1.0 - lesion
    s = (fractions["gm"] * sig["gm"] + fractions["wm"] * sig["wm"]) * keep
    s += (fractions["gm"] + fractions["wm"]) * lesion * sig["lesion"]
    s += fractions["csf"] * sig["csf"] + fractions["bone"] * sig["bone"]
    s += fractions["diploe"] * sig["diploe"]
    fat = fractions["fat"]
    s += fractions["soft"] * (fat * sig["fat"] + (1.0 - fat) * sig["muscle"])
    s = s / ref * 1000.0
    s *= bias_field(s.shape, rng, bias_amplitude)
    sigma = noise_fraction * 1000.0
    n1 = rng.standard_normal(s.shape, dtype=np.float32) * sigma
    n2 = rng.standard_normal(s.shape, dtype=np.float32) * sigma
    return np.sqrt((s + n1) ** 2 + n2 ** 2).astype(np.float32)

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
arbitrary units scaled so that white matter on T1 is about 1000, stored as int16.
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


T1_SEQUENCE = {"tr_ms": 18.0, "te_ms": 3.0, "flip_deg": 30.0}


T2_SEQUENCE = {"tr_ms": 4000.0, "te_ms": 100.0}


def spgr_signal(t1: float, t2: float, pd: float, tr: float, te: float, flip_deg: float) -> float:
    """Spoiled gradient-echo steady-state signal (a.u.)."""
    e1 = math.exp(-tr / t1)
    a = math.radians(flip_deg)
    return pd * math.sin(a) * (1 - e1) / (1 - math.cos(a) * e1) * math.exp(-te / t2)


def spin_echo_signal(t1: float, t2: float, pd: float, tr: float, te: float) -> float:
    """Spin-echo signal (a.u.)."""
    return pd * (1 - math.exp(-tr / t1)) * math.exp(-te / t2)


def tissue_signals(weighting: str) -> Dict[str, float]:
    """Signal of every tissue of :data:`RELAXATION` for ``'T1'`` or ``'T2'`` weighting."""
    out = {}
    for name, (t1, t2, pd) in RELAXATION.items():
        if weighting == "T1":
            out[name] = spgr_signal(t1, t2, pd, T1_SEQUENCE["tr_ms"], T1_SEQUENCE["te_ms"],
                                    T1_SEQUENCE["flip_deg"])
        else:
            out[name] = spin_echo_signal(t1, t2, pd, T2_SEQUENCE["tr_ms"], T2_SEQUENCE["te_ms"])
    return out


def bias_field(shape: Tuple[int, int, int], rng: np.random.Generator, amplitude: float) -> np.ndarray:
    """A smooth multiplicative field ``exp(b)``: ``b`` a random sum of products of low-order
    Legendre polynomials (degree <= 2 per axis) scaled so that max |b| = ``amplitude``."""
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

    ``fractions`` from :func:`~RobustDeepLogic.simulate.anatomy.sample_tissues`; the lesion overlay
    replaces brain tissue in proportion.
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

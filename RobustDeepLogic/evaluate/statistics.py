"""Statistics across patients: mean +- SD, paired t-tests, relative improvement (method.md section 8).

Conventions (the paper's): SD is the sample standard deviation (ddof = 1); the t-test is Student's
paired t-test over the patients present in both scenarios, two-sided, significance at p < 0.05;
relative improvement from a baseline A to a new scenario B is ``100 (A - B) / A`` for metrics where
lower is better (RMSE, MAE) and ``100 (B - A) / A`` where higher is better (SSIM, PSNR, slope, R^2),
computed on the means over patients (the paper's "PR -> PM2 improves RMSE by 29 %":
LD->FD 0.28 -> 0.20).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from scipy.special import stdtr

from RobustDeepLogic.core.errors import InputError

#: Metrics where a smaller value is better.
LOWER_IS_BETTER = frozenset({"rmse", "mae", "mean_abs_rel_error_pct"})


#: The paper's comparisons, in this order, kept when both scenarios are present.
DEFAULT_PAIRS: Tuple[Tuple[str, str], ...] = (
    ("PU", "PR"), ("PR", "PM1"), ("PR", "PM2"), ("PM1", "PM2"), ("PU", "PM2"),
)


ALPHA = 0.05


@dataclass(frozen=True)
class Summary:
    """Mean and sample SD (ddof = 1) of the finite values; ``n`` counts them."""

    mean: float
    sd: float
    n: int

    def format(self, digits: int = 3) -> str:
        if self.n == 0:
            return "-"
        if self.n == 1 or not math.isfinite(self.sd):
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.sd:.{digits}f}"


def summarize(values: Iterable[float]) -> Summary:
    """Mean +- SD over finite values (NaN and inf are left out)."""
    v = np.asarray([float(x) for x in values], dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return Summary(float("nan"), float("nan"), 0)
    sd = float(np.std(v, ddof=1)) if v.size > 1 else float("nan")
    return Summary(float(v.mean()), sd, int(v.size))


@dataclass(frozen=True)
class PairedTest:
    """Student's paired t-test of B against A over ``n`` patients (two-sided)."""

    n: int
    mean_a: float
    mean_b: float
    mean_difference: float  # mean of (B - A)
    t: float
    df: int
    p: float

    @property
    def significant(self) -> bool:
        return math.isfinite(self.p) and self.p < ALPHA


def paired_t_test(a: Sequence[float], b: Sequence[float]) -> PairedTest:
    """Paired t-test: ``t = mean(d) / (sd(d) / sqrt(n))``, ``d = b - a``, ``df = n - 1``,
    two-sided p from Student's t distribution. Pairs with a non-finite member are dropped.

    Fewer than two pairs give NaN. Identical pairs (sd(d) = 0) give t = 0, p = 1 when the mean
    difference is 0 and t = +-inf, p = 0 otherwise.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.shape} vs {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    n = int(a.size)
    nan = float("nan")
    if n < 2:
        return PairedTest(n, float(a.mean()) if n else nan, float(b.mean()) if n else nan,
                          float((b - a).mean()) if n else nan, nan, max(n - 1, 0), nan)
    d = b - a
    md = float(d.mean())
    sd = float(d.std(ddof=1))
    if sd == 0:
        t, p = (0.0, 1.0) if md == 0 else (math.copysign(math.inf, md), 0.0)
    else:
        t = md / (sd / math.sqrt(n))
        p = float(2.0 * stdtr(n - 1, -abs(t)))
    return PairedTest(n, float(a.mean()), float(b.mean()), md, float(t), n - 1, p)


def relative_improvement(baseline: float, new: float, metric: str) -> float:
    """Improvement in % from ``baseline`` to ``new`` (positive = better); see the module docstring."""
    if not (math.isfinite(baseline) and math.isfinite(new)) or baseline == 0:
        return float("nan")
    if metric in LOWER_IS_BETTER:
        return 100.0 * (baseline - new) / baseline
    return 100.0 * (new - baseline) / baseline


def values_by_patient(rows: Iterable[Mapping[str, Any]], metric: str) -> Dict[str, float]:
    """``{patient: value}`` of one metric from already-filtered rows (one row per patient)."""
    out: Dict[str, float] = {}
    for r in rows:
        out[str(r["patient"])] = float(r.get(metric, float("nan")))
    return out


def compare(
    rows_a: Iterable[Mapping[str, Any]],
    rows_b: Iterable[Mapping[str, Any]],
    metric: str,
) -> Tuple[PairedTest, float]:
    """Paired test over the patients both scenarios have, and the relative improvement A -> B (%)."""
    va = values_by_patient(rows_a, metric)
    vb = values_by_patient(rows_b, metric)
    common = sorted(set(va) & set(vb))
    test = paired_t_test([va[p] for p in common], [vb[p] for p in common])
    return test, relative_improvement(test.mean_a, test.mean_b, metric)


def default_pairs(scenarios: Sequence[str]) -> List[Tuple[str, str]]:
    """The paper's pairs present in ``scenarios``; if none, consecutive pairs in the given order."""
    present = set(scenarios)
    pairs = [p for p in DEFAULT_PAIRS if p[0] in present and p[1] in present]
    if pairs:
        return pairs
    return list(zip(scenarios[:-1], scenarios[1:]))


def parse_pairs(text: Optional[str]) -> Optional[List[Tuple[str, str]]]:
    """``"PU:PR,PM1:PM2"`` -> ``[("PU", "PR"), ("PM1", "PM2")]``; None or empty -> None."""
    if not text:
        return None
    pairs = []
    for item in str(text).split(","):
        item = item.strip()
        if not item:
            continue
        if ":" not in item:
            raise InputError(f"a comparison is A:B, got {item!r}", hint="e.g. --pairs PU:PR,PM1:PM2")
        a, b = (s.strip() for s in item.split(":", 1))
        pairs.append((a, b))
    return pairs or None

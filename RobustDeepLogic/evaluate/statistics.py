"""Statistics across patients: mean +- SD, paired t-tests, relative improvement (docs/method.md §8).

Conventions (the paper's): SD is the sample standard deviation (ddof = 1); the t-test is Student's
paired t-test over the patients present in both scenarios, two-sided, significance at p < 0.05;
relative improvement from a baseline A to a new scenario B is ``100 (A - B) / A`` for metrics where
lower is better (RMSE, MAE) and ``100 (B - A) / A`` where higher is better (SSIM, PSNR, slope, R^2),
computed on the means over patients (the paper's "PR -> PM2 improves RMSE by 29 %":
LD->FD 0.28 -> 0.20; docs/method.md §9). The functions work on the rows of ``metrics.csv``
(:func:`RobustDeepLogic.evaluate.results.read_metrics_csv`) or on plain numbers.
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

#: Significance level of the paired t-tests (p < ALPHA).
ALPHA = 0.05


@dataclass(frozen=True)
class Summary:
    """Mean and sample SD (ddof = 1) of the finite values; ``n`` counts them.

    Attributes
    ----------
    mean : float
        Mean of the finite values; NaN when there is none.
    sd : float
        Sample standard deviation (ddof = 1); NaN with fewer than two values.
    n : int
        Number of finite values.
    """

    mean: float
    sd: float
    n: int

    def format(self, digits: int = 3) -> str:
        """The summary as text: ``"mean ± sd"``.

        Parameters
        ----------
        digits : int, optional
            Digits after the decimal point (default 3).

        Returns
        -------
        str
            ``"-"`` when ``n`` is 0, the mean alone when the SD is undefined (one value), else
            ``"mean ± sd"``.
        """
        if self.n == 0:
            return "-"
        if self.n == 1 or not math.isfinite(self.sd):
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.sd:.{digits}f}"


def summarize(values: Iterable[float]) -> Summary:
    """Mean +- SD over finite values (NaN and inf are left out).

    Parameters
    ----------
    values : iterable of float
        The values, e.g. one metric of every patient.

    Returns
    -------
    Summary
        Their mean, sample SD (ddof = 1) and count.
    """
    v = np.asarray([float(x) for x in values], dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return Summary(float("nan"), float("nan"), 0)
    sd = float(np.std(v, ddof=1)) if v.size > 1 else float("nan")
    return Summary(float(v.mean()), sd, int(v.size))


@dataclass(frozen=True)
class PairedTest:
    """Student's paired t-test of B against A over ``n`` patients (two-sided).

    Attributes
    ----------
    n : int
        Number of pairs used (both values finite).
    mean_a, mean_b : float
        Means of A and of B over those pairs.
    mean_difference : float
        Mean of ``B - A``.
    t : float
        The t statistic; NaN with fewer than two pairs.
    df : int
        Degrees of freedom, ``n - 1`` (0 when ``n`` is 0).
    p : float
        Two-sided p-value; NaN with fewer than two pairs.

    References
    ----------
    .. [1] docs/method.md §8 (paired t-tests, significance at p < 0.05).
    """

    n: int
    mean_a: float
    mean_b: float
    mean_difference: float  # mean of (B - A)
    t: float
    df: int
    p: float

    @property
    def significant(self) -> bool:
        """Whether p < :data:`ALPHA` (0.05); False when p is NaN."""
        return math.isfinite(self.p) and self.p < ALPHA


def paired_t_test(a: Sequence[float], b: Sequence[float]) -> PairedTest:
    """Student's paired t-test of ``b`` against ``a``, two-sided.

    ``t = mean(d) / (sd(d) / sqrt(n))``, ``d = b - a``, ``df = n - 1``, two-sided p from Student's t
    distribution. Pairs with a non-finite member are dropped.

    Fewer than two pairs give NaN t and p. Identical pairs (sd(d) = 0) give t = 0, p = 1 when the mean
    difference is 0 and t = +-inf, p = 0 otherwise.

    Parameters
    ----------
    a : sequence of float
        The baseline's values, one per patient.
    b : sequence of float
        The other scenario's values, for the same patients in the same order.

    Returns
    -------
    PairedTest
        n, the means, the mean difference, t, df and p.

    Raises
    ------
    ValueError
        If ``a`` and ``b`` differ in length.

    References
    ----------
    .. [1] docs/method.md §8.
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
    """Improvement in % from ``baseline`` to ``new`` (positive = better); see the module docstring.

    Parameters
    ----------
    baseline : float
        The baseline's value (mean over patients), A.
    new : float
        The new scenario's value, B.
    metric : str
        The metric's name: those in :data:`LOWER_IS_BETTER` count a decrease as an improvement,
        all others an increase.

    Returns
    -------
    float
        ``100 (A - B) / A`` or ``100 (B - A) / A``; NaN when a value is not finite or A is 0.

    References
    ----------
    .. [1] docs/method.md §9 (the paper's PR -> PM2 improvements).
    """
    if not (math.isfinite(baseline) and math.isfinite(new)) or baseline == 0:
        return float("nan")
    if metric in LOWER_IS_BETTER:
        return 100.0 * (baseline - new) / baseline
    return 100.0 * (new - baseline) / baseline


def values_by_patient(rows: Iterable[Mapping[str, Any]], metric: str) -> Dict[str, float]:
    """``{patient: value}`` of one metric from already-filtered rows (one row per patient).

    Parameters
    ----------
    rows : iterable of mapping
        Rows of ``metrics.csv`` of one task, scenario, units and region; a later row of the same
        patient replaces an earlier one.
    metric : str
        The column, e.g. ``'rmse'``; a row without it gives NaN.

    Returns
    -------
    dict of str to float
        The value of each patient.
    """
    out: Dict[str, float] = {}
    for r in rows:
        out[str(r["patient"])] = float(r.get(metric, float("nan")))
    return out


def compare(
    rows_a: Iterable[Mapping[str, Any]],
    rows_b: Iterable[Mapping[str, Any]],
    metric: str,
) -> Tuple[PairedTest, float]:
    """Paired test over the patients both scenarios have, and the relative improvement A -> B (%).

    Parameters
    ----------
    rows_a, rows_b : iterable of mapping
        Rows of scenarios A and B (one per patient; see :func:`values_by_patient`).
    metric : str
        The column compared, e.g. ``'rmse'``.

    Returns
    -------
    test : PairedTest
        :func:`paired_t_test` of B against A over the common patients, in sorted id order.
    improvement : float
        :func:`relative_improvement` from A's mean to B's mean over the pairs the test used, in %.
    """
    va = values_by_patient(rows_a, metric)
    vb = values_by_patient(rows_b, metric)
    common = sorted(set(va) & set(vb))
    test = paired_t_test([va[p] for p in common], [vb[p] for p in common])
    return test, relative_improvement(test.mean_a, test.mean_b, metric)


def default_pairs(scenarios: Sequence[str]) -> List[Tuple[str, str]]:
    """The paper's pairs present in ``scenarios``; if none, consecutive pairs in the given order.

    Parameters
    ----------
    scenarios : sequence of str
        The scenarios that have results.

    Returns
    -------
    list of tuple of str
        ``(A, B)`` pairs: those of :data:`DEFAULT_PAIRS` whose two scenarios are present, in that
        order; if none, each scenario with the next one.
    """
    present = set(scenarios)
    pairs = [p for p in DEFAULT_PAIRS if p[0] in present and p[1] in present]
    if pairs:
        return pairs
    return list(zip(scenarios[:-1], scenarios[1:]))


def parse_pairs(text: Optional[str]) -> Optional[List[Tuple[str, str]]]:
    """``"PU:PR,PM1:PM2"`` -> ``[("PU", "PR"), ("PM1", "PM2")]``; None or empty -> None.

    Parameters
    ----------
    text : str, optional
        Comma-separated ``A:B`` pairs (spaces around names are ignored), as ``--pairs`` takes them.

    Returns
    -------
    list of tuple of str or None
        The pairs, or None when ``text`` is None or holds none.

    Raises
    ------
    InputError
        If an item has no ``:``.
    """
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

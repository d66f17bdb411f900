"""Which parents: the pool of real patients, ordered parent pairs, synthetic subject ids (docs/method.md §6).

Each ordered pair ``(i, j)`` of distinct real patients can make one synthetic subject, so ``N``
patients give ``N (N - 1)``. :func:`select_pool` picks the patients that may be parents,
:func:`choose_pairs` the pairs, :func:`subject_id` names the result. Blending a pair is in
:mod:`RobustDeepLogic.synthesis.subjects`.
"""

from __future__ import annotations

from typing import (
    List,
    Optional,
    Sequence,
    Tuple,
)

import numpy as np

from RobustDeepLogic.cohort.manifest import Cohort
from RobustDeepLogic.core.errors import InputError


# --------------------------------------------------------------------------------------------------
# Pairs
# --------------------------------------------------------------------------------------------------
def choose_pairs(
    ids: Sequence[str],
    *,
    count: Optional[int] = None,
    per_patient: Optional[int] = None,
    all_pairs: bool = False,
    seed: int = 0,
) -> List[Tuple[str, str]]:
    """Ordered parent pairs ``(x1, x2)``, ``x1 != x2``, never repeated (docs/method.md §6).

    Exactly one of:

    - ``all_pairs``: all ``N (N - 1)`` ordered pairs, in a fixed order;
    - ``count``: ``count`` distinct pairs drawn at random from them;
    - ``per_patient``: ``K`` pairs per patient as ``x1``, where every patient is also ``x2`` exactly
      ``K`` times (``K`` distinct cyclic shifts of a random permutation).

    The result depends only on the set of ``ids`` and ``seed`` (ids are sorted first).

    Parameters
    ----------
    ids : sequence of str
        The ids of the patients that may be parents (duplicates are dropped).
    count : int, optional
        The number of pairs to draw, from 1 to ``N (N - 1)``.
    per_patient : int, optional
        ``K``, from 1 to ``N - 1``.
    all_pairs : bool, optional
        Take every ordered pair (default False).
    seed : int, optional
        Seed of numpy's ``default_rng`` for ``count`` and ``per_patient`` (default 0).

    Returns
    -------
    list of tuple of (str, str)
        The pairs ``(x1, x2)``; mask value 1 takes ``x1``.

    Raises
    ------
    InputError
        Not exactly one of the three modes is chosen, there are fewer than 2 ids, or ``count`` /
        ``per_patient`` is out of range.

    References
    ----------
    docs/method.md §6: ``N`` patients give ``N (N - 1)`` ordered pairs.
    """
    pool = sorted(set(str(i) for i in ids))
    n = len(pool)
    modes = sum([bool(all_pairs), count is not None, per_patient is not None])
    if modes != 1:
        raise InputError("choose exactly one of --count N, --per-patient K or --all-pairs")
    if n < 2:
        raise InputError(f"synthesis needs at least 2 parent patients, the pool has {n}",
                         hint="check --patients / --folds and the cohort's splits")
    total = n * (n - 1)
    rng = np.random.default_rng(int(seed))
    if all_pairs:
        return [(a, b) for a in pool for b in pool if a != b]
    if count is not None:
        if int(count) < 1 or int(count) > total:
            raise InputError(f"--count must lie in 1..{total} for {n} patients (N(N-1) pairs), got {count}")
        picks = rng.choice(total, size=int(count), replace=False)
        out = []
        for p in picks:
            i, r = divmod(int(p), n - 1)
            j = r if r < i else r + 1
            out.append((pool[i], pool[j]))
        return out
    k = int(per_patient)  # type: ignore[arg-type]
    if k < 1 or k > n - 1:
        raise InputError(f"--per-patient must lie in 1..{n - 1} for {n} patients, got {per_patient}")
    perm = rng.permutation(n)
    shifts = rng.choice(np.arange(1, n), size=k, replace=False)
    return [(pool[perm[i]], pool[perm[(i + int(s)) % n]]) for s in shifts for i in range(n)]


def select_pool(
    cohort: Cohort,
    patients: Optional[Sequence[str]] = None,
    folds: Optional[Sequence[int]] = None,
) -> List[str]:
    """The real patients that may become parents of synthetic subjects.

    They are not synthetic, not in the ``test`` split, and (when given) among ``patients`` and in
    ``folds``. Giving only the training folds of a cross-validation run keeps its validation patients
    out of the parents (docs/method.md §6).

    Parameters
    ----------
    cohort : Cohort
        The source cohort (:class:`~RobustDeepLogic.cohort.Cohort`).
    patients : sequence of str, optional
        The ids to choose from; None or empty: every real patient outside the test split.
    folds : sequence of int, optional
        Keep only patients whose cross-validation fold is one of these (patients without a fold are
        dropped); None or empty: no fold filter.

    Returns
    -------
    list of str
        The ids, sorted.

    Raises
    ------
    InputError
        A patient of ``patients`` is unknown, in the test split, or synthetic.
    """
    if patients:
        for pid in patients:
            p = cohort.patient(pid)
            if p.split == "test":
                raise InputError("is a held-out test patient and cannot be a parent",
                                 file=cohort.manifest_path, patient=pid)
            if p.is_synthetic:
                raise InputError("is synthetic; parents must be real patients",
                                 file=cohort.manifest_path, patient=pid)
        chosen = [cohort.patient(pid) for pid in patients]
    else:
        chosen = [p for p in cohort.patients if not p.is_synthetic and p.split != "test"]
    if folds:
        wanted = {int(f) for f in folds}
        chosen = [p for p in chosen if p.fold is not None and p.fold in wanted]
    return sorted({p.id for p in chosen})


def subject_id(parent1: str, parent2: str, tag: str) -> str:
    """The id (and folder name) of the synthetic subject of ``parent1`` x ``parent2`` under mask ``tag``.

    Parameters
    ----------
    parent1, parent2 : str
        The ids of the parents ``x1`` and ``x2``.
    tag : str
        The mask's tag (:func:`~RobustDeepLogic.masks.presets.mask_tag`).

    Returns
    -------
    str
        ``syn-PARENT1-PARENT2-TAG``, each part with characters other than letters, digits, ``-``, ``_``
        and ``.`` replaced by ``_``.
    """
    safe = lambda s: "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in s)  # noqa: E731
    return f"syn-{safe(parent1)}-{safe(parent2)}-{safe(tag)}"

"""TODO docstring (RobustDeepLogic.synthesis)."""

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
    """Ordered parent pairs ``(x1, x2)``, ``x1 != x2``, never repeated (method.md §6).

    Exactly one of:

    - ``all_pairs``: all ``N (N - 1)`` ordered pairs, in a fixed order;
    - ``count``: ``count`` distinct pairs drawn at random from them;
    - ``per_patient``: ``K`` pairs per patient as ``x1``, where every patient is also ``x2`` exactly
      ``K`` times (``K`` distinct cyclic shifts of a random permutation).

    The result depends only on the set of ``ids`` and ``seed`` (ids are sorted first).
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
    """The real patients that may become parents: not synthetic, not in the ``test`` split, and (when
    given) among ``patients`` and in ``folds``. Naming a test or unknown patient is an error."""
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
    """The id (and folder name) of the synthetic subject of ``parent1`` x ``parent2`` under mask ``tag``."""
    safe = lambda s: "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in s)  # noqa: E731
    return f"syn-{safe(parent1)}-{safe(parent2)}-{safe(tag)}"

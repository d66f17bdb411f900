"""Patient-level cross-validation folds and a held-out test set, with no leakage (docs/method.md §2, §6).

Splitting is by real patient, never by slice: every slice of a patient lies on one side. A synthetic
subject belongs to the training set of a fold only when *all* its parents are training patients of
that fold; otherwise the validation (or test) patients would leak into training through their blended
offspring. :func:`check_no_leakage` is the guard that refuses such a subject.

Where the cohort manifest already holds ``split`` (``train`` / ``test``) and ``fold`` for its real
patients, those are used as they are; otherwise the test set and folds are drawn with a seeded
permutation (:func:`assign_folds`), which is stored in the run folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np

from RobustDeepLogic.core.errors import InputError


@dataclass(frozen=True)
class FoldPlan:
    """Held-out test patients and the validation patients of each fold (real patient ids).

    ``folds[k]`` lists the validation patients of fold ``k``; its training patients are all the other
    non-test patients.

    Attributes
    ----------
    test : tuple of str
        The held-out test patients.
    folds : tuple of tuple of str
        The validation patients of each fold; with a single fold, its patients are the training set
        and there is no validation.
    """

    test: tuple
    folds: tuple  # tuple of tuples of patient ids

    @property
    def k(self) -> int:
        """The number of folds."""
        return len(self.folds)

    @property
    def development(self) -> List[str]:
        """All non-test real patients (training + validation over the folds)."""
        return [pid for fold in self.folds for pid in fold]

    def validation(self, fold: int) -> List[str]:
        """Validation patients of a fold.

        Parameters
        ----------
        fold : int
            Fold index, 0 to ``k - 1``.

        Returns
        -------
        list of str
            ``folds[fold]`` (with ``k == 1``, the training patients: see :meth:`held_out`).
        """
        return list(self.folds[fold])

    def training(self, fold: int) -> List[str]:
        """Real training patients of a fold: every fold but ``fold``; all of them when ``k == 1``.

        Parameters
        ----------
        fold : int
            Fold index, 0 to ``k - 1``.

        Returns
        -------
        list of str
            Patient ids.
        """
        if self.k == 1:
            return list(self.folds[0])
        return [pid for i, f in enumerate(self.folds) if i != fold for pid in f]

    def held_out(self, fold: int) -> List[str]:
        """Patients that must not reach training in a fold: its validation and the test patients.

        Parameters
        ----------
        fold : int
            Fold index, 0 to ``k - 1``.

        Returns
        -------
        list of str
            The fold's validation patients (none when ``k == 1``), then the test patients.
        """
        return (self.validation(fold) if self.k > 1 else []) + list(self.test)

    def as_dict(self) -> Dict[str, list]:
        """The plan for JSON or YAML.

        Returns
        -------
        dict
            ``{"test": [...], "folds": [[...], ...]}``.
        """
        return {"test": list(self.test), "folds": [list(f) for f in self.folds]}

    @classmethod
    def from_dict(cls, data: Mapping) -> "FoldPlan":
        """The plan from :meth:`as_dict`'s form.

        Parameters
        ----------
        data : mapping
            ``{"test": [...], "folds": [[...], ...]}``.

        Returns
        -------
        FoldPlan
        """
        return cls(tuple(data["test"]), tuple(tuple(f) for f in data["folds"]))


def fold_seed(seed: int, fold: int) -> int:
    """The seed of a fold's synthetic subjects, from a study seed (the same on disk and on the fly).

    Parameters
    ----------
    seed : int
        The study's seed.
    fold : int
        Fold index.

    Returns
    -------
    int
        ``seed + 7919 * fold``.
    """
    return int(seed) + 7919 * int(fold)


def assign_folds(
    patient_ids: Sequence[str],
    *,
    k: int = 5,
    test: Optional[Sequence[str]] = None,
    test_fraction: float = 10 / 45,
    seed: int = 0,
    preset_splits: Optional[Mapping[str, Optional[str]]] = None,
    preset_folds: Optional[Mapping[str, Optional[int]]] = None,
) -> FoldPlan:
    """Split real patients into a held-out test set and ``k`` validation folds.

    Parameters
    ----------
    patient_ids : sequence of str
        Real patient ids (synthetic subjects are never split; they follow their parents). Duplicates
        are dropped.
    k : int, optional
        Number of folds (5 in the study). ``k = 1`` trains on all development patients with no
        validation set.
    test : sequence of str, optional
        Explicit test patients; else the manifest's ``split == 'test'`` patients; else a seeded draw of
        ``round(test_fraction * n)`` patients (10 of 45 in the study).
    test_fraction : float, optional
        Fraction of the patients drawn for the test set when neither ``test`` nor a preset split
        names one.
    seed : int, optional
        Seed of the draws (test set, then folds).
    preset_splits, preset_folds : mapping, optional
        The manifest's ``split`` and ``fold`` per patient id. The ``'test'`` splits give the test set
        (see ``test``); the folds are used as they are when ``k > 1``, every development patient has a
        fold in ``0..k-1`` and no fold is empty; otherwise the folds are a seeded draw.

    Returns
    -------
    FoldPlan
        The test patients, and ``k`` folds of development patients (each sorted when drawn).

    Raises
    ------
    InputError
        ``k < 1``; a test patient not in ``patient_ids``; fewer development patients than folds.

    References
    ----------
    .. [1] docs/method.md §2 (35 training patients in 5 folds, 10 test patients) and §6.
    """
    ids = list(dict.fromkeys(str(p) for p in patient_ids))
    if k < 1:
        raise InputError(f"folds must be at least 1, got {k}")
    rng = np.random.default_rng(seed)
    if test is not None:
        test_ids = [str(t) for t in test]
        unknown = [t for t in test_ids if t not in ids]
        if unknown:
            raise InputError(f"test patients {unknown} are not real patients of the cohort")
    elif preset_splits and any(s == "test" for s in preset_splits.values()):
        test_ids = [p for p in ids if preset_splits.get(p) == "test"]
    else:
        n_test = int(round(test_fraction * len(ids)))
        test_ids = [ids[i] for i in sorted(rng.permutation(len(ids))[:n_test])]
    dev = [p for p in ids if p not in set(test_ids)]
    if len(dev) < k:
        raise InputError(
            f"{len(dev)} development patients cannot make {k} folds",
            hint="use fewer folds (--folds) or a smaller test set",
        )
    preset = {p: (preset_folds or {}).get(p) for p in dev}
    if k > 1 and all(f is not None and 0 <= int(f) < k for f in preset.values()):
        folds = [tuple(p for p in dev if int(preset[p]) == i) for i in range(k)]
        if all(folds):
            return FoldPlan(tuple(test_ids), tuple(folds))
    order = [dev[i] for i in rng.permutation(len(dev))]
    folds = [tuple(sorted(order[i::k])) for i in range(k)]
    return FoldPlan(tuple(test_ids), tuple(folds))


def allowed_synthetic(
    parents_of: Mapping[str, Sequence[str]], training: Iterable[str]
) -> tuple:
    """Split synthetic subjects into allowed and refused ones for a training set of real patients.

    A subject is allowed when all of its parents are in ``training``; one with no parents is refused.

    Parameters
    ----------
    parents_of : mapping of str to sequence of str
        Synthetic subject id -> its parents' ids.
    training : iterable of str
        The real training patients.

    Returns
    -------
    allowed, refused : list of str
        Subject ids, in the order of ``parents_of``.

    References
    ----------
    .. [1] docs/method.md §6, our rule on synthetic subjects and folds.
    """
    train = set(training)
    allowed, refused = [], []
    for sid, parents in parents_of.items():
        (allowed if parents and set(parents) <= train else refused).append(sid)
    return allowed, refused


def check_no_leakage(
    subject: str, parents: Sequence[str], held_out: Iterable[str], *, fold: Optional[int] = None
) -> None:
    """Refuse a training subject descending from a held-out (validation or test) patient.

    Parameters
    ----------
    subject : str
        The subject's id, named in the error.
    parents : sequence of str
        Its parents' ids (``[subject]`` for a real patient).
    held_out : iterable of str
        Patients that must not reach training (:meth:`FoldPlan.held_out`).
    fold : int, optional
        The fold, named in the error.

    Raises
    ------
    InputError
        Naming the subject and the held-out parents.
    """
    bad = sorted(set(parents) & set(held_out))
    if bad:
        where = f" of fold {fold}" if fold is not None else ""
        raise InputError(
            f"synthetic subject descends from held-out patients {bad}{where}: using it would leak "
            "them into training",
            patient=subject,
            hint="synthesise the training subjects of each fold from that fold's training patients only",
        )

"""The MR scaling constants, computed from a cohort's training patients (docs/method.md §3.2).

MR has no physical unit, so its fixed constant (:class:`~RobustDeepLogic.cohort.scaling.Scaling`) is
taken from the data: the median, over the training patients, of each one's 99.5th percentile of
non-zero voxels (:func:`mr_scaling`). Held-out test patients never contribute: by default the
patients whose manifest ``split`` is ``"test"`` are left out, and a training run, which knows its own
test patients (``test_ids`` or a seeded draw), computes the constants again from its non-test patients
(:func:`run_mr_scaling`) whenever the manifest's constants are data-derived.

A manifest's constants are data-derived when :func:`store_mr_scaling` wrote them: it records, under
``cohort.meta["mr_scaling"]``, the percentile, the patients used and the constants. A constant edited
by hand afterwards (or written without that record) is the user's fixed choice and is kept as is.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import SimpleITK as sitk

from RobustDeepLogic.cohort.manifest import Cohort
from RobustDeepLogic.cohort.patient import Patient
from RobustDeepLogic.cohort.scaling import Scaling
from RobustDeepLogic.core.modalities import MR_FAMILY
from RobustDeepLogic.io.volumes import read_volume

#: The key of ``cohort.meta`` under which :func:`store_mr_scaling` records how the constants were made.
MR_SCALING_META = "mr_scaling"

#: The percentile of each image's non-zero voxels (docs/method.md §3.2).
MR_PERCENTILE = 99.5


def _mr_patients(cohort: Cohort, patients: Optional[Sequence[Patient]]) -> List[Patient]:
    """The patients whose images set the MR constants: ``patients`` (default: the cohort's patients
    whose split is not ``"test"``), synthetic subjects left out."""
    chosen = [p for p in cohort.patients if p.split != "test"] if patients is None else patients
    return [p for p in chosen if not p.is_synthetic]


def mr_scaling(cohort: Cohort, patients: Optional[Sequence[Patient]] = None,
               percentile: float = MR_PERCENTILE) -> Dict[str, Scaling]:
    """Fixed MR constants: the median over patients of each one's ``percentile`` of non-zero voxels.

    Every image is then divided by the same constant (docs/method.md §3.2). Synthetic subjects are
    never used; neither, by default, are the held-out test patients.

    Parameters
    ----------
    cohort : Cohort
        The cohort whose T1 and T2 images are read.
    patients : sequence of Patient, optional
        The patients to use (e.g. a run's training patients); None for the cohort's real patients
        whose ``split`` is not ``"test"``.
    percentile : float, optional
        The percentile (0 to 100) of each image's non-zero voxels.

    Returns
    -------
    dict of str to Scaling
        ``"T1"`` and ``"T2"`` -> ``Scaling(constant, 0, unit)``, for the modalities that any of the
        patients has; the unit is the cohort's (``"a.u."`` by default).
    """
    used = _mr_patients(cohort, patients)
    result = {}
    for modality in MR_FAMILY:
        values = []
        for p in used:
            if modality in p.modalities:
                arr = sitk.GetArrayFromImage(read_volume(cohort.path(p, modality)))
                nonzero = arr[arr > 0]
                if nonzero.size:
                    values.append(float(np.percentile(nonzero, percentile)))
        if values:
            result[modality] = Scaling(float(np.median(values)), 0.0, cohort.units.get(modality, "a.u."))
    return result


def store_mr_scaling(cohort: Cohort, patients: Optional[Sequence[Patient]] = None,
                     percentile: float = MR_PERCENTILE) -> Dict[str, Scaling]:
    """Compute the MR constants (:func:`mr_scaling`) into ``cohort.scaling``, recorded as data-derived.

    ``cohort.meta["mr_scaling"]`` receives ``{"percentile", "patients", "constants"}``, which lets a
    training run recompute them from its own training patients (:func:`run_mr_scaling`). The cohort
    is not saved.

    Parameters
    ----------
    cohort : Cohort
        The cohort; its ``scaling`` and ``meta`` are updated in memory.
    patients : sequence of Patient, optional
        As for :func:`mr_scaling` (default: the real patients whose split is not ``"test"``).
    percentile : float, optional
        The percentile of each image's non-zero voxels.

    Returns
    -------
    dict of str to Scaling
        The constants stored (empty when no patient has an MR image).
    """
    used = _mr_patients(cohort, patients)
    constants = mr_scaling(cohort, used, percentile)
    if constants:
        cohort.scaling.update(constants)
        cohort.meta[MR_SCALING_META] = {
            "percentile": float(percentile),
            "patients": [p.id for p in used],
            "constants": {m: s.scale for m, s in constants.items()},
        }
    return constants


def derived_mr_record(cohort: Cohort) -> Optional[Dict[str, Any]]:
    """The record of :func:`store_mr_scaling` when the manifest's MR constants are still those it made.

    Parameters
    ----------
    cohort : Cohort
        The cohort.

    Returns
    -------
    dict or None
        ``cohort.meta["mr_scaling"]`` when every constant it lists equals the manifest's; None when
        there is no record or a constant was changed since (a user's fixed choice).
    """
    record = cohort.meta.get(MR_SCALING_META)
    if not isinstance(record, dict) or not isinstance(record.get("constants"), dict):
        return None
    for modality, scale in record["constants"].items():
        current = cohort.scaling.get(modality)
        if current is None or float(current.scale) != float(scale) or current.offset != 0:
            return None
    return record


def run_mr_scaling(cohort: Cohort, training_ids: Sequence[str],
                   modalities: Sequence[str]) -> Dict[str, Scaling]:
    """The MR constants of a training run: computed from its training patients when data-derived.

    Only the MR modalities among ``modalities`` whose manifest constant is data-derived
    (:func:`derived_mr_record`) are computed again, from ``training_ids`` (the run's non-test
    patients) with the recorded percentile; the others keep the manifest's constant.

    Parameters
    ----------
    cohort : Cohort
        The cohort of the run's real patients.
    training_ids : sequence of str
        The run's real non-test patients (all of its folds' training and validation patients).
    modalities : sequence of str
        The run's modalities (target and inputs).

    Returns
    -------
    dict of str to Scaling
        The recomputed constants (empty when none is data-derived or the task has no MR modality).

    Raises
    ------
    InputError
        When a patient id is not in the cohort (:meth:`Cohort.patient`).
    """
    record = derived_mr_record(cohort)
    wanted = [m for m in modalities if m in MR_FAMILY]
    if record is None or not wanted:
        return {}
    patients = [cohort.patient(pid) for pid in training_ids]
    constants = mr_scaling(cohort, patients, float(record.get("percentile", MR_PERCENTILE)))
    return {m: s for m, s in constants.items() if m in wanted and m in record["constants"]}

"""What a fold trained on: ``RUN/fold<k>/subjects.json`` (real patients, synthetic subjects).

Training writes it when a fold starts (:func:`write_fold_subjects`); the study's report reads it
(:func:`read_fold_subjects`) to show the subjects per fold that were trained on, not the configured
cap. The rest of the run folder is in :mod:`RobustDeepLogic.training.runs`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

from RobustDeepLogic.core.files import atomic_write_text
from RobustDeepLogic.core.types import PathLike
from RobustDeepLogic.training.runs import fold_dir

#: The file in a fold's folder that lists the subjects the fold trains on.
SUBJECTS_FILE = "subjects.json"


def write_fold_subjects(run_dir: PathLike, fold: int, real: List[str], synthetic: List[str]) -> Path:
    """Record the subjects a fold trains on, in ``RUN/fold<k>/subjects.json`` (atomically).

    Parameters
    ----------
    run_dir : str or os.PathLike
        The run folder.
    fold : int
        The fold.
    real, synthetic : list of str
        The ids of its real training patients and of its synthetic subjects (from disk, or made on
        the fly).

    Returns
    -------
    pathlib.Path
        The file written.
    """
    path = fold_dir(run_dir, fold) / SUBJECTS_FILE  # atomic_write_text makes the folder
    record = {"fold": int(fold), "real": list(real), "synthetic": list(synthetic)}
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    return path


def read_fold_subjects(run_dir: PathLike, fold: int) -> Dict[str, Any]:
    """The subjects a fold trained on (:func:`write_fold_subjects`); empty when not recorded.

    Parameters
    ----------
    run_dir : str or os.PathLike
        The run folder.
    fold : int
        The fold.

    Returns
    -------
    dict
        ``{"fold": int, "real": [ids], "synthetic": [ids]}``, or ``{}`` for a fold not started.
    """
    path = fold_dir(run_dir, fold) / SUBJECTS_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

"""What a study folder holds for review: its record, the predictions of each task and arm, and the
evaluation's metrics (``study.json``, ``predictions/<task>/<arm>/<patient>.nii.gz``,
``evaluation/metrics.csv``, as ``robustdeep reproduce`` writes them).

:class:`StudyResults` is a part of :class:`RobustDeepStudio.workspace.Project`. Free of trame and of
Slicer: tested with plain pytest.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Dict, List, Optional

from RobustDeepLogic.cohort import get_task

#: The file that marks a study folder (``robustdeep reproduce`` / ``demo``).
STUDY_FILE = "study.json"


class StudyResults:
    """The review accessors of a project (``root``, ``kind`` and ``cohort()`` are the project's)."""

    root: Path
    kind: str

    def cohort(self, registered: bool = False) -> Any:  # pragma: no cover - the project's
        """The project's cohort (:meth:`RobustDeepStudio.workspace.Project.cohort` implements it).

        Parameters
        ----------
        registered : bool, optional
            The registered cohort instead of the native one.

        Returns
        -------
        RobustDeepLogic.cohort.Cohort
            The cohort.
        """
        raise NotImplementedError

    def study_record(self) -> Dict[str, object]:
        """The study's ``study.json`` ({} for a cohort).

        Returns
        -------
        dict
            The record, as parsed from JSON.
        """
        if self.kind != "study":
            return {}
        return json.loads((self.root / STUDY_FILE).read_text())

    def review_tasks(self) -> List[str]:
        """Tasks with predictions (``predictions/<task>/``), in the study's order.

        Returns
        -------
        list of str
            The study's tasks first, in its order, then the others by name; [] without predictions.
        """
        folder = self.root / "predictions"
        if not folder.is_dir():
            return []
        order = list(self.study_record().get("tasks", []))
        found = sorted(p.name for p in folder.iterdir() if p.is_dir())
        return [t for t in order if t in found] + [t for t in found if t not in order]

    def review_arms(self, task: str) -> List[str]:
        """Arms with predictions for ``task`` (``predictions/<task>/<arm>/``).

        Parameters
        ----------
        task : str
            A task of :meth:`review_tasks`.

        Returns
        -------
        list of str
            Sorted; [] when the task has no predictions folder.
        """
        folder = self.root / "predictions" / task
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    def review_patients(self, task: str, arm: str) -> List[str]:
        """Test patients with a prediction for ``task`` in ``arm`` (``<patient>.nii.gz`` files).

        Parameters
        ----------
        task, arm : str
            A task of :meth:`review_tasks` and one of its arms.

        Returns
        -------
        list of str
            Patient ids, sorted; [] when the arm has no predictions folder.
        """
        folder = self.root / "predictions" / task / arm
        if not folder.is_dir():
            return []
        return sorted(p.name[: -len(".nii.gz")] for p in folder.glob("*.nii.gz"))

    def review_paths(self, task: str, arm: str, patient: str) -> Dict[str, Path]:
        """The prediction of ``patient`` and its reference (the task's target in the native cohort).

        Parameters
        ----------
        task, arm, patient : str
            A task, an arm and a test patient of :meth:`review_patients`.

        Returns
        -------
        dict
            ``{"prediction": path, "reference": path, "modality": target modality}``.
        """
        target = get_task(task).target
        return {"prediction": self.root / "predictions" / task / arm / f"{patient}.nii.gz",
                "reference": self.cohort().path(patient, target), "modality": target}

    def metric_rows(self, task: str, arm: Optional[str] = None, units: str = "physical") -> List[Dict[str, str]]:
        """The evaluation's head-region rows of ``task`` (of one arm, or of all) (``evaluation/metrics.csv``).

        Parameters
        ----------
        task : str
            The task.
        arm : str, optional
            The arm (the rows' ``scenario``); None: every arm.
        units : {'physical', 'scaled'}, optional
            Which rows.

        Returns
        -------
        list of dict
            One row per test patient (and arm); [] before evaluation.
        """
        path = self.root / "evaluation" / "metrics.csv"
        if not path.is_file():
            return []
        with open(path, newline="") as fh:
            return [r for r in csv.DictReader(fh) if r["task"] == task and arm in (None, r["scenario"])
                    and r["units"] == units and r["region"] == "head"]


__all__ = ["STUDY_FILE", "StudyResults"]

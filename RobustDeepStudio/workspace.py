"""The studio's workspace: the one folder it may read and write, and the study or cohort opened in it.

Everything the studio shows or writes is inside the workspace root given to ``robustdeep studio``:
:meth:`Workspace.resolve` refuses a path that leaves it (``..``, an absolute path elsewhere, a symbolic
link pointing out). A workspace holds study folders (``robustdeep reproduce`` / ``demo``: a
``study.json``) and cohort folders (a ``manifest.json``); :meth:`Workspace.projects` finds them, and
:class:`Project` says where a project's parts are (its cohort, the registered cohort, the template,
the QC table, predictions, evaluation).

Free of trame and of Slicer: tested with plain pytest.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from RobustDeepLogic.cohort import MANIFEST_NAME, Cohort
from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.types import PathLike
from RobustDeepLogic.registration.assets import asset_path
from RobustDeepStudio.results import STUDY_FILE, StudyResults

#: Where the studio keeps its own records (jobs) inside the workspace.
STUDIO_DIR = ".robustdeep-studio"
#: Folders never searched for projects.
_SKIP = {"__pycache__", "node_modules", ".git", STUDIO_DIR}


class WorkspaceError(InputError):
    """A path outside the workspace, or a folder that is not a study or a cohort."""


@dataclass(frozen=True)
class ProjectEntry:
    """One study or cohort folder found in the workspace.

    Attributes
    ----------
    relative : str
        Its path relative to the workspace root (``.`` for the root itself).
    kind : {'study', 'cohort'}
        What it is.
    label : str
        What the studio lists: the path, the kind and the number of patients.
    """

    relative: str
    kind: str
    label: str


class Workspace:
    """The root folder of a studio session.

    Parameters
    ----------
    root : path-like
        An existing folder: a study, a cohort, or a folder holding several.

    Raises
    ------
    WorkspaceError
        When ``root`` is not an existing folder.
    """

    def __init__(self, root: PathLike) -> None:
        path = Path(root).expanduser()
        if not path.is_dir():
            raise WorkspaceError("the workspace is not an existing folder", file=str(path),
                                 hint="give a study folder (robustdeep demo), a cohort folder, or their parent")
        self.root = path.resolve()

    def resolve(self, relative: PathLike) -> Path:
        """The absolute path of ``relative`` (relative to the root, or absolute), refused outside the root.

        Parameters
        ----------
        relative : path-like
            A path inside the workspace.

        Returns
        -------
        pathlib.Path
            The resolved path (symbolic links followed).

        Raises
        ------
        WorkspaceError
            When the path leaves the workspace.
        """
        path = (self.root / Path(relative)).resolve()
        if path != self.root and self.root not in path.parents:
            raise WorkspaceError(f"{relative}: outside the workspace {self.root}",
                                 hint="the studio reads and writes inside its workspace only")
        return path

    def relative(self, path: PathLike) -> str:
        """``path`` relative to the root, with ``/`` separators (``.`` for the root).

        Parameters
        ----------
        path : path-like
            A path inside the workspace.

        Returns
        -------
        str
            The relative path.
        """
        rel = self.resolve(path).relative_to(self.root).as_posix()
        return rel or "."

    def projects(self, max_depth: int = 3) -> List[ProjectEntry]:
        """The study and cohort folders in the workspace, the root included, at most ``max_depth`` deep.

        A study's own cohort folders (``cohort``, ``registered``, ...) are listed after it; hidden
        folders are skipped.

        Parameters
        ----------
        max_depth : int, optional
            How many folder levels below the root are searched.

        Returns
        -------
        list of ProjectEntry
            Sorted by path.
        """
        found: List[ProjectEntry] = []
        for folder, names, files in os.walk(self.root):
            here = Path(folder)
            depth = len(here.relative_to(self.root).parts)
            names[:] = sorted(n for n in names if not n.startswith(".") and n not in _SKIP)
            if depth >= max_depth:
                names[:] = []
            kind = "study" if STUDY_FILE in files else "cohort" if MANIFEST_NAME in files else None
            if kind is None:
                continue
            rel = self.relative(here)
            try:
                count = len(Cohort.load(here)) if kind == "cohort" else None
            except (InputError, OSError, ValueError):
                continue
            label = f"{rel} (study)" if kind == "study" else f"{rel} (cohort, {count} patients)"
            found.append(ProjectEntry(rel, kind, label))
        return sorted(found, key=lambda e: e.relative)

    def project(self, relative: PathLike) -> "Project":
        """The study or cohort at ``relative``.

        Parameters
        ----------
        relative : path-like
            A folder of :meth:`projects`.

        Returns
        -------
        Project
            Where its parts are.

        Raises
        ------
        WorkspaceError
            When the folder is outside the workspace, or neither a study nor a cohort.
        """
        path = self.resolve(relative)
        if (path / STUDY_FILE).is_file():
            return Project(self, path, "study")
        if (path / MANIFEST_NAME).is_file():
            return Project(self, path, "cohort")
        raise WorkspaceError("neither a study (study.json) nor a cohort (manifest.json)", file=str(path),
                             hint="open a folder made by robustdeep demo / reproduce / simulate / cohort import")

    @property
    def studio_dir(self) -> Path:
        """The folder of the studio's own records (made when the first job is recorded)."""
        return self.root / STUDIO_DIR


@dataclass
class Project(StudyResults):
    """A study or cohort opened in the studio, and where its parts are.

    Attributes
    ----------
    workspace : Workspace
        The workspace it is in.
    root : pathlib.Path
        Its folder.
    kind : {'study', 'cohort'}
        A study folder (``study.json``) or a cohort folder (``manifest.json``).
    """

    workspace: Workspace
    root: Path
    kind: str

    @property
    def cohort_dir(self) -> Path:
        """The patients as acquired: a study's ``cohort/``, else the cohort folder itself."""
        return self.root / "cohort" if self.kind == "study" else self.root

    @property
    def registered_dir(self) -> Optional[Path]:
        """The registered cohort, or None: a study's ``registered/``; a cohort in template space itself;
        a native cohort's registration by the studio (:meth:`registration_out`) once finished."""
        if self.kind == "study":
            folder = self.root / "registered"
        elif Cohort.load(self.root).space == "template":
            return self.root
        else:
            folder = self.registration_out()
        return folder if (folder / MANIFEST_NAME).is_file() else None

    def cohort(self, registered: bool = False) -> Cohort:
        """The cohort (``registered``: the registered one), loaded from its manifest.

        Parameters
        ----------
        registered : bool, optional
            Load the registered cohort instead of the native one.

        Returns
        -------
        Cohort
            The engine's cohort.

        Raises
        ------
        WorkspaceError
            When a registered cohort is asked for and there is none yet.
        """
        folder = self.registered_dir if registered else self.cohort_dir
        if folder is None:
            raise WorkspaceError("this project has no registered cohort yet", file=str(self.root),
                                 hint="run the registration first (Registration panel)")
        return Cohort.load(folder)

    def template_path(self, registered: Optional[Path] = None) -> Path:
        """The template a registered cohort is on.

        Parameters
        ----------
        registered : pathlib.Path, optional
            A registered cohort folder; default: :attr:`registered_dir`.

        Returns
        -------
        pathlib.Path
            Its ``template/fdg_template.nii.gz``, else the assets' MNI PET template.

        Raises
        ------
        InputError
            When the assets' template is needed and not prepared (``robustdeep assets``).
        """
        reg = registered if registered is not None else self.registered_dir
        if reg is not None and (reg / "template" / "fdg_template.nii.gz").is_file():
            return reg / "template" / "fdg_template.nii.gz"
        return asset_path("spm_pet")

    def registration_out(self) -> Path:
        """Where the Registration panel registers the cohort.

        Never over a study's own ``registered/``: the study made it, with its splits and folds.

        Returns
        -------
        pathlib.Path
            ``registered-studio/`` in a study; ``<cohort>-registered`` beside a cohort folder, or
            ``registered/`` inside it when the cohort is the workspace itself (nothing beside it is
            the studio's to write).
        """
        if self.kind == "study":
            return self.root / "registered-studio"
        if self.root == self.workspace.root:
            return self.root / "registered"
        return self.workspace.resolve(self.root.parent / f"{self.root.name}-registered")

    def registration_dir(self) -> Optional[Path]:
        """The registered cohort the Registration panel shows.

        Returns
        -------
        pathlib.Path or None
            Its own registration (:meth:`registration_out`) once finished, else the project's
            :attr:`registered_dir`, else None.
        """
        out = self.registration_out()
        return out if (out / MANIFEST_NAME).is_file() else self.registered_dir

    def qc_rows(self) -> List[Dict[str, str]]:
        """The QC table (``registration_qc.csv``) of :meth:`registration_dir`, or [] before registration.

        Returns
        -------
        list of dict
            One row per patient, as written by ``robustdeep register``.
        """
        folder = self.registration_dir()
        if folder is None or not (folder / "registration_qc.csv").is_file():
            return []
        with open(folder / "registration_qc.csv", newline="") as fh:
            return list(csv.DictReader(fh))

    @property
    def masks_dir(self) -> Path:
        """Where masks made in the studio are saved."""
        return self.root / "masks"

    def saved_masks(self) -> List[str]:
        """The masks saved in :attr:`masks_dir`, relative to the workspace (as mask choices).

        Returns
        -------
        list of str
            Sorted paths.
        """
        return sorted(self.workspace.relative(p) for p in self.masks_dir.glob("*.nii*"))


__all__ = ["Project", "ProjectEntry", "STUDIO_DIR", "STUDY_FILE", "Workspace", "WorkspaceError"]

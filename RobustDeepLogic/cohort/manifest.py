"""A cohort on disk: one folder per patient, one file per modality, and a manifest.

Layout::

    COHORT/
      manifest.json            # this module's Cohort, written atomically
      P001/FD.nii.gz           # any subset of FD LD NAC MAC CT T1 T2, any supported format
      P001/CT.nii.gz
      ...

The manifest lists, for every patient (real or synthetic): its modalities with paths relative to the
cohort folder, its split (``train`` / ``test``) and cross-validation fold, and its provenance
(``{"kind": "real"}``, or for a synthetic subject ``{"kind": "synthetic", "parents": [...],
"mask": ..., "levels": ..., "seed": ..., "method": ..., "version": ...}``). At cohort level it holds
the space (``native`` or ``template``), the unit of every modality, the fixed scaling constants
(:class:`~RobustDeepLogic.cohort.scaling.Scaling`), the declared tasks, and free-form metadata (e.g. the
simulation's true poses). Making a cohort from other layouts is :mod:`.importer`; checking one :mod:`.check`.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import (
    Any,
    Dict,
    Iterable,
    Iterator,
    List,
    Optional,
    Sequence,
    Union,
)

import numpy as np

from RobustDeepLogic.cohort.patient import Patient
from RobustDeepLogic.cohort.scaling import DEFAULT_SCALING, Scaling
from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.files import atomic_write_text, json_default
from RobustDeepLogic.core.modalities import UNITS, normalise_modality
from RobustDeepLogic.core.types import PathLike
from RobustDeepLogic.core.version import __version__
from RobustDeepLogic.io.volumes import read_volume

#: File name of the manifest in a cohort folder.
MANIFEST_NAME = "manifest.json"

#: The manifest's ``format`` value.
MANIFEST_FORMAT = "robustdeep-cohort"

#: The manifest version this code writes; a newer one is refused on loading.
MANIFEST_VERSION = 1

#: Where a cohort's images are: each patient's own frame, or template (MNI) space.
SPACES = ("native", "template")


@dataclass
class Cohort:
    """A cohort folder and its manifest (``Cohort.load(folder)``, ``cohort.save()``).

    Attributes
    ----------
    root : pathlib.Path
        The cohort folder; relative modality paths start here.
    patients : list of Patient
        Real and synthetic subjects, in manifest order.
    space : {'native', 'template'}
        Whether the images are in each patient's frame or in template (MNI) space.
    scaling : dict of str to Scaling
        Fixed [0, 1] constant of each modality (docs/method.md §3.2); :data:`DEFAULT_SCALING` for a
        new cohort, only the manifest's entries for a loaded one.
    units : dict of str to str
        Physical unit of each modality (:data:`RobustDeepLogic.core.modalities.UNITS` by default).
    tasks : list of str
        Names of the declared tasks.
    meta : dict
        Free-form data (``tasks_defined`` for extra tasks, a simulation's true poses ...).
    """

    root: Path
    patients: List[Patient] = field(default_factory=list)
    space: str = "native"
    scaling: Dict[str, Scaling] = field(default_factory=lambda: dict(DEFAULT_SCALING))
    units: Dict[str, str] = field(default_factory=lambda: dict(UNITS))
    tasks: List[str] = field(default_factory=list)
    meta: Dict[str, Any] = field(default_factory=dict)

    # -- access ---------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Patient]:
        return iter(self.patients)

    def __len__(self) -> int:
        return len(self.patients)

    @property
    def ids(self) -> List[str]:
        """The patients' ids, in manifest order."""
        return [p.id for p in self.patients]

    def patient(self, pid: str) -> Patient:
        """The patient with id ``pid``.

        Parameters
        ----------
        pid : str
            A patient id.

        Returns
        -------
        Patient

        Raises
        ------
        InputError
            No patient has this id.
        """
        for p in self.patients:
            if p.id == pid:
                return p
        raise InputError(f"no patient {pid!r} in this cohort", file=self.manifest_path)

    def select(
        self,
        ids: Optional[Iterable[str]] = None,
        *,
        split: Optional[str] = None,
        synthetic: Optional[bool] = None,
    ) -> List[Patient]:
        """The patients that meet all the given conditions.

        Parameters
        ----------
        ids : iterable of str, optional
            Only these patients, in this order; None for all, in manifest order.
        split : str, optional
            Only patients of this split (``"train"`` or ``"test"``).
        synthetic : bool, optional
            Only synthetic (True) or only real (False) subjects.

        Returns
        -------
        list of Patient

        Raises
        ------
        InputError
            An id of ``ids`` is not in the cohort.
        """
        chosen = self.patients if ids is None else [self.patient(i) for i in ids]
        if split is not None:
            chosen = [p for p in chosen if p.split == split]
        if synthetic is not None:
            chosen = [p for p in chosen if p.is_synthetic == synthetic]
        return chosen

    @property
    def manifest_path(self) -> Path:
        """``root / "manifest.json"``."""
        return self.root / MANIFEST_NAME

    def path(self, patient: Union[str, Patient], modality: str) -> Path:
        """The file (or DICOM folder) of one modality of one patient.

        Parameters
        ----------
        patient : str or Patient
            The patient or its id.
        modality : str
            The modality, in any case.

        Returns
        -------
        pathlib.Path
            Under :attr:`root`, unless the manifest holds an absolute path.

        Raises
        ------
        InputError
            Unknown patient or modality, or the patient has no image of that modality.
        """
        p = patient if isinstance(patient, Patient) else self.patient(patient)
        modality = normalise_modality(modality)
        if modality not in p.modalities:
            raise InputError(f"has no {modality} image", file=self.manifest_path, patient=p.id)
        rel = Path(p.modalities[modality])
        return rel if rel.is_absolute() else self.root / rel

    def read(self, patient: Union[str, Patient], modality: str, dtype=np.float32):
        """Read the image of one modality of one patient, in the cohort's unit for it (:attr:`units`).

        Parameters
        ----------
        patient, modality
            As for :meth:`path`.
        dtype : type, optional
            float32 (the default), or None for the stored type.

        Returns
        -------
        SimpleITK.Image
            The volume with its geometry.

        Raises
        ------
        InputError
            As :meth:`path`, or the volume cannot be read (:func:`RobustDeepLogic.io.volumes.read_volume`).
        """
        pid = patient.id if isinstance(patient, Patient) else patient
        return read_volume(self.path(patient, modality), patient=pid, dtype=dtype)

    def scaling_for(self, modality: str) -> Scaling:
        """The fixed [0, 1] scaling of a modality (docs/method.md §3.2).

        Parameters
        ----------
        modality : str
            The modality, in any case.

        Returns
        -------
        Scaling

        Raises
        ------
        InputError
            Unknown modality, or the manifest has no constant for it.
        """
        modality = normalise_modality(modality)
        if modality not in self.scaling:
            raise InputError(
                f"no scaling constant for {modality}",
                file=self.manifest_path,
                hint="add it to the manifest's 'scaling' ({\"scale\": ..., \"offset\": 0}); "
                "'robustdeep cohort import' computes the MR constants of the patients it imports",
            )
        return self.scaling[modality]

    # -- changes --------------------------------------------------------------------------------
    def add(self, patient: Patient, *, replace: bool = False) -> None:
        """Add a patient at the end, or replace the one with its id in place; :meth:`save` writes it.

        Parameters
        ----------
        patient : Patient
            The patient.
        replace : bool, optional
            Replace a patient with the same id instead of refusing it.

        Raises
        ------
        InputError
            A patient with this id exists and ``replace`` is False.
        """
        for i, existing in enumerate(self.patients):
            if existing.id == patient.id:
                if not replace:
                    raise InputError("duplicate patient id", file=self.manifest_path, patient=patient.id)
                self.patients[i] = patient
                return
        self.patients.append(patient)

    def copy_for(self, root: PathLike, *, patients: Sequence[Patient] = ()) -> "Cohort":
        """A new cohort at ``root`` with copies of this one's space, scaling, units, tasks and meta.

        Parameters
        ----------
        root : str or pathlib.Path
            The new cohort's folder (nothing is written).
        patients : sequence of Patient, optional
            Patients to put in it (deep copies); none by default.

        Returns
        -------
        Cohort
        """
        return Cohort(
            root=Path(root),
            patients=[copy.deepcopy(p) for p in patients],
            space=self.space,
            scaling=dict(self.scaling),
            units=dict(self.units),
            tasks=list(self.tasks),
            meta=copy.deepcopy(self.meta),
        )

    # -- persistence ----------------------------------------------------------------------------
    def to_json(self) -> Dict[str, Any]:
        """The manifest as a dict ready for JSON.

        Returns
        -------
        dict
        """
        return {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "written_by": f"robustdeep {__version__}",
            "space": self.space,
            "units": self.units,
            "scaling": {m: s.as_dict() for m, s in self.scaling.items()},
            "tasks": self.tasks,
            "meta": self.meta,
            "patients": [p.to_json() for p in self.patients],
        }

    def save(self) -> Path:
        """Write the manifest atomically (the volumes are written by whoever makes them).

        Returns
        -------
        pathlib.Path
            :attr:`manifest_path`.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_json(), indent=1, default=json_default)
        return atomic_write_text(self.manifest_path, text + "\n")

    @classmethod
    def load(cls, root: PathLike) -> "Cohort":
        """Read a cohort's manifest.

        Parameters
        ----------
        root : str or pathlib.Path
            The cohort folder, or its manifest file.

        Returns
        -------
        Cohort

        Raises
        ------
        InputError
            No folder or manifest, unreadable JSON, not a RobustDeep manifest or a newer version, an
            unknown space, a bad or zero scaling constant, or a bad patient entry.
        """
        root = Path(root)
        manifest = root if root.is_file() else root / MANIFEST_NAME
        if manifest.is_file():
            root = manifest.parent
        if not root.exists():
            raise InputError("cohort folder not found", file=root)
        if not manifest.is_file():
            raise InputError(
                "no manifest.json in this folder",
                file=root,
                hint="make one with 'robustdeep cohort import' or 'robustdeep simulate'",
            )
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read the manifest ({exc})", file=manifest) from None
        if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
            raise InputError("not a RobustDeep cohort manifest", file=manifest)
        if int(data.get("version", 0)) > MANIFEST_VERSION:
            raise InputError(
                f"manifest version {data.get('version')} is newer than this RobustDeep understands",
                file=manifest,
                hint="update RobustDeep",
            )
        space = data.get("space", "native")
        if space not in SPACES:
            raise InputError(f"space must be one of {SPACES}, got {space!r}", file=manifest)
        scaling = {}
        for name, spec in (data.get("scaling") or {}).items():
            try:
                scaling[normalise_modality(name, file=manifest)] = Scaling(
                    float(spec["scale"]), float(spec.get("offset", 0.0)), str(spec.get("unit", ""))
                )
            except (KeyError, TypeError, ValueError):
                raise InputError(f"bad scaling entry for {name}: {spec!r}", file=manifest) from None
            if not np.isfinite(scaling[name.upper()].scale) or scaling[name.upper()].scale == 0:
                raise InputError(f"scaling constant of {name} must be finite and non-zero", file=manifest)
        units = dict(UNITS)
        units.update({normalise_modality(k, file=manifest): str(v) for k, v in (data.get("units") or {}).items()})
        patients = [Patient.from_json(p, file=manifest) for p in data.get("patients") or []]
        return cls(
            root=root,
            patients=patients,
            space=space,
            scaling=scaling,
            units=units,
            tasks=list(data.get("tasks") or []),
            meta=dict(data.get("meta") or {}),
        )

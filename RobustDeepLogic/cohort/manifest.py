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
(:class:`Scaling`), the declared tasks, and free-form metadata (e.g. the simulation's true poses).
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
    Mapping,
    Optional,
    Sequence,
    Union,
)

import numpy as np

from RobustDeepLogic.cohort.scaling import DEFAULT_SCALING, Scaling
from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.files import atomic_write_text
from RobustDeepLogic.core.modalities import UNITS, normalise_modality
from RobustDeepLogic.core.types import PathLike
from RobustDeepLogic.core.version import __version__
from RobustDeepLogic.io.volumes import read_volume

MANIFEST_NAME = "manifest.json"


MANIFEST_FORMAT = "robustdeep-cohort"


MANIFEST_VERSION = 1


SPACES = ("native", "template")


SPLITS = ("train", "test")


@dataclass
class Patient:
    """One subject of a cohort (real or synthetic)."""

    id: str
    modalities: Dict[str, str] = field(default_factory=dict)
    split: Optional[str] = None
    fold: Optional[int] = None
    provenance: Dict[str, Any] = field(default_factory=lambda: {"kind": "real"})
    meta: Dict[str, Any] = field(default_factory=dict)

    @property
    def is_synthetic(self) -> bool:
        return self.provenance.get("kind") == "synthetic"

    @property
    def parents(self) -> List[str]:
        return list(self.provenance.get("parents", [])) if self.is_synthetic else [self.id]

    def to_json(self) -> Dict[str, Any]:
        return {
            "id": self.id,
            "split": self.split,
            "fold": self.fold,
            "modalities": dict(self.modalities),
            "provenance": self.provenance,
            "meta": self.meta,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, file: Optional[PathLike] = None) -> "Patient":
        if "id" not in data:
            raise InputError("a patient entry has no 'id'", file=file)
        pid = str(data["id"])
        mods = {}
        for name, rel in (data.get("modalities") or {}).items():
            mods[normalise_modality(name, file=file)] = str(rel)
        split = data.get("split")
        if split is not None and split not in SPLITS:
            raise InputError(f"split must be one of {SPLITS}, got {split!r}", file=file, patient=pid)
        fold = data.get("fold")
        return cls(
            id=pid,
            modalities=mods,
            split=split,
            fold=None if fold is None else int(fold),
            provenance=dict(data.get("provenance") or {"kind": "real"}),
            meta=dict(data.get("meta") or {}),
        )


@dataclass
class Cohort:
    """A cohort folder and its manifest. Paths of modalities are relative to :attr:`root`."""

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
        return [p.id for p in self.patients]

    def patient(self, pid: str) -> Patient:
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
        chosen = self.patients if ids is None else [self.patient(i) for i in ids]
        if split is not None:
            chosen = [p for p in chosen if p.split == split]
        if synthetic is not None:
            chosen = [p for p in chosen if p.is_synthetic == synthetic]
        return chosen

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST_NAME

    def path(self, patient: Union[str, Patient], modality: str) -> Path:
        p = patient if isinstance(patient, Patient) else self.patient(patient)
        modality = normalise_modality(modality)
        if modality not in p.modalities:
            raise InputError(f"has no {modality} image", file=self.manifest_path, patient=p.id)
        rel = Path(p.modalities[modality])
        return rel if rel.is_absolute() else self.root / rel

    def read(self, patient: Union[str, Patient], modality: str, dtype=np.float32):
        """The SimpleITK image of one modality of one patient (float32 by default)."""
        pid = patient.id if isinstance(patient, Patient) else patient
        return read_volume(self.path(patient, modality), patient=pid, dtype=dtype)

    def scaling_for(self, modality: str) -> Scaling:
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
        for i, existing in enumerate(self.patients):
            if existing.id == patient.id:
                if not replace:
                    raise InputError("duplicate patient id", file=self.manifest_path, patient=patient.id)
                self.patients[i] = patient
                return
        self.patients.append(patient)

    def copy_for(self, root: PathLike, *, patients: Sequence[Patient] = ()) -> "Cohort":
        """An empty cohort at ``root`` with the same cohort-level settings (and ``patients``)."""
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
        """Write the manifest atomically (the volumes are written by whoever makes them)."""
        self.root.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_json(), indent=1, default=_json_default)
        return atomic_write_text(self.manifest_path, text + "\n")

    @classmethod
    def load(cls, root: PathLike) -> "Cohort":
        """Read ``root/manifest.json`` (``root`` may also be the manifest file itself)."""
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


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in a manifest")

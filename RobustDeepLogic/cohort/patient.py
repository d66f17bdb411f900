"""One subject of a cohort: :class:`Patient`, with its modalities, split, fold, provenance and
metadata, as the manifest stores it (:mod:`RobustDeepLogic.cohort.manifest` holds the cohort).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.modalities import normalise_modality
from RobustDeepLogic.core.types import PathLike

#: The values of a patient's ``split``.
SPLITS = ("train", "test")


@dataclass
class Patient:
    """One subject of a cohort (real or synthetic).

    Attributes
    ----------
    id : str
        Identifier, unique in the cohort.
    modalities : dict of str to str
        Modality (``"FD"`` ...) -> image path, relative to the cohort folder (or absolute).
    split : {'train', 'test'} or None
        ``"test"`` for a held-out test patient, ``"train"`` for a development one; None when not decided.
    fold : int or None
        Cross-validation fold (0-based), if assigned.
    provenance : dict
        ``{"kind": "real"}`` (the default) or a synthetic subject's origin (see the module doc).
    meta : dict
        Free-form data (e.g. where each modality was imported from).
    """

    id: str
    modalities: Dict[str, str] = field(default_factory=dict)
    split: Optional[str] = None
    fold: Optional[int] = None
    provenance: Dict[str, Any] = field(default_factory=lambda: {"kind": "real"})
    meta: Dict[str, Any] = field(default_factory=dict)

    @property
    def is_synthetic(self) -> bool:
        """Whether the provenance's ``kind`` is ``"synthetic"``."""
        return self.provenance.get("kind") == "synthetic"

    @property
    def parents(self) -> List[str]:
        """Ids of the real patients it comes from: its parents, or ``[id]`` for a real patient."""
        return list(self.provenance.get("parents", [])) if self.is_synthetic else [self.id]

    def to_json(self) -> Dict[str, Any]:
        """The manifest entry.

        Returns
        -------
        dict
            ``id``, ``split``, ``fold``, ``modalities``, ``provenance`` and ``meta``.
        """
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
        """A patient from its manifest entry (see :meth:`to_json`; only ``id`` is required).

        Parameters
        ----------
        data : mapping
            The entry.
        file : str or pathlib.Path, optional
            The manifest, named in error messages.

        Returns
        -------
        Patient
            Modality names normalised; no ``provenance`` means a real patient.

        Raises
        ------
        InputError
            No ``id``, an unknown modality, or a ``split`` outside :data:`SPLITS`.
        """
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

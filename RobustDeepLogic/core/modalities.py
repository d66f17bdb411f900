"""The modality vocabulary: the seven modalities of the study, their families and their units.

A modality is named by one of FD, LD, NAC, MAC, CT, T1, T2 (docs/method.md §2). The families say which
modalities share a grid and a frame (and so one transform to template space, docs/method.md §3.4).
Converting images to these units is :mod:`RobustDeepLogic.io.units`; the fixed [0, 1] scaling of
each modality is :mod:`RobustDeepLogic.cohort.scaling`; the names accepted on import (``t1w``,
``lowdose`` ...) are :data:`RobustDeepLogic.cohort.importer.ALIASES`.
"""

from __future__ import annotations

from typing import (
    Dict,
    Optional,
    Tuple,
)

from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.types import PathLike

#: The modalities of the study (docs/method.md §2), in a fixed order.
MODALITIES: Tuple[str, ...] = ("FD", "LD", "NAC", "MAC", "CT", "T1", "T2")

#: Modalities reconstructed from one PET acquisition: they share a grid and a frame.
PET_FAMILY: Tuple[str, ...] = ("FD", "LD", "NAC", "MAC")

#: The PET/CT frame: one rigid transform to template space moves all of these.
PETCT_FAMILY: Tuple[str, ...] = PET_FAMILY + ("CT",)

#: The MR modalities: each registered to the patient's CT (its PET when there is no CT), then
#: moved to template space with the PET/CT frame's transform.
MR_FAMILY: Tuple[str, ...] = ("T1", "T2")

#: Physical unit of each modality as stored in a cohort. NAC PET is in SUV-scaled units of the
#: uncorrected reconstruction (no attenuation correction: not a true SUV, lower in the centre).
UNITS: Dict[str, str] = {
    "FD": "SUV", "LD": "SUV", "MAC": "SUV", "NAC": "SUV",
    "CT": "HU", "T1": "a.u.", "T2": "a.u.",
}


def normalise_modality(name: str, *, file: Optional[PathLike] = None) -> str:
    """The canonical name of a modality (``' fd'`` -> ``'FD'``).

    Parameters
    ----------
    name : str
        A modality name in any case, with or without surrounding spaces. Aliases such as ``t1w`` are
        not accepted here (see :func:`RobustDeepLogic.cohort.importer.modality_from_name`).
    file : str or pathlib.Path, optional
        The file the name comes from, named in the error.

    Returns
    -------
    str
        One of :data:`MODALITIES`.

    Raises
    ------
    InputError
        ``name`` is not one of :data:`MODALITIES`.
    """
    upper = str(name).strip().upper()
    if upper not in MODALITIES:
        raise InputError(
            f"unknown modality {name!r}", file=file, hint=f"modalities are {', '.join(MODALITIES)}"
        )
    return upper

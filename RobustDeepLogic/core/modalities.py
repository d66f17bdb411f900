"""TODO docstring (RobustDeepLogic.cohort)."""

from __future__ import annotations

from typing import (
    Dict,
    Optional,
    Tuple,
)

from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.types import PathLike

#: The modalities of the study (method.md §2), in a fixed order.
MODALITIES: Tuple[str, ...] = ("FD", "LD", "NAC", "MAC", "CT", "T1", "T2")


#: Modalities reconstructed from one PET acquisition: they share a grid and a frame.
PET_FAMILY: Tuple[str, ...] = ("FD", "LD", "NAC", "MAC")


#: The PET/CT frame: one rigid transform to template space moves all of these.
PETCT_FAMILY: Tuple[str, ...] = PET_FAMILY + ("CT",)


MR_FAMILY: Tuple[str, ...] = ("T1", "T2")


#: Physical unit of each modality as stored in a cohort. NAC PET is in SUV-scaled units of the
#: uncorrected reconstruction (no attenuation correction: not a true SUV, lower in the centre).
UNITS: Dict[str, str] = {
    "FD": "SUV", "LD": "SUV", "MAC": "SUV", "NAC": "SUV",
    "CT": "HU", "T1": "a.u.", "T2": "a.u.",
}


def normalise_modality(name: str, *, file: Optional[PathLike] = None) -> str:
    upper = str(name).strip().upper()
    if upper not in MODALITIES:
        raise InputError(
            f"unknown modality {name!r}", file=file, hint=f"modalities are {', '.join(MODALITIES)}"
        )
    return upper

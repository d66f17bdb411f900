"""The fixed scaling of each modality from physical units to [0, 1] (docs/method.md §3.2).

A cohort's manifest (:class:`RobustDeepLogic.cohort.manifest.Cohort`) stores one :class:`Scaling` per
modality; the network sees scaled volumes, and predictions are scaled back with the same constants.
The physical units themselves (SUV, HU) come from :mod:`RobustDeepLogic.io.units`; the MR constants,
which have no physical unit, are computed from a cohort's training patients (never its test patients)
by :func:`RobustDeepLogic.cohort.mr_constants.mr_scaling`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import (
    Any,
    Dict,
)


@dataclass(frozen=True)
class Scaling:
    """A fixed affine map from physical units to the network's [0, 1] range (docs/method.md §3.2).

    ``scaled = (value - offset) / scale`` and back exactly; never per-image min-max, which would
    destroy quantitation. Values outside [0, 1] are kept, not clipped.

    Attributes
    ----------
    scale : float
        Physical units per scaled unit (non-zero), e.g. 15 SUV or 3000 HU.
    offset : float, optional
        The physical value that maps to 0 (-1000 HU for CT); 0 by default.
    unit : str, optional
        The physical unit (``"SUV"``, ``"HU"``, ``"a.u."``), for records and messages.

    References
    ----------
    .. [1] docs/method.md §3.2.
    """

    scale: float
    offset: float = 0.0
    unit: str = ""

    def to_scaled(self, value):
        """Physical values to the scaled units.

        Parameters
        ----------
        value : float or numpy.ndarray
            Values in :attr:`unit` (anything that supports ``-`` and ``/`` with floats).

        Returns
        -------
        float or numpy.ndarray
            ``(value - offset) / scale``, not clipped.
        """
        return (value - self.offset) / self.scale

    def to_physical(self, scaled):
        """Scaled values back to physical units (the inverse of :meth:`to_scaled`).

        Parameters
        ----------
        scaled : float or numpy.ndarray
            Values in the scaled units.

        Returns
        -------
        float or numpy.ndarray
            ``scaled * scale + offset``, in :attr:`unit`.
        """
        return scaled * self.scale + self.offset

    def as_dict(self) -> Dict[str, Any]:
        """The manifest entry.

        Returns
        -------
        dict
            ``{"scale": ..., "offset": ..., "unit": ...}``.
        """
        return {"scale": self.scale, "offset": self.offset, "unit": self.unit}


#: Documented default constants. PET: SUV / 15 (brain FDG SUV rarely exceeds 15); NAC: / 5 (no
#: attenuation correction, values about a third of MAC); CT: (HU + 1000) / 3000, so air is 0 and
#: dense bone about 1. MR has no physical unit and no default: its constant is the median over the
#: training patients (never the held-out test patients) of each one's 99.5th percentile of non-zero
#: voxels (:func:`RobustDeepLogic.cohort.mr_constants.mr_scaling`), one constant per cohort and run,
#: never per image. A training run computes it from its own non-test patients and stores it in
#: ``run.json`` (:func:`RobustDeepLogic.cohort.mr_constants.run_mr_scaling`).
DEFAULT_SCALING: Dict[str, Scaling] = {
    "FD": Scaling(15.0, 0.0, "SUV"),
    "LD": Scaling(15.0, 0.0, "SUV"),
    "MAC": Scaling(15.0, 0.0, "SUV"),
    "NAC": Scaling(5.0, 0.0, "SUV"),
    "CT": Scaling(3000.0, -1000.0, "HU"),
}

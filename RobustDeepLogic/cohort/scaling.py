"""TODO docstring (RobustDeepLogic.cohort)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import (
    Any,
    Dict,
)


@dataclass(frozen=True)
class Scaling:
    """A fixed affine map from physical units to the network's [0, 1] range (method.md §3.2).

    ``scaled = (value - offset) / scale`` and back exactly; never per-image min-max, which would
    destroy quantitation. Values outside [0, 1] are kept, not clipped.
    """

    scale: float
    offset: float = 0.0
    unit: str = ""

    def to_scaled(self, value):
        return (value - self.offset) / self.scale

    def to_physical(self, scaled):
        return scaled * self.scale + self.offset

    def as_dict(self) -> Dict[str, Any]:
        return {"scale": self.scale, "offset": self.offset, "unit": self.unit}


#: Documented default constants. PET: SUV / 15 (brain FDG SUV rarely exceeds 15); NAC: / 5 (no
#: attenuation correction, values about a third of MAC); CT: (HU + 1000) / 3000, so air is 0 and
#: dense bone about 1. MR has no physical unit: its constant is the 99.5th percentile of the training
#: patients' head voxels, computed once (:func:`mr_scaling_from_cohort`) and stored, never per image.
DEFAULT_SCALING: Dict[str, Scaling] = {
    "FD": Scaling(15.0, 0.0, "SUV"),
    "LD": Scaling(15.0, 0.0, "SUV"),
    "MAC": Scaling(15.0, 0.0, "SUV"),
    "NAC": Scaling(5.0, 0.0, "SUV"),
    "CT": Scaling(3000.0, -1000.0, "HU"),
}

"""The translation network: a 2D dilated residual network (docs/method.md §7).

Modules: :mod:`.model` (``DilatedResNet2D``, its specification), :mod:`.inference` (whole-volume
prediction slice by slice, mixed precision).
"""

from RobustDeepLogic.network.inference import autocast_dtype, predict_array
from RobustDeepLogic.network.model import (
    DILATIONS,
    GROUP_STARTS,
    RECEPTIVE_RADIUS,
    DilatedResNet2D,
    NetworkSpec,
    ResidualPair,
    build_network,
    count_convolutions,
    count_parameters,
    receptive_field,
)

__all__ = [
    "autocast_dtype",
    "predict_array",
    "DILATIONS",
    "RECEPTIVE_RADIUS",
    "GROUP_STARTS",
    "NetworkSpec",
    "ResidualPair",
    "DilatedResNet2D",
    "build_network",
    "count_parameters",
    "count_convolutions",
    "receptive_field",
]

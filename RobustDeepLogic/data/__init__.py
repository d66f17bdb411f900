"""Training data for a task (docs/method.md §3, §7): volume sources and axial 2D windows.

Modules: :mod:`.sources` (subjects of a cohort, on one grid), :mod:`.on_the_fly` (subjects blended
on the fly), :mod:`.windows`
(random training windows, the epoch sampler, validation volumes).
"""

from RobustDeepLogic.data.on_the_fly import TorchDatasetSource, on_the_fly_source
from RobustDeepLogic.data.sources import (
    CohortSource,
    ConcatSource,
    SubjectVolumes,
    VolumeSource,
    resample_onto,
)
from RobustDeepLogic.data.windows import (
    CROP_MARGIN,
    DEFAULT_WINDOW,
    EpochSampler,
    ValidationVolume,
    WindowDataset,
    cut_window,
    validation_volumes,
)

__all__ = [
    "SubjectVolumes",
    "VolumeSource",
    "resample_onto",
    "CohortSource",
    "TorchDatasetSource",
    "ConcatSource",
    "on_the_fly_source",
    "DEFAULT_WINDOW",
    "CROP_MARGIN",
    "cut_window",
    "WindowDataset",
    "EpochSampler",
    "ValidationVolume",
    "validation_volumes",
]

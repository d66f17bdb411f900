"""RobustDeepLogic: the Slicer-free engine of RobustDeep.

Robust-Deep (Sanaat et al., J Digit Imaging 2022, doi:10.1007/s10278-021-00536-0): register brain
PET/CT/MR to MNI space, synthesise new training subjects by Laplacian-pyramid blending of two
patients under a mask, and train dilated residual networks for image-to-image translation.

The pipeline stages are modules of this package (see docs/architecture in the repository):
``volumes`` and ``units`` (I/O and SUV / HU), ``cohort`` (the manifest), then registration, masks,
blending, synthesis, datasets, model and training, prediction, evaluation and reports. A module
imports only stages before it; ``cli`` is the one place that knows them all.

This package never imports ``slicer``, ``qt`` or ``ctk``.
"""

__version__ = "0.1.0"

from .errors import InputError, RobustDeepError  # noqa: E402,F401

"""RobustDeepLogic: the Slicer-free engine of RobustDeep.

Robust-Deep (Sanaat et al., J Digit Imaging 2022, doi:10.1007/s10278-021-00536-0): register brain
PET/CT/MR to MNI space, synthesise new training subjects by Laplacian-pyramid blending of two
patients under a mask, and train dilated residual networks for image-to-image translation.

One sub-package per pipeline stage, in the order data flows (``docs/developing.md`` has the map):
``core`` (errors, progress, configuration, atomic files, modalities, types, version), ``io`` (volumes,
DICOM, SUV / HU, transform files, head masks), ``cohort`` (the manifest, scaling, import, check,
folds, tasks), ``registration``, ``masks``, ``blending``, ``synthesis``, ``data`` (sources and
training windows), ``network``, ``training``, ``predict``, ``evaluate`` (metrics, figures,
statistics), ``report``, ``simulate`` (the digital cohort), ``study`` (the paper's experiment) and
``cli``. A stage imports only the stages before it (an import-linter contract in ``pyproject.toml``,
checked by the test suite).

This package never imports ``slicer``, ``qt``, ``ctk`` or ``vtk``. It re-exports
:class:`~RobustDeepLogic.core.errors.InputError`, :class:`~RobustDeepLogic.core.errors.RobustDeepError`
and ``__version__``; everything else is imported from its sub-package.
"""

from RobustDeepLogic.core.errors import InputError, RobustDeepError
from RobustDeepLogic.core.version import __version__

__all__ = ["InputError", "RobustDeepError", "__version__"]

"""The reference side of a case, read once and shared by the cases of a patient (private helpers).

``_Reference`` reads the reference volume, converts it to both unit sets with the modality's
scaling constant, and makes its head mask (a mask file, or
:func:`RobustDeepLogic.io.headmask.head_mask` of the scaled reference), its optional label
volume, the centre of the mask where the figures' slices cross, and the mask file written to the
evaluation folder. The module also holds the checks that every other volume of a case lies on the
reference's grid and the choice of the windowed SSIM's data range. It has no public names; it is
used by :mod:`RobustDeepLogic.evaluate.evaluation` and :mod:`RobustDeepLogic.evaluate.slices`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from RobustDeepLogic.cohort.scaling import Scaling
from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.files import safe_name
from RobustDeepLogic.evaluate.cases import Case, EvaluationOptions
from RobustDeepLogic.io.headmask import head_mask
from RobustDeepLogic.io.volumes import (
    Grid,
    array_from_image,
    image_from_array,
    read_volume,
    write_volume,
)


# --------------------------------------------------------------------------------------------------
# One case
# --------------------------------------------------------------------------------------------------
def _read(path: Path, what: str, patient: str):
    image = read_volume(path, patient=patient, dtype=np.float32)
    return image


def _same_grid(grid: Grid, other: Grid, path: Path, what: str, patient: str) -> None:
    if not grid.matches(other):
        raise InputError(
            f"the {what} grid ({other.describe()}, origin {tuple(round(v, 2) for v in other.origin)}) "
            f"does not match the reference grid ({grid.describe()}, origin "
            f"{tuple(round(v, 2) for v in grid.origin)})",
            file=path, patient=patient,
            hint=f"resample the {what} onto the reference grid before evaluating "
            "(predictions must be written on the reference's grid)",
        )


def _centre_index(mask: np.ndarray) -> Tuple[int, int, int]:
    idx = np.argwhere(mask)
    return tuple(int(v) for v in np.round(idx.mean(axis=0)))  # type: ignore[return-value]


class _Reference:
    """A reference volume with its mask, read once per (task, patient, reference, mask, labels).

    Attributes: ``grid`` (:class:`~RobustDeepLogic.io.volumes.Grid`), ``physical`` and ``scaled``
    (``[z, y, x]`` float32 arrays), ``mask`` (boolean ``[z, y, x]``), ``mask_source`` (text for the
    ``mask_source`` column), ``labels`` (int64 ``[z, y, x]`` or None), ``centre`` (``(z, y, x)`` index
    of the mask's centroid) and ``mask_file`` (the mask written under ``out_dir``, or None).
    Raises :class:`~RobustDeepLogic.core.errors.InputError` for a missing file, a mask or label volume
    on another grid, or an empty head mask.
    """

    def __init__(self, case: Case, scaling: Scaling, options: EvaluationOptions, out_dir: Optional[Path]):
        image = _read(case.reference, "reference", case.patient)
        self.grid = Grid.of(image)
        values = np.asarray(_array(image))
        if options.units == "scaled":
            self.scaled = values
            self.physical = scaling.to_physical(values).astype(np.float32)
        else:
            self.physical = values
            self.scaled = scaling.to_scaled(values).astype(np.float32)
        if case.mask is not None:
            mimage = read_volume(case.mask, patient=case.patient)
            _same_grid(self.grid, Grid.of(mimage), case.mask, "mask", case.patient)
            self.mask = _array(mimage) > 0
            self.mask_source = f"file:{case.mask}"
            if not self.mask.any():
                raise InputError("the head mask is empty (no voxel > 0)", file=case.mask,
                                 patient=case.patient, hint="give a mask that covers the head")
        else:
            self.mask = head_mask(self.scaled, options.mask_threshold, options.mask_closing)
            self.mask_source = f"reference>{options.mask_threshold:g} scaled, closing {options.mask_closing}"
            if not self.mask.any():
                raise InputError(
                    f"the head mask from the reference is empty: no voxel above "
                    f"{options.mask_threshold:g} in scaled units "
                    f"({scaling.to_physical(options.mask_threshold):g} {scaling.unit or 'physical units'})",
                    file=case.reference, patient=case.patient,
                    hint="check the reference's units (--units), its scaling constant, or pass --mask",
                )
        self.labels: Optional[np.ndarray] = None
        if case.labels is not None:
            limage = read_volume(case.labels, patient=case.patient)
            _same_grid(self.grid, Grid.of(limage), case.labels, "label volume", case.patient)
            self.labels = np.rint(_array(limage)).astype(np.int64)
        self.centre = _centre_index(self.mask)
        self.mask_file: Optional[Path] = None
        if out_dir is not None:
            self.mask_file = out_dir / "masks" / case.task / f"{safe_name(case.patient)}.nii.gz"
            write_volume(image_from_array(self.mask.astype(np.uint8), self.grid), self.mask_file)


def _array(image) -> np.ndarray:
    return array_from_image(image)


def _data_range(ref: _Reference, options: EvaluationOptions) -> float:
    if options.ssim_data_range == "nominal":
        return 1.0
    if options.ssim_data_range == "reference":
        v = ref.scaled[ref.mask]
        span = float(v.max() - v.min())
        return span if span > 0 else 1.0
    return float(options.ssim_data_range)

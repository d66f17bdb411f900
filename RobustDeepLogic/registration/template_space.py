"""TODO docstring (RobustDeepLogic.registration, RobustDeepLogic.templates)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Mapping, Optional, Union

import numpy as np
import SimpleITK as sitk

from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.types import PathLike
from RobustDeepLogic.io.volumes import Grid, read_volume, write_volume
from RobustDeepLogic.registration import templates
from RobustDeepLogic.registration.templates import (
    PET_FWHM_MM,
    brain_mask,
    fdg_template,
    head_mask,
    resample_to_grid,
    t1_template,
    template_grid,
)


@dataclass
class TemplateSpace:
    """The fixed side of every registration: the FDG template, its grid, head and brain masks."""

    fdg: sitk.Image
    head_mask: sitk.Image
    brain_mask: sitk.Image
    files: Dict[str, str] = field(default_factory=dict)

    @property
    def grid(self) -> Grid:
        return Grid.of(self.fdg)

    @classmethod
    def from_files(cls, files: Mapping[str, PathLike]) -> "TemplateSpace":
        fdg = read_volume(files["fdg"], dtype=np.float32)
        head = read_volume(files["head_mask"])
        brain = read_volume(files["brain_mask"])
        return cls(fdg, head, brain, {k: str(v) for k, v in files.items()})

    @classmethod
    def default(cls, spacing: float = 2.0, fwhm_mm: Optional[float] = None) -> "TemplateSpace":
        grid = templates.template_grid(spacing)
        fdg = templates.fdg_template(grid, fwhm_mm=fwhm_mm or templates.PET_FWHM_MM)
        return cls(fdg, templates.head_mask(grid), templates.brain_mask(grid))


# --------------------------------------------------------------------------------------------------
# A template on disk (the registration's fixed side)
# --------------------------------------------------------------------------------------------------
TEMPLATE_FILES = {"fdg": "fdg_template.nii.gz", "head_mask": "head_mask.nii.gz",
                  "brain_mask": "brain_mask.nii.gz", "t1": "t1_template.nii.gz"}


def write_template_space(
    folder: Union[str, Path],
    *,
    spacing: float = 2.0,
    fwhm_mm: float = PET_FWHM_MM,
    fdg: Optional[sitk.Image] = None,
    with_t1: bool = True,
) -> Dict[str, Path]:
    """Write the template space to ``folder``: FDG template, head and brain masks (and T1 template).

    ``fdg`` replaces the default model template (e.g. a study-specific one, or a file given by the
    user; it is resampled onto the template grid when on another grid). Returns ``{name: path}``.
    """
    folder = Path(folder)
    grid = template_grid(spacing)
    if fdg is None:
        fdg = fdg_template(grid, fwhm_mm=fwhm_mm)
    elif not Grid.of(fdg).matches(grid):
        fdg = resample_to_grid(fdg, grid)
    paths = {
        "fdg": write_volume(sitk.Cast(fdg, sitk.sitkFloat32), folder / TEMPLATE_FILES["fdg"]),
        "head_mask": write_volume(head_mask(grid), folder / TEMPLATE_FILES["head_mask"]),
        "brain_mask": write_volume(brain_mask(grid), folder / TEMPLATE_FILES["brain_mask"]),
    }
    if with_t1:
        paths["t1"] = write_volume(t1_template(grid), folder / TEMPLATE_FILES["t1"])
    return paths


def load_template_image(spec: Union[str, Path], *, spacing: float = 2.0,
                        fwhm_mm: float = PET_FWHM_MM) -> sitk.Image:
    """The FDG template named by ``spec``: ``'fdg'`` (the model template) or a volume file in MNI space.

    A file is resampled onto :func:`template_grid` (``spacing``) when it is on another grid; it must
    be an FDG PET image in MNI space (e.g. the output of ``robustdeep template build``).
    """
    grid = template_grid(spacing)
    if str(spec).lower() in ("fdg", "default", "model"):
        return fdg_template(grid, fwhm_mm=fwhm_mm)

    image = read_volume(spec, dtype=np.float32)
    arr = sitk.GetArrayViewFromImage(image)
    if not np.all(np.isfinite(arr)) or float(arr.max()) <= float(arr.min()):
        raise InputError("the template image is empty or not finite", file=spec)
    if not Grid.of(image).matches(grid):
        image = resample_to_grid(image, grid)
        if float(sitk.GetArrayViewFromImage(image).max()) <= 0:
            raise InputError(
                "the template does not overlap MNI space (nothing left on the template grid)",
                file=spec, hint="give an FDG template in MNI space, e.g. from 'robustdeep template build'",
            )
    return image

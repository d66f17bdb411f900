"""The template space as the fixed side of registration: in memory (:class:`TemplateSpace`) and on disk.

A template space is an FDG template with the template head and brain masks on one grid.
:func:`write_template_space` writes one to a folder (:data:`TEMPLATE_FILES`; ``robustdeep template
write``, and the ``template/`` folder of a registered cohort), :meth:`TemplateSpace.from_files` reads
it back, and :func:`load_template_image` resolves the ``--template`` option of ``robustdeep register``.
The grid and the template images themselves are made by :mod:`RobustDeepLogic.registration.templates`;
a study-specific FDG template by :mod:`RobustDeepLogic.registration.study_template`.
"""

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
from RobustDeepLogic.registration.template_grid import resample_to_grid, template_grid
from RobustDeepLogic.registration.templates import (
    PET_FWHM_MM,
    brain_mask,
    fdg_template,
    head_mask,
    t1_template,
)


@dataclass
class TemplateSpace:
    """The fixed side of every registration: the FDG template, its grid, head and brain masks.

    Attributes
    ----------
    fdg : SimpleITK.Image
        The FDG template (float32; SUV for the model and study templates) on the template grid.
    head_mask : SimpleITK.Image
        The template head mask (uint8 0/1) on the same grid.
    brain_mask : SimpleITK.Image
        The template brain mask (uint8 0/1) on the same grid.
    files : dict of str to str
        The files it was read from, by key (``'fdg'``, ``'head_mask'``, ``'brain_mask'``, ...);
        empty when made in memory.
    """

    fdg: sitk.Image
    head_mask: sitk.Image
    brain_mask: sitk.Image
    files: Dict[str, str] = field(default_factory=dict)

    @property
    def grid(self) -> Grid:
        """The template grid: that of :attr:`fdg`."""
        return Grid.of(self.fdg)

    @classmethod
    def from_files(cls, files: Mapping[str, PathLike]) -> "TemplateSpace":
        """A template space read from files, as written by :func:`write_template_space`.

        Parameters
        ----------
        files : mapping of str to path-like
            Paths under the keys ``'fdg'``, ``'head_mask'`` and ``'brain_mask'`` (other keys, such as
            ``'t1'``, are only recorded in :attr:`files`).

        Returns
        -------
        TemplateSpace
            The FDG template read as float32, the masks in their stored type.

        Raises
        ------
        KeyError
            When one of the three keys is missing.
        InputError
            When a file is missing or cannot be read.
        """
        fdg = read_volume(files["fdg"], dtype=np.float32)
        head = read_volume(files["head_mask"])
        brain = read_volume(files["brain_mask"])
        return cls(fdg, head, brain, {k: str(v) for k, v in files.items()})

    @classmethod
    def default(cls, spacing: float = 2.0, fwhm_mm: Optional[float] = None) -> "TemplateSpace":
        """The model template space, made in memory.

        Parameters
        ----------
        spacing : float, optional
            Template grid spacing in mm (default 2).
        fwhm_mm : float, optional
            PET resolution of the FDG template, Gaussian FWHM in mm (None or 0:
            :data:`~RobustDeepLogic.registration.templates.PET_FWHM_MM`, 6 mm).

        Returns
        -------
        TemplateSpace
            :func:`~RobustDeepLogic.registration.templates.fdg_template`, ``head_mask`` and
            ``brain_mask`` on :func:`~RobustDeepLogic.registration.templates.template_grid`.

        Raises
        ------
        InputError
            When the spacing is not a positive number or the template assets are not prepared.
        """
        grid = templates.template_grid(spacing)
        fdg = templates.fdg_template(grid, fwhm_mm=fwhm_mm or templates.PET_FWHM_MM)
        return cls(fdg, templates.head_mask(grid), templates.brain_mask(grid))


# --------------------------------------------------------------------------------------------------
# A template on disk (the registration's fixed side)
# --------------------------------------------------------------------------------------------------
#: File name of each part of a template space on disk, by key.
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

    Parameters
    ----------
    folder : str or pathlib.Path
        The output folder; files are named by :data:`TEMPLATE_FILES` and written atomically.
    spacing : float, optional
        Template grid spacing in mm (default 2).
    fwhm_mm : float, optional
        PET resolution of the model FDG template, Gaussian FWHM in mm (default
        :data:`~RobustDeepLogic.registration.templates.PET_FWHM_MM`); unused when ``fdg`` is given.
    fdg : SimpleITK.Image, optional
        Replaces the default model template (e.g. a study-specific one, or a file given by the user);
        it is resampled onto the template grid when on another grid, and written as float32.
    with_t1 : bool, optional
        Also write the T1 template
        (:func:`~RobustDeepLogic.registration.templates.t1_template`, skull-stripped).

    Returns
    -------
    dict of str to pathlib.Path
        The files written, by key (``'fdg'``, ``'head_mask'``, ``'brain_mask'``, and ``'t1'`` with
        ``with_t1``).

    Raises
    ------
    InputError
        When the spacing is not a positive number or the template assets are not prepared.
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

    A file is resampled onto :func:`~RobustDeepLogic.registration.templates.template_grid`
    (``spacing``) when it is on another grid; it must be an FDG PET image in MNI space (e.g. the
    output of ``robustdeep template build``).

    Parameters
    ----------
    spec : str or pathlib.Path
        ``'fdg'``, ``'default'`` or ``'model'`` (any case) for the model template, else a volume file.
    spacing : float, optional
        Template grid spacing in mm (default 2).
    fwhm_mm : float, optional
        PET resolution of the model template, Gaussian FWHM in mm (default
        :data:`~RobustDeepLogic.registration.templates.PET_FWHM_MM`); unused for a file.

    Returns
    -------
    SimpleITK.Image
        The FDG template on the template grid, float32.

    Raises
    ------
    InputError
        When the file is missing or unreadable, empty or not finite, or leaves nothing positive on the
        template grid (not in MNI space).
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

"""Reading and writing volumes, with their geometry, atomically.

Formats: NIfTI (``.nii``, ``.nii.gz``), NRRD (``.nrrd``, ``.nhdr`` with a detached data file),
MetaImage (``.mha``, ``.mhd`` with a detached data file), and, for reading, DICOM series (a folder,
read by :func:`RobustDeepLogic.io.dicom.read_dicom_series`). Everything goes through SimpleITK, so
geometry follows ITK conventions: physical points in LPS millimetres, the direction matrix maps index
axes to LPS. numpy arrays from these images are indexed ``[z, y, x]`` (SimpleITK's
``GetArrayFromImage`` order); functions that take arrays also take a :class:`Grid`. The file endings
are in :mod:`RobustDeepLogic.core.files`; physical units in :mod:`RobustDeepLogic.io.units`.

Writes are atomic: data goes to a temporary file in the destination folder, which is then renamed over
the destination, so a crash never leaves a half-written volume under the final name. Inputs are never
modified.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.files import (
    DETACHED_SUFFIXES,
    VOLUME_SUFFIXES,
    atomic_path,
    volume_suffix,
)
from RobustDeepLogic.core.types import PathLike
from RobustDeepLogic.io.dicom import read_dicom_series
from RobustDeepLogic.io.file_checks import check_volume_file


# --------------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Grid:
    """The sampling grid of a 3D image: size (x, y, z), spacing in mm, origin in LPS mm, direction.

    Attributes
    ----------
    size : tuple of 3 int
        Voxels along x, y, z (SimpleITK's order; the numpy shape is :attr:`shape`).
    spacing : tuple of 3 float
        Voxel spacing along x, y, z, mm.
    origin : tuple of 3 float
        LPS position of the centre of voxel (0, 0, 0), mm.
    direction : tuple of 9 float, optional
        The row-major 3x3 matrix whose columns are the LPS directions of the index axes; identity by
        default.
    """

    size: Tuple[int, int, int]
    spacing: Tuple[float, float, float]
    origin: Tuple[float, float, float]
    direction: Tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)

    @classmethod
    def of(cls, image: sitk.Image) -> "Grid":
        """The grid of a SimpleITK image.

        Parameters
        ----------
        image : SimpleITK.Image
            A 3D image.

        Returns
        -------
        Grid
            Its size, spacing, origin and direction.
        """
        return cls(
            tuple(int(s) for s in image.GetSize()),
            tuple(float(s) for s in image.GetSpacing()),
            tuple(float(s) for s in image.GetOrigin()),
            tuple(float(s) for s in image.GetDirection()),
        )

    @property
    def shape(self) -> Tuple[int, int, int]:
        """The numpy array shape ``(z, y, x)`` of an image on this grid."""
        return (self.size[2], self.size[1], self.size[0])

    def apply_to(self, image: sitk.Image) -> sitk.Image:
        """Set this grid's spacing, origin and direction on ``image``, in place.

        Parameters
        ----------
        image : SimpleITK.Image
            A 3D image whose size is this grid's (not checked here).

        Returns
        -------
        SimpleITK.Image
            ``image`` itself.
        """
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image

    def matches(self, other: "Grid", tol: float = 1e-4) -> bool:
        """Whether ``other`` is the same grid: same size; spacing, origin and direction within ``tol``.

        Parameters
        ----------
        other : Grid
            The grid to compare with.
        tol : float, optional
            Relative tolerance of the spacing; the origin may differ by ``tol`` times the smallest
            spacing (mm) and each direction cosine by ``tol``.

        Returns
        -------
        bool
            True when the grids match.
        """
        if self.size != other.size:
            return False
        sp = np.asarray(self.spacing)
        return bool(
            np.allclose(sp, other.spacing, rtol=tol, atol=0)
            and np.allclose(self.origin, other.origin, rtol=0, atol=tol * float(sp.min()))
            and np.allclose(self.direction, other.direction, rtol=0, atol=tol)
        )

    def describe(self) -> str:
        """A short text for messages, e.g. ``'200x200x109 voxels of 2.03x2.03x2.2 mm'``.

        Returns
        -------
        str
            Size and spacing, x first.
        """
        sz = "x".join(str(s) for s in self.size)
        sp = "x".join(f"{s:g}" for s in self.spacing)
        return f"{sz} voxels of {sp} mm"


def image_from_array(array: np.ndarray, grid: Grid) -> sitk.Image:
    """A SimpleITK image from a ``[z, y, x]`` array placed on ``grid``.

    Parameters
    ----------
    array : numpy.ndarray
        ``[z, y, x]`` voxels; their dtype is kept.
    grid : Grid
        The geometry; its :attr:`Grid.shape` must be the array's shape.

    Returns
    -------
    SimpleITK.Image
        A new image holding a copy of the voxels.

    Raises
    ------
    ValueError
        The array's shape is not the grid's.
    """
    array = np.asarray(array)
    if array.shape != grid.shape:
        raise ValueError(f"array shape {array.shape} does not match the grid's {grid.shape}")
    return grid.apply_to(sitk.GetImageFromArray(array))


def array_from_image(image: sitk.Image, dtype=np.float32) -> np.ndarray:
    """A ``[z, y, x]`` copy of the voxels of ``image`` as ``dtype``.

    Parameters
    ----------
    image : SimpleITK.Image
        A scalar image.
    dtype : numpy dtype, optional
        The array's type (float32 by default).

    Returns
    -------
    numpy.ndarray
        The voxels, indexed ``[z, y, x]``; the geometry is not kept (see :meth:`Grid.of`).
    """
    return sitk.GetArrayFromImage(image).astype(dtype, copy=False)


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------
def _check_3d(image: sitk.Image, path: PathLike, patient: Optional[str]) -> sitk.Image:
    if image.GetDimension() == 4 and image.GetSize()[3] == 1:
        image = image[:, :, :, 0]
    if image.GetDimension() != 3:
        raise InputError(
            f"expected a 3D volume, found a {image.GetDimension()}D image of size {image.GetSize()}",
            file=path,
            patient=patient,
        )
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(
            f"expected a scalar volume, found {image.GetNumberOfComponentsPerPixel()} components "
            "per voxel",
            file=path,
            patient=patient,
        )
    return image


def read_volume(
    path: PathLike,
    *,
    patient: Optional[str] = None,
    dtype: Optional[type] = None,
) -> sitk.Image:
    """Read a 3D scalar volume from a file or a DICOM series folder.

    A 4D image with one volume along the fourth axis is taken as 3D.

    Parameters
    ----------
    path : str or pathlib.Path
        A NIfTI, NRRD or MetaImage file, or a folder holding one DICOM series.
    patient : str, optional
        Named in error messages.
    dtype : type or str, optional
        ``np.float32`` (or ``"float32"``) to cast the voxels to 32-bit float; None, or any other value,
        keeps the stored type.

    Returns
    -------
    SimpleITK.Image
        The 3D scalar image with its geometry; a DICOM series in float32 with its rescale applied.

    Raises
    ------
    InputError
        Missing, unreadable or truncated file, NIfTI spacing not positive (:func:`.check_volume_file`),
        not 3D or not scalar, a DICOM folder that is not one series (:func:`.read_dicom_series`).
    """
    path = Path(path)
    if path.is_dir():
        image = read_dicom_series(path, patient=patient).image
    else:
        check_volume_file(path, patient=patient)
        try:
            image = sitk.ReadImage(str(path))
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()
            detail = next((ln for ln in first if "rror" in ln), first[-1] if first else "")
            raise InputError(
                f"cannot read this volume ({detail.strip()[:200]})",
                file=path,
                patient=patient,
                hint="RobustDeep reads NIfTI, NRRD, MetaImage and DICOM series folders",
            ) from None
    image = _check_3d(image, path, patient)
    if dtype is not None and dtype in (np.float32, "float32"):
        image = sitk.Cast(image, sitk.sitkFloat32)
    return image


def read_array(path: PathLike, *, patient: Optional[str] = None) -> Tuple[np.ndarray, Grid]:
    """Read a volume as a float32 ``[z, y, x]`` array and its grid.

    Parameters
    ----------
    path : str or pathlib.Path
        A volume file or DICOM series folder (see :func:`read_volume`).
    patient : str, optional
        Named in error messages.

    Returns
    -------
    array : numpy.ndarray
        float32 ``[z, y, x]`` voxels.
    grid : Grid
        Their geometry.

    Raises
    ------
    InputError
        As :func:`read_volume`.
    """
    image = read_volume(path, patient=patient)
    return array_from_image(image), Grid.of(image)


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------
def write_volume(image: sitk.Image, path: PathLike, *, compress: bool = True) -> Path:
    """Write ``image`` to ``path`` atomically; the format follows the ending of ``path``.

    Detached formats (``.nhdr``, ``.mhd``) are written into a temporary folder beside ``path`` and
    moved into place data file first, header last. The folder of ``path`` is made if missing.

    Parameters
    ----------
    image : SimpleITK.Image
        The image, written with its pixel type and geometry.
    path : str or pathlib.Path
        The file; its ending is one of :data:`RobustDeepLogic.core.files.VOLUME_SUFFIXES`.
    compress : bool, optional
        Ask SimpleITK to compress the data where the format allows it.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    InputError
        The ending of ``path`` is not a volume format.
    """
    path = Path(path)
    suffix = volume_suffix(path)
    if suffix is None:
        raise InputError(
            "unknown volume format",
            file=path,
            hint=f"use one of {', '.join(VOLUME_SUFFIXES)}",
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix in DETACHED_SUFFIXES:
        with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as tmpdir:
            tmp_header = Path(tmpdir) / path.name
            sitk.WriteImage(image, str(tmp_header), compress)
            header_and_data = sorted(Path(tmpdir).iterdir(), key=lambda p: p.name == path.name)
            for produced in header_and_data:
                os.replace(produced, path.parent / produced.name)
        return path
    with atomic_path(path) as tmp:
        sitk.WriteImage(image, str(tmp), compress)
    return path


def write_array(array: np.ndarray, grid: Grid, path: PathLike, *, compress: bool = True) -> Path:
    """Write a ``[z, y, x]`` array on ``grid`` atomically (see :func:`write_volume`).

    Parameters
    ----------
    array : numpy.ndarray
        ``[z, y, x]`` voxels, written with their dtype.
    grid : Grid
        Their geometry; its shape must be the array's.
    path : str or pathlib.Path
        The file; its ending chooses the format.
    compress : bool, optional
        Compress the data where the format allows it.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        The array's shape is not the grid's.
    InputError
        The ending of ``path`` is not a volume format.
    """
    return write_volume(image_from_array(array, grid), path, compress=compress)


def is_volume_path(path: PathLike) -> bool:
    """Whether ``path`` may hold a volume: a file with a volume ending, or a folder (a DICOM series?).

    Parameters
    ----------
    path : str or pathlib.Path
        The path; a file need not exist, a folder must.

    Returns
    -------
    bool
        True for an existing folder or a name with a volume ending.
    """
    path = Path(path)
    return path.is_dir() or volume_suffix(path) is not None


def geometry_summary(images: Sequence[sitk.Image]) -> str:
    """The grids of several images, for messages (:meth:`Grid.describe` of each, ``;``-separated).

    Parameters
    ----------
    images : sequence of SimpleITK.Image
        3D images.

    Returns
    -------
    str
        One description per image, in order.
    """
    return "; ".join(Grid.of(im).describe() for im in images)

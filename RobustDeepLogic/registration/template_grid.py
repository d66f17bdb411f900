"""The template's grid and coordinates: the 2 mm MNI head grid (any spacing), MNI (RAS) <-> LPS
millimetres, and resampling onto a grid by the header geometry alone. The images on that grid are in
:mod:`RobustDeepLogic.registration.templates`.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np
import SimpleITK as sitk

from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.io.volumes import Grid

#: The head's extent in MNI (RAS) millimetres, (low, high) per axis: the bounding box of the SPM
#: TPM's non-air voxels (air probability < 0.5: x -84..84, y -118.5..90, z -72..103.5) plus a margin.
#: The TPM itself ends at z = -72 (no neck below).
HEAD_BOUNDS_MNI: Tuple[Tuple[float, float], ...] = ((-88.0, 88.0), (-122.0, 94.0), (-72.0, 106.0))

_MNI_TO_LPS = np.array([-1.0, -1.0, 1.0])


def mni_to_lps(point_mni) -> np.ndarray:
    """MNI (RAS) millimetres to ITK physical (LPS) millimetres; also the inverse map.

    ``x_LPS = -x_MNI``, ``y_LPS = -y_MNI``, ``z_LPS = z_MNI``; the map is its own inverse, so
    :data:`lps_to_mni` is the same function.

    Parameters
    ----------
    point_mni : array_like
        One point ``[3]`` or points ``[n, 3]``, in mm.

    Returns
    -------
    numpy.ndarray
        The point(s) in the other frame, float64, same shape.
    """
    return np.asarray(point_mni, dtype=float) * _MNI_TO_LPS


#: ITK physical (LPS) millimetres to MNI (RAS) millimetres: the same map as :func:`mni_to_lps`.
lps_to_mni = mni_to_lps


def template_grid(spacing: float = 2.0, bounds_mni=HEAD_BOUNDS_MNI) -> Grid:
    """The template grid: MNI space, isotropic ``spacing`` mm, covering the head.

    Parameters
    ----------
    spacing : float, optional
        Voxel size in mm (2 mm is about the PET voxel size of the study; 4 mm makes fast tests).
    bounds_mni : tuple of (float, float), optional
        ``((x0, x1), (y0, y1), (z0, z1))`` in MNI (RAS) mm that the grid must cover (default
        :data:`HEAD_BOUNDS_MNI`).

    Returns
    -------
    Grid
        Voxel centres on the lattice ``k * spacing`` through MNI (0, 0, 0); direction
        ``diag(-1, -1, 1)`` (index axes along MNI +x, +y, +z); at 2 mm, 89 x 109 x 90 voxels.

    Raises
    ------
    InputError
        When ``spacing`` is not a positive finite number.
    """
    if not (spacing > 0 and math.isfinite(spacing)):
        raise InputError(f"template spacing must be a positive number of mm, got {spacing!r}")
    lo = [math.floor(b[0] / spacing) for b in bounds_mni]
    hi = [math.ceil(b[1] / spacing) for b in bounds_mni]
    size = tuple(int(h - l + 1) for l, h in zip(lo, hi))
    origin_mni = np.array(lo, dtype=float) * spacing
    origin = tuple(float(v) for v in mni_to_lps(origin_mni))
    return Grid(size, (float(spacing),) * 3, origin, (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0))


def grid_image(grid: Grid, pixel_type: int = sitk.sitkFloat32) -> sitk.Image:
    """An empty (zero) image on ``grid``.

    Parameters
    ----------
    grid : Grid
        The geometry.
    pixel_type : int, optional
        A SimpleITK pixel type (default ``sitk.sitkFloat32``).

    Returns
    -------
    SimpleITK.Image
        A zero image with ``grid``'s size, spacing, origin and direction.
    """
    image = sitk.Image([int(s) for s in grid.size], pixel_type)
    return grid.apply_to(image)


def resample_to_grid(
    image: sitk.Image,
    grid: Grid,
    *,
    transform: Optional[sitk.Transform] = None,
    interpolator: int = sitk.sitkLinear,
    default: float = 0.0,
    antialias: bool = True,
) -> sitk.Image:
    """Resample ``image`` onto ``grid`` (float32), block-averaging first when ``grid`` is coarser.

    With ``antialias``, each axis of ``image`` is first averaged over blocks of
    ``floor(s_out / s_in)`` voxels (ITK ``BinShrink``) where the output spacing ``s_out`` (the
    smallest of ``grid``'s) is at least twice the input's ``s_in``; this is cheap and removes most
    aliasing before linear interpolation.

    Parameters
    ----------
    image : SimpleITK.Image
        A 3D image.
    grid : Grid
        The output grid.
    transform : SimpleITK.Transform, optional
        Maps points of ``grid`` to points of ``image`` (ITK's resampling convention, LPS mm);
        identity when None.
    interpolator : int, optional
        A SimpleITK interpolator (default ``sitk.sitkLinear``); ``sitk.sitkNearestNeighbor`` turns
        the block averaging off.
    default : float, optional
        Value outside ``image``'s field of view.
    antialias : bool, optional
        Block-average before interpolating when ``grid`` is at least twice as coarse (default True).

    Returns
    -------
    SimpleITK.Image
        ``image`` on ``grid``, float32 (whatever the interpolator).
    """
    source = sitk.Cast(image, sitk.sitkFloat32)
    if antialias and interpolator != sitk.sitkNearestNeighbor:
        s_out = float(np.min(grid.spacing))
        factors = [max(1, int(math.floor(s_out / s + 1e-6))) for s in image.GetSpacing()]
        factors = [min(f, max(1, n // 2)) for f, n in zip(factors, image.GetSize())]
        if any(f > 1 for f in factors):
            source = sitk.BinShrink(source, factors)
    reference = grid_image(grid)
    tx = transform if transform is not None else sitk.Transform(3, sitk.sitkIdentity)
    return sitk.Resample(source, reference, tx, interpolator, float(default), sitk.sitkFloat32)

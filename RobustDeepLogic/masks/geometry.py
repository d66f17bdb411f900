"""MNI coordinates of a template grid, and the geometric shapes that blending masks are made of.

A mask is a float32 ``[z, y, x]`` array on a template :class:`~RobustDeepLogic.io.volumes.Grid`, with
values in [0, 1]; 1 takes the first parent ``x1`` of a blend, 0 the second (docs/method.md §4-5).
Masks are generated from *MNI coordinates*, so they mean the same anatomy on any template grid:
every voxel centre is mapped to LPS millimetres through the grid's origin, spacing and direction
(any direction matrix, not only the identity), then to MNI (RAS) coordinates with
``x_MNI = -x_LPS``, ``y_MNI = -y_LPS``, ``z_MNI = z_LPS``.

Named structures are in :mod:`RobustDeepLogic.masks.regions`, the presets and mask specs in
:mod:`RobustDeepLogic.masks.presets`, masks from files in :mod:`RobustDeepLogic.masks.files`.
"""

from __future__ import annotations

from typing import (
    Optional,
    Sequence,
    Tuple,
    Union,
)

import numpy as np
from scipy import ndimage

from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.io.volumes import Grid

Vector = Tuple[float, float, float]

#: The MNI152 2 mm grid (91 x 109 x 91 voxels, RAS-oriented image written in LPS terms). A fallback
#: for previews and tests; the real template grid comes from the template assets.
MNI152_2MM_GRID = Grid(
    size=(91, 109, 91),
    spacing=(2.0, 2.0, 2.0),
    origin=(90.0, 126.0, -72.0),
    direction=(-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0),
)

#: Where the patterns with a centre are centred when no head is given: the middle of an MNI brain.
MNI_BRAIN_CENTRE: Vector = (0.0, -18.0, 10.0)


def mni_coordinates(grid: Grid) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MNI (RAS, mm) coordinates of every voxel centre of ``grid``.

    ``p_LPS = origin + D @ (spacing * index)`` with ``index = (i, j, k)`` along ``x, y, z`` and ``D``
    the grid's direction matrix; then ``x_MNI = -x_LPS``, ``y_MNI = -y_LPS``, ``z_MNI = z_LPS``.

    Parameters
    ----------
    grid : Grid
        The sampling grid; the arrays have its ``shape``, ``(z, y, x)``.

    Returns
    -------
    x, y, z : tuple of three numpy.ndarray
        float32 ``[z, y, x]``: the MNI x (+ right), y (+ anterior) and z (+ superior) in mm.
    """
    d = np.asarray(grid.direction, dtype=np.float64).reshape(3, 3)
    nx, ny, nz = grid.size
    sx, sy, sz = grid.spacing
    i = (np.arange(nx) * sx)[None, None, :]
    j = (np.arange(ny) * sy)[None, :, None]
    k = (np.arange(nz) * sz)[:, None, None]
    sign = (-1.0, -1.0, 1.0)
    coords = []
    for row in range(3):
        c = grid.origin[row] + d[row, 0] * i + d[row, 1] * j + d[row, 2] * k
        coords.append((sign[row] * np.broadcast_to(c, grid.shape)).astype(np.float32))
    return coords[0], coords[1], coords[2]


def mni_to_index(grid: Grid, point_mni: Sequence[float]) -> np.ndarray:
    """The continuous voxel index ``(i, j, k)`` (x, y, z order) of an MNI point on ``grid``.

    Parameters
    ----------
    grid : Grid
        The sampling grid.
    point_mni : sequence of 3 float
        An MNI (RAS) point ``(x, y, z)`` in mm.

    Returns
    -------
    numpy.ndarray
        float64, shape ``(3,)``; not rounded, not clipped to the grid (the array element is ``[k, j, i]``).
    """
    lps = np.array([-point_mni[0], -point_mni[1], point_mni[2]], dtype=np.float64)
    d = np.asarray(grid.direction, dtype=np.float64).reshape(3, 3)
    return np.linalg.solve(d, lps - np.asarray(grid.origin)) / np.asarray(grid.spacing)


def head_centre(head: np.ndarray, grid: Grid) -> Vector:
    """The MNI centroid (mm) of a ``[z, y, x]`` head or brain mask on ``grid``.

    Parameters
    ----------
    head : numpy.ndarray
        ``[z, y, x]`` head or brain mask on ``grid``; voxels above 0.5 are inside.
    grid : Grid
        The grid of ``head``.

    Returns
    -------
    tuple of 3 float
        The MNI ``(x, y, z)`` of the centroid, in mm.

    Raises
    ------
    InputError
        The mask has no voxel above 0.5.
    """
    head = np.asarray(head) > 0.5
    if not head.any():
        raise InputError("the head mask is empty: cannot centre a pattern on it")
    idx = np.argwhere(head).mean(axis=0)  # (z, y, x)
    d = np.asarray(grid.direction, dtype=np.float64).reshape(3, 3)
    lps = np.asarray(grid.origin) + d @ (np.asarray(grid.spacing) * idx[::-1])
    return (float(-lps[0]), float(-lps[1]), float(lps[2]))


def _centre(grid: Grid, head: Optional[np.ndarray], centre: Optional[Sequence[float]]) -> Vector:
    if centre is not None:
        return tuple(float(c) for c in centre)  # type: ignore[return-value]
    if head is not None:
        return head_centre(head, grid)
    return MNI_BRAIN_CENTRE


def _unit(v: Sequence[float], what: str) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    if v.shape != (3,) or not np.all(np.isfinite(v)) or np.linalg.norm(v) == 0:
        raise InputError(f"{what} must be three finite numbers, not all zero; got {list(v)}")
    return v / np.linalg.norm(v)


def direction_from_angles(azimuth_deg: float, elevation_deg: float = 0.0) -> Vector:
    """A unit MNI direction: ``azimuth`` from +x (right) towards +y (anterior), ``elevation`` to +z.

    Parameters
    ----------
    azimuth_deg : float
        Angle in the axial plane, in degrees, from +x (the subject's right) towards +y (anterior).
    elevation_deg : float, optional
        Angle out of the axial plane towards +z (superior), in degrees (default 0).

    Returns
    -------
    tuple of 3 float
        The unit vector ``(x, y, z)`` in MNI coordinates: ``direction_from_angles(0) = (1, 0, 0)``,
        ``(90) = (0, 1, 0)``, ``(0, 90) = (0, 0, 1)``.
    """
    a, e = np.radians(azimuth_deg), np.radians(elevation_deg)
    return (float(np.cos(e) * np.cos(a)), float(np.cos(e) * np.sin(a)), float(np.sin(e)))


def half_space(
    grid: Grid,
    normal: Sequence[float] = (-1.0, 0.0, 0.0),
    point: Sequence[float] = (0.0, 0.0, 0.0),
) -> np.ndarray:
    """1 where ``(p - point) . normal > 0`` (MNI, mm), else 0; by default the left (``x_MNI < 0``).

    Parameters
    ----------
    grid : Grid
        The template grid.
    normal : sequence of 3 float, optional
        MNI direction into the side that gets 1, of any length, e.g. :func:`direction_from_angles`
        ``(30, 10)`` for an oblique plane (default ``(-1, 0, 0)``: the left).
    point : sequence of 3 float, optional
        An MNI point (mm) on the boundary plane (default: the MNI origin).

    Returns
    -------
    numpy.ndarray
        float32 ``[z, y, x]`` on ``grid``, in {0, 1}; voxel centres on the plane get 0.

    Raises
    ------
    InputError
        ``normal`` is not three finite numbers, not all zero.
    """
    n = _unit(normal, "normal")
    x, y, z = mni_coordinates(grid)
    s = (x - point[0]) * n[0] + (y - point[1]) * n[1] + (z - point[2]) * n[2]
    return (s > 0).astype(np.float32)


def blocks(
    grid: Grid,
    size_mm: Union[float, Sequence[float]] = 40.0,
    *,
    head: Optional[np.ndarray] = None,
    centre: Optional[Sequence[float]] = None,
) -> np.ndarray:
    """A 3D checkerboard of blocks of ``size_mm`` (one number or x, y, z sizes in mm).

    Parameters
    ----------
    grid : Grid
        The template grid.
    size_mm : float or sequence of 3 float, optional
        Edge of a block in mm, or its sizes along MNI x, y, z (default 40).
    head : numpy.ndarray, optional
        ``[z, y, x]`` head or brain mask on ``grid``, whose centroid anchors the pattern.
    centre : sequence of 3 float, optional
        The MNI point (mm) where a block corner sits (default: the head centroid, else
        :data:`MNI_BRAIN_CENTRE`).

    Returns
    -------
    numpy.ndarray
        float32 ``[z, y, x]``: 1 on the blocks whose indices along x, y, z have an even sum, else 0.

    Raises
    ------
    InputError
        A block size is not positive, or ``head`` is empty.
    """
    size = np.broadcast_to(np.asarray(size_mm, dtype=np.float64), (3,))
    if np.any(size <= 0):
        raise InputError(f"block size must be positive, got {list(size)}")
    c = _centre(grid, head, centre)
    x, y, z = mni_coordinates(grid)
    parity = (np.floor((x - c[0]) / size[0]) + np.floor((y - c[1]) / size[1])
              + np.floor((z - c[2]) / size[2]))
    return (np.mod(parity, 2) == 0).astype(np.float32)


def ellipsoid(grid: Grid, centre: Sequence[float], radii_mm: Union[float, Sequence[float]]) -> np.ndarray:
    """1 inside the axis-aligned ellipsoid of MNI ``centre`` and ``radii_mm`` (x, y, z), else 0.

    Parameters
    ----------
    grid : Grid
        The template grid.
    centre : sequence of 3 float
        The MNI centre ``(x, y, z)`` in mm.
    radii_mm : float or sequence of 3 float
        Semi-axes along MNI x, y and z in mm; one number gives a ball.

    Returns
    -------
    numpy.ndarray
        float32 ``[z, y, x]`` in {0, 1}; voxel centres on the surface are inside.

    Raises
    ------
    InputError
        A radius is not positive.
    """
    r = np.broadcast_to(np.asarray(radii_mm, dtype=np.float64), (3,))
    if np.any(r <= 0):
        raise InputError(f"radii must be positive, got {list(r)}")
    x, y, z = mni_coordinates(grid)
    q = ((x - centre[0]) / r[0]) ** 2 + ((y - centre[1]) / r[1]) ** 2 + ((z - centre[2]) / r[2]) ** 2
    return (q <= 1.0).astype(np.float32)


def sphere(grid: Grid, centre: Sequence[float], radius_mm: float) -> np.ndarray:
    """1 inside the ball of MNI ``centre`` and ``radius_mm``, else 0 (see :func:`ellipsoid`).

    Parameters
    ----------
    grid : Grid
        The template grid.
    centre : sequence of 3 float
        The MNI centre ``(x, y, z)`` in mm.
    radius_mm : float
        The radius in mm; :class:`InputError` if it is not positive.

    Returns
    -------
    numpy.ndarray
        float32 ``[z, y, x]`` in {0, 1}.
    """
    return ellipsoid(grid, centre, radius_mm)


def stripes(
    grid: Grid,
    axis: Union[str, Sequence[float]] = "z",
    width_mm: float = 20.0,
    phase_mm: float = 0.0,
) -> np.ndarray:
    """Alternating slabs of ``width_mm`` along an MNI axis (``'x'``, ``'y'``, ``'z'``) or a direction.

    1 on the slabs ``[phase + 2k w, phase + (2k+1) w)`` for every integer ``k`` (``w = width_mm``;
    positions in mm along the axis, from the MNI origin).

    Parameters
    ----------
    grid : Grid
        The template grid.
    axis : {'x', 'y', 'z'} or sequence of 3 float, optional
        The MNI axis (any case) or a direction (normalised); default ``'z'``, axial slabs.
    width_mm : float, optional
        Thickness of each slab in mm (default 20).
    phase_mm : float, optional
        Position along the axis, in mm, where a slab of 1 starts (default 0).

    Returns
    -------
    numpy.ndarray
        float32 ``[z, y, x]`` in {0, 1}.

    Raises
    ------
    InputError
        ``width_mm`` is not positive, or ``axis`` is neither x, y, z nor a non-zero direction.
    """
    if width_mm <= 0:
        raise InputError(f"stripe width must be positive, got {width_mm}")
    if isinstance(axis, str):
        key = axis.strip().lower()
        if key not in ("x", "y", "z"):
            raise InputError(f"axis must be x, y, z or a direction, got {axis!r}")
        n = np.eye(3)["xyz".index(key)]
    else:
        n = _unit(axis, "axis")
    x, y, z = mni_coordinates(grid)
    s = x * n[0] + y * n[1] + z * n[2] - phase_mm
    return (np.mod(np.floor(s / width_mm), 2) == 0).astype(np.float32)


def random_blobs(
    grid: Grid,
    seed: int = 0,
    *,
    scale_mm: float = 12.0,
    fraction: float = 0.5,
    head: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Random smooth blobs: white noise smoothed with a Gaussian of ``scale_mm``, thresholded.

    The threshold makes ``fraction`` of the voxels (of the head, when given) equal to 1. The same
    ``seed`` on the same grid gives the same mask (numpy's PCG64 generator).

    Parameters
    ----------
    grid : Grid
        The template grid.
    seed : int, optional
        Seed of the noise (default 0).
    scale_mm : float, optional
        Standard deviation of the smoothing in mm (default 12); it wraps around the grid's edges.
    fraction : float, optional
        Fraction of the voxels set to 1, strictly between 0 and 1 (default 0.5).
    head : numpy.ndarray, optional
        ``[z, y, x]`` head mask on ``grid``; the blobs still cover the whole grid.

    Returns
    -------
    numpy.ndarray
        float32 ``[z, y, x]`` in {0, 1}.

    Raises
    ------
    InputError
        ``fraction`` is not in (0, 1), ``scale_mm`` is not positive, or ``head`` is empty.
    """
    if not 0.0 < fraction < 1.0:
        raise InputError(f"fraction must lie strictly between 0 and 1, got {fraction}")
    if scale_mm <= 0:
        raise InputError(f"scale_mm must be positive, got {scale_mm}")
    rng = np.random.default_rng(int(seed))
    noise = rng.standard_normal(grid.shape).astype(np.float32)
    sigma = [scale_mm / sp for sp in (grid.spacing[2], grid.spacing[1], grid.spacing[0])]
    field = ndimage.gaussian_filter(noise, sigma, mode="wrap")
    inside = field[np.asarray(head) > 0.5] if head is not None else field.ravel()
    if inside.size == 0:
        raise InputError("the head mask is empty")
    level = np.quantile(inside, 1.0 - fraction)
    return (field > level).astype(np.float32)


def ellipsoid_head(
    grid: Grid,
    centre: Sequence[float] = (0.0, -18.0, 8.0),
    radii_mm: Sequence[float] = (75.0, 95.0, 80.0),
) -> np.ndarray:
    """A simple ellipsoid head in MNI space (for previews and tests when no template is at hand).

    Parameters
    ----------
    grid : Grid
        The template grid.
    centre, radii_mm : sequence of 3 float, optional
        The MNI centre and the semi-axes along MNI x, y, z, in mm (``(0, -18, 8)``, ``(75, 95, 80)``).

    Returns
    -------
    numpy.ndarray
        float32 ``[z, y, x]``, 1 inside the ellipsoid and 0 outside.
    """
    return ellipsoid(grid, centre, radii_mm)

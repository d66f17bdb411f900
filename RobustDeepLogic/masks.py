"""Blending masks in template (MNI) space: presets, parametric generators, regions, user files.

A mask is a float32 ``[z, y, x]`` array on a template :class:`~RobustDeepLogic.volumes.Grid`, with
values in [0, 1]; 1 takes the first parent ``x1`` of a blend, 0 the second (method.md §4-5).
Masks are generated from *MNI coordinates*, so they mean the same anatomy on any template grid:
every voxel centre is mapped to LPS millimetres through the grid's origin, spacing and direction
(any direction matrix, not only the identity), then to MNI (RAS) coordinates with
``x_MNI = -x_LPS``, ``y_MNI = -y_LPS``, ``z_MNI = z_LPS``.

What is here
------------
- Presets (:data:`PRESETS`, :func:`make_preset`): ``simple`` (mask #1, a mid-sagittal split),
  ``complex`` (mask #2, a multi-region pattern), ``coronal``, ``checkerboard``, ``blobs``, and the
  disease-focused ``alzheimer`` and ``parkinson`` region masks. docs/masks.md shows each one.
  The paper only draws its masks (its Fig. 1b); we do not claim that a preset equals a drawing.
- Generators: :func:`half_space`, :func:`blocks`, :func:`ellipsoid` / :func:`sphere`,
  :func:`stripes`, :func:`random_blobs`, :func:`region_mask` (named structures by MNI centre).
- Files: :func:`load_mask` reads a label volume or a Slicer segmentation (``.seg.nrrd``) and
  :func:`validate_mask` checks it (template grid, values in [0, 1], neither empty nor full).
- Specs: :func:`mask_from_spec` turns a string such as ``simple``, ``sphere:center=0,-20,10;radius=30``
  or a file path into a mask; the string is what synthesis records in provenance.

Every generator takes an optional ``head`` (a ``[z, y, x]`` head or brain mask on the same grid): the
patterns that have a centre (``complex``, ``checkerboard``) are then centred on its centroid, and
``random_blobs`` measures its covered fraction inside it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .errors import InputError
from .volumes import Grid

PathLike = Union[str, os.PathLike]
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


# --------------------------------------------------------------------------------------------------
# Coordinates
# --------------------------------------------------------------------------------------------------
def mni_coordinates(grid: Grid) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MNI (RAS, mm) coordinates of every voxel centre of ``grid``: three float32 ``[z, y, x]`` arrays.

    ``p_LPS = origin + D @ (spacing * index)`` with ``index = (i, j, k)`` along ``x, y, z`` and ``D``
    the grid's direction matrix; then ``x_MNI = -x_LPS``, ``y_MNI = -y_LPS``, ``z_MNI = z_LPS``.
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
    """The continuous voxel index ``(i, j, k)`` (x, y, z order) of an MNI point on ``grid``."""
    lps = np.array([-point_mni[0], -point_mni[1], point_mni[2]], dtype=np.float64)
    d = np.asarray(grid.direction, dtype=np.float64).reshape(3, 3)
    return np.linalg.solve(d, lps - np.asarray(grid.origin)) / np.asarray(grid.spacing)


def head_centre(head: np.ndarray, grid: Grid) -> Vector:
    """The MNI centroid (mm) of a ``[z, y, x]`` head or brain mask on ``grid``."""
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

    ``direction_from_angles(0) = (1, 0, 0)``, ``(90) = (0, 1, 0)``, ``(0, 90) = (0, 0, 1)``.
    """
    a, e = np.radians(azimuth_deg), np.radians(elevation_deg)
    return (float(np.cos(e) * np.cos(a)), float(np.cos(e) * np.sin(a)), float(np.sin(e)))


# --------------------------------------------------------------------------------------------------
# Generators
# --------------------------------------------------------------------------------------------------
def half_space(
    grid: Grid,
    normal: Sequence[float] = (-1.0, 0.0, 0.0),
    point: Sequence[float] = (0.0, 0.0, 0.0),
) -> np.ndarray:
    """1 where ``(p - point) . normal > 0`` in MNI coordinates (mm), else 0.

    The default is the left hemisphere (``x_MNI < 0``). Any angle: pass a ``normal`` such as
    :func:`direction_from_angles` ``(30, 10)``. Returns float32 ``[z, y, x]`` on ``grid``.
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

    A block corner sits at ``centre`` (default: the head centroid, else :data:`MNI_BRAIN_CENTRE`).
    Returns float32 ``[z, y, x]`` with 1 on the "white" blocks.
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
    """1 inside the axis-aligned ellipsoid of MNI ``centre`` and ``radii_mm`` (x, y, z), else 0."""
    r = np.broadcast_to(np.asarray(radii_mm, dtype=np.float64), (3,))
    if np.any(r <= 0):
        raise InputError(f"radii must be positive, got {list(r)}")
    x, y, z = mni_coordinates(grid)
    q = ((x - centre[0]) / r[0]) ** 2 + ((y - centre[1]) / r[1]) ** 2 + ((z - centre[2]) / r[2]) ** 2
    return (q <= 1.0).astype(np.float32)


def sphere(grid: Grid, centre: Sequence[float], radius_mm: float) -> np.ndarray:
    """1 inside the ball of MNI ``centre`` and ``radius_mm``."""
    return ellipsoid(grid, centre, radius_mm)


def stripes(
    grid: Grid,
    axis: Union[str, Sequence[float]] = "z",
    width_mm: float = 20.0,
    phase_mm: float = 0.0,
) -> np.ndarray:
    """Alternating slabs of ``width_mm`` along an MNI axis (``'x'``, ``'y'``, ``'z'``) or a direction.

    A slab starts at ``phase_mm`` along the axis; 1 on the slabs ``[phase + 2k w, phase + (2k+1) w)``.
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
    """
    from scipy import ndimage

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


@dataclass(frozen=True)
class Structure:
    """A named structure as an ellipsoid around its MNI centre (one per hemisphere)."""

    name: str
    centres: Tuple[Vector, ...]
    radii_mm: Vector
    note: str = ""


#: Approximate MNI centres and half-extents (mm) of structures for disease-focused masks. They are
#: coarse ellipsoids taken from the usual MNI locations of these structures (not an atlas); grow them
#: with ``margin_mm`` or paint an exact mask in Slicer when the study needs one.
STRUCTURES: Dict[str, Structure] = {
    s.name: s
    for s in (
        Structure("hippocampus", ((-26.0, -22.0, -12.0), (27.0, -22.0, -12.0)), (7.0, 18.0, 8.0),
                  "Alzheimer's disease"),
        Structure("entorhinal", ((-24.0, -8.0, -30.0), (25.0, -8.0, -30.0)), (6.0, 9.0, 7.0),
                  "Alzheimer's disease"),
        Structure("amygdala", ((-23.0, -4.0, -18.0), (24.0, -4.0, -18.0)), (7.0, 7.0, 7.0)),
        Structure("caudate", ((-13.0, 12.0, 9.0), (14.0, 12.0, 9.0)), (5.0, 14.0, 9.0),
                  "Parkinson's disease"),
        Structure("putamen", ((-25.0, 2.0, 1.0), (26.0, 2.0, 1.0)), (6.0, 15.0, 9.0),
                  "Parkinson's disease"),
        Structure("thalamus", ((-11.0, -18.0, 7.0), (12.0, -18.0, 7.0)), (7.0, 11.0, 7.0)),
    )
}


def region_mask(
    grid: Grid,
    structures: Union[str, Iterable[str]],
    *,
    margin_mm: float = 4.0,
    sides: str = "both",
) -> np.ndarray:
    """1 inside ellipsoids around named structures (:data:`STRUCTURES`), grown by ``margin_mm``.

    ``sides``: ``'both'``, ``'left'`` (``x_MNI < 0``) or ``'right'``.
    """
    names = [structures] if isinstance(structures, str) else list(structures)
    if not names:
        raise InputError("name at least one structure", hint=f"known: {', '.join(STRUCTURES)}")
    if sides not in ("both", "left", "right"):
        raise InputError(f"sides must be both, left or right, got {sides!r}")
    out = np.zeros(grid.shape, dtype=np.float32)
    for name in names:
        key = name.strip().lower()
        if key not in STRUCTURES:
            raise InputError(f"unknown structure {name!r}", hint=f"known: {', '.join(STRUCTURES)}")
        s = STRUCTURES[key]
        for c in s.centres:
            if (sides == "left" and c[0] > 0) or (sides == "right" and c[0] < 0):
                continue
            radii = tuple(r + margin_mm for r in s.radii_mm)
            np.maximum(out, ellipsoid(grid, c, radii), out=out)
    return out


def ellipsoid_head(
    grid: Grid,
    centre: Sequence[float] = (0.0, -18.0, 8.0),
    radii_mm: Sequence[float] = (75.0, 95.0, 80.0),
) -> np.ndarray:
    """A simple ellipsoid head in MNI space (for previews and tests when no template is at hand)."""
    return ellipsoid(grid, centre, radii_mm)


# --------------------------------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------------------------------
def _simple(grid: Grid, head: Optional[np.ndarray] = None) -> np.ndarray:
    return half_space(grid, (-1.0, 0.0, 0.0), (0.0, 0.0, 0.0))


def _complex(grid: Grid, head: Optional[np.ndarray] = None) -> np.ndarray:
    c = _centre(grid, head, None)
    x, y, z = mni_coordinates(grid)
    octant = ((x < c[0]).astype(np.int8) + (y < c[1]) + (z < c[2])) % 2
    core = ellipsoid(grid, c, (30.0, 40.0, 28.0)) > 0.5
    return np.where(core, 1 - octant, octant).astype(np.float32)


def _coronal(grid: Grid, head: Optional[np.ndarray] = None) -> np.ndarray:
    return half_space(grid, (0.0, 1.0, 0.0), (0.0, -18.0, 0.0))


def _checkerboard(grid: Grid, head: Optional[np.ndarray] = None) -> np.ndarray:
    return blocks(grid, 40.0, head=head)


def _blobs(grid: Grid, head: Optional[np.ndarray] = None) -> np.ndarray:
    return random_blobs(grid, seed=0, scale_mm=12.0, fraction=0.5, head=head)


def _alzheimer(grid: Grid, head: Optional[np.ndarray] = None) -> np.ndarray:
    return region_mask(grid, ("hippocampus", "entorhinal"), margin_mm=4.0)


def _parkinson(grid: Grid, head: Optional[np.ndarray] = None) -> np.ndarray:
    return region_mask(grid, ("caudate", "putamen"), margin_mm=4.0)


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    make: Callable[..., np.ndarray]


#: The preset library (``robustdeep masks list``); pictures in docs/masks.md.
PRESETS: Dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("simple", "mask #1: mid-sagittal split, left hemisphere (x_MNI < 0) from parent 1",
               _simple),
        Preset("complex", "mask #2: 8 octants around the brain centre in alternation, inverted inside a "
               "central ellipsoid (30x40x28 mm)", _complex),
        Preset("coronal", "anterior / posterior split at y_MNI = -18 mm, front from parent 1", _coronal),
        Preset("checkerboard", "3D checkerboard of 40 mm blocks anchored at the brain centre",
               _checkerboard),
        Preset("blobs", "random smooth blobs (seed 0, 12 mm scale) covering half the head", _blobs),
        Preset("alzheimer", "hippocampus + entorhinal cortex, both sides, +4 mm (region mask)",
               _alzheimer),
        Preset("parkinson", "caudate + putamen, both sides, +4 mm (region mask)", _parkinson),
    )
}


def make_preset(name: str, grid: Grid, head: Optional[np.ndarray] = None) -> np.ndarray:
    """The preset mask ``name`` (:data:`PRESETS`) on ``grid``: float32 ``[z, y, x]`` in {0, 1}."""
    key = name.strip().lower()
    if key not in PRESETS:
        raise InputError(f"unknown mask preset {name!r}", hint=f"presets: {', '.join(PRESETS)}")
    return PRESETS[key].make(grid, head)


# --------------------------------------------------------------------------------------------------
# Specs: one string for a preset, a generator with parameters, or a file
# --------------------------------------------------------------------------------------------------
def _floats(text: str, n: Optional[int] = None) -> List[float]:
    values = [float(v) for v in str(text).replace(" ", "").split(",") if v != ""]
    if n is not None and len(values) not in (1, n):
        raise ValueError(f"expected 1 or {n} numbers")
    return values


GENERATORS: Dict[str, str] = {
    "half-space": "normal=NX,NY,NZ (MNI direction, default -1,0,0); point=X,Y,Z (mm); "
                  "or azimuth=DEG;elevation=DEG",
    "blocks": "size=MM or SX,SY,SZ (default 40); centre=X,Y,Z",
    "sphere": "centre=X,Y,Z; radius=MM",
    "ellipsoid": "centre=X,Y,Z; radii=RX,RY,RZ",
    "stripes": "axis=x|y|z; width=MM (default 20); phase=MM",
    "blobs": "seed=N; scale=MM (default 12); fraction=F (default 0.5)",
    "regions": "names=hippocampus+entorhinal; margin=MM (default 4); sides=both|left|right",
}


def _generate(name: str, params: Mapping[str, str], grid: Grid, head: Optional[np.ndarray]) -> np.ndarray:
    p = dict(params)

    def take(key: str, default: Any = None) -> Any:
        return p.pop(key, default)

    if name == "half-space":
        if "azimuth" in p or "elevation" in p:
            normal = direction_from_angles(float(take("azimuth", 0)), float(take("elevation", 0)))
        else:
            normal = _floats(take("normal", "-1,0,0"), 3)
        out = half_space(grid, normal, _floats(take("point", "0,0,0"), 3))
    elif name == "blocks":
        centre = take("centre")
        out = blocks(grid, _floats(take("size", "40"), 3), head=head,
                     centre=_floats(centre, 3) if centre else None)
    elif name == "sphere":
        out = sphere(grid, _floats(take("centre", "0,-18,10"), 3), float(take("radius", 30)))
    elif name == "ellipsoid":
        out = ellipsoid(grid, _floats(take("centre", "0,-18,10"), 3), _floats(take("radii", "40,50,35"), 3))
    elif name == "stripes":
        axis = take("axis", "z")
        out = stripes(grid, axis if axis in ("x", "y", "z") else _floats(axis, 3),
                      float(take("width", 20)), float(take("phase", 0)))
    elif name == "blobs":
        out = random_blobs(grid, int(take("seed", 0)), scale_mm=float(take("scale", 12)),
                           fraction=float(take("fraction", 0.5)), head=head)
    elif name == "regions":
        out = region_mask(grid, str(take("names", "hippocampus")).split("+"),
                          margin_mm=float(take("margin", 4)), sides=str(take("sides", "both")))
    else:  # pragma: no cover - guarded by the caller
        raise KeyError(name)
    if p:
        raise InputError(f"unknown parameter(s) {', '.join(p)} for mask generator {name!r}",
                         hint=f"{name}: {GENERATORS[name]}")
    return out


def parse_spec(spec: str) -> Tuple[str, Dict[str, str]]:
    """``'sphere:centre=0,-20,10;radius=30'`` -> ``('sphere', {'centre': '0,-20,10', 'radius': '30'})``."""
    name, _, rest = spec.partition(":")
    params: Dict[str, str] = {}
    for part in filter(None, (s.strip() for s in rest.split(";"))):
        key, eq, value = part.partition("=")
        if not eq:
            raise InputError(f"mask spec {spec!r}: expected key=value, got {part!r}")
        params[key.strip().lower().replace("center", "centre")] = value.strip()
    return name.strip().lower(), params


def looks_like_file(spec: str) -> bool:
    from .volumes import volume_suffix

    return volume_suffix(spec) is not None or os.sep in spec or Path(spec).exists()


def mask_from_spec(
    spec: str,
    grid: Grid,
    *,
    head: Optional[np.ndarray] = None,
    base_dir: Optional[PathLike] = None,
) -> np.ndarray:
    """The mask that ``spec`` names, on ``grid``, validated.

    ``spec`` is a preset name (``simple``), a generator with parameters (``sphere:centre=0,-20,10;
    radius=30``; see :data:`GENERATORS`), or a file (a label volume or a ``.seg.nrrd``; relative
    paths are taken from ``base_dir``; ``FILE#label=3`` or ``FILE#segment=Hippocampus`` selects).
    """
    spec = str(spec).strip()
    if not spec:
        raise InputError("empty mask spec", hint=f"a preset ({', '.join(PRESETS)}) or a file")
    if looks_like_file(spec.split("#")[0]):
        path_text, _, selector = spec.partition("#")
        path = Path(path_text)
        if base_dir is not None and not path.is_absolute():
            path = Path(base_dir) / path
        sel = dict(parse_spec(":" + selector)[1]) if selector else {}
        labels = [int(v) for v in sel.pop("label").split("+")] if "label" in sel else None
        segments = sel.pop("segment").split("+") if "segment" in sel else None
        if sel:
            raise InputError(f"unknown selector(s) {', '.join(sel)}", file=path,
                             hint="use FILE#label=N or FILE#segment=NAME")
        return load_mask(path, grid, labels=labels, segments=segments)
    name, params = parse_spec(spec)
    if name in PRESETS and not params:
        return validate_mask(make_preset(name, grid, head), grid, source=f"preset {name}")
    if name in GENERATORS:
        try:
            out = _generate(name, params, grid, head)
        except (ValueError, TypeError) as exc:
            raise InputError(f"mask spec {spec!r}: {exc}", hint=f"{name}: {GENERATORS[name]}") from None
        return validate_mask(out, grid, source=f"mask spec {spec!r}")
    raise InputError(
        f"{spec!r} is neither a mask preset, a generator nor a mask file",
        hint=f"presets: {', '.join(PRESETS)}; generators: {', '.join(GENERATORS)}",
    )


def mask_tag(spec: str) -> str:
    """A short file-name-safe tag for a mask spec (the preset name, or a name plus a hash)."""
    name = Path(spec.split("#")[0]).name if looks_like_file(spec.split("#")[0]) else spec
    from .volumes import strip_volume_suffix

    stem = strip_volume_suffix(name.split(":")[0]).replace(".seg", "")
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in stem)[:24] or "mask"
    if safe == spec:
        return safe
    return f"{safe}-{hashlib.sha1(spec.encode()).hexdigest()[:6]}"


def mask_digest(mask: np.ndarray) -> str:
    """SHA-256 of a mask's float32 voxels (C order): records exactly which mask made a subject."""
    return hashlib.sha256(np.ascontiguousarray(mask, dtype=np.float32).tobytes()).hexdigest()


# --------------------------------------------------------------------------------------------------
# Files and validation
# --------------------------------------------------------------------------------------------------
def validate_mask(
    mask: np.ndarray,
    grid: Optional[Grid] = None,
    *,
    file: Optional[PathLike] = None,
    source: Optional[str] = None,
    tol: float = 1e-6,
) -> np.ndarray:
    """Check a mask and return it as float32 ``[z, y, x]`` clipped to [0, 1].

    Raises :class:`InputError` (naming ``file`` or ``source``) when the shape differs from ``grid``, a
    value is not finite or outside [0, 1] (beyond ``tol``), or the mask is empty (all 0: nothing from
    parent 1) or full (all 1: nothing from parent 2).
    """
    what = f"{source}: " if source and file is None else ""
    arr = np.asarray(mask, dtype=np.float32)
    if grid is not None and arr.shape != grid.shape:
        raise InputError(
            f"{what}the mask has shape {arr.shape} (z, y, x), the template grid {grid.shape}",
            file=file, hint="make the mask on the template grid (e.g. paint it on the template in Slicer)",
        )
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{what}the mask holds non-finite values", file=file)
    lo, hi = float(arr.min()), float(arr.max())
    if lo < -tol or hi > 1 + tol:
        raise InputError(
            f"{what}mask values must lie in [0, 1], found {lo:g} .. {hi:g}", file=file,
            hint="a label volume needs a label choice (label=N), or rescale the mask",
        )
    if hi <= tol:
        raise InputError(f"{what}the mask is empty (all 0): a blend would copy parent 2", file=file)
    if lo >= 1 - tol:
        raise InputError(f"{what}the mask is full (all 1): a blend would copy parent 1", file=file)
    return np.clip(arr, 0.0, 1.0)


def _segments_of(image: Any) -> List[Dict[str, str]]:
    keys = set(image.GetMetaDataKeys())
    found = []
    i = 0
    while f"Segment{i}_ID" in keys or f"Segment{i}_Name" in keys:
        entry = {}
        for field in ("ID", "Name", "LabelValue", "Layer"):
            key = f"Segment{i}_{field}"
            if key in keys:
                entry[field] = image.GetMetaData(key)
        found.append(entry)
        i += 1
    return found


def _place_on_grid(arr: np.ndarray, own: Grid, grid: Grid, path: PathLike) -> np.ndarray:
    """Paste ``arr`` (on ``own``, a sub-box of ``grid`` with the same spacing and axes) onto ``grid``."""
    if own.matches(grid):
        return arr
    same_axes = np.allclose(own.spacing, grid.spacing, rtol=1e-4) and np.allclose(
        own.direction, grid.direction, atol=1e-4)
    if same_axes:
        d = np.asarray(grid.direction).reshape(3, 3)
        offset = np.linalg.solve(d, np.asarray(own.origin) - np.asarray(grid.origin)) / np.asarray(grid.spacing)
        start = np.round(offset).astype(int)
        if np.allclose(offset, start, atol=1e-3) and np.all(start >= 0) and np.all(
                start + np.asarray(own.size) <= np.asarray(grid.size)):
            out = np.zeros(grid.shape, dtype=np.float32)
            i, j, k = start
            nx, ny, nz = own.size
            out[k:k + nz, j:j + ny, i:i + nx] = arr
            return out
    raise InputError(
        f"the mask is not on the template grid (mask: {own.describe()}, origin {own.origin}; "
        f"template: {grid.describe()}, origin {grid.origin})",
        file=path,
        hint="paint or resample the mask on the template volume (a cropped Slicer segmentation of it "
        "is accepted)",
    )


def load_mask(
    path: PathLike,
    grid: Optional[Grid] = None,
    *,
    labels: Optional[Sequence[int]] = None,
    segments: Optional[Sequence[str]] = None,
) -> np.ndarray:
    """Read a mask from a label volume or a Slicer segmentation file and validate it.

    Parameters
    ----------
    path:
        A volume (NIfTI, NRRD, MetaImage) or a Slicer segmentation ``.seg.nrrd`` (single- or
        multi-layer; a segmentation cropped to its extent is placed back on the template grid).
    grid:
        The template grid the mask must be on (None: the file's own grid).
    labels:
        Label values that make the mask (1 there, 0 elsewhere). Without it, a volume whose values lie
        in [0, 1] is taken as it is (a soft mask is allowed), and any other volume is an error.
    segments:
        For a ``.seg.nrrd``: segment names or IDs to take (default: all segments).

    Returns
    -------
    float32 ``[z, y, x]`` on ``grid``, in [0, 1]; :class:`InputError` naming ``path`` otherwise.
    """
    import SimpleITK as sitk

    path = Path(path)
    if not path.is_file():
        raise InputError("mask file not found", file=path)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError:
        raise InputError("cannot read this mask file", file=path,
                         hint="use a NIfTI / NRRD label volume or a Slicer .seg.nrrd") from None
    dim = image.GetDimension()
    ncomp = image.GetNumberOfComponentsPerPixel()
    seg_info = _segments_of(image)
    if dim == 4 and image.GetSize()[3] >= 1:  # layers stored as a 4th axis
        layers = [sitk.GetArrayFromImage(image[:, :, :, t]) for t in range(image.GetSize()[3])]
        image = image[:, :, :, 0]
        arr_layers = np.stack(layers)
    elif dim == 3:
        full = sitk.GetArrayFromImage(image)
        arr_layers = np.moveaxis(full, -1, 0) if ncomp > 1 else full[None]
    else:
        raise InputError(f"a mask must be a 3D volume, this file is {dim}D", file=path)
    from .volumes import Grid as _Grid

    own = _Grid(
        tuple(int(s) for s in image.GetSize()[:3]),
        tuple(float(s) for s in image.GetSpacing()[:3]),
        tuple(float(s) for s in image.GetOrigin()[:3]),
        tuple(float(s) for s in image.GetDirection()[:9]) if len(image.GetDirection()) == 9
        else (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0),
    )
    if seg_info:
        chosen = seg_info
        if segments:
            wanted = {s.lower() for s in segments}
            chosen = [s for s in seg_info if s.get("Name", "").lower() in wanted
                      or s.get("ID", "").lower() in wanted]
            if len(chosen) != len(wanted):
                names = ", ".join(s.get("Name", s.get("ID", "?")) for s in seg_info)
                raise InputError(f"segment(s) {', '.join(segments)} not found", file=path,
                                 hint=f"segments in this file: {names}")
        arr = np.zeros(arr_layers.shape[1:], dtype=bool)
        for s in chosen:
            layer = int(s.get("Layer", 0) or 0)
            value = int(s.get("LabelValue", 1) or 1)
            arr |= arr_layers[layer] == value
        arr = arr.astype(np.float32)
    else:
        if arr_layers.shape[0] != 1:
            raise InputError(f"a mask volume must have one component, this one has {ncomp}", file=path)
        raw = arr_layers[0]
        if labels is not None:
            arr = np.isin(raw, np.asarray(labels)).astype(np.float32)
        else:
            arr = raw.astype(np.float32)
    if grid is not None:
        arr = _place_on_grid(arr, own, grid, path)
    return validate_mask(arr, grid, file=path)


def save_preview(
    mask: np.ndarray,
    grid: Grid,
    path: PathLike,
    *,
    head: Optional[np.ndarray] = None,
    title: str = "",
    dpi: int = 60,
) -> Path:
    """A PNG with axial, coronal and sagittal cuts through the brain centre of ``mask``.

    Parent 1 (mask 1) is red, parent 2 blue; outside ``head`` (when given) is dark grey. Axes are MNI
    millimetres with +x (the subject's right) to the right of the picture: neurological view.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .volumes import atomic_path

    m = np.asarray(mask, dtype=np.float32)
    h = np.ones_like(m) if head is None else (np.asarray(head) > 0.5).astype(np.float32)
    # Cut through the brain centre, or through the mask's own centroid (left side) when it is small.
    centre = MNI_BRAIN_CENTRE
    if 0 < m.mean() < 0.1:
        left = m * (mni_coordinates(grid)[0] < 0)
        centre = head_centre(left if left.any() else m, grid)
    k, j, i = np.round(mni_to_index(grid, centre)[::-1]).astype(int)
    k, j, i = (int(np.clip(v, 0, n - 1)) for v, n in zip((k, j, i), grid.shape))
    # Arrange every cut with MNI +x to the right, +y / +z up, whatever the grid's direction.
    x, y, z = mni_coordinates(grid)
    cuts = [(f"axial (z = {centre[2]:.0f})", (k, slice(None), slice(None)), x, y),
            (f"coronal (y = {centre[1]:.0f})", (slice(None), j, slice(None)), x, z),
            (f"sagittal (x = {centre[0]:.0f})", (slice(None), slice(None), i), y, z)]
    fig, axes = plt.subplots(1, 3, figsize=(7.5, 2.8))
    for ax, (name, key, u, v) in zip(axes, cuts):
        img = np.where(h[key] > 0, m[key], np.nan)
        uu, vv = u[key], v[key]
        ax.pcolormesh(uu, vv, img, cmap="coolwarm", vmin=0, vmax=1, shading="auto", rasterized=True)
        ax.set_aspect("equal")
        ax.set_facecolor("0.15")
        ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=6)
    axes[0].set_xlabel("x (R+) mm", fontsize=7)
    axes[0].set_ylabel("y (A+) mm", fontsize=7)
    axes[1].set_xlabel("x (R+) mm", fontsize=7)
    axes[1].set_ylabel("z (S+) mm", fontsize=7)
    axes[2].set_xlabel("y (A+) mm", fontsize=7)
    axes[2].set_ylabel("z (S+) mm", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    return path


__all__ = [
    "MNI152_2MM_GRID", "MNI_BRAIN_CENTRE", "mni_coordinates", "mni_to_index", "head_centre",
    "direction_from_angles", "half_space", "blocks", "ellipsoid", "sphere", "stripes", "random_blobs",
    "STRUCTURES", "region_mask", "ellipsoid_head", "PRESETS", "make_preset", "GENERATORS",
    "parse_spec", "mask_from_spec", "mask_tag", "mask_digest", "validate_mask", "load_mask",
    "save_preview",
]

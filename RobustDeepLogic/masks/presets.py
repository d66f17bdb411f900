"""The mask library: named presets, parametric generators, and mask specs (docs/method.md §5).

- Presets (:data:`PRESETS`, :func:`make_preset`): ``simple`` (used as mask #1, a mid-sagittal split),
  ``complex`` (used as mask #2, a multi-region pattern), ``coronal``, ``checkerboard``, ``blobs``, and
  the disease-focused ``alzheimer`` and ``parkinson`` region masks. docs/masks.md shows each one.
  The paper only draws its masks (its Fig. 1b); we do not claim that a preset equals a drawing.
- Generators (:data:`GENERATORS`): the shapes of :mod:`RobustDeepLogic.masks.geometry` and the
  structures of :mod:`RobustDeepLogic.masks.regions`, by name and with parameters.
- Specs: :func:`mask_from_spec` turns a string such as ``simple``, ``sphere:center=0,-20,10;radius=30``
  or a file path into a validated mask; the string is what synthesis records in provenance, together
  with :func:`mask_tag` (a name for files) and :func:`mask_digest` (the SHA-256 of the voxels).

Reading and validating mask files is in :mod:`RobustDeepLogic.masks.files`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import (
    Any,
    Callable,
    Dict,
    List,
    Mapping,
    Optional,
    Tuple,
)

import numpy as np

from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.files import strip_volume_suffix, volume_suffix
from RobustDeepLogic.core.types import PathLike
from RobustDeepLogic.io.volumes import Grid
from RobustDeepLogic.masks.files import load_mask, validate_mask
from RobustDeepLogic.masks.geometry import (
    _centre,
    blocks,
    direction_from_angles,
    ellipsoid,
    half_space,
    mni_coordinates,
    random_blobs,
    sphere,
    stripes,
)
from RobustDeepLogic.masks.regions import region_mask


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
    """A named mask of the library: its description and the function that makes it.

    Attributes
    ----------
    name : str
        The preset's name, its key in :data:`PRESETS`.
    description : str
        One line shown by ``robustdeep masks list``.
    make : callable
        ``make(grid, head=None)``: the float32 ``[z, y, x]`` mask on ``grid``, in {0, 1}.
    """

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
    """The preset mask ``name`` (:data:`PRESETS`) on ``grid``.

    Parameters
    ----------
    name : str
        A preset name (any case, surrounding spaces ignored).
    grid : Grid
        The template grid (:class:`~RobustDeepLogic.io.volumes.Grid`).
    head : numpy.ndarray, optional
        ``[z, y, x]`` head or brain mask on ``grid``: ``complex`` and ``checkerboard`` are then centred
        on its centroid, and ``blobs`` covers half of it; the other presets ignore it. Without it,
        patterns are centred on :data:`~RobustDeepLogic.masks.geometry.MNI_BRAIN_CENTRE`.

    Returns
    -------
    numpy.ndarray
        float32 ``[z, y, x]`` on ``grid``, in {0, 1} (not passed through
        :func:`~RobustDeepLogic.masks.files.validate_mask`).

    Raises
    ------
    InputError
        ``name`` is not a preset (or ``head`` is empty).
    """
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


#: The mask generators of :func:`mask_from_spec`: name -> the ``key=value`` parameters it takes.
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
    """Split a mask spec into its name and its parameters.

    ``'sphere:centre=0,-20,10;radius=30'`` -> ``('sphere', {'centre': '0,-20,10', 'radius': '30'})``.

    Parameters
    ----------
    spec : str
        ``NAME`` or ``NAME:key=value;key=value;...``.

    Returns
    -------
    name : str
        The name, stripped and lower-case.
    params : dict of str to str
        The parameters: keys stripped and lower-case, with ``center`` spelt ``centre``; values
        stripped but not converted.

    Raises
    ------
    InputError
        A parameter has no ``=``.
    """
    name, _, rest = spec.partition(":")
    params: Dict[str, str] = {}
    for part in filter(None, (s.strip() for s in rest.split(";"))):
        key, eq, value = part.partition("=")
        if not eq:
            raise InputError(f"mask spec {spec!r}: expected key=value, got {part!r}")
        params[key.strip().lower().replace("center", "centre")] = value.strip()
    return name.strip().lower(), params


def looks_like_file(spec: str) -> bool:
    """Whether a mask spec names a file rather than a preset or a generator.

    Parameters
    ----------
    spec : str
        A mask spec without its ``#`` selector.

    Returns
    -------
    bool
        True when ``spec`` has a volume file ending (``.nii.gz``, ``.nrrd``, ...), contains the path
        separator, or names an existing path (relative to the current directory).
    """
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
    paths are taken from ``base_dir``; ``FILE#label=3`` or ``FILE#segment=Hippocampus`` selects,
    ``+`` joins several: ``FILE#label=1+2``). ``blobs`` is both a preset and a generator: without
    parameters it is the preset.

    Parameters
    ----------
    spec : str
        The mask spec.
    grid : Grid
        The template grid (:class:`~RobustDeepLogic.io.volumes.Grid`) the mask is made on, or that a
        mask file must be on.
    head : numpy.ndarray, optional
        ``[z, y, x]`` head mask on ``grid``, passed to the presets and generators that use one (see
        :func:`make_preset`); ignored for files.
    base_dir : path-like, optional
        The folder relative file paths are taken from. Default: the current directory.

    Returns
    -------
    numpy.ndarray
        float32 ``[z, y, x]`` on ``grid``, in [0, 1], neither empty nor full
        (:func:`~RobustDeepLogic.masks.files.validate_mask`).

    Raises
    ------
    InputError
        The spec is empty or names nothing known; a generator parameter is unknown or not a number;
        a selector is unknown; the file cannot be read or is not on ``grid``; or the mask fails
        validation.
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
    """A short file-name-safe tag for a mask spec (the preset name, or a name plus a hash).

    A spec made only of letters, digits, ``-`` and ``_`` (at most 24 of them, such as a preset name)
    is its own tag. Any other spec gets a safe stem (the generator's name, or the file name without
    its ending) of at most 24 characters, ``-`` and the first 6 hex digits of the spec's SHA-1:
    ``'sphere:radius=30'`` -> ``'sphere-'`` and 6 digits. Synthesis names the stored mask
    (``masks/TAG.nii.gz``) and the subjects after it.

    Parameters
    ----------
    spec : str
        The mask spec.

    Returns
    -------
    str
        The tag.
    """
    name = Path(spec.split("#")[0]).name if looks_like_file(spec.split("#")[0]) else spec

    stem = strip_volume_suffix(name.split(":")[0]).replace(".seg", "")
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in stem)[:24] or "mask"
    if safe == spec:
        return safe
    return f"{safe}-{hashlib.sha1(spec.encode()).hexdigest()[:6]}"


def mask_digest(mask: np.ndarray) -> str:
    """SHA-256 of a mask's float32 voxels (C order): records exactly which mask made a subject.

    Parameters
    ----------
    mask : numpy.ndarray
        The ``[z, y, x]`` mask; it is converted to float32 first.

    Returns
    -------
    str
        The digest, 64 hex digits.
    """
    return hashlib.sha256(np.ascontiguousarray(mask, dtype=np.float32).tobytes()).hexdigest()

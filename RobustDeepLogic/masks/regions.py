"""Masks of named brain structures, as coarse ellipsoids around their usual MNI locations.

The paper suggests designing the mask for the endpoint of a study, for example around the entorhinal
cortex and hippocampus for Alzheimer's disease or the caudate and putamen for Parkinson's disease
(docs/method.md §5). :data:`STRUCTURES` holds approximate MNI centres and half-extents of such
structures (not an atlas) and :func:`region_mask` makes a mask of their union. The presets
``alzheimer`` and ``parkinson`` of :mod:`RobustDeepLogic.masks.presets` use it; the ellipsoids
themselves come from :mod:`RobustDeepLogic.masks.geometry`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import (
    Dict,
    Iterable,
    Tuple,
    Union,
)

import numpy as np

from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.io.volumes import Grid
from RobustDeepLogic.masks.geometry import Vector, ellipsoid


@dataclass(frozen=True)
class Structure:
    """A named structure as an ellipsoid around its MNI centre (one per hemisphere).

    Attributes
    ----------
    name : str
        Lower-case name, the key in :data:`STRUCTURES` and in :func:`region_mask`.
    centres : tuple of (float, float, float)
        MNI centres ``(x, y, z)`` in mm, one per hemisphere (left, ``x_MNI < 0``, first).
    radii_mm : tuple of 3 float
        Semi-axes of the ellipsoid along MNI x, y, z in mm, the same for every centre.
    note : str, optional
        The disease the structure is of interest for (e.g. ``"Alzheimer's disease"``), or empty.
    """

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

    Parameters
    ----------
    grid : Grid
        The template grid (:class:`~RobustDeepLogic.io.volumes.Grid`).
    structures : str or iterable of str
        One name or several, keys of :data:`STRUCTURES` (any case, surrounding spaces ignored).
    margin_mm : float, optional
        Added to every semi-axis of every ellipsoid, in mm (default 4).
    sides : {'both', 'left', 'right'}, optional
        The hemispheres whose ellipsoids are drawn: ``'left'`` is ``x_MNI < 0``, ``'right'``
        ``x_MNI > 0``. Default ``'both'``.

    Returns
    -------
    numpy.ndarray
        float32 ``[z, y, x]`` on ``grid``, 1 inside the union of the ellipsoids and 0 elsewhere.

    Raises
    ------
    InputError
        No structure is named, a name is unknown, or ``sides`` is not one of the three values.

    References
    ----------
    docs/method.md §5 (masks designed for the endpoint of a study).
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

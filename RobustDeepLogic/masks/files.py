"""Masks as files: validation, reading label volumes and Slicer segmentations, PNG previews.

A user may paint a mask in 3D Slicer on the template volume and save it as a label volume or a
segmentation (``.seg.nrrd``); :func:`load_mask` reads it back onto the template grid.
:func:`validate_mask` checks any mask before it is used in a blend (the template grid's shape,
values in [0, 1], neither empty nor full), and :func:`save_preview` draws one
(``robustdeep masks preview``). The shapes and the preset library are in
:mod:`RobustDeepLogic.masks.geometry` and :mod:`RobustDeepLogic.masks.presets`.
"""

from __future__ import annotations

from pathlib import Path
from typing import (
    Any,
    Dict,
    List,
    Optional,
    Sequence,
)

import numpy as np
import SimpleITK as sitk

from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.files import atomic_path
from RobustDeepLogic.core.types import PathLike
from RobustDeepLogic.io.volumes import Grid
from RobustDeepLogic.io.volumes import Grid as _Grid
from RobustDeepLogic.masks.geometry import (
    MNI_BRAIN_CENTRE,
    head_centre,
    mni_coordinates,
    mni_to_index,
)


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

    Parameters
    ----------
    mask : numpy.ndarray
        ``[z, y, x]`` weights; 1 takes parent 1.
    grid : Grid, optional
        The template grid (:class:`~RobustDeepLogic.io.volumes.Grid`) whose shape ``(z, y, x)`` the
        mask must have; only the shape is compared (an array carries no geometry). None: any shape.
    file : path-like, optional
        The file the mask came from, named in errors.
    source : str, optional
        What the mask is (e.g. ``"preset simple"``), put before error messages when no ``file`` is
        given.
    tol : float, optional
        Tolerance of the [0, 1] range and of the empty and full tests (default 1e-6).

    Returns
    -------
    numpy.ndarray
        The mask as float32 ``[z, y, x]``, clipped to [0, 1].

    Raises
    ------
    InputError
        (naming ``file`` or ``source``) The shape differs from ``grid``; a value is not finite or
        outside [0, 1] (beyond ``tol``); or the mask is empty (all 0: nothing from parent 1) or full
        (all 1: nothing from parent 2).
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
    path : path-like
        A volume (NIfTI, NRRD, MetaImage) or a Slicer segmentation ``.seg.nrrd`` (single- or
        multi-layer).
    grid : Grid, optional
        The template grid (:class:`~RobustDeepLogic.io.volumes.Grid`) the mask must be on. A file on
        a sub-box of it (same spacing and axes, whole-voxel offset, such as a segmentation cropped to
        its extent) is placed back on it, with 0 around. None: the file's own grid.
    labels : sequence of int, optional
        For a label volume: the label values that make the mask (1 there, 0 elsewhere). Without it, a
        volume whose values lie in [0, 1] is taken as it is (a soft mask is allowed), and any other
        volume is an error. Ignored for a segmentation.
    segments : sequence of str, optional
        For a ``.seg.nrrd``: segment names or IDs to take (any case; default: all segments), united.

    Returns
    -------
    numpy.ndarray
        float32 ``[z, y, x]`` on ``grid`` (or the file's grid), in [0, 1], neither empty nor full.

    Raises
    ------
    InputError
        (naming ``path``) The file is missing, unreadable, not 3D or has several components without
        segment information; a segment is not found; the file is not on ``grid`` nor on a sub-box of
        it; or the mask fails :func:`validate_mask`.
    """
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
    """Save a PNG with axial, coronal and sagittal cuts through the brain centre of ``mask``.

    The cuts go through :data:`~RobustDeepLogic.masks.geometry.MNI_BRAIN_CENTRE`; a small mask (mean
    below 0.1, such as a region mask) is cut through the centroid of its left part (``x_MNI < 0``)
    instead, or of the whole mask when it has no left part. Parent 1 (mask 1) is red, parent 2 blue;
    outside ``head`` (when given) is dark grey. Axes are MNI millimetres with +x (the subject's
    right) to the right of the picture: neurological view. Needs matplotlib.

    Parameters
    ----------
    mask : numpy.ndarray
        ``[z, y, x]`` mask on ``grid``, values in [0, 1].
    grid : Grid
        The grid of ``mask`` (:class:`~RobustDeepLogic.io.volumes.Grid`).
    path : path-like
        The PNG file, written atomically.
    head : numpy.ndarray, optional
        ``[z, y, x]`` head mask on ``grid`` (voxels above 0.5 inside); None shows the whole grid.
    title : str, optional
        A title above the three cuts; empty (default) for none.
    dpi : int, optional
        Resolution of the 7.5 x 2.8 inch figure (default 60).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


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

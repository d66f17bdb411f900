"""The head region of a volume: one implementation for every stage that needs a head mask.

A head mask starts from a foreground map (voxels above a threshold), which each caller computes in its
own units, and is then cleaned by :func:`clean_head` in one fixed order:

1. an opening, which cuts thin bridges to a couch or a head holder (optional);
2. a closing with a ball, computed on a padded copy so the grid's edge does not erode it (optional);
3. the largest connected component;
4. a regrowth of that component inside the foreground, which restores the edge the opening took
   (optional);
5. holes filled in 3D, then in every axial slice, which also fills cavities that open towards the neck
   (each optional).

Where the stages differ is the foreground rule, which is theirs to choose:

- training and prediction (:func:`head_mask`): any co-registered scaled volume above a fraction of
  its 99th percentile after a light smoothing;
- evaluation (:func:`RobustDeepLogic.evaluate.metrics.head_mask`): the reference above a fixed
  scaled-unit threshold, then a closing;
- registration (:func:`RobustDeepLogic.registration.images.foreground_mask`): a native image in
  SUV / HU / MR units at low resolution, with an opening;
- the template (:func:`RobustDeepLogic.registration.templates.head_mask`): the tissue maps' air
  probability below one half.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage


def ball(radius: int) -> np.ndarray:
    """A 3D ball structuring element.

    Parameters
    ----------
    radius : int
        Radius in voxels.

    Returns
    -------
    numpy.ndarray
        Boolean array of shape ``(2r + 1, 2r + 1, 2r + 1)``, True where the distance to the centre is
        at most ``radius``.
    """
    r = int(radius)
    zz, yy, xx = np.mgrid[-r : r + 1, -r : r + 1, -r : r + 1]
    return (zz * zz + yy * yy + xx * xx) <= r * r


def largest_component(mask: np.ndarray, *, full_connectivity: bool = False) -> np.ndarray:
    """The largest connected component of a boolean mask.

    Parameters
    ----------
    mask : numpy.ndarray
        Boolean mask of any dimension.
    full_connectivity : bool, optional
        Voxels touching by a corner are connected (26-connectivity in 3D); default: by a face (6).

    Returns
    -------
    numpy.ndarray
        Boolean mask of the same shape; ``mask`` itself when it has one component or none. Ties go to
        the component found first in C order.
    """
    structure = np.ones((3,) * mask.ndim, bool) if full_connectivity else None
    labels, n = ndimage.label(mask, structure=structure)
    if n <= 1:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def fill_holes(mask: np.ndarray, *, volume: bool = True, slices: bool = True) -> np.ndarray:
    """Fill the holes of a ``[z, y, x]`` mask in 3D, then within each axial slice.

    A hole of a slice is background that no path within that slice connects to the slice's border:
    the skull's cavity of an MR, which opens towards the neck in 3D, is one.

    Parameters
    ----------
    mask : numpy.ndarray
        Boolean ``[z, y, x]`` mask (a 2D mask gets only the ``volume`` filling).
    volume : bool, optional
        Fill holes in 3D (face connectivity).
    slices : bool, optional
        Then fill holes within each axial slice ``mask[z]``.

    Returns
    -------
    numpy.ndarray
        Boolean mask of the same shape; ``mask`` itself when both fillings are off.
    """
    if volume:
        mask = ndimage.binary_fill_holes(mask)
    if slices and mask.ndim == 3:
        in_plane = np.zeros((3, 3, 3), bool)
        in_plane[1] = ndimage.generate_binary_structure(2, 1)
        mask = ndimage.binary_fill_holes(mask, structure=in_plane)
    return mask


def clean_head(
    foreground: np.ndarray,
    *,
    opening: int = 0,
    closing_radius: int = 0,
    full_connectivity: bool = False,
    regrow: int = 0,
    fill_volume: bool = True,
    fill_slices: bool = True,
) -> np.ndarray:
    """The head region of a foreground map (the steps of the module doc, in that order).

    Parameters
    ----------
    foreground : numpy.ndarray
        ``[z, y, x]`` map of voxels above the caller's threshold (cast to bool).
    opening : int, optional
        Iterations of a binary opening (face-connected structure); 0 skips it. When the opening
        removes everything, the unopened map is used.
    closing_radius : int, optional
        Radius in voxels of a ball closing (on a padded copy); 0 skips it.
    full_connectivity : bool, optional
        Connectivity of the largest-component step (see :func:`largest_component`).
    regrow : int, optional
        Iterations of a dilation of the component, kept inside ``foreground``; 0 skips it.
    fill_volume, fill_slices : bool, optional
        Which hole filling to apply (see :func:`fill_holes`).

    Returns
    -------
    numpy.ndarray
        Boolean mask of ``foreground``'s shape; all False when ``foreground`` is empty.
    """
    raw = np.asarray(foreground, bool)
    mask = raw
    if not mask.any():
        return mask
    if opening > 0:
        opened = ndimage.binary_opening(mask, iterations=int(opening))
        mask = opened if opened.any() else mask
    if closing_radius > 0:
        r = int(closing_radius)
        padded = ndimage.binary_closing(np.pad(mask, r), structure=ball(r))
        mask = padded[tuple(slice(r, -r) for _ in range(mask.ndim))]
    mask = largest_component(mask, full_connectivity=full_connectivity)
    if regrow > 0:
        mask = ndimage.binary_dilation(mask, iterations=int(regrow)) & raw
    return fill_holes(mask, volume=fill_volume, slices=fill_slices)


def head_mask(arrays: Sequence[np.ndarray], fraction: float = 0.05, sigma: float = 1.0) -> np.ndarray:
    """Head region of co-registered scaled ``[z, y, x]`` volumes, for training and prediction.

    A voxel is foreground when, in any volume, its Gaussian-smoothed value (``sigma`` voxels) exceeds
    ``fraction`` of that volume's 99th percentile; :func:`clean_head` keeps the largest component and
    fills holes slice by slice. Scaled backgrounds are near 0 (PET, MR, CT air at -1000 HU).

    Parameters
    ----------
    arrays : sequence of numpy.ndarray
        Volumes on one grid, in the scaled [0, 1] units of the network.
    fraction : float, optional
        Threshold as a fraction of each volume's 99th percentile.
    sigma : float, optional
        Gaussian smoothing in voxels before thresholding; 0 skips it.

    Returns
    -------
    numpy.ndarray
        Boolean ``[z, y, x]`` mask; all False when no volume has signal, of shape ``(0, 0, 0)`` when
        ``arrays`` is empty.
    """
    mask = None
    for a in arrays:
        a = np.asarray(a, dtype=np.float32)
        smooth = ndimage.gaussian_filter(a, sigma) if sigma > 0 else a
        level = float(np.percentile(smooth, 99))
        m = smooth > fraction * level if level > 0 else np.zeros(a.shape, bool)
        mask = m if mask is None else (mask | m)
    if mask is None:
        return np.zeros((0, 0, 0), bool)
    return clean_head(mask, fill_volume=False, fill_slices=True)

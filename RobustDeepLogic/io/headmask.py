"""The head region of a volume: one policy, one function (:func:`head_mask`), for every stage.

**The policy** (:func:`head_mask`): on volumes in the network's scaled [0, 1] units, a voxel is
foreground when it exceeds :data:`HEAD_THRESHOLD` (0.02: 0.3 SUV for FD, LD and MAC at SUV / 15, 0.1
SUV for NAC at SUV / 5, -940 HU for CT at (HU + 1000) / 3000) in any of the volumes given; the
foreground is then closed with a ball of :data:`HEAD_CLOSING` voxels (on a padded copy, so the grid's
edge does not erode it), its largest 26-connected component is kept, and its holes are filled in 3D
and then in every axial slice. The same function, on the same reference volume, gives:

- the region of the reported metrics (:mod:`RobustDeepLogic.evaluate`, of the scaled reference);
- the region of the validation metrics during training (:mod:`RobustDeepLogic.training.validation`,
  of the scaled target), voxel for voxel the evaluation's;
- the head of a training subject (:mod:`RobustDeepLogic.data.sources`, of its reference volume: the
  task's target), whose slices and boxes place the training windows;
- the crop of a prediction (:mod:`RobustDeepLogic.predict`, of its inputs, having no reference): a
  time saving only, as the head voxels get the values a full-slice prediction gives them.

The cleaning steps are :func:`clean_head`, in one fixed order:

1. an opening, which cuts thin bridges to a couch or a head holder (optional);
2. a closing with a ball, computed on a padded copy so the grid's edge does not erode it (optional);
3. the largest connected component;
4. a regrowth of that component inside the foreground, which restores the edge the opening took
   (optional);
5. holes filled in 3D, then in every axial slice, which also fills cavities that open towards the neck
   (each optional).

Two stages clean a foreground of another kind with :func:`clean_head`, and are not the head region
above: the registration's region of interest (:func:`RobustDeepLogic.registration.images.foreground_mask`,
a native image in SUV / HU / MR units at low resolution, with an opening) and the template's head
(:func:`RobustDeepLogic.registration.templates.head_mask`, the tissue maps' air probability below one
half).
"""

from __future__ import annotations

from typing import Sequence, Union

import numpy as np
from scipy import ndimage

#: The head's foreground threshold, in the scaled [0, 1] units (0.3 SUV for FD / LD / MAC at SUV / 15,
#: 0.1 SUV for NAC at SUV / 5, -940 HU for CT at (HU + 1000) / 3000).
HEAD_THRESHOLD = 0.02

#: Radius in voxels of the ball that closes the head's foreground.
HEAD_CLOSING = 2


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


def head_mask(volumes: Union[np.ndarray, Sequence[np.ndarray]], threshold: float = HEAD_THRESHOLD,
              closing_radius: int = HEAD_CLOSING) -> np.ndarray:
    """The head region of scaled ``[z, y, x]`` volumes: the one policy of the module doc.

    A voxel is foreground when it exceeds ``threshold`` in any of ``volumes``; :func:`clean_head`
    closes the foreground with a ball of ``closing_radius`` voxels, keeps its largest 26-connected
    component and fills holes in 3D and then in every axial slice. For the head of a reference
    (metrics, training subjects) give that volume alone.

    Parameters
    ----------
    volumes : numpy.ndarray or sequence of numpy.ndarray
        One ``[z, y, x]`` volume, a ``[c, z, y, x]`` stack, or a sequence of volumes on one grid, in
        the scaled [0, 1] units of the network (NaN voxels are background).
    threshold : float, optional
        Foreground threshold in scaled units (default :data:`HEAD_THRESHOLD`).
    closing_radius : int, optional
        Radius in voxels of the ball of the closing (default :data:`HEAD_CLOSING`); 0 skips it.

    Returns
    -------
    numpy.ndarray
        Boolean ``[z, y, x]`` mask; all False when no voxel exceeds the threshold, of shape
        ``(0, 0, 0)`` when ``volumes`` is an empty sequence.

    References
    ----------
    docs/method.md §8 (the metrics are over the head region).
    """
    if isinstance(volumes, np.ndarray) and volumes.ndim == 3:
        volumes = [volumes]
    foreground = None
    for a in volumes:
        above = np.asarray(a) > threshold
        foreground = above if foreground is None else (foreground | above)
    if foreground is None:
        return np.zeros((0, 0, 0), bool)
    return clean_head(foreground, closing_radius=int(closing_radius), full_connectivity=True)

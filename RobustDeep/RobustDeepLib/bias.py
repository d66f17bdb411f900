"""The review's bias map made ready for a slice view: NaN outside the head.

Slice views do not take a scalar volume's transparency from its colour table: a voxel is hidden by the
display threshold, which NaN never passes (:func:`RobustDeepLib.mrml_views.show_bias_map`). Free of Qt
and of Slicer: tested with plain pytest; used by the desktop module's Review panel and by RobustDeep
Studio.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk


def bias_for_display(bias: sitk.Image, head: sitk.Image) -> sitk.Image:
    """The bias map with NaN outside the head, so that slice views show it transparent there.

    :func:`review_figures` gives 0 outside the head (the engine's map); a 0 inside the head is a
    perfect voxel and must stay visible, so the two are told apart here.

    Parameters
    ----------
    bias : SimpleITK.Image
        The bias map (``review_figures(...)["bias_percent"]``).
    head : SimpleITK.Image
        The head region on the same grid (``review_figures(...)["head"]``).

    Returns
    -------
    SimpleITK.Image
        float32, ``bias`` inside the head and NaN outside, with ``bias``'s geometry.
    """
    values = sitk.GetArrayFromImage(bias).astype(np.float32)
    values[sitk.GetArrayViewFromImage(head) == 0] = np.nan
    image = sitk.GetImageFromArray(values)
    image.CopyInformation(bias)
    return image


__all__ = ["bias_for_display"]

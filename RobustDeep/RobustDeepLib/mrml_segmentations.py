"""MRML glue, masks: segmentation nodes <-> binary masks (SimpleITK, LPS) on a template's grid.

The masks of the Masks panel are painted as segments over the template; the engine takes them as
binary images on the template grid. Geometry conversions are those of :mod:`RobustDeepLib.mrml_volumes`.

Everything here works on MRML nodes and a ``vtkMRMLScene`` and nothing else: no Qt, no
``slicer.util``, no ``slicer.app``. So it runs inside Slicer and, for tests, under the ``slicer-core``
wheel (``from slicer import vtkMRMLScene``), see ``Testing/MRML/``.
"""

from __future__ import annotations

from typing import Any, Iterable, List, Optional

import numpy as np
import SimpleITK as sitk
import vtk

import slicer

from RobustDeepLib.mrml_volumes import add_volume_node, volume_node_to_image


def _segment_ids(segmentation_node: Any, segment_ids: Optional[Iterable[str]]) -> vtk.vtkStringArray:
    ids = vtk.vtkStringArray()
    if segment_ids is None:
        segmentation_node.GetSegmentation().GetSegmentIDs(ids)
    else:
        for sid in segment_ids:
            ids.InsertNextValue(str(sid))
    return ids


def segmentation_to_mask(
    segmentation_node: Any,
    reference_node: Any,
    segment_ids: Optional[Iterable[str]] = None,
) -> sitk.Image:
    """A binary mask (uint8, 1 inside any chosen segment) on the grid of ``reference_node``.

    ``reference_node`` is the template volume the mask is drawn over; the segments are exported with
    its extent (``EXTENT_REFERENCE_GEOMETRY``), so the result has its geometry exactly (LPS, as every
    engine image), whatever the segmentation's own labelmap geometry.

    Parameters
    ----------
    segmentation_node : vtkMRMLSegmentationNode
        The segmentation, in a scene.
    reference_node : vtkMRMLScalarVolumeNode
        The volume whose grid the mask is made on.
    segment_ids : iterable of str, optional
        The segments to take; None: all of them.

    Returns
    -------
    SimpleITK.Image
        uint8, 1 inside any chosen segment and 0 elsewhere, on ``reference_node``'s grid.

    Raises
    ------
    ValueError
        When the segmentation is not in a scene or has no segments to export.
    RuntimeError
        When Slicer cannot export the segments to a labelmap.
    """
    scene = segmentation_node.GetScene()
    if scene is None:
        raise ValueError("the segmentation node is not in a scene")
    ids = _segment_ids(segmentation_node, segment_ids)
    if ids.GetNumberOfValues() == 0:
        raise ValueError(f"segmentation {segmentation_node.GetName()!r} has no segments to export")
    labelmap = slicer.vtkMRMLLabelMapVolumeNode()
    labelmap.SetName("RobustDeep mask export")
    scene.AddNode(labelmap)
    try:
        logic = slicer.vtkSlicerSegmentationsModuleLogic
        # The reference's extent, not the segments' (the default): the labelmap is on its grid.
        if not logic.ExportSegmentsToLabelmapNode(segmentation_node, ids, labelmap, reference_node,
                                                  slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY):
            raise RuntimeError("exporting the segments to a labelmap failed")
        image = volume_node_to_image(labelmap)
    finally:
        display = labelmap.GetDisplayNode()
        scene.RemoveNode(labelmap)
        if display is not None and display.GetScene() is not None:
            scene.RemoveNode(display)
    mask = sitk.Cast(image > 0, sitk.sitkUInt8)
    reference = volume_node_to_image(reference_node)
    if mask.GetSize() != reference.GetSize() or not np.allclose(mask.GetOrigin(), reference.GetOrigin(),
                                                                atol=1e-4):
        mask = sitk.Resample(mask, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return mask


def mask_to_segmentation(
    mask: sitk.Image,
    segmentation_node: Any,
    *,
    segment_name: str = "mask",
    threshold: float = 0.5,
) -> str:
    """Add ``mask`` (voxels >= ``threshold`` are inside) as a segment; returns the new segment's id.

    A soft mask in [0, 1] is cut at ``threshold`` for editing; the engine keeps the soft one.

    Parameters
    ----------
    mask : SimpleITK.Image
        A 3D mask, binary or soft, with LPS geometry.
    segmentation_node : vtkMRMLSegmentationNode
        The segmentation that receives the segment, in a scene.
    segment_name : str, optional
        The new segment's name.
    threshold : float, optional
        Voxels at or above it are inside.

    Returns
    -------
    str
        The id of the new segment.

    Raises
    ------
    ValueError
        When the segmentation is not in a scene, or no voxel reaches ``threshold``.
    RuntimeError
        When Slicer cannot import the labelmap into the segmentation.
    """
    scene = segmentation_node.GetScene()
    if scene is None:
        raise ValueError("the segmentation node is not in a scene")
    binary = sitk.Cast(sitk.BinaryThreshold(sitk.Cast(mask, sitk.sitkFloat32), float(threshold), 1e30, 1, 0),
                       sitk.sitkUInt8)
    labelmap = add_volume_node(scene, binary, segment_name, labelmap=True)
    before = set(_all_segment_ids(segmentation_node))
    try:
        logic = slicer.vtkSlicerSegmentationsModuleLogic
        if not logic.ImportLabelmapToSegmentationNode(labelmap, segmentation_node):
            raise RuntimeError("importing the mask into the segmentation failed")
    finally:
        display = labelmap.GetDisplayNode()
        scene.RemoveNode(labelmap)
        if display is not None and display.GetScene() is not None:
            scene.RemoveNode(display)
    new_ids = [sid for sid in _all_segment_ids(segmentation_node) if sid not in before]
    if not new_ids:
        raise ValueError("the mask is empty: nothing was imported")
    segmentation_node.GetSegmentation().GetSegment(new_ids[0]).SetName(segment_name)
    return new_ids[0]


def _all_segment_ids(segmentation_node: Any) -> List[str]:
    ids = vtk.vtkStringArray()
    segmentation_node.GetSegmentation().GetSegmentIDs(ids)
    return [ids.GetValue(i) for i in range(ids.GetNumberOfValues())]


__all__ = [
    "mask_to_segmentation",
    "segmentation_to_mask",
]

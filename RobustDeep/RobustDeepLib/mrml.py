"""MRML glue: volumes, masks, overlays, colours, tables and plots for the RobustDeep module.

Everything here works on MRML nodes and a ``vtkMRMLScene`` and nothing else: no Qt, no
``slicer.util``, no ``slicer.app``. So it runs inside Slicer and, for tests, under the ``slicer-core``
wheel (``from slicer import vtkMRMLScene``), see ``Testing/MRML/``.

Geometry
--------
The engine's images are SimpleITK images: physical points in **LPS** millimetres, a direction matrix
whose columns are the LPS directions of the index axes, voxels ``[z, y, x]`` in numpy. Slicer's volume
nodes place voxels in **RAS**: ``RAS = F @ LPS`` with ``F = diag(-1, -1, 1)``. A voxel ``(i, j, k)``
is at ``origin + D @ diag(spacing) @ (i, j, k)`` in both, so converting flips the first two rows of the
origin and of the direction matrix and nothing else; the voxel buffer (x fastest, then y, then z) is
the same in VTK and in SimpleITK. :func:`image_to_volume_node` and :func:`volume_node_to_image` are
exact inverses (tested).
"""

from __future__ import annotations

from typing import Any, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk
import vtk
from vtk.util import numpy_support

import slicer

#: LPS <-> RAS (its own inverse).
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])

#: Name of the diverging colour table of bias maps (blue = under-estimation, red = over-estimation).
BIAS_COLOR_NODE_NAME = "RobustDeep bias (blue-white-red)"

_SITK_TO_NUMPY = {
    sitk.sitkUInt8: np.uint8, sitk.sitkInt8: np.int8, sitk.sitkUInt16: np.uint16,
    sitk.sitkInt16: np.int16, sitk.sitkUInt32: np.uint32, sitk.sitkInt32: np.int32,
    sitk.sitkFloat32: np.float32, sitk.sitkFloat64: np.float64,
}


# --------------------------------------------------------------------------------------------------
# Volumes
# --------------------------------------------------------------------------------------------------
def ijk_to_ras_matrix(image: sitk.Image) -> np.ndarray:
    """The 4x4 IJK-to-RAS matrix of a 3D SimpleITK image (whose geometry is LPS)."""
    if image.GetDimension() != 3:
        raise ValueError(f"expected a 3D image, got {image.GetDimension()}D")
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    spacing = np.asarray(image.GetSpacing(), dtype=float)
    origin = np.asarray(image.GetOrigin(), dtype=float)
    matrix = np.eye(4)
    matrix[:3, :3] = LPS_TO_RAS @ direction @ np.diag(spacing)
    matrix[:3, 3] = LPS_TO_RAS @ origin
    return matrix


def _to_vtk_matrix(matrix: np.ndarray) -> vtk.vtkMatrix4x4:
    out = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            out.SetElement(r, c, float(matrix[r, c]))
    return out


def _from_vtk_matrix(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)], dtype=float)


def image_to_volume_node(image: sitk.Image, node: Any) -> Any:
    """Put a 3D scalar SimpleITK image (voxels and geometry) into a volume node; returns the node.

    The node keeps its voxel type; the geometry is converted from LPS to RAS exactly.
    """
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError("image_to_volume_node needs a 3D scalar image")
    array = sitk.GetArrayFromImage(image)  # [z, y, x], a copy
    image_data = vtk.vtkImageData()
    image_data.SetDimensions(*[int(s) for s in image.GetSize()])
    scalars = numpy_support.numpy_to_vtk(np.ascontiguousarray(array).ravel(), deep=True)
    scalars.SetName("ImageScalars")
    image_data.GetPointData().SetScalars(scalars)
    node.SetAndObserveImageData(image_data)
    node.SetIJKToRASMatrix(_to_vtk_matrix(ijk_to_ras_matrix(image)))
    return node


def array_from_volume_node(node: Any) -> np.ndarray:
    """A ``[z, y, x]`` copy of a scalar volume node's voxels."""
    image_data = node.GetImageData() if node is not None else None
    if image_data is None:
        raise ValueError(f"volume node {getattr(node, 'GetName', lambda: None)()!r} has no voxels")
    if image_data.GetNumberOfScalarComponents() != 1:
        raise ValueError("only scalar volumes are supported")
    dims = image_data.GetDimensions()
    flat = numpy_support.vtk_to_numpy(image_data.GetPointData().GetScalars())
    return np.array(flat, copy=True).reshape(dims[2], dims[1], dims[0])


def world_ijk_to_ras(node: Any) -> np.ndarray:
    """The node's IJK-to-RAS matrix in world coordinates (a linear parent transform applied).

    Raises ValueError when the node is under a non-linear transform: harden it first.
    """
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    matrix = _from_vtk_matrix(m)
    parent = node.GetParentTransformNode()
    if parent is not None:
        if not parent.IsTransformToWorldLinear():
            raise ValueError(
                f"volume {node.GetName()!r} is under a non-linear transform; harden the transform first"
            )
        to_world = vtk.vtkMatrix4x4()
        parent.GetMatrixTransformToWorld(to_world)
        matrix = _from_vtk_matrix(to_world) @ matrix
    return matrix


def volume_node_to_image(node: Any, dtype: Optional[Any] = None) -> sitk.Image:
    """A SimpleITK image (LPS geometry) of a scalar volume node, parent linear transform included.

    ``dtype`` (e.g. ``np.float32``) casts the voxels; None keeps the node's voxel type.
    """
    array = array_from_volume_node(node)
    if dtype is not None:
        array = array.astype(dtype, copy=False)
    image = sitk.GetImageFromArray(array)
    matrix = world_ijk_to_ras(node)
    lps = LPS_TO_RAS @ matrix[:3, :3]
    spacing = np.linalg.norm(lps, axis=0)
    if np.any(spacing <= 0):
        raise ValueError(f"volume {node.GetName()!r} has a degenerate geometry")
    image.SetSpacing([float(s) for s in spacing])
    image.SetDirection([float(v) for v in (lps / spacing).ravel()])
    image.SetOrigin([float(v) for v in LPS_TO_RAS @ matrix[:3, 3]])
    return image


def add_volume_node(
    scene: Any, image: sitk.Image, name: str, *, labelmap: bool = False, node: Any = None
) -> Any:
    """A new (or the given) scalar or labelmap volume node in ``scene`` holding ``image``."""
    if node is None:
        node = slicer.vtkMRMLLabelMapVolumeNode() if labelmap else slicer.vtkMRMLScalarVolumeNode()
        node.SetName(scene.GenerateUniqueName(name) if hasattr(scene, "GenerateUniqueName") else name)
        scene.AddNode(node)
    image_to_volume_node(image, node)
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    return node


# --------------------------------------------------------------------------------------------------
# Masks and segmentations
# --------------------------------------------------------------------------------------------------
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

    ``reference_node`` is the template volume the mask is drawn over; the result has its geometry
    exactly (LPS, as every engine image), whatever the segmentation's own labelmap geometry.
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
        if not logic.ExportSegmentsToLabelmapNode(segmentation_node, ids, labelmap, reference_node):
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


# --------------------------------------------------------------------------------------------------
# Slice views, colours
# --------------------------------------------------------------------------------------------------
def set_slice_layers(
    scene: Any,
    *,
    background: Any = None,
    foreground: Any = None,
    foreground_opacity: Optional[float] = None,
    label: Any = None,
) -> int:
    """Show volumes in every slice view of ``scene`` (a node, or None to leave a layer as it is).

    Works on the scene's ``vtkMRMLSliceCompositeNode`` nodes, so it needs no GUI; returns how many
    views were set.
    """
    composites = scene.GetNodesByClass("vtkMRMLSliceCompositeNode")
    count = composites.GetNumberOfItems()
    for index in range(count):
        composite = composites.GetItemAsObject(index)
        if background is not None:
            composite.SetBackgroundVolumeID(background.GetID())
        if foreground is not None:
            composite.SetForegroundVolumeID(foreground.GetID())
        if foreground_opacity is not None:
            composite.SetForegroundOpacity(float(foreground_opacity))
        if label is not None:
            composite.SetLabelVolumeID(label.GetID())
    return count


def diverging_color_node(scene: Any, name: str = BIAS_COLOR_NODE_NAME, size: int = 256) -> Any:
    """A blue-white-red colour table (created once per scene): negative blue, zero white, positive red."""
    existing = scene.GetFirstNodeByName(name)
    if existing is not None and existing.IsA("vtkMRMLColorTableNode"):
        return existing
    node = slicer.vtkMRMLColorTableNode()
    node.SetName(name)
    node.SetTypeToUser()
    node.SetNumberOfColors(int(size))
    for i in range(size):
        t = i / (size - 1) * 2.0 - 1.0  # -1 .. 1
        if t < 0:  # blue (0.02, 0.19, 0.58) -> white
            s = 1.0 + t
            rgb = (0.02 + 0.98 * s, 0.19 + 0.81 * s, 0.58 + 0.42 * s)
        else:  # white -> red (0.70, 0.02, 0.15)
            rgb = (1.0 - 0.30 * t, 1.0 - 0.98 * t, 1.0 - 0.85 * t)
        node.SetColor(i, f"{t:+.3f}", rgb[0], rgb[1], rgb[2], 1.0)
    scene.AddNode(node)
    return node


def show_bias_map(volume_node: Any, color_node: Any, window: float = 10.0) -> None:
    """Display a bias map with a diverging colour table windowed at ``[-window, +window]``.

    ``window`` is in the bias map's own unit (10 for a map in percent: the ±10 % of the paper).
    """
    if volume_node.GetDisplayNode() is None:
        volume_node.CreateDefaultDisplayNodes()
    display = volume_node.GetDisplayNode()
    display.SetAndObserveColorNodeID(color_node.GetID())
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(-float(window), float(window))
    display.SetInterpolate(0)


# --------------------------------------------------------------------------------------------------
# Tables and plots
# --------------------------------------------------------------------------------------------------
def table_node(
    scene: Any,
    name: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    node: Any = None,
) -> Any:
    """A table node with one column per name; a column is numeric when all its values are numbers."""
    if node is None:
        node = slicer.vtkMRMLTableNode()
        node.SetName(name)
        scene.AddNode(node)
    table = node.GetTable()
    table.Initialize()
    for c, title in enumerate(columns):
        values = [row[c] for row in rows]
        numeric = all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                      for v in values) and bool(values)
        array = vtk.vtkDoubleArray() if numeric else vtk.vtkStringArray()
        array.SetName(str(title))
        for v in values:
            if numeric:
                array.InsertNextValue(float(v))
            else:
                array.InsertNextValue("" if v is None else str(v))
        table.AddColumn(array)
    node.Modified()
    return node


def table_rows(node: Any) -> Tuple[List[str], List[List[Any]]]:
    """The column names and rows of a table node (numbers as float, others as str)."""
    table = node.GetTable()
    names = [table.GetColumnName(c) for c in range(table.GetNumberOfColumns())]
    rows = []
    for r in range(table.GetNumberOfRows()):
        row = []
        for c in range(table.GetNumberOfColumns()):
            column = table.GetColumn(c)
            row.append(column.GetValue(r) if isinstance(column, vtk.vtkStringArray) else float(column.GetValue(r)))
        rows.append(row)
    return names, rows


def scatter_fit_chart(
    scene: Any,
    x: np.ndarray,
    y: np.ndarray,
    *,
    slope: float,
    intercept: float,
    name: str = "RobustDeep joint histogram",
    x_title: str = "reference",
    y_title: str = "prediction",
) -> Any:
    """A plot chart: the voxel pairs ``(x, y)`` as points and the line ``y = slope x + intercept``.

    ``x`` and ``y`` are the (already sampled) reference and predicted values. Returns the chart node;
    its series and tables are in the scene too.
    """
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape or x.size == 0:
        raise ValueError("x and y must be non-empty and of one length")
    points = table_node(scene, f"{name} points", [x_title, y_title], list(zip(x.tolist(), y.tolist())))
    lo, hi = float(x.min()), float(x.max())
    line = table_node(scene, f"{name} fit", [x_title, y_title],
                      [[lo, slope * lo + intercept], [hi, slope * hi + intercept]])
    chart = slicer.vtkMRMLPlotChartNode()
    chart.SetName(name)
    scene.AddNode(chart)
    for table, title, kind in ((points, "voxels", "scatter"), (line, f"fit y = {slope:.3f} x + {intercept:.3g}", "line")):
        series = slicer.vtkMRMLPlotSeriesNode()
        series.SetName(title)
        scene.AddNode(series)
        series.SetAndObserveTableNodeID(table.GetID())
        series.SetXColumnName(x_title)
        series.SetYColumnName(y_title)
        if kind == "scatter":
            series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter)
            series.SetLineStyle(slicer.vtkMRMLPlotSeriesNode.LineStyleNone)
            series.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleCircle)
            series.SetMarkerSize(3)
            series.SetColor(0.2, 0.4, 0.8)
        else:
            series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeLine)
            series.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleNone)
            series.SetColor(0.85, 0.1, 0.1)
        chart.AddAndObservePlotSeriesNodeID(series.GetID())
    chart.SetXAxisTitle(x_title)
    chart.SetYAxisTitle(y_title)
    chart.SetTitle(name)
    return chart


__all__ = [
    "BIAS_COLOR_NODE_NAME",
    "LPS_TO_RAS",
    "add_volume_node",
    "array_from_volume_node",
    "diverging_color_node",
    "ijk_to_ras_matrix",
    "image_to_volume_node",
    "mask_to_segmentation",
    "scatter_fit_chart",
    "segmentation_to_mask",
    "set_slice_layers",
    "show_bias_map",
    "table_node",
    "table_rows",
    "volume_node_to_image",
    "world_ijk_to_ras",
]

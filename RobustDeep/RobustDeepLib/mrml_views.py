"""MRML glue, display: volumes in the slice views, the bias map's diverging colour table.

Everything here works on MRML nodes and a ``vtkMRMLScene`` and nothing else: no Qt, no
``slicer.util``, no ``slicer.app``. So it runs inside Slicer and, for tests, under the ``slicer-core``
wheel (``from slicer import vtkMRMLScene``), see ``Testing/MRML/``.
"""

from __future__ import annotations

from typing import Any, Optional

import slicer

#: Name of the diverging colour table of bias maps (blue = under-estimation, red = over-estimation).
BIAS_COLOR_NODE_NAME = "RobustDeep bias (blue-white-red)"


def set_slice_layers(
    scene: Any,
    *,
    background: Any = None,
    foreground: Any = None,
    foreground_opacity: Optional[float] = None,
    label: Any = None,
) -> int:
    """Show volumes in every slice view of ``scene`` (a node, or None to leave a layer as it is).

    Works on the scene's ``vtkMRMLSliceCompositeNode`` nodes, so it needs no GUI.

    Parameters
    ----------
    scene : vtkMRMLScene
        The scene.
    background, foreground, label : vtkMRMLVolumeNode, optional
        The volumes of the background, foreground and label layers; None leaves a layer as it is.
    foreground_opacity : float, optional
        Opacity of the foreground layer, in [0, 1]; None leaves it as it is.

    Returns
    -------
    int
        How many slice views (composite nodes) were set.
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


def diverging_color_node(scene: Any, name: str = BIAS_COLOR_NODE_NAME, size: int = 257) -> Any:
    """A blue-white-red colour table (created once per scene): negative blue, zero white, positive red.

    Every colour is opaque: 0 (the middle one; ``size`` is odd) is white, a perfect voxel. Slice views
    do not take a scalar volume's transparency from its colour table; a bias map is transparent outside
    the head by its NaN voxels and the display threshold (:func:`show_bias_map`).

    Parameters
    ----------
    scene : vtkMRMLScene
        The scene.
    name : str, optional
        The table's node name; a colour table of that name already in the scene is returned as it is.
    size : int, optional
        Number of colours, spread evenly over [-1, 1]; odd, so that one of them is 0.

    Returns
    -------
    vtkMRMLColorTableNode
        The colour table.

    Raises
    ------
    ValueError
        When ``size`` is even or below 3.
    """
    if size < 3 or size % 2 == 0:
        raise ValueError(f"the bias colour table needs an odd number of colours (one for 0), not {size}")
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


def show_bias_map(volume_node: Any, color_node: Any, window: float = 10.0,
                  transparent_outside: bool = True) -> None:
    """Display a bias map with a diverging colour table windowed at ``[-window, +window]``.

    ``window`` is in the bias map's own unit (10 for a map in percent: the ±10 % of the paper,
    docs/method.md §8). Voxels are shown without interpolation.

    Parameters
    ----------
    volume_node : vtkMRMLScalarVolumeNode
        The bias map; NaN outside the region it was computed in
        (:func:`RobustDeepLib.bias.bias_for_display`).
    color_node : vtkMRMLColorTableNode
        A diverging colour table (:func:`diverging_color_node`).
    window : float, optional
        Half-width of the displayed range, in the map's unit.
    transparent_outside : bool, optional
        Show NaN voxels transparent (the display threshold keeps finite values only). The colour
        table's own alpha is not used for scalar volumes in slice views: the threshold is what makes a
        voxel transparent.
    """
    if volume_node.GetDisplayNode() is None:
        volume_node.CreateDefaultDisplayNodes()
    display = volume_node.GetDisplayNode()
    display.SetAndObserveColorNodeID(color_node.GetID())
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(-float(window), float(window))
    display.SetInterpolate(0)
    if transparent_outside:
        display.SetApplyThreshold(1)
        display.SetLowerThreshold(-1.0e30)  # NaN compares false with both bounds: transparent
        display.SetUpperThreshold(1.0e30)


__all__ = [
    "BIAS_COLOR_NODE_NAME",
    "diverging_color_node",
    "set_slice_layers",
    "show_bias_map",
]

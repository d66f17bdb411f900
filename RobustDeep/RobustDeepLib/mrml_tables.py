"""MRML glue, tables and plots: metrics tables and the joint-histogram chart of the Review panel.

Everything here works on MRML nodes and a ``vtkMRMLScene`` and nothing else: no Qt, no
``slicer.util``, no ``slicer.app``. So it runs inside Slicer and, for tests, under the ``slicer-core``
wheel (``from slicer import vtkMRMLScene``), see ``Testing/MRML/``.
"""

from __future__ import annotations

from typing import Any, List, Sequence, Tuple

import numpy as np
import vtk

import slicer


def table_node(
    scene: Any,
    name: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    node: Any = None,
) -> Any:
    """A table node with one column per name; a column is numeric when all its values are numbers.

    Parameters
    ----------
    scene : vtkMRMLScene
        The scene.
    name : str
        The new node's name.
    columns : sequence of str
        The column names.
    rows : sequence of sequence
        The values, row by row, one per column; None becomes an empty string in a text column.
    node : vtkMRMLTableNode, optional
        A table node to refill instead of making one (``name`` is then not used).

    Returns
    -------
    vtkMRMLTableNode
        The node (a new one is added to ``scene``).
    """
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
    """The column names and rows of a table node (numbers as float, others as str).

    Parameters
    ----------
    node : vtkMRMLTableNode
        The table node.

    Returns
    -------
    tuple of (list of str, list of list)
        ``(column names, rows)``.
    """
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

    ``x`` and ``y`` are the (already sampled) reference and predicted values. The chart's series and
    tables are added to the scene too. Both series are scatter series (x from the X column): the
    points without a line, the fit with a solid line and no markers (a ``PlotTypeLine`` series would
    plot against the row index, not the X column).

    Parameters
    ----------
    scene : vtkMRMLScene
        The scene.
    x, y : numpy.ndarray
        The reference and predicted values of the voxel pairs (flattened).
    slope, intercept : float
        The linear fit of ``y`` on ``x``.
    name : str, optional
        The chart's name and title (its tables are named after it).
    x_title, y_title : str, optional
        The axis titles, also the tables' column names.

    Returns
    -------
    vtkMRMLPlotChartNode
        The chart.

    Raises
    ------
    ValueError
        When ``x`` and ``y`` are empty or differ in length.
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
        else:  # a scatter series drawn as a line: PlotTypeLine would ignore the X column
            series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter)
            series.SetLineStyle(slicer.vtkMRMLPlotSeriesNode.LineStyleSolid)
            series.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleNone)
            series.SetColor(0.85, 0.1, 0.1)
        chart.AddAndObservePlotSeriesNodeID(series.GetID())
    chart.SetXAxisTitle(x_title)
    chart.SetYAxisTitle(y_title)
    chart.SetTitle(name)
    return chart


__all__ = [
    "scatter_fit_chart",
    "table_node",
    "table_rows",
]

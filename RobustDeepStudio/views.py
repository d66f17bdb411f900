"""The studio's slice views: layouts, volumes in the scene, window presets, linked slices.

Three layouts of real Slicer slice views (trame-slicer ``SliceView``, rendered in software on the
server and streamed to the page):

- :data:`PLANES`: axial, coronal and sagittal views of one volume, with an optional fused
  foreground (Cohort, Registration, Masks);
- :data:`BLEND`: parents A and B, the Laplacian blend, the naive blend and the seam view, all axial
  and linked (Blend preview);
- :data:`REVIEW`: reference, prediction and the bias map over the reference, axial and linked (Review).

Volumes enter the scene through the MRML glue shared with the desktop module
(:func:`RobustDeepLib.mrml_volumes.add_volume_node`: SimpleITK's LPS geometry to the node's RAS, the
voxels unchanged), so geometry is the engine's. 3D volume rendering is never switched on here (software
rendering takes seconds per frame).
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Tuple

import numpy as np
import SimpleITK as sitk
import vtk
from trame_slicer.views import Layout, LayoutDirection, ViewLayoutDefinition
from trame_slicer.views.abstract_view import ViewProps
from trame_slicer.views.view_layout_definition import ViewType

from RobustDeepLib.bias import bias_for_display
from RobustDeepLib.mrml_views import diverging_color_node, show_bias_map
from RobustDeepLib.mrml_volumes import add_volume_node
from RobustDeepLogic.core.modalities import MODALITIES

PLANES = "planes"
BLEND = "blend"
REVIEW = "review"

#: The views of each layout: (singleton tag, label, orientation, colour), row by row.
LAYOUT_VIEWS = {
    PLANES: [[("Red", "Axial", "Axial", "#F34A33"), ("Green", "Coronal", "Coronal", "#6DAD4A"),
              ("Yellow", "Sagittal", "Sagittal", "#EFD64D")]],
    BLEND: [[("BlendA", "A", "Axial", "#4A90E2"), ("BlendB", "B", "Axial", "#E2A04A"),
             ("BlendSeam", "Seam", "Axial", "#AAAAAA")],
            [("BlendLaplacian", "Laplacian", "Axial", "#6DAD4A"), ("BlendNaive", "Naive", "Axial", "#F34A33")]],
    REVIEW: [[("ReviewReference", "Reference", "Axial", "#6DAD4A"),
              ("ReviewPrediction", "Prediction", "Axial", "#4A90E2"),
              ("ReviewBias", "Bias (P-R)/R", "Axial", "#F34A33")]],
}
#: View group of each layout (display nodes are shown only in their group's views).
GROUPS = {PLANES: 0, BLEND: 1, REVIEW: 2}

#: Window presets: name -> (low, high) in the volume's units; ``None`` means from the data.
WINDOWS: Dict[str, Optional[Tuple[float, float]]] = {
    "SUV 0-10": (0.0, 10.0),
    "SUV 0-5": (0.0, 5.0),
    "HU brain (W80 L40)": (0.0, 80.0),
    "HU bone (W2000 L400)": (-600.0, 1400.0),
    "HU head (-200 to 1400)": (-200.0, 1400.0),
    "MR (1-99 %)": None,
    "Data (0-99.5 %)": None,
}
#: The preset of data without a preset of their own (templates, seam views, unknown modalities).
DATA_WINDOW = "Data (0-99.5 %)"
#: The preset used by default for each modality.
DEFAULT_WINDOW = {"FD": "SUV 0-10", "LD": "SUV 0-10", "MAC": "SUV 0-10", "NAC": "SUV 0-5",
                  "CT": "HU head (-200 to 1400)", "T1": "MR (1-99 %)", "T2": "MR (1-99 %)"}


#: The label of every view, by singleton tag (its caption starts with it).
ROLES = {tag: label for rows in LAYOUT_VIEWS.values() for row in rows for tag, label, *_ in row}


def default_window(modality: str) -> str:
    """The window preset a volume of ``modality`` is first shown with.

    Parameters
    ----------
    modality : str
        A modality (FD, CT, T1, ...), or anything else.

    Returns
    -------
    str
        A key of :data:`WINDOWS`: :data:`DEFAULT_WINDOW`'s, else :data:`DATA_WINDOW`.
    """
    return DEFAULT_WINDOW.get(modality, DATA_WINDOW)


def ordered_modalities(modalities: Iterable[str]) -> List[str]:
    """Modalities in the study's order (:data:`RobustDeepLogic.core.modalities.MODALITIES`), others after
    them by name.

    Parameters
    ----------
    modalities : iterable of str
        Modality names (a patient's, a cohort's).

    Returns
    -------
    list of str
        Each once.
    """
    found = set(modalities)
    return [m for m in MODALITIES if m in found] + sorted(found - set(MODALITIES))


def layouts() -> Dict[str, Layout]:
    """The studio's layouts, for ``LayoutManager.register_layout_dict``.

    Returns
    -------
    dict of str to Layout
        :data:`PLANES`, :data:`BLEND` and :data:`REVIEW`.
    """
    out = {}
    for name, rows in LAYOUT_VIEWS.items():
        lines = []
        for row in rows:
            views = [ViewLayoutDefinition(tag, ViewType.SLICE_VIEW,
                                          ViewProps(label=label, orientation=orientation, color=color,
                                                    group=GROUPS[name]))
                     for tag, label, orientation, color in row]
            lines.append(Layout(LayoutDirection.Horizontal, views))
        out[name] = lines[0] if len(lines) == 1 else Layout(LayoutDirection.Vertical, lines)
    return out


def window_range(preset: str, array: Optional[np.ndarray] = None) -> Tuple[float, float]:
    """The displayed range ``(low, high)`` of a window preset.

    Parameters
    ----------
    preset : str
        A key of :data:`WINDOWS`.
    array : numpy.ndarray, optional
        The volume's values, for the presets computed from the data.

    Returns
    -------
    tuple of float
        ``(low, high)`` with ``high > low``.

    Raises
    ------
    KeyError
        When the preset is unknown.
    """
    fixed = WINDOWS[preset]
    if fixed is not None:
        return fixed
    values = np.asarray(array if array is not None else [0.0, 1.0], dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if preset.startswith("MR"):
        values = values[values > np.percentile(values, 5)] if values.size > 10 else values
        low, high = np.percentile(values, [1, 99]) if values.size else (0.0, 1.0)
    else:
        low, high = 0.0, float(np.percentile(values, 99.5)) if values.size else 1.0
    return float(low), float(max(high, low + 1e-6))


class Viewer:
    """The scene's volumes in the studio's slice views.

    Parameters
    ----------
    slicer_app : trame_slicer.core.SlicerApp
        The application (scene, view manager).
    layout_manager : trame_slicer.core.LayoutManager
        Where the layouts are registered.
    """

    def __init__(self, slicer_app: Any, layout_manager: Any) -> None:
        self.app = slicer_app
        self.scene = slicer_app.scene
        self.layout_manager = layout_manager
        self.layout_manager.register_layout_dict(layouts())
        for name in LAYOUT_VIEWS:
            self.layout_manager.create_layout_views_if_needed(name)
        self.nodes: Dict[str, Any] = {}
        self._captions: Dict[str, Any] = {}
        self._bias_colors = diverging_color_node(self.scene)
        self._syncing = False
        self._fit_pending: Dict[str, Tuple[int, int]] = {}
        for name in LAYOUT_VIEWS:
            linked = [self.view(t) for t in self.tags(name)] if name in (BLEND, REVIEW) else []
            for tag in self.tags(name):
                node = self.scene.GetNodeByID(self.view(tag).get_view_node_id())
                node.AddObserver(vtk.vtkCommand.ModifiedEvent,
                                 lambda caller, *_, t=tag, group=linked: self._slice_node_modified(t, caller, group))

    # -- layouts and views -----------------------------------------------------------------------
    def show_layout(self, name: str) -> None:
        """Show one of the layouts (:data:`PLANES`, :data:`BLEND`, :data:`REVIEW`).

        Parameters
        ----------
        name : str
            The layout; nothing changes when it is already shown.
        """
        if self.layout_manager.layout_id != name:
            self.layout_manager.set_layout(name)

    def view(self, tag: str) -> Any:
        """The slice view with singleton tag ``tag``.

        Parameters
        ----------
        tag : str
            A tag of :data:`LAYOUT_VIEWS`.

        Returns
        -------
        trame_slicer.views.SliceView or None
            The view, or None when the view manager has none with that tag.
        """
        return self.app.view_manager.get_view(tag)

    def tags(self, layout: str) -> list:
        """The singleton tags of a layout's views.

        Parameters
        ----------
        layout : str
            A key of :data:`LAYOUT_VIEWS`.

        Returns
        -------
        list of str
            Row by row, left to right.
        """
        return [tag for row in LAYOUT_VIEWS[layout] for tag, *_ in row]

    def _slice_node_modified(self, tag: str, node: Any, linked: list) -> None:
        """A view's slice node changed: fit the view again when the page first gave it its size (a fit
        before that used a default size, and the volume showed cropped); keep the slice position of
        ``linked`` views (blend, review) equal: scrolling one scrolls all."""
        size = tuple(node.GetDimensions())[:2]
        if tag in self._fit_pending and self._fit_pending[tag] != size:
            del self._fit_pending[tag]
            self.view(tag).fit_view_to_content()
        if not linked or self._syncing:
            return
        self._syncing = True
        try:
            source = self.view(tag)
            value = source.get_slice_value()
            for view in linked:
                if view is not source and abs(view.get_slice_value() - value) > 1e-6:
                    view.set_slice_value(value)
        finally:
            self._syncing = False

    # -- volumes ---------------------------------------------------------------------------------
    def volume(self, key: str, image: sitk.Image, name: str, *, window: Optional[str] = None) -> Any:
        """The scene's volume node ``key``, made or refilled with ``image``.

        Parameters
        ----------
        key : str
            The studio's name for the slot (one node per key, reused).
        image : SimpleITK.Image
            The volume (LPS geometry; the engine's images).
        name : str
            The node's name.
        window : str, optional
            A window preset (:data:`WINDOWS`).

        Returns
        -------
        vtkMRMLScalarVolumeNode
            The node.
        """
        node = add_volume_node(self.scene, image, name, node=self.nodes.get(key))
        node.SetName(name)
        self.nodes[key] = node
        if window is not None:
            self.set_window(node, window, sitk.GetArrayViewFromImage(image))
        return node

    def set_window(self, node: Any, preset: str, array: Optional[np.ndarray] = None) -> Tuple[float, float]:
        """Window a volume node by a preset (grey colours).

        Parameters
        ----------
        node : vtkMRMLScalarVolumeNode
            The node.
        preset : str
            A key of :data:`WINDOWS`.
        array : numpy.ndarray, optional
            Its voxels, for presets computed from the data.

        Returns
        -------
        tuple of float
            The range shown.
        """
        low, high = window_range(preset, array)
        display = node.GetDisplayNode()
        display.AutoWindowLevelOff()
        display.SetWindowLevelMinMax(low, high)
        return low, high

    def color(self, node: Any, color_node_id: str) -> None:
        """Show ``node`` with the colour table ``color_node_id`` (e.g. a PET colour for fusion).

        Parameters
        ----------
        node : vtkMRMLScalarVolumeNode
            A volume node of :meth:`volume`.
        color_node_id : str
            The ID of a colour node; nothing changes when the scene has none with that ID.
        """
        if self.scene.GetNodeByID(color_node_id) is not None:
            node.GetDisplayNode().SetAndObserveColorNodeID(color_node_id)

    def bias(self, key: str, image: sitk.Image, head: sitk.Image, name: str, window: float = 10.0) -> Any:
        """A bias map node in percent, shown blue-white-red in ``[-window, +window]``, transparent
        outside the head.

        Parameters
        ----------
        key, name : str
            As for :meth:`volume`.
        image : SimpleITK.Image
            The bias map in percent.
        head : SimpleITK.Image
            The head region (voxels > 0) on its grid.
        window : float, optional
            The half-width of the colour range, in percent.

        Returns
        -------
        vtkMRMLScalarVolumeNode
            The node.
        """
        node = self.volume(key, bias_for_display(image, head), name)
        show_bias_map(node, self._bias_colors, window=window, transparent_outside=True)
        return node

    def show(self, tags: Iterable[str], background: Any, foreground: Any = None,
             opacity: float = 0.5, fit: bool = False) -> None:
        """Show ``background`` (and ``foreground`` at ``opacity``) in the views ``tags``.

        Parameters
        ----------
        tags : iterable of str
            Singleton tags of slice views.
        background, foreground : vtkMRMLVolumeNode or None
            The layers (None empties a layer).
        opacity : float, optional
            The foreground's opacity.
        fit : bool, optional
            Fit each view to its background.
        """
        for tag in tags:
            view = self.view(tag)
            names = [n.GetName() for n in (background, foreground) if n is not None]
            self.caption(tag, f"{ROLES.get(tag, tag)}: " + " + ".join(names) if names else ROLES.get(tag, tag))
            view.set_background_volume_id(background.GetID() if background is not None else None)
            view.set_foreground_volume_id(foreground.GetID() if foreground is not None else None)
            view.set_foreground_opacity(opacity)
            if fit:
                view.fit_view_to_content()
                node = self.scene.GetNodeByID(view.get_view_node_id())
                self._fit_pending[tag] = tuple(node.GetDimensions())[:2]

    def caption(self, tag: str, text: str) -> None:
        """Write ``text`` in the upper right corner of the view ``tag`` (what it shows).

        Parameters
        ----------
        tag : str
            A singleton tag of a slice view.
        text : str
            The caption; it replaces the previous one.
        """
        corner = self._captions.get(tag)
        if corner is None:
            corner = vtk.vtkCornerAnnotation()
            corner.SetMaximumFontSize(15)
            corner.SetMinimumFontSize(9)
            corner.GetTextProperty().SetColor(1.0, 0.85, 0.3)
            self.view(tag).first_renderer().AddViewProp(corner)
            self._captions[tag] = corner
        corner.SetText(3, text)
        self.view(tag).schedule_render()


__all__ = ["BLEND", "DATA_WINDOW", "DEFAULT_WINDOW", "GROUPS", "LAYOUT_VIEWS", "PLANES", "REVIEW", "ROLES", "Viewer",
           "WINDOWS", "default_window", "layouts", "ordered_modalities", "window_range"]

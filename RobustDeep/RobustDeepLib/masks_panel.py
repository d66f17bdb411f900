"""The Masks panel of the RobustDeep module: the engine's mask presets and generators made on the
template grid as segments, edited in the embedded Segment Editor, saved and loaded as mask files.

``RobustDeepWidget`` and ``RobustDeepLogic`` (``RobustDeep.py``) inherit the two mixins below, so the
slots are connected in ``RobustDeepWidget.setup`` and scripts, the self-test and the tests call the
logic as ``RobustDeepLogic().makeMask(...)``.
"""

import pathlib
from typing import Any, List

import slicer
from slicer.i18n import tr as _

from RobustDeepLib import engine as rdlib
from RobustDeepLib.choices import is_set
from RobustDeepLib.ui import set_source_volume


class MasksWidgetMixin:
    """The Masks panel's slots. A mixin of ``RobustDeepWidget``: it uses the widget's ``ui``,
    ``logic`` and ``_parameterNode``."""

    def _updateMasksButtons(self, p, busy: bool) -> None:
        """The Masks panel's buttons (``p``: the parameter node; ``busy``: a job runs)."""
        self.ui.saveMaskButton.enabled = bool(p.maskSegmentation and p.templateVolume) and is_set(p.maskFile)
        self.ui.loadMaskButton.enabled = is_set(p.maskFile)

    # The embedded Segment Editor: as Slicer's Segment Editor module does in its enter / exit.
    def _enterMaskEditor(self) -> None:
        """On entering the module: the editor's node (a new scene may have replaced it), shortcuts."""
        editor = self.ui.maskSegmentEditorWidget
        editor.setMRMLSegmentEditorNode(self.logic.segmentEditorNode())
        editor.installKeyboardShortcuts()
        editor.updateWidgetFromMRML()

    def _exitMaskEditor(self) -> None:
        """On leaving the module: no active effect (a Paint effect would stay live in the views), no
        shortcuts, no observations of the views."""
        editor = self.ui.maskSegmentEditorWidget
        editor.setActiveEffect(None)
        editor.uninstallKeyboardShortcuts()
        editor.removeViewObservations()

    def _closeMaskEditor(self) -> None:
        """When the scene closes: the editor lets go of the segmentation and of the views."""
        editor = self.ui.maskSegmentEditorWidget
        editor.setActiveEffect(None)
        editor.setSegmentationNode(None)
        editor.removeViewObservations()

    def _fillMaskChoices(self) -> None:
        self.ui.maskChoiceComboBox.clear()
        self.ui.maskChoiceComboBox.addItems(self.logic.maskChoices())

    def onMaskChoiceChanged(self, choice: str) -> None:
        """Show what the preset is, or which parameters the generator takes."""
        text = self.logic.maskHelp(choice)
        self.ui.maskChoiceComboBox.toolTip = text
        self.ui.maskParametersLineEdit.placeholderText = text.split(": ", 1)[-1] if text else ""

    def onMaskSegmentationChanged(self, node) -> None:
        self.ui.maskSegmentEditorWidget.setSegmentationNode(node)
        template = self._parameterNode.templateVolume if self._parameterNode else None
        if node is not None and template is not None:
            node.SetReferenceImageGeometryParameterFromVolumeNode(template)
            set_source_volume(self.ui.maskSegmentEditorWidget, template)

    def onMakeMask(self) -> None:
        """Make the chosen preset or generator mask on the template grid, as a segment to edit."""
        with slicer.util.tryWithErrorDisplay(_("Failed to make the mask."), waitCursor=True):
            p = self._parameterNode
            if p.templateVolume is None:
                p.templateVolume = self.logic.loadTemplate(None)
            if p.maskSegmentation is None:
                p.maskSegmentation = self.logic.newMaskSegmentation(p.templateVolume)
            self.logic.makeMask(self.ui.maskChoiceComboBox.currentText, p.maskParameters,
                                p.templateVolume, p.maskSegmentation)
            self.onMaskSegmentationChanged(p.maskSegmentation)

    def onSaveMask(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to save the mask."), waitCursor=True):
            p = self._parameterNode
            path = self.logic.saveMask(p.maskSegmentation, p.templateVolume, p.maskFile)
            slicer.util.showStatusMessage(_("Mask saved: {path}").format(path=path), 3000)

    def onLoadMask(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to load the mask."), waitCursor=True):
            p = self._parameterNode
            if p.maskSegmentation is None:
                p.maskSegmentation = self.logic.newMaskSegmentation(p.templateVolume)
            self.logic.loadMask(p.maskFile, p.maskSegmentation)
            self.onMaskSegmentationChanged(p.maskSegmentation)


class MasksLogicMixin:
    """The Masks panel's computations, callable without the GUI. A mixin of ``RobustDeepLogic``: it uses
    its ``engine()``."""

    @staticmethod
    def segmentEditorNode() -> Any:
        """The Segment Editor node shared by the embedded editor (a singleton of the scene)."""
        tag = "RobustDeepSegmentEditor"
        node = slicer.mrmlScene.GetSingletonNode(tag, "vtkMRMLSegmentEditorNode")
        if node is None:
            node = slicer.mrmlScene.CreateNodeByClass("vtkMRMLSegmentEditorNode")
            node.UnRegister(None)
            node.SetSingletonTag(tag)
            node = slicer.mrmlScene.AddNode(node)
        return node

    @staticmethod
    def newMaskSegmentation(template: Any) -> Any:
        """An empty segmentation on the template grid."""
        node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "RobustDeep mask")
        node.CreateDefaultDisplayNodes()
        if template is not None:
            node.SetReferenceImageGeometryParameterFromVolumeNode(template)
        return node

    def maskChoices(self) -> List[str]:
        """Mask presets and generators of the engine (``RobustDeepLogic.masks``), by name."""
        try:
            self.engine()  # raises when the engine package cannot be imported (``rdengine`` is None)
        except RuntimeError:
            return []
        if not rdlib.engine_has("masks"):
            return []
        from RobustDeepLib import stages

        return stages.mask_choices()

    @staticmethod
    def maskHelp(choice: str) -> str:
        """The engine's description of a preset, or the parameters of a generator."""
        from RobustDeepLib import stages

        return stages.mask_help(choice) if choice else ""

    def makeMask(self, choice: str, parameters: str, template: Any, segmentation: Any,
                 replace: bool = True) -> str:
        """Make the engine's preset / generator mask on the template grid as a segment to edit.

        ``parameters`` are the generator's ``key=value`` pairs separated by ``;`` (e.g.
        ``centre=0,-20,10; radius=30`` for ``sphere``). With ``replace`` the segmentation holds only
        the new mask; otherwise it is added to what is there (the mask is the union of the segments).
        Returns the new segment's id.
        """
        from RobustDeepLib import mrml_segmentations, mrml_volumes, stages

        spec = stages.mask_spec(choice, parameters)
        mask = stages.make_mask(spec, mrml_volumes.volume_node_to_image(template))
        if replace:
            segmentation.GetSegmentation().RemoveAllSegments()
        return mrml_segmentations.mask_to_segmentation(mask, segmentation, segment_name=spec)

    @staticmethod
    def maskImage(segmentation: Any, template: Any) -> Any:
        """The segmentation as a binary mask (SimpleITK, LPS) on the template grid."""
        from RobustDeepLib import mrml_segmentations

        if segmentation is None or template is None:
            raise ValueError(_("Choose a mask segmentation and the template first."))
        return mrml_segmentations.segmentation_to_mask(segmentation, template)

    def saveMask(self, segmentation: Any, template: Any, path: pathlib.Path) -> pathlib.Path:
        """Write the mask (uint8, template grid) with the engine's atomic writer."""
        from RobustDeepLogic.io.volumes import write_volume

        return write_volume(self.maskImage(segmentation, template), path)

    def loadMask(self, path: pathlib.Path, segmentation: Any) -> str:
        """Read a mask file and add it to ``segmentation`` as a segment (soft masks cut at 0.5)."""
        from RobustDeepLogic.io.volumes import read_volume
        from RobustDeepLib import mrml_segmentations

        return mrml_segmentations.mask_to_segmentation(read_volume(path), segmentation,
                                                        segment_name=pathlib.Path(path).name.split(".")[0])

"""The Blend preview panel of the RobustDeep module: the Laplacian (and naive) blend of two registered
patients under the mask, in this process; the synthesis of a cohort with the saved mask in the
background.

``RobustDeepWidget`` and ``RobustDeepLogic`` (``RobustDeep.py``) inherit the two mixins below, so the
slots are connected in ``RobustDeepWidget.setup`` and scripts, the self-test and the tests call the
logic as ``RobustDeepLogic().blendPreview(...)``.
"""

import logging
import pathlib
from typing import Any, Dict

import slicer
from slicer.i18n import tr as _


from RobustDeepLib import command_lines as rdcmd
from RobustDeepLib.choices import is_set


class BlendWidgetMixin:
    """The Blend preview panel's slots. A mixin of ``RobustDeepWidget``: it uses the widget's ``ui``,
    ``logic`` and ``_parameterNode``."""

    def _updateBlendButtons(self, p, busy: bool) -> None:
        """The Blend preview panel's buttons (``p``: the parameter node; ``busy``: a job runs)."""
        self.ui.blendButton.enabled = is_set(p.cohortFolder) and bool(p.maskSegmentation and p.templateVolume)
        self.ui.synthesizeButton.enabled = not busy and is_set(p.synthesisFolder) and is_set(p.maskFile)

    def onBlend(self) -> None:
        """Laplacian blend of the two patients under the mask (and the naive blend beside it)."""
        with slicer.util.tryWithErrorDisplay(_("Failed to blend."), waitCursor=True):
            p = self._parameterNode
            mask = self.logic.maskImage(p.maskSegmentation, p.templateVolume)
            nodes = self.logic.blendPreview(
                p.registeredFolder if is_set(p.registeredFolder) else p.cohortFolder,
                self.ui.patientAComboBox.currentText, self.ui.patientBComboBox.currentText,
                p.blendModality, mask, p.blendLevels, naive=p.showNaive)
            self.logic.showBlends(nodes)

    def onSynthesize(self) -> None:
        """Synthesize a cohort with the saved mask in the background."""
        with slicer.util.tryWithErrorDisplay(_("Failed to start the synthesis."), waitCursor=True):
            p = self._parameterNode
            source = p.registeredFolder if is_set(p.registeredFolder) else p.cohortFolder
            command = rdcmd.synthesize_command(source, p.synthesisFolder, masks=[str(p.maskFile)],
                                               count=p.synthesisCount, seed=p.synthesisSeed,
                                               levels=p.blendLevels)

            def done(result: Dict[str, Any]) -> None:
                if not is_set(p.trainData):
                    p.trainData = source
                p.scenario = "PM"

            self._startJob(_("Synthesis"), command, done)


class BlendLogicMixin:
    """The Blend preview panel's computations, callable without the GUI. A mixin of ``RobustDeepLogic``."""

    def blendPreview(self, cohortFolder: pathlib.Path, patientA: str, patientB: str, modality: str,
                     mask: Any, levels: int, naive: bool = True) -> Dict[str, Any]:
        """Blend one modality of two registered patients under ``mask`` (1 takes patient A).

        Calls the engine's ``blending.laplacian_blend`` (and ``naive_blend``) in this process: one
        volume is quick. Returns the nodes ``{"A", "B", "laplacian", "naive"?}``.
        """
        from RobustDeepLogic.cohort.manifest import Cohort
        from RobustDeepLib import mrml_volumes, stages

        if patientA == patientB:
            raise ValueError(_("Choose two different patients."))
        cohort = Cohort.load(cohortFolder)
        if cohort.space != "template":
            logging.warning("RobustDeep: cohort %s is in %s space; blends are meant for registered cohorts",
                            cohort.root, cohort.space)
        imageA = cohort.read(patientA, modality)
        imageB = cohort.read(patientB, modality)
        blends = stages.blend_images(imageA, imageB, mask, levels=int(levels), naive=naive)
        nodes = {
            "A": mrml_volumes.add_volume_node(slicer.mrmlScene, imageA, f"{patientA} {modality}"),
            "B": mrml_volumes.add_volume_node(slicer.mrmlScene, imageB, f"{patientB} {modality}"),
        }
        for kind, image in blends.items():
            nodes[kind] = mrml_volumes.add_volume_node(
                slicer.mrmlScene, image, f"{kind} blend {patientA}+{patientB} {modality} L{levels}")
        return nodes

    @staticmethod
    def showBlends(nodes: Dict[str, Any]) -> None:
        """Laplacian blend in the slice views; with a naive blend, it goes in the foreground to compare."""
        layoutManager = slicer.app.layoutManager()
        if layoutManager is not None:
            layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpView)
        if "naive" in nodes:
            slicer.util.setSliceViewerLayers(background=nodes["laplacian"], foreground=nodes["naive"],
                                             foregroundOpacity=0.0, fit=True)
        else:
            slicer.util.setSliceViewerLayers(background=nodes["laplacian"], fit=True)

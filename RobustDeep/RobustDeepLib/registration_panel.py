"""The Registration panel of the RobustDeep module: the template, one patient registered rigidly with
BRAINSFit (the PET/CT family follows the transform), the whole cohort registered by the engine in the
background and its QC table.

``RobustDeepWidget`` and ``RobustDeepLogic`` (``RobustDeep.py``) inherit the two mixins below, so the
slots are connected in ``RobustDeepWidget.setup`` and scripts, the self-test and the tests call the
logic as ``RobustDeepLogic().qcTable(...)``.
"""

import pathlib
from typing import Any, Dict, List, Optional, Tuple

import qt

import slicer
from slicer.i18n import tr as _


from RobustDeepLib import command_lines as rdcmd
from RobustDeepLib.choices import MODEL_TEMPLATE, PETCT_FAMILY, is_set
from RobustDeepLib.ui import fill_table


class RegistrationWidgetMixin:
    """The Registration panel's slots. A mixin of ``RobustDeepWidget``: it uses the widget's ``ui``,
    ``logic`` and ``_parameterNode``."""

    def _updateRegistrationButtons(self, p, busy: bool) -> None:
        """The Registration panel's buttons (``p``: the parameter node; ``busy``: a job runs)."""
        self.ui.registerPatientButton.enabled = bool(p.templateVolume and p.movingVolume) and self._brainsFitNode is None
        self.ui.showOverTemplateButton.enabled = bool(p.templateVolume and p.movingVolume)
        self.ui.registerCohortButton.enabled = not busy and is_set(p.cohortFolder) and is_set(p.registeredFolder)

    def onLoadTemplate(self) -> None:
        """Load the template: the file chosen, or the engine's model FDG template."""
        with slicer.util.tryWithErrorDisplay(_("Failed to load the template."), waitCursor=True):
            p = self._parameterNode
            spec = p.templateFile if is_set(p.templateFile) else None
            p.templateVolume = self.logic.loadTemplate(spec)
            slicer.util.setSliceViewerLayers(background=p.templateVolume, fit=True)
            if p.maskSegmentation is not None:  # masks are painted over the template
                self.onMaskSegmentationChanged(p.maskSegmentation)

    def onRegisterPatient(self) -> None:
        """BRAINSFit rigid registration of the moving volume to the template (runs asynchronously)."""
        with slicer.util.tryWithErrorDisplay(_("Failed to start BRAINSFit."), waitCursor=True):
            p = self._parameterNode
            transform = self.logic.transformNodeFor(p.movingVolume)
            # The run's own inputs: the selection may change while BRAINSFit runs.
            self._brainsFitInputs = (p.templateVolume, p.movingVolume, transform)
            self._brainsFitNode = self.logic.runBRAINSFit(
                p.templateVolume, p.movingVolume, transform,
                samplingPercentage=p.samplingPercentage, initializeTransformMode=p.initializeTransformMode,
                wait=False)
            self.addObserver(self._brainsFitNode, self._brainsFitNode.StatusModifiedEvent, self._onBRAINSFitStatus)
            self.ui.registerPatientButton.text = _("Registering...")
            self._updateButtons()

    def _onBRAINSFitStatus(self, cliNode, event) -> None:
        """When BRAINSFit ends: move the PET/CT family of the volume the run started with under the
        transform, or show the error. The CLI node is removed later, not inside its own event."""
        if cliNode.IsBusy():
            return
        status = cliNode.GetStatusString()
        self.removeObserver(cliNode, cliNode.StatusModifiedEvent, self._onBRAINSFitStatus)
        fixed, moving, transform = getattr(self, "_brainsFitInputs", None) or (None, None, None)
        self._brainsFitNode = None
        self._brainsFitInputs = None
        self.ui.registerPatientButton.text = _("Register patient (BRAINSFit)")
        self._updateButtons()
        if status == "Completed" and moving is not None and moving.GetScene() is not None:
            patient = moving.GetAttribute("RobustDeep.patient")
            family = {m: n for m, n in self._patientNodes.items()
                      if patient and n.GetAttribute("RobustDeep.patient") == patient}
            self.logic.applyTransformToFamily(transform, family or {"FD": moving})
            self.logic.showOverTemplate(fixed, moving)
        elif status != "Completed":
            slicer.util.errorDisplay(_("BRAINSFit {status}:\n{text}").format(
                status=status, text=cliNode.GetErrorText()[-2000:]))
        # Removing a node while it invokes its own event would leave VTK calling into a deleted node.
        qt.QTimer.singleShot(0, lambda: slicer.mrmlScene.RemoveNode(cliNode) if cliNode.GetScene() else None)

    def onRegisterCohort(self) -> None:
        """Register the whole cohort with the engine in the background, then show the QC table."""
        with slicer.util.tryWithErrorDisplay(_("Failed to start the registration."), waitCursor=True):
            p = self._parameterNode
            template = str(p.templateFile) if is_set(p.templateFile) else None
            command = rdcmd.register_command(p.cohortFolder, p.registeredFolder, template=template,
                                             sampling_percentage=p.samplingPercentage,
                                             initialize_transform_mode=p.initializeTransformMode)

            def done(result: Dict[str, Any]) -> None:
                columns, rows = self.logic.qcTable(p.registeredFolder, result)
                fill_table(self.ui.qcTableWidget, columns, rows)
                if not is_set(p.trainData):
                    p.trainData = p.registeredFolder

            self._startJob(_("Registration"), command, done)

    def onShowOverTemplate(self) -> None:
        """The moving volume (under its transform) over the template, half transparent."""
        p = self._parameterNode
        self.logic.showOverTemplate(p.templateVolume, p.movingVolume)


class RegistrationLogicMixin:
    """The Registration panel's computations, callable without the GUI. A mixin of ``RobustDeepLogic``."""

    BRAINSFIT_TRANSFORM_SUFFIX = " to template"

    def loadTemplate(self, templateFile: Optional[pathlib.Path]) -> Any:
        """The FDG template on the template grid: a file, or the engine's model template."""
        from RobustDeepLogic import registration as templates
        from RobustDeepLib import mrml_volumes

        spec = str(templateFile) if templateFile is not None else MODEL_TEMPLATE
        image = templates.load_template_image(spec)
        node = mrml_volumes.add_volume_node(slicer.mrmlScene, image, "RobustDeep template (FDG, MNI)")
        mrml_volumes.add_storage_node(node)
        node.SetAttribute("RobustDeep.template", spec)
        return node

    @staticmethod
    def transformNodeFor(movingVolume: Any) -> Any:
        """The linear transform node holding ``movingVolume``'s registration (created once)."""
        name = f"{movingVolume.GetName()}{RegistrationLogicMixin.BRAINSFIT_TRANSFORM_SUFFIX}"
        node = slicer.mrmlScene.GetFirstNodeByName(name)
        if node is None or not node.IsA("vtkMRMLLinearTransformNode"):
            node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode", name)
        return node

    def brainsFitParameters(self, fixed: Any, moving: Any, transform: Any, *,
                            samplingPercentage: float, initializeTransformMode: str) -> Dict[str, Any]:
        """BRAINSFit parameters with the engine's rigid options (``registration.brainsfit_parameters``)."""
        from RobustDeepLogic.registration.config import RigidConfig, brainsfit_parameters

        config = RigidConfig(sampling_percentage=float(samplingPercentage),
                             initialize_transform_mode=str(initializeTransformMode))
        return brainsfit_parameters(config, fixed_volume=fixed.GetID(), moving_volume=moving.GetID(),
                                    linear_transform=transform.GetID())

    def runBRAINSFit(self, fixed: Any, moving: Any, transform: Any, *, samplingPercentage: float = 0.1,
                     initializeTransformMode: str = "useMomentsAlign", wait: bool = True) -> Any:
        """Rigid BRAINSFit of ``moving`` to ``fixed`` into ``transform``; returns the CLI node.

        ``wait=False`` returns at once (observe the node's status); ``wait=True`` blocks until BRAINSFit
        ends and returns the node whatever happened: ``slicer.cli.runSync`` never raises, so check
        ``GetStatusString()`` (``"Completed"``) and ``GetErrorText()``.
        """
        if fixed is None or moving is None:
            raise ValueError(_("Choose the template and the patient's volume first."))
        if not hasattr(slicer.modules, "brainsfit"):
            raise RuntimeError(_("The BRAINSFit module is not available in this Slicer."))
        params = self.brainsFitParameters(fixed, moving, transform, samplingPercentage=samplingPercentage,
                                          initializeTransformMode=initializeTransformMode)
        if wait:
            return slicer.cli.runSync(slicer.modules.brainsfit, None, params)
        return slicer.cli.run(slicer.modules.brainsfit, None, params)

    @staticmethod
    def applyTransformToFamily(transform: Any, nodes: Dict[str, Any]) -> List[str]:
        """Put the PET/CT family of one patient under its transform (they share a frame)."""
        moved = []
        for modality, node in nodes.items():
            if modality in PETCT_FAMILY:
                node.SetAndObserveTransformNodeID(transform.GetID())
                moved.append(modality)
        return moved

    @staticmethod
    def showOverTemplate(template: Any, moving: Any, opacity: float = 0.5) -> None:
        """The template as background and ``moving`` as a half-transparent foreground."""
        slicer.util.setSliceViewerLayers(background=template, foreground=moving,
                                         foregroundOpacity=opacity, fit=True)

    @staticmethod
    def qcTable(registeredFolder: pathlib.Path, result: Optional[Dict[str, Any]] = None
                ) -> Tuple[List[str], List[List[Any]]]:
        """The engine's registration QC table (``registration_qc.csv``) as columns and rows."""
        import csv

        path = None
        for key, value in ((result or {}).get("outputs") or {}).items():
            if "qc" in key.lower() and str(value).endswith(".csv"):
                path = pathlib.Path(value)
        path = path or pathlib.Path(registeredFolder) / "registration_qc.csv"
        with open(path, newline="", encoding="utf-8") as f:
            table = list(csv.reader(f))
        if not table:
            raise ValueError(f"{path} is empty")
        return table[0], table[1:]

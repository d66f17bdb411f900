"""RobustDeep: the 3D Slicer module of Robust-Deep (Sanaat et al., J Digit Imaging 2022).

Panels: Patients, Registration, Masks, Blend preview, Train and infer, Review. The module is thin: the
work is done by the Slicer-free engine, the Python package ``RobustDeepLogic``. Quick previews (one
blend, one mask, a template) call the engine in Slicer's process; long work (cohort registration,
synthesis, training, prediction, the demo cohort) runs ``python -m RobustDeepLogic <command>
--progress json`` in a separate process (``RobustDeepLib.process``) whose JSON lines a timer reads.

Names: Slicer's convention calls this module's logic class ``RobustDeepLogic``, which is also the name
of the engine package. This file imports the engine as ``rdengine`` *before* the class is defined, and
only uses that alias; the class name then shadows the bare name inside this file only.
"""

import logging
import os
import pathlib
import sys
import tempfile
from typing import Annotated, Any, Callable, Dict, List, Optional, Sequence, Tuple

import ctk
import qt
import vtk

import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

# --------------------------------------------------------------------------------------------------
# The engine: beside this file (installed extension) or one folder up (a clone's RobustDeep/ folder
# added as an additional module path). See RobustDeepLib/engine.py and docs/slicer.md.
# --------------------------------------------------------------------------------------------------
MODULE_DIR = os.path.dirname(os.path.abspath(__file__))
if MODULE_DIR not in sys.path:
    sys.path.insert(0, MODULE_DIR)

from RobustDeepLib import engine as rdlib  # noqa: E402  (Qt-free helpers)
from RobustDeepLib.process import EngineJob, describe_error, progress_fraction  # noqa: E402

ENGINE_ROOT = rdlib.ensure_engine_importable(MODULE_DIR)
try:
    import RobustDeepLogic as rdengine  # noqa: E402  the engine package, under its alias
    ENGINE_IMPORT_ERROR: Optional[str] = None
except ImportError as exc:  # the module still loads and says what is wrong
    rdengine = None
    ENGINE_IMPORT_ERROR = f"{type(exc).__name__}: {exc}"

#: The modalities of a cohort (engine: ``RobustDeepLogic.cohort.MODALITIES``; a test checks they agree).
MODALITIES = ("FD", "LD", "NAC", "MAC", "CT", "T1", "T2")
#: The PET/CT frame: a patient's rigid transform to template space moves all of these.
PETCT_FAMILY = ("FD", "LD", "NAC", "MAC", "CT")
#: The built-in tasks (engine: ``RobustDeepLogic.tasks.BUILTIN_TASKS``; a test checks they agree).
TASKS = ("ld2fd", "ldmr2fd", "nac2mac", "mr2ct")
#: BRAINSFit's initialisation modes (engine: ``RobustDeepLogic.registration.INIT_MODES``).
INIT_MODES = ("useMomentsAlign", "useCenterOfHeadAlign", "useGeometryAlign", "Off")
#: Modalities a prediction is reviewed as (the tasks' targets): they set the engine's scaling constants.
REVIEW_MODALITIES = ("FD", "MAC", "CT")
#: What the template choice means when no file is given: the engine's model FDG template.
MODEL_TEMPLATE = "fdg"

#: Every widget of Resources/UI/RobustDeep.ui that this file uses, with its class. The widget checks
#: the loaded .ui against it at set-up, and Testing/test_slicer_module.py checks the .ui file and this
#: file's uses of ``self.ui.<name>`` against it.
UI_WIDGETS: Dict[str, str] = {
    # set-up
    "computeInfoLabel": "QLabel",
    "engineInfoLabel": "QLabel",
    "detectDeviceButton": "QPushButton",
    "installDependenciesButton": "QPushButton",
    "prepareAssetsButton": "QPushButton",
    # patients
    "cohortPathLineEdit": "ctkPathLineEdit",
    "demoSubjectsSpinBox": "QSpinBox",
    "demoCohortButton": "QPushButton",
    "refreshCohortButton": "QPushButton",
    "patientsTableWidget": "QTableWidget",
    "loadPatientButton": "QPushButton",
    # registration
    "templatePathLineEdit": "ctkPathLineEdit",
    "loadTemplateButton": "QPushButton",
    "templateVolumeSelector": "qMRMLNodeComboBox",
    "movingVolumeSelector": "qMRMLNodeComboBox",
    "samplingSpinBox": "QDoubleSpinBox",
    "initializeModeComboBox": "QComboBox",
    "registerPatientButton": "QPushButton",
    "registeredFolderPathLineEdit": "ctkPathLineEdit",
    "registerCohortButton": "QPushButton",
    "qcTableWidget": "QTableWidget",
    "showOverTemplateButton": "QPushButton",
    # masks
    "maskChoiceComboBox": "QComboBox",
    "maskParametersLineEdit": "QLineEdit",
    "makeMaskButton": "QPushButton",
    "maskSegmentationSelector": "qMRMLNodeComboBox",
    "maskSegmentEditorWidget": "qMRMLSegmentEditorWidget",
    "maskFilePathLineEdit": "ctkPathLineEdit",
    "saveMaskButton": "QPushButton",
    "loadMaskButton": "QPushButton",
    # blend
    "patientAComboBox": "QComboBox",
    "patientBComboBox": "QComboBox",
    "blendModalityComboBox": "QComboBox",
    "blendLevelsSpinBox": "QSpinBox",
    "showNaiveCheckBox": "QCheckBox",
    "blendButton": "QPushButton",
    "synthesisCountSpinBox": "QSpinBox",
    "synthesisSeedSpinBox": "QSpinBox",
    "synthesisFolderPathLineEdit": "ctkPathLineEdit",
    "synthesizeButton": "QPushButton",
    # train and infer
    "taskComboBox": "QComboBox",
    "scenarioComboBox": "QComboBox",
    "trainDataPathLineEdit": "ctkPathLineEdit",
    "runFolderPathLineEdit": "ctkPathLineEdit",
    "epochsSpinBox": "QSpinBox",
    "stepsSpinBox": "QSpinBox",
    "deviceComboBox": "QComboBox",
    "trainButton": "QPushButton",
    "predictInputPathLineEdit": "ctkPathLineEdit",
    "predictMoreInputsLineEdit": "QLineEdit",
    "predictOutputPathLineEdit": "ctkPathLineEdit",
    "predictButton": "QPushButton",
    # background job
    "jobStatusLabel": "QLabel",
    "jobProgressBar": "QProgressBar",
    "cancelJobButton": "QPushButton",
    "jobLogTextEdit": "QPlainTextEdit",
    # review
    "predictionFilePathLineEdit": "ctkPathLineEdit",
    "referenceFilePathLineEdit": "ctkPathLineEdit",
    "loadReviewFilesButton": "QPushButton",
    "predictionSelector": "qMRMLNodeComboBox",
    "referenceSelector": "qMRMLNodeComboBox",
    "headMaskSelector": "qMRMLNodeComboBox",
    "reviewModalityComboBox": "QComboBox",
    "biasWindowSpinBox": "QDoubleSpinBox",
    "reviewButton": "QPushButton",
    "metricsTableView": "qMRMLTableView",
}

#: Buttons that start work: disabled while a background job runs.
JOB_BUTTONS = ("prepareAssetsButton", "demoCohortButton", "registerCohortButton", "synthesizeButton", "trainButton", "predictButton")


def _isSet(path: Optional[pathlib.Path]) -> bool:
    """True for a path the user gave (the parameter node's empty path is ``Path('.')``)."""
    return path is not None and str(path) not in ("", ".")


#
# RobustDeep
#


class RobustDeep(ScriptedLoadableModule):
    """The module's metadata."""

    def __init__(self, parent) -> None:
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("RobustDeep")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Deep Learning")]
        self.parent.dependencies = []
        self.parent.contributors = ["The RobustDeep team"]
        self.parent.helpText = _(
            "Robust-Deep data augmentation for brain PET/CT/MR: register patients to MNI space, "
            "design masks, blend pairs of patients with Laplacian pyramids into new training "
            "subjects, train dilated residual networks (LD->FD, LD+MR->FD, NAC->MAC, MR->CT) and "
            "review predictions with bias maps. Long work runs in a separate process."
        )
        self.parent.acknowledgementText = _(
            "Implements Sanaat, Shiri, Ferdowsi, Arabi, Zaidi, 'Robust-Deep: A Method for Increasing "
            "Brain Imaging Datasets to Improve Deep Learning Models' Performance and Robustness', "
            "J Digit Imaging 35(3):469-481, 2022, doi:10.1007/s10278-021-00536-0."
        )


#
# RobustDeepParameterNode
#


@parameterNodeWrapper
class RobustDeepParameterNode:
    """Everything a user chooses in the panels, saved with the scene.

    Paths are ``pathlib.Path`` (an empty choice reads as ``Path('.')``). Widgets bind to these names
    through the .ui's ``SlicerParameterName`` dynamic property.
    """

    # patients
    cohortFolder: pathlib.Path
    demoSubjects: Annotated[int, WithinRange(2, 50)] = 4
    selectedPatient: str = ""
    # registration
    templateFile: pathlib.Path
    templateVolume: vtkMRMLScalarVolumeNode
    movingVolume: vtkMRMLScalarVolumeNode
    samplingPercentage: Annotated[float, WithinRange(0.001, 1.0)] = 0.1
    initializeTransformMode: Annotated[str, Choice(list(INIT_MODES))] = "useMomentsAlign"
    registeredFolder: pathlib.Path
    # masks
    maskParameters: str = ""
    maskSegmentation: vtkMRMLSegmentationNode
    maskFile: pathlib.Path
    # blend preview and synthesis
    blendModality: Annotated[str, Choice(list(MODALITIES))] = "FD"
    blendLevels: Annotated[int, WithinRange(0, 8)] = 4
    showNaive: bool = True
    synthesisCount: Annotated[int, WithinRange(1, 100000)] = 12
    synthesisSeed: Annotated[int, WithinRange(0, 2147483647)] = 0
    synthesisFolder: pathlib.Path
    # train and infer
    task: Annotated[str, Choice(list(TASKS))] = "ld2fd"
    scenario: Annotated[str, Choice(list(rdlib.SCENARIOS))] = "PR"
    trainData: pathlib.Path
    runFolder: pathlib.Path
    epochs: Annotated[int, WithinRange(1, 10000)] = 20
    steps: Annotated[int, WithinRange(0, 10000000)] = 0
    device: Annotated[str, Choice(list(rdlib.DEVICES))] = "auto"
    predictInput: pathlib.Path
    predictMoreInputs: str = ""
    predictOutput: pathlib.Path
    # review
    predictionFile: pathlib.Path
    referenceFile: pathlib.Path
    predictionVolume: vtkMRMLScalarVolumeNode
    referenceVolume: vtkMRMLScalarVolumeNode
    headMask: vtkMRMLScalarVolumeNode
    reviewModality: Annotated[str, Choice(list(REVIEW_MODALITIES))] = "FD"
    biasWindowPercent: Annotated[float, WithinRange(0.1, 100.0)] = 10.0


#
# RobustDeepWidget
#


class RobustDeepWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The panels. GUI only: every computation is in :class:`RobustDeepLogic` or the engine."""

    JOB_POLL_MS = 200

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic: Optional["RobustDeepLogic"] = None
        self._parameterNode: Optional[RobustDeepParameterNode] = None
        self._parameterNodeGuiTag = None
        self._job: Optional[EngineJob] = None
        self._jobTitle = ""
        self._jobOnSuccess: Optional[Callable[[Dict[str, Any]], None]] = None
        self._jobTimer: Optional[qt.QTimer] = None
        self._brainsFitNode = None
        self._patientNodes: Dict[str, Any] = {}

    # -- set-up ---------------------------------------------------------------------------------
    def setup(self) -> None:
        """Load the .ui, bind it to the parameter node, connect the buttons."""
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/RobustDeep.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        self._checkUi()
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = RobustDeepLogic()

        for name in ("cohortPathLineEdit", "registeredFolderPathLineEdit", "synthesisFolderPathLineEdit",
                     "trainDataPathLineEdit", "runFolderPathLineEdit", "predictOutputPathLineEdit"):
            getattr(self.ui, name).filters = ctk.ctkPathLineEdit.Dirs | ctk.ctkPathLineEdit.Writable
        # The prediction input is a volume, or a cohort folder (then patient ids follow).
        self.ui.predictInputPathLineEdit.filters = ctk.ctkPathLineEdit.Files | ctk.ctkPathLineEdit.Dirs
        for name in ("templatePathLineEdit", "maskFilePathLineEdit",
                     "predictionFilePathLineEdit", "referenceFilePathLineEdit"):
            getattr(self.ui, name).filters = ctk.ctkPathLineEdit.Files
            getattr(self.ui, name).nameFilters = ["Volumes (*.nii.gz *.nii *.nrrd *.nhdr *.mha *.mhd)", "All files (*)"]

        # The embedded Segment Editor paints masks over the template (one shared editor node).
        self.ui.maskSegmentEditorWidget.setMRMLScene(slicer.mrmlScene)
        self.ui.maskSegmentEditorWidget.setMRMLSegmentEditorNode(self.logic.segmentEditorNode())
        self.ui.maskSegmentEditorWidget.setSegmentationNodeSelectorVisible(False)
        if hasattr(self.ui.maskSegmentEditorWidget, "setSourceVolumeNodeSelectorVisible"):
            self.ui.maskSegmentEditorWidget.setSourceVolumeNodeSelectorVisible(False)

        self._jobTimer = qt.QTimer()
        self._jobTimer.setInterval(self.JOB_POLL_MS)
        self._jobTimer.connect("timeout()", self._onJobTimer)
        self.ui.cancelJobButton.enabled = False
        self.ui.jobProgressBar.setValue(0)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        connections = {
            "detectDeviceButton": self.onDetectDevice,
            "installDependenciesButton": self.onInstallDependencies,
            "prepareAssetsButton": self.onPrepareAssets,
            "demoCohortButton": self.onDemoCohort,
            "refreshCohortButton": self.onRefreshCohort,
            "loadPatientButton": self.onLoadPatient,
            "loadTemplateButton": self.onLoadTemplate,
            "registerPatientButton": self.onRegisterPatient,
            "registerCohortButton": self.onRegisterCohort,
            "showOverTemplateButton": self.onShowOverTemplate,
            "makeMaskButton": self.onMakeMask,
            "saveMaskButton": self.onSaveMask,
            "loadMaskButton": self.onLoadMask,
            "blendButton": self.onBlend,
            "synthesizeButton": self.onSynthesize,
            "trainButton": self.onTrain,
            "predictButton": self.onPredict,
            "cancelJobButton": self.onCancelJob,
            "loadReviewFilesButton": self.onLoadReviewFiles,
            "reviewButton": self.onReview,
        }
        for name, slot in connections.items():
            getattr(self.ui, name).connect("clicked(bool)", lambda checked=False, s=slot: s())
        self.ui.patientsTableWidget.connect("itemSelectionChanged()", self.onPatientSelectionChanged)
        self.ui.maskSegmentationSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onMaskSegmentationChanged)
        self.ui.maskChoiceComboBox.connect("currentTextChanged(QString)", self.onMaskChoiceChanged)

        self.initializeParameterNode()
        self._showEngineInfo()
        self._fillMaskChoices()
        # Versions only (cheap, nothing imported); 'Detect device' imports torch to look for a GPU.
        self.onDetectDevice(importTorch=False)

    def _checkUi(self) -> None:
        """Every widget this file uses must be in the .ui with the expected class."""
        problems = []
        for name, className in UI_WIDGETS.items():
            widget = getattr(self.ui, name, None)
            if widget is None:
                problems.append(f"{name} missing")
            elif widget.className() != className:
                problems.append(f"{name} is a {widget.className()}, expected {className}")
        if problems:
            raise RuntimeError("RobustDeep.ui does not match RobustDeep.py: " + "; ".join(problems))

    def cleanup(self) -> None:
        """Called when the application closes: stop a running job, drop observers."""
        if self._job is not None and self._job.running:
            self._job.cancel()
        if self._jobTimer is not None:
            self._jobTimer.stop()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        """Make sure the parameter node exists and is observed."""
        self.setParameterNode(self.logic.getParameterNode())

    def setParameterNode(self, inputParameterNode: Optional[RobustDeepParameterNode]) -> None:
        """Bind the GUI to ``inputParameterNode`` (widgets by their SlicerParameterName)."""
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)
            self._updateButtons()

    def _updateButtons(self, caller=None, event=None) -> None:
        p = self._parameterNode
        if p is None:
            return
        busy = self._job is not None and self._job.running
        hasCohort = _isSet(p.cohortFolder)
        self.ui.refreshCohortButton.enabled = hasCohort
        self.ui.loadPatientButton.enabled = hasCohort and bool(p.selectedPatient)
        self.ui.registerPatientButton.enabled = bool(p.templateVolume and p.movingVolume) and self._brainsFitNode is None
        self.ui.showOverTemplateButton.enabled = bool(p.templateVolume and p.movingVolume)
        self.ui.registerCohortButton.enabled = not busy and hasCohort and _isSet(p.registeredFolder)
        self.ui.saveMaskButton.enabled = bool(p.maskSegmentation and p.templateVolume) and _isSet(p.maskFile)
        self.ui.loadMaskButton.enabled = _isSet(p.maskFile)
        self.ui.blendButton.enabled = hasCohort and bool(p.maskSegmentation and p.templateVolume)
        self.ui.synthesizeButton.enabled = not busy and _isSet(p.synthesisFolder) and _isSet(p.maskFile)
        self.ui.trainButton.enabled = not busy and _isSet(p.trainData) and _isSet(p.runFolder)
        self.ui.predictButton.enabled = not busy and _isSet(p.runFolder) and _isSet(p.predictInput) and _isSet(p.predictOutput)
        self.ui.demoCohortButton.enabled = not busy
        self.ui.prepareAssetsButton.enabled = not busy
        self.ui.reviewButton.enabled = bool(p.predictionVolume and p.referenceVolume)
        self.ui.loadReviewFilesButton.enabled = _isSet(p.predictionFile) and _isSet(p.referenceFile)

    # -- set-up panel ---------------------------------------------------------------------------
    def _showEngineInfo(self) -> None:
        self.ui.engineInfoLabel.text = self.logic.engineInfo()

    def onDetectDevice(self, importTorch: bool = True) -> None:
        """Show versions and the compute device (imports torch when asked)."""
        with slicer.util.tryWithErrorDisplay(_("Failed to detect the compute device."), waitCursor=True):
            info = self.logic.computeInfo(importTorch=importTorch)
            text = info.summary()
            if not importTorch and info.torch_version is not None:
                text += _(" (press 'Detect device' to check the GPU)")
            self.ui.computeInfoLabel.text = text

    def onInstallDependencies(self) -> None:
        """Install torch (PyTorch extension) and the engine's other packages, after confirmation."""
        with slicer.util.tryWithErrorDisplay(_("Failed to install the dependencies."), waitCursor=True):
            installed = self.logic.installDependencies(ask=True)
            self.onDetectDevice(importTorch=True)
            slicer.util.infoDisplay(_("Ready: {what}").format(what=", ".join(installed) or _("nothing was missing")))

    def onPrepareAssets(self) -> None:
        """``robustdeep assets`` in the background: the template assets the engine needs, once."""
        with slicer.util.tryWithErrorDisplay(_("Failed to start preparing the assets."), waitCursor=True):
            self._startJob(_("Template assets"), rdlib.assets_command())

    # -- background jobs ------------------------------------------------------------------------
    def _startJob(self, title: str, command: Sequence[str],
                  onSuccess: Optional[Callable[[Dict[str, Any]], None]] = None) -> None:
        if self._job is not None and self._job.running:
            raise RuntimeError(_("A job is running already: wait for it or cancel it."))
        self._job = self.logic.startEngineJob(command)
        self._jobTitle = title
        self._jobOnSuccess = onSuccess
        self.ui.jobLogTextEdit.clear()
        self.ui.jobLogTextEdit.appendPlainText(" ".join(self._job.argv))
        self.ui.jobProgressBar.setRange(0, 100)
        self.ui.jobProgressBar.setValue(0)
        self.ui.jobStatusLabel.text = _("{title}: started").format(title=title)
        self.ui.cancelJobButton.enabled = True
        for name in JOB_BUTTONS:
            getattr(self.ui, name).enabled = False
        self._jobTimer.start()

    def _onJobTimer(self) -> None:
        if self._job is None:
            self._jobTimer.stop()
            return
        for event in self._job.poll(max_events=200):
            self._onJobEvent(event)

    def _onJobEvent(self, event: Dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "progress":
            fraction = progress_fraction(event)
            if fraction is None:
                self.ui.jobProgressBar.setRange(0, 0)  # busy indicator
            else:
                self.ui.jobProgressBar.setRange(0, 100)
                self.ui.jobProgressBar.setValue(int(round(100 * fraction)))
            message = event.get("message") or ""
            total = event.get("total")
            count = f"{event.get('done', 0)}/{total}" if total else f"{event.get('done', 0)}"
            self.ui.jobStatusLabel.text = f"{self._jobTitle}: {event.get('stage', '')} {count} {message}".strip()
        elif kind == "log":
            self.ui.jobLogTextEdit.appendPlainText(f"{event.get('level', '')}: {event.get('message', '')}")
        elif kind == "output":
            self.ui.jobLogTextEdit.appendPlainText(str(event.get("message", "")))
        elif kind == "error":
            self.ui.jobLogTextEdit.appendPlainText(_("ERROR: ") + describe_error(event))
        elif kind == "result":
            outputs = event.get("outputs") or {}
            self.ui.jobLogTextEdit.appendPlainText(_("Result: ") + ", ".join(f"{k}={v}" for k, v in outputs.items()))
        elif kind == "exit":
            self._onJobFinished(int(event.get("returncode", 1)), bool(event.get("cancelled")))

    def _onJobFinished(self, returncode: int, cancelled: bool) -> None:
        self._jobTimer.stop()
        job = self._job
        self.ui.cancelJobButton.enabled = False
        self.ui.jobProgressBar.setRange(0, 100)
        self._updateButtons()
        if cancelled:
            self.ui.jobStatusLabel.text = _("{title}: cancelled").format(title=self._jobTitle)
            return
        if returncode == 0:
            self.ui.jobProgressBar.setValue(100)
            self.ui.jobStatusLabel.text = _("{title}: done").format(title=self._jobTitle)
            if self._jobOnSuccess is not None:
                with slicer.util.tryWithErrorDisplay(_("Failed to load the results."), waitCursor=True):
                    self._jobOnSuccess(job.result or {})
            return
        reason = describe_error(job.error) if job.error else "\n".join(job.stderr_lines[-5:]) or _("no message")
        kind = _("bad input") if returncode == 2 else _("failed")
        self.ui.jobStatusLabel.text = _("{title}: {kind}").format(title=self._jobTitle, kind=kind)
        slicer.util.errorDisplay(_("{title} {kind} (exit status {rc}):\n{reason}").format(
            title=self._jobTitle, kind=kind, rc=returncode, reason=reason))

    def onCancelJob(self) -> None:
        """Stop the running job: terminate its process tree, kill it after a grace period."""
        if self._job is not None and self._job.running:
            self._job.cancel()
            self.ui.jobStatusLabel.text = _("{title}: cancelling...").format(title=self._jobTitle)
            self.ui.cancelJobButton.enabled = False

    # -- patients -------------------------------------------------------------------------------
    def onDemoCohort(self) -> None:
        """Simulate the bundled digital cohort (tiny profile) in the background and open it."""
        with slicer.util.tryWithErrorDisplay(_("Failed to start the demo cohort."), waitCursor=True):
            folder = self.logic.demoCohortFolder()
            if (folder / "manifest.json").is_file():
                self._parameterNode.cohortFolder = folder
                self.onRefreshCohort()
                return
            command = rdlib.simulate_command(folder, subjects=self._parameterNode.demoSubjects, profile="tiny")

            def opened(result: Dict[str, Any]) -> None:
                self._parameterNode.cohortFolder = folder
                self.onRefreshCohort()

            self._startJob(_("Demo cohort"), command, opened)

    def onRefreshCohort(self) -> None:
        """Fill the patients table (and the two blend choices) from the cohort's manifest."""
        with slicer.util.tryWithErrorDisplay(_("Failed to read the cohort."), waitCursor=True):
            columns, rows = self.logic.patientTable(self._parameterNode.cohortFolder)
            _fillTable(self.ui.patientsTableWidget, columns, rows)
            ids = [row[0] for row in rows]
            for combo in (self.ui.patientAComboBox, self.ui.patientBComboBox):
                current = combo.currentText
                combo.clear()
                combo.addItems(ids)
                if current in ids:
                    combo.setCurrentIndex(ids.index(current))
            if len(ids) > 1 and self.ui.patientAComboBox.currentText == self.ui.patientBComboBox.currentText:
                self.ui.patientBComboBox.setCurrentIndex(1)

    def onPatientSelectionChanged(self) -> None:
        items = self.ui.patientsTableWidget.selectedItems()
        if items:
            row = items[0].row()
            self._parameterNode.selectedPatient = self.ui.patientsTableWidget.item(row, 0).text()

    def onLoadPatient(self) -> None:
        """Load the selected patient's volumes; the FD (or first) becomes the moving volume."""
        with slicer.util.tryWithErrorDisplay(_("Failed to load the patient."), waitCursor=True):
            p = self._parameterNode
            self._patientNodes = self.logic.loadPatient(p.cohortFolder, p.selectedPatient)
            first = next(iter(self._patientNodes.values()))
            p.movingVolume = self._patientNodes.get("FD", first)
            slicer.util.setSliceViewerLayers(background=p.movingVolume, fit=True)

    # -- registration ---------------------------------------------------------------------------
    def onLoadTemplate(self) -> None:
        """Load the template: the file chosen, or the engine's model FDG template."""
        with slicer.util.tryWithErrorDisplay(_("Failed to load the template."), waitCursor=True):
            p = self._parameterNode
            spec = p.templateFile if _isSet(p.templateFile) else None
            p.templateVolume = self.logic.loadTemplate(spec)
            slicer.util.setSliceViewerLayers(background=p.templateVolume, fit=True)
            if p.maskSegmentation is not None:  # masks are painted over the template
                self.onMaskSegmentationChanged(p.maskSegmentation)

    def onRegisterPatient(self) -> None:
        """BRAINSFit rigid registration of the moving volume to the template (runs asynchronously)."""
        with slicer.util.tryWithErrorDisplay(_("Failed to start BRAINSFit."), waitCursor=True):
            p = self._parameterNode
            transform = self.logic.transformNodeFor(p.movingVolume)
            self._brainsFitNode = self.logic.runBRAINSFit(
                p.templateVolume, p.movingVolume, transform,
                samplingPercentage=p.samplingPercentage, initializeTransformMode=p.initializeTransformMode,
                wait=False)
            self.addObserver(self._brainsFitNode, self._brainsFitNode.StatusModifiedEvent, self._onBRAINSFitStatus)
            self.ui.registerPatientButton.text = _("Registering...")
            self._updateButtons()

    def _onBRAINSFitStatus(self, cliNode, event) -> None:
        """When BRAINSFit ends: move the patient's PET/CT family under the transform, or show the error."""
        if cliNode.IsBusy():
            return
        status = cliNode.GetStatusString()
        self.removeObserver(cliNode, cliNode.StatusModifiedEvent, self._onBRAINSFitStatus)
        self._brainsFitNode = None
        self.ui.registerPatientButton.text = _("Register patient (BRAINSFit)")
        self._updateButtons()
        if status == "Completed":
            p = self._parameterNode
            transform = self.logic.transformNodeFor(p.movingVolume)
            patient = p.movingVolume.GetAttribute("RobustDeep.patient")
            family = {m: n for m, n in self._patientNodes.items()
                      if patient and n.GetAttribute("RobustDeep.patient") == patient}
            self.logic.applyTransformToFamily(transform, family or {"FD": p.movingVolume})
            self.onShowOverTemplate()
        else:
            slicer.util.errorDisplay(_("BRAINSFit {status}:\n{text}").format(
                status=status, text=cliNode.GetErrorText()[-2000:]))
        slicer.mrmlScene.RemoveNode(cliNode)

    def onRegisterCohort(self) -> None:
        """Register the whole cohort with the engine in the background, then show the QC table."""
        with slicer.util.tryWithErrorDisplay(_("Failed to start the registration."), waitCursor=True):
            p = self._parameterNode
            template = str(p.templateFile) if _isSet(p.templateFile) else None
            command = rdlib.register_command(p.cohortFolder, p.registeredFolder, template=template,
                                             sampling_percentage=p.samplingPercentage,
                                             initialize_transform_mode=p.initializeTransformMode)

            def done(result: Dict[str, Any]) -> None:
                columns, rows = self.logic.qcTable(p.registeredFolder, result)
                _fillTable(self.ui.qcTableWidget, columns, rows)
                if not _isSet(p.trainData):
                    p.trainData = p.registeredFolder

            self._startJob(_("Registration"), command, done)

    def onShowOverTemplate(self) -> None:
        """The moving volume (under its transform) over the template, half transparent."""
        p = self._parameterNode
        self.logic.showOverTemplate(p.templateVolume, p.movingVolume)

    # -- masks ----------------------------------------------------------------------------------
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
            _setSourceVolume(self.ui.maskSegmentEditorWidget, template)

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

    # -- blend ----------------------------------------------------------------------------------
    def onBlend(self) -> None:
        """Laplacian blend of the two patients under the mask (and the naive blend beside it)."""
        with slicer.util.tryWithErrorDisplay(_("Failed to blend."), waitCursor=True):
            p = self._parameterNode
            mask = self.logic.maskImage(p.maskSegmentation, p.templateVolume)
            nodes = self.logic.blendPreview(
                p.registeredFolder if _isSet(p.registeredFolder) else p.cohortFolder,
                self.ui.patientAComboBox.currentText, self.ui.patientBComboBox.currentText,
                p.blendModality, mask, p.blendLevels, naive=p.showNaive)
            self.logic.showBlends(nodes)

    def onSynthesize(self) -> None:
        """Synthesize a cohort with the saved mask in the background."""
        with slicer.util.tryWithErrorDisplay(_("Failed to start the synthesis."), waitCursor=True):
            p = self._parameterNode
            source = p.registeredFolder if _isSet(p.registeredFolder) else p.cohortFolder
            command = rdlib.synthesize_command(source, p.synthesisFolder, masks=[str(p.maskFile)],
                                               count=p.synthesisCount, seed=p.synthesisSeed,
                                               levels=p.blendLevels)

            def done(result: Dict[str, Any]) -> None:
                if not _isSet(p.trainData):
                    p.trainData = source
                p.scenario = "PM"

            self._startJob(_("Synthesis"), command, done)

    # -- train and infer ------------------------------------------------------------------------
    def onTrain(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to start training."), waitCursor=True):
            p = self._parameterNode
            synthetic = [p.synthesisFolder] if _isSet(p.synthesisFolder) else []
            command = rdlib.train_command(p.trainData, p.runFolder, task=p.task, scenario=p.scenario,
                                          epochs=p.epochs, steps=p.steps, device=p.device,
                                          synthetic_cohorts=synthetic)
            self._startJob(_("Training"), command)

    def onPredict(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to start the prediction."), waitCursor=True):
            p = self._parameterNode
            inputs = [str(p.predictInput)] + p.predictMoreInputs.split()
            command = rdlib.predict_command(p.runFolder, inputs, p.predictOutput, device=p.device)

            def done(result: Dict[str, Any]) -> None:
                nodes = self.logic.loadOutputs(result)
                if nodes:
                    p.predictionVolume = nodes[0]
                    slicer.util.setSliceViewerLayers(background=nodes[0], fit=True)

            self._startJob(_("Prediction"), command, done)

    # -- review ---------------------------------------------------------------------------------
    def onLoadReviewFiles(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to load the volumes."), waitCursor=True):
            p = self._parameterNode
            p.predictionVolume = self.logic.loadVolumeFile(p.predictionFile, "prediction")
            p.referenceVolume = self.logic.loadVolumeFile(p.referenceFile, "reference")

    def onReview(self) -> None:
        """Bias map over the reference, joint histogram with its fit, metrics table."""
        with slicer.util.tryWithErrorDisplay(_("Failed to review the prediction."), waitCursor=True):
            p = self._parameterNode
            review = self.logic.review(p.predictionVolume, p.referenceVolume, p.headMask,
                                       modality=p.reviewModality, windowPercent=p.biasWindowPercent)
            self.ui.metricsTableView.setMRMLTableNode(review["table"])
            self.logic.showReview(review)


def _fillTable(table: Any, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Fill a QTableWidget (read-only cells)."""
    table.clear()
    table.setColumnCount(len(columns))
    table.setRowCount(len(rows))
    table.setHorizontalHeaderLabels(list(columns))
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            text = f"{value:.4g}" if isinstance(value, float) else ("" if value is None else str(value))
            item = qt.QTableWidgetItem(text)
            item.setFlags(qt.Qt.ItemIsSelectable | qt.Qt.ItemIsEnabled)
            table.setItem(r, c, item)
    table.resizeColumnsToContents()


def _setSourceVolume(editor: Any, volume: Any) -> None:
    """Segment Editor's source volume (``setMasterVolumeNode`` before Slicer 5.4)."""
    if hasattr(editor, "setSourceVolumeNode"):
        editor.setSourceVolumeNode(volume)
    else:
        editor.setMasterVolumeNode(volume)


#
# RobustDeepLogic (Slicer's logic class; the engine package is ``rdengine``)
#


class RobustDeepLogic(ScriptedLoadableModuleLogic):
    """The module's computations, callable without the GUI (scripts, the self-test).

    Quick work calls the engine (``rdengine``) in this process; long work starts an
    :class:`~RobustDeepLib.process.EngineJob`.
    """

    BRAINSFIT_TRANSFORM_SUFFIX = " to template"

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.engineRoot = ENGINE_ROOT

    def getParameterNode(self) -> RobustDeepParameterNode:
        return RobustDeepParameterNode(super().getParameterNode())

    # -- engine ---------------------------------------------------------------------------------
    @staticmethod
    def engine():
        """The engine package; a clear error when it cannot be imported."""
        if rdengine is None:
            raise RuntimeError(
                f"The RobustDeep engine (package RobustDeepLogic) cannot be imported: {ENGINE_IMPORT_ERROR}. "
                "Install the extension again, or add the RobustDeep folder of a complete clone as a "
                "module path (the engine is the clone's RobustDeepLogic folder)."
            )
        return rdengine

    def engineInfo(self) -> str:
        """One line: engine version and where it was found."""
        if rdengine is None:
            return _("Engine not found: {error}").format(error=ENGINE_IMPORT_ERROR)
        location = rdlib.engine_location()
        return _("Engine {version} at {where}").format(version=rdengine.__version__, where=location)

    def computeInfo(self, importTorch: bool = True):
        from RobustDeepLib.dependencies import compute_info

        return compute_info(import_torch=importTorch)

    def installDependencies(self, ask: bool = True) -> List[str]:
        """torch through the PyTorch extension, the rest with pip; only on request.

        ``ask=False`` installs without asking (the self-test)."""
        from RobustDeepLib.dependencies import install_requirements, install_torch

        installed = [f"torch {install_torch(ask=ask)}"]
        installed += install_requirements(requester="RobustDeep", confirm=ask)
        return installed

    def startEngineJob(self, command: Sequence[str], extraEnv: Optional[Dict[str, str]] = None) -> EngineJob:
        """Start ``robustdeep <command> --progress json`` in a separate process (returns at once)."""
        self.engine()
        missing = rdlib.missing_commands([command])
        if missing:
            raise RuntimeError(_("This engine has no '{command}' command yet: update RobustDeep.").format(
                command=missing[0]))
        base = slicer.util.startupEnvironment() if hasattr(slicer.util, "startupEnvironment") else None
        env = rdlib.engine_env(self.engineRoot, base=base, extra=extraEnv)
        argv = rdlib.engine_argv(command, python=rdlib.python_executable(in_slicer=True),
                                 engine_root=self.engineRoot)
        logging.info("RobustDeep: %s", " ".join(argv))
        return EngineJob(argv, env=env).start()

    def runEngineCommand(self, command: Sequence[str], timeout: Optional[float] = None) -> EngineJob:
        """Run an engine command to its end while keeping the application responsive (scripts, tests)."""
        import time

        job = self.startEngineJob(command)
        deadline = None if timeout is None else time.monotonic() + timeout
        while job.wait(timeout=0.1) is None:
            slicer.app.processEvents()
            if deadline is not None and time.monotonic() > deadline:
                job.cancel()
                job.wait(timeout=job.grace_seconds + 5)
                break
        return job

    # -- patients -------------------------------------------------------------------------------
    @staticmethod
    def demoCohortFolder() -> pathlib.Path:
        """Where the demo cohort is simulated (in Slicer's temporary folder)."""
        return pathlib.Path(slicer.app.temporaryPath) / "RobustDeep" / "demo-cohort"

    def patientTable(self, cohortFolder: pathlib.Path) -> Tuple[List[str], List[List[Any]]]:
        """Columns and rows of the patients table: id, kind, split, one column per modality, status."""
        from RobustDeepLogic.cohort import Cohort

        cohort = Cohort.load(cohortFolder)
        columns = ["patient", "kind", "split"] + list(MODALITIES) + ["status"]
        rows = []
        for patient in cohort:
            marks, missing = [], []
            for modality in MODALITIES:
                if modality not in patient.modalities:
                    marks.append("")
                    continue
                exists = cohort.path(patient, modality).exists()
                marks.append("yes" if exists else "missing")
                if not exists:
                    missing.append(modality)
            status = f"missing {', '.join(missing)}" if missing else f"ok ({cohort.space})"
            rows.append([patient.id, patient.provenance.get("kind", "real"), patient.split or ""] + marks + [status])
        return columns, rows

    def loadPatient(self, cohortFolder: pathlib.Path, patientId: str,
                    modalities: Optional[Sequence[str]] = None) -> Dict[str, Any]:
        """Load a patient's volumes (engine reader: NIfTI, NRRD, MetaImage, DICOM) as volume nodes."""
        from RobustDeepLogic.cohort import Cohort
        from RobustDeepLib import mrml

        cohort = Cohort.load(cohortFolder)
        patient = cohort.patient(patientId)
        nodes: Dict[str, Any] = {}
        for modality in modalities or [m for m in MODALITIES if m in patient.modalities]:
            image = cohort.read(patient, modality)
            node = mrml.add_volume_node(slicer.mrmlScene, image, f"{patientId} {modality}")
            node.SetAttribute("RobustDeep.patient", patientId)
            node.SetAttribute("RobustDeep.modality", modality)
            nodes[modality] = node
        if not nodes:
            raise ValueError(f"patient {patientId} has no volumes")
        return nodes

    def loadVolumeFile(self, path: pathlib.Path, name: str) -> Any:
        """Load one volume file with the engine's reader (geometry exactly as the engine sees it)."""
        from RobustDeepLogic.volumes import read_volume
        from RobustDeepLib import mrml

        return mrml.add_volume_node(slicer.mrmlScene, read_volume(path), name)

    def loadOutputs(self, result: Dict[str, Any]) -> List[Any]:
        """Load the volumes named in a job's ``result`` event (its ``outputs`` that are volume files)."""
        from RobustDeepLogic.volumes import volume_suffix

        nodes = []
        for name, value in (result.get("outputs") or {}).items():
            values = value if isinstance(value, list) else [value]
            for item in values:
                if isinstance(item, str) and volume_suffix(item) and os.path.isfile(item):
                    nodes.append(self.loadVolumeFile(pathlib.Path(item), f"{name} {pathlib.Path(item).name}"))
        return nodes

    # -- registration ---------------------------------------------------------------------------
    def loadTemplate(self, templateFile: Optional[pathlib.Path]) -> Any:
        """The FDG template on the template grid: a file, or the engine's model template."""
        from RobustDeepLogic import templates
        from RobustDeepLib import mrml

        spec = str(templateFile) if templateFile is not None else MODEL_TEMPLATE
        image = templates.load_template_image(spec)
        node = mrml.add_volume_node(slicer.mrmlScene, image, "RobustDeep template (FDG, MNI)")
        node.SetAttribute("RobustDeep.template", spec)
        return node

    @staticmethod
    def transformNodeFor(movingVolume: Any) -> Any:
        """The linear transform node holding ``movingVolume``'s registration (created once)."""
        name = f"{movingVolume.GetName()}{RobustDeepLogic.BRAINSFIT_TRANSFORM_SUFFIX}"
        node = slicer.mrmlScene.GetFirstNodeByName(name)
        if node is None or not node.IsA("vtkMRMLLinearTransformNode"):
            node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode", name)
        return node

    def brainsFitParameters(self, fixed: Any, moving: Any, transform: Any, *,
                            samplingPercentage: float, initializeTransformMode: str) -> Dict[str, Any]:
        """BRAINSFit parameters with the engine's rigid options (``registration.brainsfit_parameters``)."""
        from RobustDeepLogic.registration import RigidConfig, brainsfit_parameters

        config = RigidConfig(sampling_percentage=float(samplingPercentage),
                             initialize_transform_mode=str(initializeTransformMode))
        return brainsfit_parameters(config, fixed_volume=fixed.GetID(), moving_volume=moving.GetID(),
                                    linear_transform=transform.GetID())

    def runBRAINSFit(self, fixed: Any, moving: Any, transform: Any, *, samplingPercentage: float = 0.1,
                     initializeTransformMode: str = "useMomentsAlign", wait: bool = True) -> Any:
        """Rigid BRAINSFit of ``moving`` to ``fixed`` into ``transform``; returns the CLI node.

        ``wait=False`` returns at once (observe the node's status); ``wait=True`` raises on failure.
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

    # -- masks ----------------------------------------------------------------------------------
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
        if rdengine is None or not rdlib.engine_has("masks"):
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
        from RobustDeepLib import mrml, stages

        spec = stages.mask_spec(choice, parameters)
        mask = stages.make_mask(spec, mrml.volume_node_to_image(template))
        if replace:
            segmentation.GetSegmentation().RemoveAllSegments()
        return mrml.mask_to_segmentation(mask, segmentation, segment_name=spec)

    @staticmethod
    def maskImage(segmentation: Any, template: Any) -> Any:
        """The segmentation as a binary mask (SimpleITK, LPS) on the template grid."""
        from RobustDeepLib import mrml

        if segmentation is None or template is None:
            raise ValueError(_("Choose a mask segmentation and the template first."))
        return mrml.segmentation_to_mask(segmentation, template)

    def saveMask(self, segmentation: Any, template: Any, path: pathlib.Path) -> pathlib.Path:
        """Write the mask (uint8, template grid) with the engine's atomic writer."""
        from RobustDeepLogic.volumes import write_volume

        return write_volume(self.maskImage(segmentation, template), path)

    def loadMask(self, path: pathlib.Path, segmentation: Any) -> str:
        """Read a mask file and add it to ``segmentation`` as a segment (soft masks cut at 0.5)."""
        from RobustDeepLogic.volumes import read_volume
        from RobustDeepLib import mrml

        return mrml.mask_to_segmentation(read_volume(path), segmentation,
                                          segment_name=pathlib.Path(path).name.split(".")[0])

    # -- blend ----------------------------------------------------------------------------------
    def blendPreview(self, cohortFolder: pathlib.Path, patientA: str, patientB: str, modality: str,
                     mask: Any, levels: int, naive: bool = True) -> Dict[str, Any]:
        """Blend one modality of two registered patients under ``mask`` (1 takes patient A).

        Calls the engine's ``blending.laplacian_blend`` (and ``naive_blend``) in this process: one
        volume is quick. Returns the nodes ``{"A", "B", "laplacian", "naive"?}``.
        """
        from RobustDeepLogic.cohort import Cohort
        from RobustDeepLib import mrml, stages

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
            "A": mrml.add_volume_node(slicer.mrmlScene, imageA, f"{patientA} {modality}"),
            "B": mrml.add_volume_node(slicer.mrmlScene, imageB, f"{patientB} {modality}"),
        }
        for kind, image in blends.items():
            nodes[kind] = mrml.add_volume_node(
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

    # -- review ---------------------------------------------------------------------------------
    def review(self, prediction: Any, reference: Any, headMask: Any = None, *, modality: str = "FD",
               windowPercent: float = 10.0) -> Dict[str, Any]:
        """Bias map (percent), joint histogram with its fit, and metrics of a prediction.

        The engine evaluates the pair as ``robustdeep evaluate`` does (``evaluate.evaluate_case``
        through ``RobustDeepLib.stages.review_figures``): metrics in the scaled units of ``modality``
        inside the head (``headMask``, else the engine's head mask), the relative error map.
        Returns ``{"bias", "table", "chart", "figures", "reference", "prediction"}``.
        """
        from RobustDeepLib import mrml, stages

        if prediction is None or reference is None:
            raise ValueError(_("Choose the prediction and its reference."))
        predImage = mrml.volume_node_to_image(prediction, dtype="float32")
        refImage = mrml.volume_node_to_image(reference, dtype="float32")
        maskImage = mrml.volume_node_to_image(headMask) if headMask is not None else None
        figures = stages.review_figures(predImage, refImage, maskImage, modality=modality)
        scene = slicer.mrmlScene
        bias = mrml.add_volume_node(scene, figures["bias_percent"], f"{prediction.GetName()} bias %")
        mrml.show_bias_map(bias, mrml.diverging_color_node(scene), window=float(windowPercent))
        rows = [[name, float(value)] for name, value in figures["metrics"].items()]
        rows += [[f"fit {name} (physical units)", value] for name, value in figures["fit"].items()]
        table = mrml.table_node(scene, f"{prediction.GetName()} metrics", ["metric", "value"], rows)
        table.SetAttribute("RobustDeep.units", figures["units"])
        x, y = figures["pairs"]
        fit = figures["fit"]
        chart = mrml.scatter_fit_chart(scene, x, y, slope=fit["slope"], intercept=fit["intercept"],
                                       name=f"{prediction.GetName()} joint histogram",
                                       x_title=f"reference ({reference.GetName()})",
                                       y_title=f"prediction ({prediction.GetName()})")
        return {"bias": bias, "table": table, "chart": chart, "figures": figures,
                "reference": reference, "prediction": prediction}

    @staticmethod
    def showReview(review: Dict[str, Any]) -> None:
        """Reference in the background, bias map in the foreground, the plot in the layout."""
        slicer.util.setSliceViewerLayers(background=review["reference"], foreground=review["bias"],
                                         foregroundOpacity=0.6, fit=True)
        slicer.modules.plots.logic().ShowChartInLayout(review["chart"])


#
# RobustDeepTest
#


class RobustDeepTest(ScriptedLoadableModuleTest):
    """Each panel's logic on a tiny simulated cohort (made by the engine in a separate process)."""

    SUBJECTS = 3

    def setUp(self) -> None:
        slicer.mrmlScene.Clear()

    def runTest(self) -> None:
        self.setUp()
        self.test_dependencies()
        self.test_engine_reachable()
        self.test_job_protocol()
        self.test_geometry_round_trip()
        cohort = self.test_patients()
        template = self.test_registration(cohort)
        segmentation, maskFile = self.test_masks(template)
        self.test_blend(cohort, template, segmentation)
        self.test_review()
        self.test_widget()
        self.delayDisplay("RobustDeep: all tests passed")

    # helpers ----------------------------------------------------------------------------------
    def _workdir(self) -> pathlib.Path:
        if not hasattr(self, "_tmp"):
            self._tmp = pathlib.Path(tempfile.mkdtemp(prefix="RobustDeepTest-"))
        return self._tmp

    def _ensureAssets(self) -> None:
        """The engine's template assets, prepared once (``robustdeep assets`` needs the package registry)."""
        from RobustDeepLogic.assets import assets_ready

        if not assets_ready():
            self.delayDisplay("preparing the template assets (robustdeep assets)")
            job = RobustDeepLogic().runEngineCommand(rdlib.assets_command(), timeout=900)
            self.assertEqual(job.returncode, 0, describe_error(job.error or {}))

    def _has(self, command: str) -> bool:
        if command in rdlib.engine_commands():
            return True
        self.delayDisplay(f"engine has no '{command}' command: that part is not tested")
        return False

    # tests ------------------------------------------------------------------------------------
    def test_dependencies(self) -> None:
        """The engine's packages are there (installed without asking when missing) and the device is known."""
        from RobustDeepLib.dependencies import missing_requirements

        logic = RobustDeepLogic()
        if missing_requirements() or not logic.computeInfo(importTorch=False).torch_version:
            self.delayDisplay("installing the engine's dependencies")
            logic.installDependencies(ask=False)
        self.assertEqual(missing_requirements(), [])
        info = logic.computeInfo(importTorch=True)
        self.assertIsNotNone(info.torch_version)
        self.assertIn(info.device, ("cpu", "cuda", "mps"))

    def test_engine_reachable(self) -> None:
        """The engine is importable despite the logic class's name, and is the one beside us."""
        self.assertIsNotNone(rdengine, ENGINE_IMPORT_ERROR)
        self.assertTrue(hasattr(rdengine, "__version__"))
        self.assertTrue(issubclass(RobustDeepLogic, ScriptedLoadableModuleLogic))
        self.assertIsNot(RobustDeepLogic, rdengine)
        self.assertTrue(RobustDeepLogic().engineInfo().startswith("Engine"))

    def test_job_protocol(self) -> None:
        """A real engine command that fails on input gives an error event and exit status 2."""
        logic = RobustDeepLogic()
        job = logic.runEngineCommand(rdlib.cohort_check_command(self._workdir() / "no-such-cohort"), timeout=120)
        self.assertEqual(job.returncode, 2)
        self.assertIsNotNone(job.error)
        self.assertEqual(job.error["kind"], "input")

    def test_geometry_round_trip(self) -> None:
        """An oblique LPS image goes into a node and back unchanged."""
        import numpy as np
        import SimpleITK as sitk
        from RobustDeepLib import mrml

        image = sitk.GetImageFromArray(np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6))
        image.SetSpacing((1.5, 2.0, 2.5))
        image.SetOrigin((10.0, -20.0, 30.0))
        c, s = np.cos(0.3), np.sin(0.3)
        image.SetDirection((c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0))
        node = mrml.add_volume_node(slicer.mrmlScene, image, "round trip")
        back = mrml.volume_node_to_image(node)
        np.testing.assert_allclose(back.GetOrigin(), image.GetOrigin(), atol=1e-6)
        np.testing.assert_allclose(back.GetDirection(), image.GetDirection(), atol=1e-9)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))
        # Slicer's RAS: origin x and y flip sign.
        self.assertAlmostEqual(node.GetOrigin()[0], -10.0)
        self.assertAlmostEqual(node.GetOrigin()[1], 20.0)

    def test_patients(self) -> Optional[pathlib.Path]:
        """Simulate a tiny cohort in the background, list it, load one patient."""
        if not self._has("simulate"):
            return None
        logic = RobustDeepLogic()
        folder = self._workdir() / "cohort"
        job = logic.runEngineCommand(rdlib.simulate_command(folder, subjects=self.SUBJECTS), timeout=600)
        self.assertEqual(job.returncode, 0, describe_error(job.error or {}))
        self.assertIsNotNone(job.last_progress)
        columns, rows = logic.patientTable(folder)
        self.assertEqual(len(rows), self.SUBJECTS)
        self.assertIn("FD", columns)
        nodes = logic.loadPatient(folder, rows[0][0])
        self.assertIn("FD", nodes)
        self.assertIsNotNone(nodes["FD"].GetImageData())
        return folder

    def test_registration(self, cohort: Optional[pathlib.Path]) -> Any:
        """The template loads; BRAINSFit registers one patient rigidly; the engine registers the cohort."""
        import numpy as np

        self._ensureAssets()
        logic = RobustDeepLogic()
        template = logic.loadTemplate(None)
        self.assertIsNotNone(template.GetImageData())
        if cohort is None:
            return template
        nodes = logic.loadPatient(cohort, logic.patientTable(cohort)[1][0][0], ["FD", "CT"])
        transform = logic.transformNodeFor(nodes["FD"])
        cliNode = logic.runBRAINSFit(template, nodes["FD"], transform, samplingPercentage=0.2)
        self.assertEqual(cliNode.GetStatusString(), "Completed")
        matrix = vtk.vtkMatrix4x4()
        transform.GetMatrixTransformToParent(matrix)
        rotation = np.array([[matrix.GetElement(r, c) for c in range(3)] for r in range(3)])
        self.assertAlmostEqual(float(np.linalg.det(rotation)), 1.0, places=3)  # rigid
        self.assertEqual(sorted(logic.applyTransformToFamily(transform, nodes)), ["CT", "FD"])
        logic.showOverTemplate(template, nodes["FD"])
        if self._has("register"):
            out = self._workdir() / "registered"
            job = logic.runEngineCommand(rdlib.register_command(cohort, out), timeout=900)
            self.assertEqual(job.returncode, 0, describe_error(job.error or {}))
            columns, rows = logic.qcTable(out, job.result)
            self.assertEqual(len(rows), self.SUBJECTS)
            self.registered = out
        return template

    def test_masks(self, template: Any) -> Tuple[Any, pathlib.Path]:
        """A mask made (preset or painted), saved on the template grid and loaded back."""
        import numpy as np
        import SimpleITK as sitk
        from RobustDeepLib import mrml

        logic = RobustDeepLogic()
        segmentation = logic.newMaskSegmentation(template)
        choices = logic.maskChoices()
        if "simple" in choices:
            logic.makeMask("simple", "", template, segmentation)
        else:  # no engine masks yet: a painted-like half-head mask
            image = mrml.volume_node_to_image(template)
            array = np.zeros(sitk.GetArrayFromImage(image).shape, np.uint8)
            array[:, :, : array.shape[2] // 2] = 1
            half = sitk.GetImageFromArray(array)
            half.CopyInformation(image)
            mrml.mask_to_segmentation(half, segmentation, segment_name="half")
        self.assertEqual(segmentation.GetSegmentation().GetNumberOfSegments(), 1)
        path = self._workdir() / "mask.nii.gz"
        logic.saveMask(segmentation, template, path)
        self.assertTrue(path.is_file())
        saved = sitk.ReadImage(str(path))
        self.assertEqual(saved.GetSize(), mrml.volume_node_to_image(template).GetSize())
        self.assertGreater(int(sitk.GetArrayFromImage(saved).sum()), 0)
        loaded = logic.newMaskSegmentation(template)
        logic.loadMask(path, loaded)
        self.assertEqual(loaded.GetSegmentation().GetNumberOfSegments(), 1)
        return segmentation, path

    def test_blend(self, cohort: Optional[pathlib.Path], template: Any, segmentation: Any) -> None:
        """Laplacian and naive blends of two registered patients on the template grid."""
        import numpy as np
        from RobustDeepLib import mrml

        source = getattr(self, "registered", None)
        if source is None:
            self.delayDisplay("no registered cohort: blend preview not tested")
            return
        logic = RobustDeepLogic()
        ids = [row[0] for row in logic.patientTable(source)[1]]
        mask = logic.maskImage(segmentation, template)
        nodes = logic.blendPreview(source, ids[0], ids[1], "FD", mask, levels=3, naive=True)
        laplacian = mrml.array_from_volume_node(nodes["laplacian"])
        naive = mrml.array_from_volume_node(nodes["naive"])
        a = mrml.array_from_volume_node(nodes["A"])
        b = mrml.array_from_volume_node(nodes["B"])
        self.assertEqual(laplacian.shape, a.shape)
        self.assertFalse(np.allclose(laplacian, naive))
        self.assertTrue(np.all(laplacian <= max(a.max(), b.max()) * 1.5 + 1e-3))
        logic.showBlends(nodes)

    def test_review(self) -> None:
        """A prediction 5 % above its reference gives a +5 % bias map, a fit of slope 1.05, a table."""
        import numpy as np
        import SimpleITK as sitk
        from RobustDeepLib import mrml

        reference = np.full((8, 10, 12), 2.0, np.float32)
        reference[2:6, 3:7, 3:9] = 6.0
        ref = sitk.GetImageFromArray(reference)
        pred = sitk.GetImageFromArray(reference * 1.05)
        refNode = mrml.add_volume_node(slicer.mrmlScene, ref, "reference")
        predNode = mrml.add_volume_node(slicer.mrmlScene, pred, "prediction")
        review = RobustDeepLogic().review(predNode, refNode, windowPercent=10.0)
        bias = mrml.array_from_volume_node(review["bias"])
        self.assertAlmostEqual(float(np.median(bias)), 5.0, places=3)
        self.assertAlmostEqual(review["figures"]["fit"]["slope"], 1.05, places=3)
        self.assertGreater(review["table"].GetNumberOfRows(), 0)
        display = review["bias"].GetDisplayNode()
        self.assertAlmostEqual(display.GetWindow(), 20.0, places=6)
        self.assertAlmostEqual(display.GetLevel(), 0.0, places=6)
        RobustDeepLogic.showReview(review)

    def test_widget(self) -> None:
        """The panel loads and is bound to the parameter node."""
        slicer.util.selectModule("RobustDeep")
        widget = slicer.modules.RobustDeepWidget
        self.assertIsNotNone(widget._parameterNode)
        widget._parameterNode.blendLevels = 3
        self.assertEqual(widget.ui.blendLevelsSpinBox.value, 3)
        widget._parameterNode.task = "mr2ct"
        self.assertEqual(widget.ui.taskComboBox.currentText, "mr2ct")

"""RobustDeep: the 3D Slicer module of Robust-Deep (Sanaat et al., J Digit Imaging 2022).

Panels: Patients, Registration, Masks, Blend preview, Train and infer, Review. The module is thin: the
work is done by the Slicer-free engine, the Python package ``RobustDeepLogic``. Quick previews (one
blend, one mask, a template) call the engine in Slicer's process; long work (cohort registration,
synthesis, training, prediction, the demo cohort) runs ``python -m RobustDeepLogic <command>
--progress json`` in a separate process (``RobustDeepLib.process``) whose JSON lines a timer reads.

Names: Slicer's convention calls this module's logic class ``RobustDeepLogic``, which is also the name
of the engine package. This file imports the engine as ``rdengine`` *before* the class is defined, and
only uses that alias; the class name then shadows the bare name inside this file only.

Layout: this file keeps the classes Slicer looks for (module, parameter node, widget, logic, test).
Each panel's slots and computations are mixins in ``RobustDeepLib/<panel>_panel.py`` that
``RobustDeepWidget`` and ``RobustDeepLogic`` inherit; the self-test's steps are in
``RobustDeepLib/selftest.py``; the .ui's widget list is ``RobustDeepLib/ui.py``.
"""

import os
import pathlib
import sys
from typing import Annotated, Any, Callable, Dict, Optional, Union

import qt
import vtk

import slicer
from slicer import vtkMRMLLabelMapVolumeNode, vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
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

from RobustDeepLib import command_lines as rdcmd  # noqa: E402  (Qt-free helpers)
from RobustDeepLib.process import EngineJob  # noqa: E402

ENGINE_ROOT = rdlib.ensure_engine_importable(MODULE_DIR)
try:
    import RobustDeepLogic as rdengine  # noqa: E402  the engine package, under its alias
    ENGINE_IMPORT_ERROR: Optional[str] = None
except ImportError as exc:  # the module still loads and says what is wrong
    rdengine = None
    ENGINE_IMPORT_ERROR = f"{type(exc).__name__}: {exc}"

# The module's choices and the .ui's widgets (also for scripts: ``RobustDeep.MODALITIES``, ...).
from RobustDeepLib.choices import INIT_MODES, MODALITIES, MODEL_TEMPLATE, PETCT_FAMILY  # noqa: E402,F401
from RobustDeepLib.choices import REVIEW_MODALITIES, TASKS  # noqa: E402
from RobustDeepLib.ui import UI_WIDGETS, check_ui, set_path_filters  # noqa: E402,F401
# Each panel's slots (``<panel>_panel.<Panel>WidgetMixin``) and computations (``...LogicMixin``); the
# self-test's steps.
from RobustDeepLib import blend_panel, cohort_panel, jobs_panel, masks_panel, registration_panel  # noqa: E402
from RobustDeepLib import review_panel, selftest, setup_panel, train_panel  # noqa: E402


#
# RobustDeep
#


class RobustDeep(ScriptedLoadableModule):
    """The module's metadata."""

    def __init__(self, parent) -> None:
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("RobustDeep")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Deep Learning")]
        # BRAINSFit registers a patient; Segmentations (the embedded Segment Editor, the mask export)
        # and Plots (the joint histogram) are used by the panels.
        self.parent.dependencies = ["BRAINSFit", "Segmentations", "Plots"]
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
    scenario: Annotated[str, Choice(list(rdcmd.SCENARIOS))] = "PR"
    trainData: pathlib.Path
    runFolder: pathlib.Path
    epochs: Annotated[int, WithinRange(1, 10000)] = 20
    steps: Annotated[int, WithinRange(0, 10000000)] = 0
    device: Annotated[str, Choice(list(rdcmd.DEVICES))] = "auto"
    predictInput: pathlib.Path
    predictMoreInputs: str = ""
    predictOutput: pathlib.Path
    # review
    predictionFile: pathlib.Path
    referenceFile: pathlib.Path
    predictionVolume: vtkMRMLScalarVolumeNode
    referenceVolume: vtkMRMLScalarVolumeNode
    # Both classes, so that the selector lists labelmaps: the GUI connector sets its node types from this.
    headMask: Union[vtkMRMLScalarVolumeNode, vtkMRMLLabelMapVolumeNode, None]
    reviewModality: Annotated[str, Choice(list(REVIEW_MODALITIES))] = "FD"
    biasWindowPercent: Annotated[float, WithinRange(0.1, 100.0)] = 10.0


#
# RobustDeepWidget
#


class RobustDeepWidget(ScriptedLoadableModuleWidget, VTKObservationMixin, setup_panel.SetupWidgetMixin,
                       jobs_panel.JobsWidgetMixin, cohort_panel.CohortWidgetMixin,
                       registration_panel.RegistrationWidgetMixin, masks_panel.MasksWidgetMixin,
                       blend_panel.BlendWidgetMixin, train_panel.TrainWidgetMixin, review_panel.ReviewWidgetMixin):
    """The panels. GUI only: every computation is in :class:`RobustDeepLogic` or the engine. Each panel's
    slots come from its mixin (``RobustDeepLib/<panel>_panel.py``); this class sets them up."""

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
        self._brainsFitInputs = None  # (template, moving volume, transform) of the running BRAINSFit
        self._patientNodes: Dict[str, Any] = {}

    # -- set-up ---------------------------------------------------------------------------------
    def setup(self) -> None:
        """Load the .ui, bind it to the parameter node, connect the buttons."""
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/RobustDeep.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        check_ui(self.ui)  # every widget the module uses is in the .ui, with its class (UI_WIDGETS)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = RobustDeepLogic()

        set_path_filters(self.ui)  # folders, volume files

        # The embedded Segment Editor paints masks over the template (one shared editor node).
        self.ui.maskSegmentEditorWidget.setMRMLScene(slicer.mrmlScene)
        self.ui.maskSegmentEditorWidget.setMRMLSegmentEditorNode(self.logic.segmentEditorNode())
        self.ui.maskSegmentEditorWidget.setSegmentationNodeSelectorVisible(False)
        if hasattr(self.ui.maskSegmentEditorWidget, "setSourceVolumeNodeSelectorVisible"):
            self.ui.maskSegmentEditorWidget.setSourceVolumeNodeSelectorVisible(False)

        self._setupJobBox()

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

    def cleanup(self) -> None:
        """Called when the application closes: stop a running job, drop observers."""
        if self._job is not None and self._job.running:
            self._job.cancel()
        if self._jobTimer is not None:
            self._jobTimer.stop()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()
        self._enterMaskEditor()

    def exit(self) -> None:
        self._exitMaskEditor()  # no effect left live in the views, shortcuts and observations dropped
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)

    def onSceneStartClose(self, caller, event) -> None:
        self._closeMaskEditor()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()
            self._enterMaskEditor()

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
        # Each panel enables the buttons whose inputs are set (those that start a job: none while busy).
        for update in (self._updateCohortButtons, self._updateRegistrationButtons, self._updateMasksButtons,
                       self._updateBlendButtons, self._updateTrainButtons, self._updateSetupButtons,
                       self._updateReviewButtons):
            update(p, busy)


#
# RobustDeepLogic (Slicer's logic class; the engine package is ``rdengine``)
#


class RobustDeepLogic(ScriptedLoadableModuleLogic, setup_panel.SetupLogicMixin, jobs_panel.JobsLogicMixin,
                      cohort_panel.CohortLogicMixin, registration_panel.RegistrationLogicMixin,
                      masks_panel.MasksLogicMixin, blend_panel.BlendLogicMixin, review_panel.ReviewLogicMixin):
    """The module's computations, callable without the GUI (scripts, the self-test).

    Quick work calls the engine (``rdengine``) in this process; long work starts an
    :class:`~RobustDeepLib.process.EngineJob`. Each panel's methods come from its mixin.
    """

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


#
# RobustDeepTest
#


class RobustDeepTest(ScriptedLoadableModuleTest):
    """Each panel's logic on a tiny simulated cohort (made by the engine in a separate process).

    One test method without arguments: ctest runs every ``test_*`` method on its own (unittest's
    loader), so the chained steps live in ``RobustDeepLib/selftest.py`` (``run_steps``).
    """

    SUBJECTS = 3

    def setUp(self) -> None:
        slicer.mrmlScene.Clear()

    def runTest(self) -> None:
        self.setUp()
        self.test_RobustDeep()

    def test_RobustDeep(self) -> None:
        """Dependencies, engine, jobs, geometry, patients, registration, masks, blend, review, widget."""
        selftest.run_steps(self, RobustDeepLogic, rdengine, ENGINE_IMPORT_ERROR)
        self.delayDisplay("RobustDeep: all tests passed")

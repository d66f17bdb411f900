"""The module's .ui (``Resources/UI/RobustDeep.ui``): the widgets the code uses, with their classes,
the check of a loaded .ui against them, and helpers that set up and fill its widgets.

``RobustDeepWidget`` (``RobustDeep.py``) checks the loaded .ui against :data:`UI_WIDGETS` at set-up;
``Testing/test_slicer_module.py`` checks the .ui file, and the uses of ``self.ui.<name>`` in
``RobustDeep.py`` and the panels (``RobustDeepLib/*_panel.py``), against it.
"""

from typing import Any, Dict, Sequence

import ctk
import qt

#: Every widget of Resources/UI/RobustDeep.ui that the module's code uses, with its class. The widget
#: checks the loaded .ui against it at set-up, and Testing/test_slicer_module.py checks the .ui file and
#: the code's uses of ``self.ui.<name>`` against it.
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


def check_ui(ui: Any) -> None:
    """Check that every widget the module uses is in the loaded .ui with the expected class.

    Parameters
    ----------
    ui : object
        The loaded .ui's child widgets as attributes, by object name (as
        ``slicer.util.childWidgetVariables`` gives them).

    Raises
    ------
    RuntimeError
        Naming each widget of :data:`UI_WIDGETS` that is missing or of another class.
    """
    problems = []
    for name, className in UI_WIDGETS.items():
        widget = getattr(ui, name, None)
        if widget is None:
            problems.append(f"{name} missing")
        elif widget.className() != className:
            problems.append(f"{name} is a {widget.className()}, expected {className}")
    if problems:
        raise RuntimeError("RobustDeep.ui does not match RobustDeep.py: " + "; ".join(problems))


def set_path_filters(ui: Any) -> None:
    """Set what each path field takes: a (writable) folder, a volume file, or either.

    Parameters
    ----------
    ui : object
        The loaded .ui's child widgets as attributes (its ``ctkPathLineEdit`` fields are changed).
    """
    for name in ("cohortPathLineEdit", "registeredFolderPathLineEdit", "synthesisFolderPathLineEdit",
                 "trainDataPathLineEdit", "runFolderPathLineEdit", "predictOutputPathLineEdit"):
        getattr(ui, name).filters = ctk.ctkPathLineEdit.Dirs | ctk.ctkPathLineEdit.Writable
    # The prediction input is a volume, or a cohort folder (then patient ids follow).
    ui.predictInputPathLineEdit.filters = ctk.ctkPathLineEdit.Files | ctk.ctkPathLineEdit.Dirs
    for name in ("templatePathLineEdit", "maskFilePathLineEdit",
                 "predictionFilePathLineEdit", "referenceFilePathLineEdit"):
        getattr(ui, name).filters = ctk.ctkPathLineEdit.Files
        getattr(ui, name).nameFilters = ["Volumes (*.nii.gz *.nii *.nrrd *.nhdr *.mha *.mhd)", "All files (*)"]


def fill_table(table: Any, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Fill a QTableWidget (read-only cells).

    The table is cleared first; floats are shown with 4 significant digits, None as an empty cell.

    Parameters
    ----------
    table : QTableWidget
        The table to fill.
    columns : sequence of str
        The column headers.
    rows : sequence of sequence
        The cells, row by row.
    """
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


def set_source_volume(editor: Any, volume: Any) -> None:
    """Set the Segment Editor's source volume (``setMasterVolumeNode`` before Slicer 5.4).

    Parameters
    ----------
    editor : qMRMLSegmentEditorWidget
        The Segment Editor widget.
    volume : vtkMRMLScalarVolumeNode or None
        The volume the segments are painted over.
    """
    if hasattr(editor, "setSourceVolumeNode"):
        editor.setSourceVolumeNode(volume)
    else:
        editor.setMasterVolumeNode(volume)

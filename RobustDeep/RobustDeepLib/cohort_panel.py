"""The Patients panel of the RobustDeep module: a cohort folder (or the simulated demo cohort), its
patients table, a patient's volumes loaded as volume nodes; also the loading of other volume files
(review inputs, a job's outputs) with the engine's reader.

``RobustDeepWidget`` and ``RobustDeepLogic`` (``RobustDeep.py``) inherit the two mixins below, so the
slots are connected in ``RobustDeepWidget.setup`` and scripts, the self-test and the tests call the
logic as ``RobustDeepLogic().patientTable(...)``.
"""

import os
import pathlib
from typing import Any, Dict, List, Optional, Sequence, Tuple

import slicer
from slicer.i18n import tr as _


from RobustDeepLib import command_lines as rdcmd
from RobustDeepLib.choices import MODALITIES, is_set
from RobustDeepLib.ui import fill_table


class CohortWidgetMixin:
    """The Patients panel's slots. A mixin of ``RobustDeepWidget``: it uses the widget's ``ui``,
    ``logic`` and ``_parameterNode``."""

    def _updateCohortButtons(self, p, busy: bool) -> None:
        """The Patients panel's buttons (``p``: the parameter node; ``busy``: a job runs)."""
        hasCohort = is_set(p.cohortFolder)
        self.ui.refreshCohortButton.enabled = hasCohort
        self.ui.loadPatientButton.enabled = hasCohort and bool(p.selectedPatient)
        self.ui.demoCohortButton.enabled = not busy

    def onDemoCohort(self) -> None:
        """Simulate the bundled digital cohort (tiny profile) in the background and open it."""
        with slicer.util.tryWithErrorDisplay(_("Failed to start the demo cohort."), waitCursor=True):
            folder = self.logic.demoCohortFolder()
            if (folder / "manifest.json").is_file():
                self._parameterNode.cohortFolder = folder
                self.onRefreshCohort()
                return
            command = rdcmd.simulate_command(folder, subjects=self._parameterNode.demoSubjects, profile="tiny")

            def opened(result: Dict[str, Any]) -> None:
                self._parameterNode.cohortFolder = folder
                self.onRefreshCohort()

            self._startJob(_("Demo cohort"), command, opened)

    def onRefreshCohort(self) -> None:
        """Fill the patients table (and the two blend choices) from the cohort's manifest."""
        with slicer.util.tryWithErrorDisplay(_("Failed to read the cohort."), waitCursor=True):
            columns, rows = self.logic.patientTable(self._parameterNode.cohortFolder)
            fill_table(self.ui.patientsTableWidget, columns, rows)
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


class CohortLogicMixin:
    """The Patients panel's computations, callable without the GUI. A mixin of ``RobustDeepLogic``."""

    @staticmethod
    def demoCohortFolder() -> pathlib.Path:
        """Where the demo cohort is simulated (in Slicer's temporary folder)."""
        return pathlib.Path(slicer.app.temporaryPath) / "RobustDeep" / "demo-cohort"

    def patientTable(self, cohortFolder: pathlib.Path) -> Tuple[List[str], List[List[Any]]]:
        """Columns and rows of the patients table: id, kind, split, one column per modality, status."""
        from RobustDeepLogic.cohort.manifest import Cohort

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
        from RobustDeepLogic.cohort.manifest import Cohort
        from RobustDeepLib import mrml_volumes

        cohort = Cohort.load(cohortFolder)
        patient = cohort.patient(patientId)
        nodes: Dict[str, Any] = {}
        for modality in modalities or [m for m in MODALITIES if m in patient.modalities]:
            image = cohort.read(patient, modality)
            node = mrml_volumes.add_volume_node(slicer.mrmlScene, image, f"{patientId} {modality}")
            mrml_volumes.add_storage_node(node)  # saved like any loaded volume
            node.SetAttribute("RobustDeep.patient", patientId)
            node.SetAttribute("RobustDeep.modality", modality)
            nodes[modality] = node
        if not nodes:
            raise ValueError(f"patient {patientId} has no volumes")
        return nodes

    def loadVolumeFile(self, path: pathlib.Path, name: str) -> Any:
        """Load one volume file with the engine's reader (geometry exactly as the engine sees it)."""
        from RobustDeepLogic.io.volumes import read_volume
        from RobustDeepLib import mrml_volumes

        node = mrml_volumes.add_volume_node(slicer.mrmlScene, read_volume(path), name)
        mrml_volumes.add_storage_node(node)  # saved like any loaded volume
        return node

    def loadOutputs(self, result: Dict[str, Any]) -> List[Any]:
        """Load the volumes named in a job's ``result`` event (its ``outputs`` that are volume files)."""
        from RobustDeepLogic.core.files import volume_suffix

        nodes = []
        for name, value in (result.get("outputs") or {}).items():
            values = value if isinstance(value, list) else [value]
            for item in values:
                if isinstance(item, str) and volume_suffix(item) and os.path.isfile(item):
                    nodes.append(self.loadVolumeFile(pathlib.Path(item), f"{name} {pathlib.Path(item).name}"))
        return nodes

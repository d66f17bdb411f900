"""Cohort panel: the patients x modalities table with the problems ``cohort check`` finds, and a
patient's volumes in three planes with window presets for SUV, HU and MR."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Dict, List

from trame.widgets import html
from trame.widgets import vuetify3 as v3

from RobustDeepLib.mrml_volumes import array_from_volume_node
from RobustDeepLogic.cohort import check_cohort
from RobustDeepLogic.core.modalities import UNITS
from RobustDeepStudio.panels.base import Panel
from RobustDeepStudio.views import PLANES, WINDOWS, default_window, ordered_modalities


class CohortPanel(Panel):
    """Patients, their modalities and problems; a patient's volume in axial, coronal, sagittal.

    Parameters
    ----------
    studio : RobustDeepStudio.app.Studio
        The studio it belongs to.
    """

    name = "cohort"
    title = "Cohort"
    icon = "mdi-account-group"
    layout = PLANES

    def __init__(self, studio: Any) -> None:
        super().__init__(studio)
        self.state.update({
            "cohort_rows": [], "cohort_columns": [], "cohort_problems": [], "cohort_summary": "",
            "cohort_patient": None, "cohort_modality": None, "cohort_modalities": [],
            "cohort_window": None, "cohort_windows": list(WINDOWS), "cohort_space": "native",
            "cohort_spaces": ["native"], "cohort_range": "",
        })
        self.state.change("cohort_window")(self._on_window)
        self.state.change("cohort_space")(self._on_space)
        self._space = None

    # -- page -------------------------------------------------------------------------------------
    def build(self) -> None:
        """Build the Cohort panel's controls in the drawer."""
        html.Div("{{ cohort_summary }}", id="rd-cohort-summary", classes="text-body-2 mb-2")
        with v3.VBtnToggle(v_model=("cohort_space",), mandatory=True, density="compact",
                           color="primary", classes="mb-2", v_if="cohort_spaces.length > 1",
                           id="rd-cohort-space"):
            v3.VBtn("{{ s }}", v_for="s in cohort_spaces", key="s", value=("s",), size="small")
        with v3.VTable(density="compact", classes="rd-table", id="rd-cohort-table", height="300px",
                       fixed_header=True):
            with html.Thead():
                with html.Tr():
                    html.Th("Patient")
                    html.Th("Split")
                    html.Th("{{ m }}", v_for="m in cohort_columns", key="m")
                    html.Th("Problems")
            with html.Tbody():
                with html.Tr(v_for="row in cohort_rows", key="row.id",
                             classes=("['rd-click', row.id == cohort_patient ? 'rd-selected' : '']",),
                             click=(self.select_patient, "[row.id]"), id=("`rd-patient-${row.id}`",)):
                    html.Td("{{ row.id }}")
                    html.Td("{{ row.split }}")
                    html.Td("{{ row[m] }}", v_for="m in cohort_columns", key="m")
                    html.Td("{{ row.problems }}", classes=("row.errors ? 'text-error' : ''",))
        with html.Div(v_if="cohort_patient", classes="mt-2"):
            html.Div("{{ cohort_patient }}", classes="text-subtitle-2")
            with v3.VBtnToggle(v_model=("cohort_modality",), density="compact", color="primary",
                               id="rd-cohort-modality", divided=True):
                v3.VBtn("{{ m }}", v_for="m in cohort_modalities", key="m", value=("m",), size="small",
                        id=("`rd-modality-${m}`",), click=(self.select_modality, "[m]"))
            v3.VSelect(v_model=("cohort_window",), items=("cohort_windows",), label="Window",
                       density="compact", hide_details=True, classes="mt-2", id="rd-cohort-window")
            html.Div("{{ cohort_range }}", classes="text-caption")
        html.Div("Problems found by cohort check", classes="text-subtitle-2 mt-2",
                 v_if="cohort_problems.length")
        with html.Ul(classes="text-caption", id="rd-cohort-problems"):
            html.Li("{{ p }}", v_for="p in cohort_problems", key="p")

    # -- behaviour --------------------------------------------------------------------------------
    def on_project(self, project: Any) -> None:
        """Show ``project``'s native cohort: its table and problems, checked in a worker thread.

        Parameters
        ----------
        project : RobustDeepStudio.workspace.Project or None
            The open project.
        """
        spaces = ["native"] + (["registered"] if project is not None and project.registered_dir else [])
        self.state.update({"cohort_spaces": spaces, "cohort_space": "native", "cohort_patient": None,
                           "cohort_rows": [], "cohort_problems": []})
        if project is not None:
            self.studio.schedule(self._load)

    def _cohort(self) -> Any:
        return self.project.cohort(registered=self.state.cohort_space == "registered")

    async def _load(self, **_: Any) -> None:
        self._space = self.state.cohort_space
        cohort = self._cohort()
        problems = await self.background("checking the cohort", lambda: check_cohort(cohort))
        rows, columns = _table(cohort, problems or [])
        with self.state:
            self.state.cohort_rows = rows
            self.state.cohort_columns = columns
            self.state.cohort_problems = [str(p) for p in problems or []]
            errors = sum(p.severity == "error" for p in problems or [])
            self.state.cohort_summary = (f"{cohort.root.name}: {len(cohort)} patients, "
                                         f"{errors} errors, {len(problems or []) - errors} warnings "
                                         f"({self.state.cohort_space})")
        if rows and self.state.cohort_patient is None and self.state.panel == self.name:
            await self.select_patient(rows[0]["id"])  # shown only when this panel is the one in view

    def on_show(self) -> None:
        """Show the three planes again with this panel's volume (another panel may have changed them)."""
        super().on_show()
        node = self.viewer.nodes.get("cohort")
        if node is not None and self.state.cohort_patient:
            self.viewer.show(self.viewer.tags(PLANES), node, None)
        elif self.state.cohort_rows and self.project is not None:
            self.studio.schedule(lambda: self.select_patient(self.state.cohort_rows[0]["id"]))

    def _on_space(self, cohort_space: str, **_: Any) -> None:
        if self.project is not None and cohort_space != self._space:
            self.state.cohort_patient = None
            self.studio.schedule(self._load)

    async def select_patient(self, patient: str) -> None:
        """Show ``patient``: its modalities, and one of them in three planes.

        The modality shown before is kept when ``patient`` has it; else its first in the order of
        :func:`~RobustDeepStudio.views.ordered_modalities` (the study's order, FD first).

        Parameters
        ----------
        patient : str
            A patient id of the cohort shown.
        """
        cohort = self._cohort()
        mods = ordered_modalities(cohort.patient(patient).modalities)
        with self.state:
            self.state.cohort_patient = patient
            self.state.cohort_modalities = mods
        if mods:
            keep = self.state.cohort_modality if self.state.cohort_modality in mods else mods[0]
            await self.select_modality(keep)

    async def select_modality(self, modality: str) -> None:
        """Load the selected patient's ``modality`` and show it in three planes with its default window.

        Parameters
        ----------
        modality : str
            One of the patient's modalities.
        """
        cohort, patient = self._cohort(), self.state.cohort_patient
        path = cohort.path(patient, modality)
        image = await self.background(f"reading {patient} {modality}", lambda: self.read(path, patient))
        if image is None:
            return
        node = self.viewer.volume("cohort", image, f"{patient} {modality}")
        with self.state:
            self.state.cohort_modality = modality
            if self.state.cohort_window == default_window(modality):
                self._apply_window(node)
            else:
                self.state.cohort_window = default_window(modality)  # _on_window applies it
        self.viewer.show_layout(PLANES)
        self.viewer.show(self.viewer.tags(PLANES), node, None, fit=True)

    def _apply_window(self, node: Any) -> None:
        preset = self.state.cohort_window
        array = array_from_volume_node(node) if WINDOWS[preset] is None else None  # presets from the data
        low, high = self.viewer.set_window(node, preset, array)
        unit = UNITS.get(self.state.cohort_modality, "")
        self.state.cohort_range = f"shown: {low:g} to {high:g} {unit}".rstrip()

    def _on_window(self, cohort_window: str, **_: Any) -> None:
        node = self.viewer.nodes.get("cohort")
        if node is not None and cohort_window:
            self._apply_window(node)


def _table(cohort: Any, problems: List[Any]) -> Any:
    """Rows (one per patient: ✓ / ✗ / · per modality, the problem count) and the modality columns."""
    by_patient: Dict[str, List[Any]] = defaultdict(list)
    for p in problems:
        by_patient[p.patient or ""].append(p)
    columns = ordered_modalities(m for patient in cohort for m in patient.modalities)
    rows = []
    for patient in cohort:
        found = by_patient.get(patient.id, [])
        bad = {p.modality for p in found if p.severity == "error"}
        row = {"id": patient.id, "split": patient.split or "",
               "errors": sum(p.severity == "error" for p in found),
               "problems": len(found) or ""}
        for m in columns:
            row[m] = "✗" if m in bad else "✓" if m in patient.modalities else "·"
        rows.append(row)
    return rows, columns


__all__ = ["CohortPanel"]

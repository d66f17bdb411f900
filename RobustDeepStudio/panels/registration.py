"""Registration panel: register the cohort to the template as a background job (progress, cancel),
the QC table (metric, scale, flags), and a patient's registered FD fused over the template in three
planes to judge the alignment."""

from __future__ import annotations

from typing import Any, Dict, List

from trame.widgets import html
from trame.widgets import vuetify3 as v3

from RobustDeepLogic.cohort import Cohort
from RobustDeepStudio import commands
from RobustDeepStudio.panels.base import Panel
from RobustDeepStudio.panels.jobs import job_status
from RobustDeepStudio.views import DATA_WINDOW, PLANES, default_window

#: QC columns shown, as (key of registration_qc.csv, header).
QC_COLUMNS = [("patient", "Patient"), ("ok", "OK"), ("metric", "Metric"), ("dice", "Dice"),
              ("correlation", "Corr."), ("scale", "Scale"), ("flags", "Flags")]
#: The PET colour of the fused overlay (one of Slicer's default colour nodes).
FUSION_COLOR = "vtkMRMLPETProceduralColorNodePET-Heat"


class RegistrationPanel(Panel):
    """Run the registration; judge it patient by patient.

    Parameters
    ----------
    studio : RobustDeepStudio.app.Studio
        The studio it belongs to.
    """

    name = "registration"
    title = "Registration"
    icon = "mdi-axis-arrow"
    layout = PLANES

    def __init__(self, studio: Any) -> None:
        super().__init__(studio)
        self.state.update({"reg_job": None, "reg_rows": [], "reg_patient": None, "reg_opacity": 0.5,
                           "reg_columns": [{"key": k, "title": t} for k, t in QC_COLUMNS],
                           "reg_modality": "FD", "reg_summary": ""})
        self.state.change("reg_opacity")(self._on_opacity)
        studio.job_listeners.append(self._on_job_end)

    def build(self) -> None:
        """Build the Registration panel's controls in the drawer."""
        html.Div("Rigid registration of every patient to the template (robustdeep register).",
                 classes="text-body-2")
        v3.VBtn("Register cohort", click=self.register, color="primary", classes="my-2",
                prepend_icon="mdi-play", id="rd-reg-start", disabled=("!project",))
        job_status("reg_job", self.studio.cancel_job)
        html.Div("{{ reg_summary }}", classes="text-body-2", id="rd-reg-summary")
        with v3.VTable(density="compact", classes="rd-table", id="rd-reg-table", height="320px",
                       fixed_header=True):
            with html.Thead():
                with html.Tr():
                    html.Th("{{ c.title }}", v_for="c in reg_columns", key="c.key")
            with html.Tbody():
                with html.Tr(v_for="row in reg_rows", key="row.patient",
                             classes=("['rd-click', row.patient == reg_patient ? 'rd-selected' : '', "
                                      "row.ok == 'True' ? '' : 'text-error']",),
                             click=(self.show_patient, "[row.patient]"),
                             id=("`rd-reg-${row.patient}`",)):
                    html.Td("{{ row[c.key] }}", v_for="c in reg_columns", key="c.key")
        with html.Div(v_if="reg_patient", classes="mt-2"):
            html.Div("{{ reg_patient }}: registered {{ reg_modality }} (PET colours) over the template",
                     classes="text-caption")
            v3.VSlider(v_model=("reg_opacity",), min=0, max=1, step=0.05, label="Overlay",
                       density="compact", hide_details=True, id="rd-reg-opacity")

    # -- behaviour --------------------------------------------------------------------------------
    def on_show(self) -> None:
        """Show the fused views again (another panel may have changed the three planes)."""
        super().on_show()
        background, overlay = self.viewer.nodes.get("template"), self.viewer.nodes.get("registered")
        if self.state.reg_patient and background is not None and overlay is not None:
            self.viewer.show(self.viewer.tags(PLANES), background, overlay, opacity=float(self.state.reg_opacity))

    def on_project(self, project: Any) -> None:
        """Show ``project``'s registration QC table, no patient selected.

        Parameters
        ----------
        project : RobustDeepStudio.workspace.Project or None
            The open project.
        """
        self.state.reg_patient = None
        self._refresh()

    def _refresh(self) -> None:
        rows: List[Dict[str, Any]] = self.project.qc_rows() if self.project is not None else []
        flagged = sum(r.get("ok") != "True" for r in rows)
        self.state.reg_rows = rows
        where = self.project.registration_dir() if rows else None
        self.state.reg_summary = (f"{len(rows)} patients registered ({self.studio.workspace.relative(where)}), "
                                  f"{flagged} flagged" if rows else "not registered yet")

    def register(self) -> None:
        """Start ``robustdeep register`` for the project's cohort."""
        title, command = commands.registration(self.project)
        record = self.studio.panel("jobs").run(title, command)
        if record is not None:
            self.state.reg_job = record.id

    def _on_job_end(self, record: Any) -> None:
        if record.id == self.state.reg_job:
            self._refresh()
            self.studio.panel("cohort").on_project(self.project)

    async def show_patient(self, patient: str) -> None:
        """Show ``patient``'s registered FD (else its first modality by name) fused over the template.

        Parameters
        ----------
        patient : str
            A patient of the registered cohort.
        """
        project = self.project
        folder = project.registration_dir()
        cohort = Cohort.load(folder)
        mods = cohort.patient(patient).modalities
        modality = "FD" if "FD" in mods else sorted(mods)[0]
        template_path = project.template_path(folder)

        def work() -> Any:
            return self.read(template_path), self.read(cohort.path(patient, modality), patient)

        images = await self.background(f"reading {patient}", work)
        if images is None:
            return
        template, moving = images
        background = self.viewer.volume("template", template, "template", window=DATA_WINDOW)
        overlay = self.viewer.volume("registered", moving, f"{patient} {modality} (registered)",
                                     window=default_window(modality))
        self.viewer.color(overlay, FUSION_COLOR)
        with self.state:
            self.state.reg_patient = patient
            self.state.reg_modality = modality
        self.viewer.show_layout(PLANES)
        self.viewer.show(self.viewer.tags(PLANES), background, overlay,
                         opacity=float(self.state.reg_opacity), fit=True)

    def _on_opacity(self, reg_opacity: float, **_: Any) -> None:
        if self.state.reg_patient and self.state.panel == self.name:
            for tag in self.viewer.tags(PLANES):
                self.viewer.view(tag).set_foreground_opacity(float(reg_opacity))


__all__ = ["FUSION_COLOR", "QC_COLUMNS", "RegistrationPanel"]

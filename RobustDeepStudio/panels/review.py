"""Review panel: for a test patient, a task and an arm, the reference, the prediction and the bias map
((P - R) / R in +-10 %, transparent outside the head) in linked side-by-side views; the per-patient
RMSE / PSNR / SSIM of the arm; the joint histogram with its fit line; the arms of the task side by side,
so that switching arms (e.g. PR against PM2) compares them.

The bias map, the metrics and the fit are the engine's evaluation of this one prediction
(:func:`RobustDeepLib.stages.review_figures`, as ``robustdeep evaluate``); the table of all test
patients is the study's own ``evaluation/metrics.csv``.
"""

from __future__ import annotations

import base64
from collections import defaultdict
from typing import Any, Dict, List

import numpy as np
import SimpleITK as sitk
from trame.widgets import html
from trame.widgets import vuetify3 as v3

from RobustDeepLib.stages import review_figures
from RobustDeepLogic.cohort import DEFAULT_SCALING
from RobustDeepLogic.evaluate.figures import draw_joint_histogram, figure_png_bytes, new_figure
from RobustDeepLogic.evaluate.maps import LinearFit, joint_histogram
from RobustDeepLogic.evaluate.statistics import summarize
from RobustDeepStudio.panels.base import Panel
from RobustDeepStudio.views import REVIEW, default_window

#: The bias map's colour range, in percent (the paper's +-10 %).
BIAS_WINDOW = 10.0
METRICS = [("rmse", "RMSE"), ("psnr", "PSNR (dB)"), ("ssim_global", "SSIM")]


def joint_histogram_png(reference: np.ndarray, prediction: np.ndarray, head: np.ndarray, modality: str,
                        title: str) -> bytes:
    """The joint histogram of the head voxels with its least-squares line, as the report draws it.

    Parameters
    ----------
    reference, prediction : numpy.ndarray
        The volumes in physical units (SUV, HU), one grid.
    head : numpy.ndarray
        The head region (voxels > 0) the evaluation used (``review_figures(...)["head"]``).
    modality : str
        Their modality (its fixed scaling constant).
    title : str
        The plot's title.

    Returns
    -------
    bytes
        A PNG.
    """
    scaling = DEFAULT_SCALING[modality]
    ref, pred, head = scaling.to_scaled(reference), scaling.to_scaled(prediction), np.asarray(head) > 0
    hist = joint_histogram(ref, pred, head, bins=96, value_range=(0.0, 1.0))
    fig = new_figure(4.0, 3.6)
    ax = fig.subplots(1, 1)
    draw_joint_histogram(ax, hist, (0.0, 1.0), LinearFit.of(ref, pred, head),
                         (scaling.scale, scaling.offset), scaling.unit, title)
    return figure_png_bytes(fig)


class ReviewPanel(Panel):
    """Reference, prediction, bias, metrics and joint histogram of one test patient and arm.

    Parameters
    ----------
    studio : RobustDeepStudio.app.Studio
        The studio it belongs to.
    """

    name = "review"
    title = "Review"
    icon = "mdi-compare"
    layout = REVIEW

    def __init__(self, studio: Any) -> None:
        super().__init__(studio)
        self.state.update({
            "rev_task": None, "rev_tasks": [], "rev_arm": None, "rev_arms": [], "rev_patient": None,
            "rev_patients": [], "rev_rows": [], "rev_arm_rows": [], "rev_plot": "", "rev_info": "",
            "rev_metrics": [{"key": k, "title": t} for k, t in METRICS], "rev_window": BIAS_WINDOW,
        })
        self.state.change("rev_task")(self._on_task)
        self.state.change("rev_arm", "rev_patient")(self._on_choice)

    def build(self) -> None:
        """Build the Review panel's controls in the drawer."""
        with v3.VRow(dense=True):
            with v3.VCol():
                v3.VSelect(v_model=("rev_task",), items=("rev_tasks",), label="Task", density="compact",
                           hide_details=True, id="rd-rev-task")
            with v3.VCol():
                v3.VSelect(v_model=("rev_patient",), items=("rev_patients",), label="Test patient",
                           density="compact", hide_details=True, id="rd-rev-patient")
        with v3.VBtnToggle(v_model=("rev_arm",), mandatory=True, density="compact", color="primary",
                           divided=True, classes="mt-2 flex-wrap", id="rd-rev-arm", style="height: auto;"):
            v3.VBtn("{{ a }}", v_for="a in rev_arms", key="a", value=("a",), size="small",
                    id=("`rd-arm-${a}`",))
        html.Div("{{ rev_info }}", classes="text-caption mt-1", id="rd-rev-info")
        html.Div("Bias (P - R) / R: blue -{{ rev_window }} % ... white 0 ... red +{{ rev_window }} %; "
                 "transparent outside the head", classes="text-caption", id="rd-rev-legend")
        html.Img(src=("rev_plot",), v_if="rev_plot", style="width: 100%;", id="rd-rev-plot")
        html.Div("Test patients, {{ rev_task }} {{ rev_arm }} (evaluation, physical units)",
                 classes="text-subtitle-2 mt-2", v_if="rev_rows.length")
        _table("rev_rows", "rev_patient", "rd-rev-table", "patient", self.select)
        html.Div("Arms of {{ rev_task }}: mean over the test patients", classes="text-subtitle-2 mt-2",
                 v_if="rev_arm_rows.length")
        _table("rev_arm_rows", "rev_arm", "rd-rev-arms", "arm", self.select_arm)

    # -- behaviour --------------------------------------------------------------------------------
    def on_project(self, project: Any) -> None:
        """Offer ``project``'s tasks with predictions, and choose the first.

        Parameters
        ----------
        project : RobustDeepStudio.workspace.Project or None
            The open project.
        """
        tasks = project.review_tasks() if project is not None else []
        self.state.rev_tasks = tasks
        self.state.rev_task = tasks[0] if tasks else None
        self._on_task(self.state.rev_task)

    def _on_task(self, rev_task: Any = None, **_: Any) -> None:
        project = self.project
        arms = project.review_arms(rev_task) if project is not None and rev_task else []
        self.state.rev_arms = arms
        if self.state.rev_arm not in arms:
            self.state.rev_arm = "PR" if "PR" in arms else (arms[0] if arms else None)
        self.state.rev_arm_rows = _arm_rows(project, rev_task, arms) if arms else []
        self._on_choice()

    def _on_choice(self, **_: Any) -> None:
        s, project = self.state, self.project
        if project is None or not s.rev_task or not s.rev_arm:
            return
        patients = project.review_patients(s.rev_task, s.rev_arm)
        s.rev_patients = patients
        if s.rev_patient not in patients:
            s.rev_patient = patients[0] if patients else None
        s.rev_rows = [_metric_row(r, "patient", r["patient"]) for r in
                      project.metric_rows(s.rev_task, s.rev_arm)]
        if s.rev_patient and s.panel == self.name:
            self.studio.schedule(self.show)

    def on_show(self) -> None:
        """Show the review views, and the chosen prediction when there is one."""
        super().on_show()
        if self.state.rev_patient:
            self.studio.schedule(self.show)

    def select(self, patient: str) -> None:
        """Review ``patient`` (a row of the table).

        Parameters
        ----------
        patient : str
            A test patient with a prediction for the chosen task and arm.
        """
        self.state.rev_patient = patient

    def select_arm(self, arm: str) -> None:
        """Review ``arm`` (a row of the arms table).

        Parameters
        ----------
        arm : str
            An arm with predictions for the chosen task.
        """
        self.state.rev_arm = arm

    async def show(self) -> None:
        """Load and evaluate the chosen prediction; show the three views, the fit and the metrics."""
        s = self.state
        task, arm, patient = s.rev_task, s.rev_arm, s.rev_patient
        paths = self.project.review_paths(task, arm, patient)
        modality = paths["modality"]

        def work() -> Dict[str, Any]:
            reference = self.read(paths["reference"], patient)
            prediction = self.read(paths["prediction"], patient)
            figures = review_figures(prediction, reference, modality=modality, max_points=2000)
            png = joint_histogram_png(sitk.GetArrayFromImage(reference).astype(np.float32),
                                      sitk.GetArrayFromImage(prediction).astype(np.float32),
                                      sitk.GetArrayViewFromImage(figures["head"]), modality,
                                      f"{patient} {task} {arm}")
            return dict(figures, reference=reference, prediction=prediction, png=png)

        result = await self.background(f"evaluating {patient} {task} {arm}", work)
        if result is None or (task, arm, patient) != (s.rev_task, s.rev_arm, s.rev_patient):
            return
        window = default_window(modality)
        reference = self.viewer.volume("rev_reference", result["reference"], f"{patient} {modality} reference",
                                       window=window)
        prediction = self.viewer.volume("rev_prediction", result["prediction"],
                                        f"{patient} {modality} {arm}", window=window)
        bias = self.viewer.bias("rev_bias", result["bias_percent"], result["head"],
                                f"{patient} bias {arm} (%)", BIAS_WINDOW)
        self.viewer.show_layout(REVIEW)
        self.viewer.show(["ReviewReference"], reference, None, fit=True)
        self.viewer.show(["ReviewPrediction"], prediction, None, fit=True)
        self.viewer.show(["ReviewBias"], reference, bias, opacity=1.0, fit=True)
        m, fit = result["metrics"], result["fit"]
        with self.state:
            s.rev_plot = "data:image/png;base64," + base64.b64encode(result["png"]).decode()
            s.rev_info = (f"{patient} {task} {arm}: RMSE {m['rmse']:.4f}, PSNR {m['psnr']:.2f} dB, "
                          f"SSIM {m['ssim_global']:.4f} (scaled units); fit slope {fit['slope']:.3f}, "
                          f"R² {fit['r2']:.3f}")


def _metric_row(row: Dict[str, str], key: str, value: str) -> Dict[str, Any]:
    out: Dict[str, Any] = {key: value}
    for name, _ in METRICS:
        out[name] = f"{float(row[name]):.4g}" if row.get(name) not in (None, "") else ""
    return out


def _arm_rows(project: Any, task: str, arms: List[str]) -> List[Dict[str, Any]]:
    by_arm: Dict[str, List[Dict[str, str]]] = defaultdict(list)
    for row in project.metric_rows(task):  # one read of metrics.csv for every arm
        by_arm[row["scenario"]].append(row)
    return [_metric_row({name: str(summarize(float(r[name]) for r in by_arm[arm]).mean) for name, _ in METRICS},
                        "arm", arm) for arm in arms if by_arm[arm]]


def _table(rows: str, selected: str, element_id: str, key: str, click: Any) -> None:
    with v3.VTable(density="compact", classes="rd-table", id=element_id, v_if=f"{rows}.length"):
        with html.Thead():
            with html.Tr():
                html.Th(key.capitalize())
                html.Th("{{ c.title }}", v_for="c in rev_metrics", key="c.key")
        with html.Tbody():
            with html.Tr(v_for=f"row in {rows}", key=f"row.{key}", click=(click, f"[row.{key}]"),
                         classes=(f"['rd-click', row.{key} == {selected} ? 'rd-selected' : '']",)):
                html.Td(f"{{{{ row.{key} }}}}")
                html.Td("{{ row[c.key] }}", v_for="c in rev_metrics", key="c.key")


__all__ = ["BIAS_WINDOW", "METRICS", "ReviewPanel", "joint_histogram_png"]

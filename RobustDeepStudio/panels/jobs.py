"""Jobs panel: synthesize, train, predict, evaluate and reproduce as background ``robustdeep`` commands,
each with its progress bar, stage, log tail, the engine's error and hint, and a cancel that ends its
whole process tree. The jobs live on the server (and in the workspace's job record), so reloading the
page shows them as they are."""

from __future__ import annotations

from typing import Any, Callable, Iterable, List

from trame.widgets import html
from trame.widgets import vuetify3 as v3

from RobustDeepLib.stages import mask_choices
from RobustDeepLogic.cohort import BUILTIN_TASKS
from RobustDeepStudio import commands
from RobustDeepStudio.panels.base import Panel

SCENARIOS = ["PU", "PR", "PM"]


class JobsPanel(Panel):
    """Start engine commands in the background and follow them.

    Parameters
    ----------
    studio : RobustDeepStudio.app.Studio
        The studio it belongs to.
    """

    name = "jobs"
    title = "Jobs"
    icon = "mdi-cogs"

    def __init__(self, studio: Any) -> None:
        super().__init__(studio)
        self.state.update({
            "jobs": [], "jobs_by_id": {}, "job_command": "synthesize", "job_commands": list(commands.JOB_COMMANDS),
            "job_mask": "simple", "job_masks": [], "job_count": 2, "job_seed": 0, "job_levels": 4,
            "job_task": "ld2fd", "job_tasks": list(BUILTIN_TASKS), "job_scenario": "PR",
            "job_scenarios": SCENARIOS, "job_epochs": 1, "job_synthetic": None, "job_synthetics": [],
            "job_run": None, "job_runs": [], "job_predictions": None, "job_prediction_folders": [],
            "job_profile": "tiny", "job_profiles": list(commands.PROFILES), "job_out": "studio-study",
        })
        self.publish(())  # show the recorded jobs; none of them has just ended

    # -- page -------------------------------------------------------------------------------------
    def build(self) -> None:
        """Build the Jobs panel's controls in the drawer."""
        v3.VSelect(v_model=("job_command",), items=("job_commands",), label="Command", density="compact",
                   hide_details=True, id="rd-job-command", classes="mb-2")
        with html.Div(v_if="job_command == 'synthesize'"):
            v3.VCombobox(v_model=("job_mask",), items=("job_masks",), label="Mask (preset, spec or file)",
                         density="compact", hide_details=True, id="rd-job-mask")
            with v3.VRow(dense=True, classes="mt-1"):
                with v3.VCol():
                    v3.VTextField(v_model=("job_count",), type="number", label="Subjects",
                                  density="compact", hide_details=True, id="rd-job-count")
                with v3.VCol():
                    v3.VTextField(v_model=("job_seed",), type="number", label="Seed",
                                  density="compact", hide_details=True)
                with v3.VCol():
                    v3.VTextField(v_model=("job_levels",), type="number", label="Levels",
                                  density="compact", hide_details=True)
        with html.Div(v_if="job_command == 'train'"):
            with v3.VRow(dense=True):
                with v3.VCol():
                    v3.VSelect(v_model=("job_task",), items=("job_tasks",), label="Task", density="compact",
                               hide_details=True)
                with v3.VCol():
                    v3.VSelect(v_model=("job_scenario",), items=("job_scenarios",), label="Scenario",
                               density="compact", hide_details=True)
                with v3.VCol():
                    v3.VTextField(v_model=("job_epochs",), type="number", label="Epochs",
                                  density="compact", hide_details=True)
            v3.VSelect(v_model=("job_synthetic",), items=("job_synthetics",), label="Synthetic cohort (PM)",
                       density="compact", hide_details=True, v_if="job_scenario == 'PM'", classes="mt-1")
        v3.VSelect(v_model=("job_run",), items=("job_runs",), label="Trained run", density="compact",
                   hide_details=True, v_if="job_command == 'predict'")
        v3.VSelect(v_model=("job_predictions",), items=("job_prediction_folders",), label="Predictions",
                   density="compact", hide_details=True, v_if="job_command == 'evaluate'")
        with v3.VRow(dense=True, v_if="job_command == 'reproduce'"):
            with v3.VCol():
                v3.VSelect(v_model=("job_profile",), items=("job_profiles",), label="Profile",
                           density="compact", hide_details=True, id="rd-job-profile")
            with v3.VCol():
                v3.VTextField(v_model=("job_out",), label="Study folder (in the workspace)",
                              density="compact", hide_details=True, id="rd-job-out")
        v3.VBtn("Start", click=self.start, color="primary", classes="mt-2", prepend_icon="mdi-play",
                id="rd-job-start", disabled=("!project",))
        html.Div("Jobs", classes="text-subtitle-2 mt-3")
        with html.Div(v_for="job in jobs", key="job.id", classes="mb-3", id=("`rd-${job.id}`",)):
            with html.Div(classes="d-flex align-center"):
                html.B("{{ job.id }} · {{ job.title }}", classes="text-body-2")
                v3.VSpacer()
                v3.VChip("{{ job.state }}", size="x-small", id=("`rd-${job.id}-state`",),
                         color=("{running: 'primary', done: 'success', failed: 'error', "
                                "cancelled: 'warning', interrupted: 'grey'}[job.state]",))
                v3.VBtn("Cancel", v_if="job.state == 'running'", size="x-small", color="error",
                        variant="tonal", classes="ml-1", id=("`rd-${job.id}-cancel`",),
                        click=(self.studio.cancel_job, "[job.id]"))
            v3.VProgressLinear(model_value=("job.percent",), height=14, color="primary",
                               id=("`rd-${job.id}-progress`",))
            html.Div("{{ job.percent }} % · {{ job.stage }} · pid {{ job.pid }}", classes="text-caption",
                     id=("`rd-${job.id}-text`",))
            html.Div("{{ job.command_line }}", classes="text-caption text-grey")
            html.Div("{{ job.error }}", v_if="job.error", classes="text-caption text-error",
                     id=("`rd-${job.id}-error`",))
            html.Div("{{ job.result_text }}", v_if="job.result_text",
                     classes="text-caption text-success", id=("`rd-${job.id}-result`",))
            html.Pre("{{ job.log_text }}", classes="rd-log", v_if="job.log_text")

    # -- behaviour --------------------------------------------------------------------------------
    def on_project(self, project: Any) -> None:
        """Offer ``project``'s masks, synthetic cohorts, trained runs and prediction folders.

        Parameters
        ----------
        project : RobustDeepStudio.workspace.Project or None
            The open project (None: nothing changes).
        """
        if project is None:
            return
        self.state.update({
            "job_masks": mask_choices() + project.saved_masks(),
            "job_synthetics": commands.synthetic_cohorts(project),
            "job_runs": commands.trained_runs(project),
            "job_prediction_folders": commands.prediction_folders(project),
        })

    def on_show(self) -> None:
        """Refresh the choices of the form (other panels and jobs may have added to them)."""
        self.on_project(self.project)

    def start(self) -> None:
        """Start the job of the form."""
        s, project = self.state, self.project
        try:
            if s.job_command == "synthesize":
                mask = commands.mask_argument(self.studio.workspace, s.job_mask)
                title, command = commands.synthesis(project, mask, int(s.job_count), int(s.job_seed),
                                                    int(s.job_levels))
            elif s.job_command == "train":
                synthetic = [str(self.studio.workspace.resolve(s.job_synthetic))] if s.job_synthetic else []
                title, command = commands.training(project, s.job_task, s.job_scenario, int(s.job_epochs),
                                                   synthetic)
            elif s.job_command == "predict":
                title, command = commands.prediction(project, s.job_run or "")
            elif s.job_command == "evaluate":
                title, command = commands.evaluation(project, s.job_predictions or "")
            else:
                title, command = commands.reproduction(self.studio.workspace, s.job_profile, s.job_out)
        except (ValueError, OSError) as exc:
            self.show_error(str(exc))
            return
        self.run(title, command)

    def run(self, title: str, command: List[str]) -> Any:
        """Start ``robustdeep <command>`` as a job and show it.

        Parameters
        ----------
        title : str
            What it does.
        command : list of str
            The arguments after ``robustdeep``.

        Returns
        -------
        JobRecord or None
            The job, or None when it could not start (the error is shown).
        """
        try:
            record = self.studio.jobs.start(title, command)
        except OSError as exc:
            self.show_error(f"could not start {title}: {exc}")
            return None
        self.publish([record])
        return record

    def publish(self, changed: Iterable[Any]) -> None:
        """Show the jobs' records; tell the listeners of those that ended.

        When one of ``changed`` ended, the choices of the form are refreshed too.

        Parameters
        ----------
        changed : iterable of JobRecord
            The records that changed.
        """
        records = self.studio.jobs.list()
        self.state.jobs = [r.to_state() for r in records]
        self.state.jobs_by_id = {r.id: r.to_state() for r in records}
        for record in changed:
            if record.state != "running":
                for listener in self.studio.job_listeners:
                    listener(record)
        if any(r.state != "running" for r in changed):
            self.on_project(self.project)


def job_status(state_key: str, cancel: Callable[..., Any]) -> None:
    """A progress bar, stage, error and cancel button for the job whose id is in ``state_key``.

    Parameters
    ----------
    state_key : str
        The state variable holding the job id.
    cancel : callable
        Called with the job id by the cancel button.
    """
    job = f"jobs_by_id[{state_key}]"
    with html.Div(v_if=f"{state_key} && {job}", classes="my-2"):
        v3.VProgressLinear(model_value=(f"{job}.percent",), height=14, color="primary")
        with html.Div(classes="d-flex align-center text-caption"):
            html.Span(f"{{{{ {job}.state }}}} · {{{{ {job}.percent }}}} % · {{{{ {job}.stage }}}}")
            v3.VSpacer()
            v3.VBtn("Cancel", v_if=f"{job}.state == 'running'", size="x-small", color="error",
                    variant="tonal", click=(cancel, f"[{state_key}]"))
        html.Div(f"{{{{ {job}.error }}}}", v_if=f"{job}.error", classes="text-caption text-error")


__all__ = ["JobsPanel", "SCENARIOS", "job_status"]

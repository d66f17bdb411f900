"""RobustDeep Studio: the module's panels in a browser, on a real MRML scene and Slicer slice views.

:class:`Studio` is a trame application (trame-slicer 2): one ``vtkMRMLScene`` with Slicer's slice
views rendered on the server, a side drawer with the six panels (Cohort, Registration, Masks, Blend
preview, Jobs, Review) and the views they show. All work is the engine's: previews call it in a worker
thread (:mod:`RobustDeepLib.stages`), long work runs as ``robustdeep`` commands in background processes
(:mod:`RobustDeepStudio.jobs`). Everything read or written is inside the workspace
(:mod:`RobustDeepStudio.workspace`).
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, List, Optional

from trame.app import TrameApp
from trame.ui.vuetify3 import VAppLayout
from trame.widgets import client, html
from trame.widgets import vuetify3 as v3
from trame_slicer.core import LayoutManager, SlicerApp
from trame_slicer.rca_view import register_rca_factories

from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.version import __version__
from RobustDeepStudio.jobs import JobManager
from RobustDeepStudio.panels import PANELS
from RobustDeepStudio.views import PLANES, Viewer
from RobustDeepStudio.workspace import Workspace

#: Seconds between two reads of the running jobs' output.
JOB_POLL_SECONDS = 0.25


class Studio(TrameApp):
    """The studio on one workspace.

    Parameters
    ----------
    workspace : Workspace
        The folder it works in.
    server : trame_server.Server, optional
        The trame server (default: a new one).
    project : str, optional
        A project (study or cohort folder, relative to the workspace) to open at start; default: the
        workspace itself when it is one, else the first one found.
    """

    def __init__(self, workspace: Workspace, server: Any = None, project: Optional[str] = None) -> None:
        super().__init__(server=server)
        self.workspace = workspace
        self.project = None
        self.slicer = SlicerApp()
        register_rca_factories(self.slicer.view_manager, self.server)
        self.layout_manager = LayoutManager(self.slicer.scene, self.slicer.view_manager, self.server)
        self.viewer = Viewer(self.slicer, self.layout_manager)
        self.viewer.show_layout(PLANES)
        self.jobs = JobManager(workspace.studio_dir / "jobs.json")
        #: Called with each job record that ended: the project list, and the panels that started a job, refresh.
        self.job_listeners: List[Callable[[Any], None]] = [lambda _record: self.refresh_projects()]
        self.panels = [cls(self) for cls in PANELS]
        self._shown: Optional[str] = None
        self.state.update({
            "panel": self.panels[0].name, "status": "", "error": "", "workspace": str(workspace.root),
            "projects": [], "project": None, "project_kind": "", "version": __version__,
        })
        self._build_ui()
        self.state.change("panel")(self._on_panel)
        self.state.change("project")(self._on_project_choice)
        self.ctrl.on_server_ready.add_task(self._poll_jobs)
        self.refresh_projects(project)

    # -- projects ---------------------------------------------------------------------------------
    def refresh_projects(self, choose: Optional[str] = None) -> None:
        """List the workspace's projects; open ``choose``, or the first one when none is open.

        Parameters
        ----------
        choose : str, optional
            A project folder, relative to the workspace. None: when no project is open, the first
            study found is opened (else the first cohort).
        """
        entries = self.workspace.projects()
        self.state.projects = [{"title": e.label, "value": e.relative} for e in entries]
        if choose is None and self.state.project is None and entries:
            studies = [e for e in entries if e.kind == "study"]
            choose = (studies or entries)[0].relative
        if choose is not None:
            self.state.project = choose
            self._on_project_choice(choose)

    def _on_project_choice(self, project: Optional[str] = None, **_: Any) -> None:
        if not project or (self.project is not None and self.workspace.relative(self.project.root) == project):
            return
        try:
            self.project = self.workspace.project(project)
        except InputError as exc:
            self.state.error = str(exc)
            return
        self.state.project_kind = self.project.kind
        for panel in self.panels:
            panel.on_project(self.project)

    def schedule(self, work: Any) -> None:
        """Run the coroutine function ``work()`` on the event loop (once the server runs).

        Parameters
        ----------
        work : callable
            A coroutine function taking no argument: scheduled now when the event loop runs, else
            when the server is ready.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self.ctrl.on_server_ready.add_task(lambda **_: work())
            return
        asyncio.ensure_future(work())

    def cancel_job(self, job_id: str) -> None:
        """Cancel a running job (its whole process tree).

        Parameters
        ----------
        job_id : str
            The job's id (``job-<n>``); nothing happens when it is not running.
        """
        self.jobs.cancel(job_id)

    def panel(self, name: str) -> Any:
        """The panel called ``name``.

        Parameters
        ----------
        name : str
            A panel's :attr:`~RobustDeepStudio.panels.base.Panel.name` (``cohort``, ``jobs``, ...).

        Returns
        -------
        RobustDeepStudio.panels.base.Panel
            The panel.

        Raises
        ------
        StopIteration
            When no panel has that name.
        """
        return next(p for p in self.panels if p.name == name)

    def _on_panel(self, panel: str, **_: Any) -> None:
        if self._shown is not None and self._shown != panel:
            self.panel(self._shown).on_hide()
        self._shown = panel
        self.panel(panel).on_show()

    # -- jobs -------------------------------------------------------------------------------------
    async def _poll_jobs(self, **_: Any) -> None:
        jobs_panel = self.panel("jobs")
        while True:
            await asyncio.sleep(JOB_POLL_SECONDS)
            changed = self.jobs.poll()
            if changed:
                with self.state:
                    jobs_panel.publish(changed)

    # -- page -------------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        with VAppLayout(self.server, full_height=True) as self.ui:
            client.Style(_CSS)
            with v3.VAppBar(density="compact", color="blue-grey-darken-3"):
                html.Div("RobustDeep Studio", classes="text-h6 mx-4", style="white-space: nowrap;")
                v3.VSelect(v_model=("project",), items=("projects",), label="Project", id="rd-project",
                           density="compact", hide_details=True, variant="outlined",
                           style="max-width: 420px;")
                v3.VChip("{{ project_kind }}", v_if="project_kind", classes="ml-2", size="small")
                v3.VSpacer()
                v3.VProgressCircular(v_if="status || trame__busy", indeterminate=True, size=20,
                                     classes="mr-2")
                html.Span("{{ status }}", id="rd-status", classes="text-caption mr-4")
                html.Span("{{ workspace }}", classes="text-caption text-grey-lighten-1")
            with v3.VNavigationDrawer(permanent=True, width=520):
                with v3.VTabs(v_model=("panel",), density="compact", id="rd-tabs", stacked=True, grow=True,
                              height=58, color="primary"):
                    for p in self.panels:
                        with v3.VTab(value=p.name, id=f"rd-tab-{p.name}", classes="rd-tab"):
                            v3.VIcon(p.icon, size="small")
                            html.Span(p.title)
                v3.VAlert(text=("error",), v_if="error", type="error", density="compact", closable=True,
                          id="rd-error", classes="ma-2 text-body-2", click_close="error = ''")
                with v3.VWindow(v_model=("panel",), classes="pa-2"):
                    for p in self.panels:
                        with v3.VWindowItem(value=p.name, id=f"rd-panel-{p.name}"):
                            p.build()
            with v3.VMain():
                with html.Div(classes="rd-views"):
                    self.layout_manager.initialize_layout_grid(self.ui)


_CSS = """
html { overflow-y: hidden; }
.rd-views { height: calc(100vh - 48px); position: relative; }
.rd-tab { min-width: 0 !important; padding: 0 4px !important; font-size: 11px; letter-spacing: 0; }
.rd-table td, .rd-table th { padding: 0 6px !important; font-size: 12px; white-space: nowrap; }
.rd-table tr.rd-selected { background: rgba(33, 150, 243, 0.18); }
.rd-table tr.rd-click { cursor: pointer; }
.rd-log { font-size: 11px; max-height: 160px; overflow: auto; background: #f4f4f4; padding: 4px;
          white-space: pre-wrap; }
"""


__all__: List[str] = ["JOB_POLL_SECONDS", "Studio"]

"""The background-job box of the RobustDeep module: long engine commands (``python -m RobustDeepLogic
<command> --progress json``) in a separate process, their progress, log, result and cancel.

``RobustDeepWidget`` and ``RobustDeepLogic`` (``RobustDeep.py``) inherit the two mixins below, so the
slots are connected in ``RobustDeepWidget.setup`` and scripts, the self-test and the tests call the
logic as ``RobustDeepLogic().runEngineCommand(...)``.

The buttons of the other panels start their jobs with ``_startJob``.
"""

import logging
from typing import Any, Callable, Dict, Optional, Sequence

import qt

import slicer
from slicer.i18n import tr as _

from RobustDeepLib import engine as rdlib
from RobustDeepLib.process import EngineJob, describe_error, progress_fraction

#: Buttons that start work: disabled while a background job runs.
JOB_BUTTONS = ("prepareAssetsButton", "demoCohortButton", "registerCohortButton", "synthesizeButton", "trainButton", "predictButton")


class JobsWidgetMixin:
    """The background-job box: start, poll, finish, cancel. A mixin of ``RobustDeepWidget``: it uses the
    widget's ``ui``, ``logic``, ``_updateButtons`` and the ``_job...`` attributes that its ``__init__`` sets."""

    JOB_POLL_MS = 200

    def _setupJobBox(self) -> None:
        """The timer that reads the running job's events; the box idle until a job starts."""
        self._jobTimer = qt.QTimer()
        self._jobTimer.setInterval(self.JOB_POLL_MS)
        self._jobTimer.connect("timeout()", self._onJobTimer)
        self.ui.cancelJobButton.enabled = False
        self.ui.jobProgressBar.setValue(0)

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


class JobsLogicMixin:
    """The background jobs, callable without the GUI (scripts, the self-test). A mixin of
    ``RobustDeepLogic``: it uses its ``engine()`` and ``engineRoot``."""

    def startEngineJob(self, command: Sequence[str], extraEnv: Optional[Dict[str, str]] = None) -> EngineJob:
        """Start ``robustdeep <command> --progress json`` in a separate process (returns at once).

        Raises ``DependenciesMissing`` (what is missing, and to press 'Install dependencies...') before
        anything starts when the command lacks packages: the job would die on its first import.
        """
        from RobustDeepLib.dependencies import check_command_requirements

        check_command_requirements(command)
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

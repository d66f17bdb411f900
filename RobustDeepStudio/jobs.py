"""The studio's background jobs: ``robustdeep`` commands in their own processes, read through
``--progress json``.

A job is the same command line a user would type (``robustdeep register ...``), run by
:class:`RobustDeepLib.process.EngineJob`, the runner of the desktop module: one JSON event per line on
stdout, cancel that ends the whole process tree. :class:`JobManager` keeps the jobs of a session,
turns their events into plain records (:class:`JobRecord`: progress, stage, log tail, the engine's
error and hint, the result) and writes them atomically to ``<workspace>/.robustdeep-studio/jobs.json``,
so a page reload, and a restarted studio, still shows them. A job that was running when the studio
stopped is shown as ``interrupted``: engine commands resume, so running it again continues it.

Free of trame and of Slicer: tested with plain pytest.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from RobustDeepLib.engine import engine_argv
from RobustDeepLib.process import EngineJob, describe_error, progress_fraction
from RobustDeepLogic.core.files import atomic_write_text

#: Lines of output kept per job.
LOG_TAIL = 200
#: Seconds between two writes of the records while jobs only progress (a start or an end is written
#: at once).
SAVE_EVERY = 5.0
#: Job states.
STATES = ("running", "done", "failed", "cancelled", "interrupted")


@dataclass
class JobRecord:
    """What the studio shows of one job.

    Attributes
    ----------
    id : str
        ``job-<n>``.
    title : str
        What it does, e.g. ``register cohort``.
    command : list of str
        The ``robustdeep`` arguments (after ``robustdeep``).
    state : str
        One of :data:`STATES`.
    progress : float
        Fraction done in [0, 1] (1 when done).
    stage : str
        The engine's current stage and its count, e.g. ``register 3/6``.
    log : list of str
        The last :data:`LOG_TAIL` lines (engine log messages and plain output).
    error : str
        The engine's error and hint (:func:`RobustDeepLib.process.describe_error`), when it failed.
    result : dict
        The engine's ``result`` event (outputs, figures, summary), when it ended.
    pid : int
        The process id of the command (0 before it starts).
    started, ended : float
        Seconds since the epoch (``ended`` 0 while running).
    returncode : int or None
        The exit status.
    """

    id: str
    title: str
    command: List[str]
    state: str = "running"
    progress: float = 0.0
    stage: str = ""
    log: List[str] = field(default_factory=list)
    error: str = ""
    result: Dict[str, Any] = field(default_factory=dict)
    pid: int = 0
    started: float = 0.0
    ended: float = 0.0
    returncode: Optional[int] = None

    @property
    def command_line(self) -> str:
        """The command as a user would type it."""
        return "robustdeep " + " ".join(shlex.quote(a) for a in self.command)

    @property
    def result_text(self) -> str:
        """What the job produced: the engine's summary, else its outputs (name = path)."""
        if not self.result:
            return ""
        if self.result.get("summary"):
            return str(self.result["summary"])
        outputs = self.result.get("outputs") or {}
        return "outputs: " + ", ".join(f"{k} = {v}" for k, v in outputs.items()) if outputs else "finished"

    def to_state(self) -> Dict[str, Any]:
        """The record as the page shows it (JSON-able; the log as one text).

        Returns
        -------
        dict
            The fields, plus ``command_line``, ``percent``, ``log_text`` and ``result_text``.
        """
        data = asdict(self)
        data.update(command_line=self.command_line, percent=round(100.0 * self.progress, 1),
                    log_text="\n".join(self.log[-40:]), result_text=self.result_text)
        return data


class JobManager:
    """The jobs of one studio: start, poll, cancel, and their records on disk.

    Parameters
    ----------
    record_file : pathlib.Path
        The JSON file the records are kept in (read at start: jobs left running are ``interrupted``).
    python : str, optional
        The Python that runs ``robustdeep`` (default: this one).
    env : mapping, optional
        The environment of the jobs (default: this process's).
    on_change : callable, optional
        Called with the changed :class:`JobRecord` after each :meth:`poll` that changed it.
    """

    def __init__(self, record_file: Path, *, python: Optional[str] = None,
                 env: Optional[Dict[str, str]] = None,
                 on_change: Optional[Callable[[JobRecord], None]] = None) -> None:
        self.record_file = Path(record_file)
        self.python = python
        self.env = env
        self.on_change = on_change
        self.records: Dict[str, JobRecord] = {}
        self._running: Dict[str, EngineJob] = {}
        self._saved_at = 0.0
        self._load()

    # -- records ---------------------------------------------------------------------------------
    def _load(self) -> None:
        if not self.record_file.is_file():
            return
        try:
            items = json.loads(self.record_file.read_text())
        except (OSError, ValueError):
            return  # an unreadable record is not worth stopping the studio for
        names = set(JobRecord.__dataclass_fields__)
        for item in items if isinstance(items, list) else []:
            record = JobRecord(**{k: v for k, v in item.items() if k in names})
            if record.state == "running":
                record.state = "interrupted"
                record.log.append("the studio stopped while this job ran; run it again to resume")
            self.records[record.id] = record

    def save(self) -> None:
        """Write every record to :attr:`record_file`, atomically."""
        items = [asdict(r) for r in self.records.values()]
        atomic_write_text(self.record_file, json.dumps(items, indent=1))
        self._saved_at = time.monotonic()

    def list(self) -> List[JobRecord]:
        """Every job, newest first.

        Returns
        -------
        list of JobRecord
            The records, by start time, newest first.
        """
        return sorted(self.records.values(), key=lambda r: r.started, reverse=True)

    # -- life cycle ------------------------------------------------------------------------------
    def start(self, title: str, command: Sequence[str]) -> JobRecord:
        """Start ``robustdeep <command> --progress json`` in the background.

        Parameters
        ----------
        title : str
            What the job does, for the jobs table.
        command : sequence of str
            The subcommand and its arguments.

        Returns
        -------
        JobRecord
            The new job's record (``running``).

        Raises
        ------
        OSError
            When the process cannot be started.
        """
        number = 1 + max([int(k.split("-")[1]) for k in self.records] or [0])
        record = JobRecord(id=f"job-{number}", title=title, command=[str(c) for c in command],
                           started=time.time())
        job = EngineJob(engine_argv(record.command, python=self.python), env=self.env).start()
        record.pid = job.proc.pid
        self.records[record.id] = record
        self._running[record.id] = job
        self.save()
        return record

    def running(self) -> List[str]:
        """Ids of the jobs still running.

        Returns
        -------
        list of str
            The ids of the jobs started and not yet seen to end by :meth:`poll`.
        """
        return list(self._running)

    def poll(self) -> List[JobRecord]:
        """Take the new events of every running job into its record, and write the records when a job
        ended (progress alone: at most every :data:`SAVE_EVERY` seconds).

        Returns
        -------
        list of JobRecord
            The records that changed.
        """
        changed = []
        for job_id, job in list(self._running.items()):
            record = self.records[job_id]
            events = job.poll()
            if not events:
                continue
            for event in events:
                _apply(record, event)
            if record.state != "running":
                del self._running[job_id]
            changed.append(record)
        ended = any(r.state != "running" for r in changed)
        if ended or (changed and time.monotonic() - self._saved_at >= SAVE_EVERY):
            self.save()  # progress alone is written at most every SAVE_EVERY seconds: it streams
        if changed:
            for record in changed:
                if self.on_change is not None:
                    self.on_change(record)
        return changed

    def cancel(self, job_id: str) -> bool:
        """Ask a running job to stop; its whole process tree ends (killed after a grace period).

        Parameters
        ----------
        job_id : str
            The job.

        Returns
        -------
        bool
            False when the job is not running.
        """
        job = self._running.get(job_id)
        if job is None:
            return False
        job.cancel()
        return True

    def wait(self, job_id: str, timeout: float = 600.0, interval: float = 0.1) -> JobRecord:
        """Poll until ``job_id`` ends (for scripts and tests).

        Parameters
        ----------
        job_id : str
            The job.
        timeout : float, optional
            The most seconds to wait.
        interval : float, optional
            Seconds between polls.

        Returns
        -------
        JobRecord
            Its record.

        Raises
        ------
        TimeoutError
            When it still runs after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while job_id in self._running:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{job_id} still runs after {timeout:g} s")
            self.poll()
            time.sleep(interval)
        return self.records[job_id]

    def shutdown(self) -> None:
        """Cancel every running job (the studio is stopping) and wait for them to end."""
        for job_id in list(self._running):
            self._running[job_id].cancel()
        for job_id in list(self._running):
            try:
                self.wait(job_id, timeout=15.0)
            except TimeoutError:
                pass


def _apply(record: JobRecord, event: Dict[str, Any]) -> None:
    """Fold one engine event into a record."""
    kind = event.get("event")
    if kind == "progress":
        fraction = progress_fraction(event)
        if fraction is not None:
            record.progress = fraction
        total = event.get("total")
        record.stage = f"{event.get('stage', '')} {event.get('done', 0)}/{total}" if total else str(
            event.get("stage", ""))
    elif kind in ("log", "output"):
        text = str(event.get("message", "")).rstrip()
        if text:
            record.log.append(text)
    elif kind == "result":
        record.result = {k: v for k, v in event.items() if k != "event"}
        if event.get("summary"):
            record.log.append(str(event["summary"]))
    elif kind == "error":
        if not record.error:  # the first error is the engine's own; later ones are its echo
            record.error = describe_error(event)
        record.log.append("error: " + describe_error(event))
    elif kind == "exit":
        record.returncode = int(event.get("returncode", -1))
        record.ended = time.time()
        if event.get("cancelled"):
            record.state = "cancelled"
        elif record.returncode == 0:
            record.state, record.progress = "done", 1.0
        else:
            record.state = "failed"
            if not record.error:
                record.error = f"exited with status {record.returncode}"
    del record.log[:-LOG_TAIL]


__all__ = ["JobManager", "JobRecord", "LOG_TAIL", "SAVE_EVERY", "STATES"]

"""Run one ``robustdeep`` command in its own process and read its JSON progress lines.

Long work (registration of a cohort, synthesis, training, prediction) must never run in Slicer's main
thread. :class:`EngineJob` starts the engine's command line in a child process, and two reader threads
move the lines it prints (stdout: one JSON object per line, the protocol of
``RobustDeepLogic.core.progress``; stderr: plain text) into a queue. Whoever owns the job drains the queue
with :meth:`EngineJob.poll`: in Slicer a ``qt.QTimer`` does it on the GUI thread, in tests and scripts
:meth:`EngineJob.wait` does it.

Events handed out by :meth:`EngineJob.poll` are the protocol's own dicts
(``progress`` / ``log`` / ``result`` / ``error``), plus two that this module adds:

``{"event": "output", "stream": "stdout"|"stderr", "message": str}``
    a line that is not a JSON object (a warning printed by a library, a traceback);
``{"event": "exit", "returncode": int, "cancelled": bool}``
    always the last event of a job: 0 success, 2 bad input, 1 internal failure, 130 interrupted,
    other values (negative on POSIX) when the process was killed.

Cancel (:meth:`EngineJob.cancel`) asks the whole process tree to stop (:mod:`RobustDeepLib.process_tree`:
every descendant, found before anything is signalled, and on POSIX the job's process group) and kills
it after a grace period; it never blocks the caller. On Windows the job has no console window.

This module is free of Qt and of Slicer, so it is tested with plain pytest.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from RobustDeepLib.process_tree import popen_options, signal_tree

#: Exit statuses of the ``robustdeep`` command line (``RobustDeepLogic.cli.main.run_command``).
EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_INPUT = 2

#: One event: a dict with an ``event`` key (``progress``, ``log``, ``result``, ``error``, ...).
Event = Dict[str, Any]


def parse_line(line: str, stream: str = "stdout") -> Event:
    """One line printed by the engine as an event dict.

    A line holding a JSON object with an ``event`` key is returned as that object; anything else
    (blank lines excepted by the caller) becomes an ``output`` event carrying the text.

    Parameters
    ----------
    line : str
        One line, with or without its line ending.
    stream : str, optional
        ``stdout`` or ``stderr``; only stdout lines are read as JSON.

    Returns
    -------
    dict
        The protocol event, or ``{"event": "output", "stream": stream, "message": line}``.
    """
    text = line.rstrip("\r\n")
    stripped = text.strip()
    if stream == "stdout" and stripped.startswith("{"):
        try:
            value = json.loads(stripped)
        except ValueError:
            value = None
        if isinstance(value, dict) and isinstance(value.get("event"), str):
            return value
    return {"event": "output", "stream": stream, "message": text}


def describe_error(event: Mapping[str, Any]) -> str:
    """A one-line text for an ``error`` event: what, where (patient, file) and what to do.

    Parameters
    ----------
    event : mapping
        An ``error`` event (``message``, and ``patient``, ``file``, ``hint`` when known).

    Returns
    -------
    str
        ``"<patient>, <file>: <message> (hint: <hint>)"``, leaving out what the event lacks.
    """
    where = [str(event[k]) for k in ("patient", "file") if event.get(k)]
    text = str(event.get("message") or "unknown error")
    if where:
        text = f"{', '.join(where)}: {text}"
    if event.get("hint"):
        text += f" (hint: {event['hint']})"
    return text


def progress_fraction(event: Mapping[str, Any]) -> Optional[float]:
    """``done / total`` of a ``progress`` event in [0, 1], or None when the total is unknown.

    Parameters
    ----------
    event : mapping
        A ``progress`` event (``done``, ``total``).

    Returns
    -------
    float or None
        The fraction done, clipped to [0, 1]; None when ``total`` is missing or 0.
    """
    total = event.get("total")
    done = event.get("done") or 0
    if not total:
        return None
    return max(0.0, min(1.0, float(done) / float(total)))


class EngineJob:
    """A child process running an engine command that speaks the JSON-lines protocol.

    Its attributes ``returncode``, ``result``, ``error``, ``last_progress``, ``cancelled`` and
    ``stderr_lines`` say how it went (the event ones as :meth:`poll` hands the events out).

    Parameters
    ----------
    argv : sequence of str
        The full command line, e.g. from :func:`RobustDeepLib.engine.engine_argv`.
    env : mapping of str to str, optional
        The environment of the child (``None``: this process's environment).
    cwd : str, optional
        The working folder of the child (``None``: this process's).
    grace_seconds : float, optional
        How long :meth:`cancel` waits after asking the process tree to stop before killing it.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Optional[Mapping[str, str]] = None,
        cwd: Optional[str] = None,
        grace_seconds: float = 5.0,
    ) -> None:
        self.argv: List[str] = [str(a) for a in argv]
        self.env: Optional[Dict[str, str]] = dict(env) if env is not None else None
        self.cwd = cwd
        self.grace_seconds = float(grace_seconds)
        self.proc: Optional[subprocess.Popen] = None
        self.returncode: Optional[int] = None
        self.cancelled = False
        self.result: Optional[Event] = None
        self.error: Optional[Event] = None
        self.last_progress: Optional[Event] = None
        self.stderr_lines: List[str] = []
        self._queue: "queue.Queue[Event]" = queue.Queue()
        self._readers: List[threading.Thread] = []
        self._finished = threading.Event()
        self._exit_delivered = False
        self._tree: List[int] = []  # descendants found when the tree was asked to stop

    # -- life cycle ------------------------------------------------------------------------------
    def start(self) -> "EngineJob":
        """Start the process and its reader threads; returns immediately.

        Returns
        -------
        EngineJob
            This job.

        Raises
        ------
        RuntimeError
            When the job was started already.
        OSError
            When the program cannot be started (e.g. the Python executable does not exist).
        """
        if self.proc is not None:
            raise RuntimeError("this job was already started")
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env,
            cwd=self.cwd,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            **popen_options(),  # no console window on Windows; a process group / session of its own
        )
        for stream in ("stdout", "stderr"):
            reader = threading.Thread(
                target=self._read, args=(stream,), name=f"robustdeep-{stream}", daemon=True
            )
            reader.start()
            self._readers.append(reader)
        threading.Thread(target=self._reap, name="robustdeep-reap", daemon=True).start()
        return self

    def _read(self, stream: str) -> None:
        assert self.proc is not None
        pipe = self.proc.stdout if stream == "stdout" else self.proc.stderr
        assert pipe is not None
        for line in iter(pipe.readline, ""):
            if not line.strip():
                continue
            if stream == "stderr":
                self.stderr_lines.append(line.rstrip("\r\n"))
            self._queue.put(parse_line(line, stream))
        pipe.close()

    def _reap(self) -> None:
        assert self.proc is not None
        returncode = self.proc.wait()
        for reader in self._readers:
            reader.join()
        self.returncode = returncode
        # Finished before the exit event is queued: whoever reads that event sees running == False.
        self._finished.set()
        self._queue.put({"event": "exit", "returncode": returncode, "cancelled": self.cancelled})

    @property
    def running(self) -> bool:
        """True from :meth:`start` until the process has ended and all its output has been read."""
        return self.proc is not None and not self._finished.is_set()

    @property
    def finished(self) -> bool:
        """True once the process has ended and all its output has been queued."""
        return self._finished.is_set()

    # -- events ----------------------------------------------------------------------------------
    def poll(self, max_events: Optional[int] = None) -> List[Event]:
        """The events queued so far (never blocks); also records result, error and progress.

        Parameters
        ----------
        max_events : int, optional
            Hand out at most this many (None: all queued).

        Returns
        -------
        list of dict
            The events in the order they arrived; the ``exit`` event comes last of all.
        """
        events: List[Event] = []
        while max_events is None or len(events) < max_events:
            try:
                event = self._queue.get_nowait()
            except queue.Empty:
                break
            kind = event.get("event")
            if kind == "result":
                self.result = event
            elif kind == "error":
                self.error = event
            elif kind == "progress":
                self.last_progress = event
            elif kind == "exit":
                self._exit_delivered = True
            events.append(event)
        return events

    def wait(
        self,
        timeout: Optional[float] = None,
        on_event: Optional[Callable[[Event], None]] = None,
        interval: float = 0.05,
    ) -> Optional[int]:
        """Drain events until the job exits (or ``timeout`` seconds pass); returns the exit status.

        For scripts, tests and the Slicer self-test; the GUI polls with a timer instead.

        Parameters
        ----------
        timeout : float, optional
            Seconds to wait at most (None: until the job exits).
        on_event : callable, optional
            Called with each event as it is handed out.
        interval : float, optional
            Seconds between two polls.

        Returns
        -------
        int or None
            The exit status once the ``exit`` event has been handed out, or None on timeout (the
            job keeps running).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            for event in self.poll():
                if on_event is not None:
                    on_event(event)
            if self._exit_delivered:
                return self.returncode
            if deadline is not None and time.monotonic() >= deadline:
                return None
            time.sleep(interval)

    # -- cancel ----------------------------------------------------------------------------------
    def cancel(self) -> None:
        """Ask the process tree to stop; kill it after :attr:`grace_seconds`. Never blocks."""
        if self.proc is None or self.finished:
            return
        if self.proc.poll() is not None:
            # The command itself has ended (its exit event reports how); only leftovers of its
            # process group can still hold the output pipes open.
            self._signal_tree(terminate=False)
            return
        self.cancelled = True
        self._signal_tree(terminate=True)
        threading.Thread(target=self._kill_after_grace, name="robustdeep-kill", daemon=True).start()

    def _kill_after_grace(self) -> None:
        if not self._finished.wait(self.grace_seconds):
            self._signal_tree(terminate=False)

    def _signal_tree(self, terminate: bool) -> None:
        if self.proc is not None:
            self._tree = signal_tree(self.proc, terminate, known=self._tree)

    def __del__(self) -> None:  # a job dropped while running must not leave orphans
        try:
            if self.proc is not None and self.proc.poll() is None:
                self._signal_tree(terminate=False)
        except Exception:
            pass


def run_engine(
    argv: Sequence[str],
    *,
    env: Optional[Mapping[str, str]] = None,
    timeout: Optional[float] = None,
    on_event: Optional[Callable[[Event], None]] = None,
) -> EngineJob:
    """Run a command to its end (or cancel it after ``timeout`` seconds) and return the job.

    Only for short work and for scripts: it blocks the calling thread.

    Parameters
    ----------
    argv : sequence of str
        The full command line (:func:`RobustDeepLib.engine.engine_argv`).
    env : mapping of str to str, optional
        The environment of the child (``None``: this process's).
    timeout : float, optional
        Seconds after which the job is cancelled (None: no limit).
    on_event : callable, optional
        Called with each event.

    Returns
    -------
    EngineJob
        The job (``returncode``, ``result``, ``error``, ``stderr_lines``); finished unless it
        outlived its grace period after the cancel.
    """
    job = EngineJob(argv, env=env).start()
    if job.wait(timeout=timeout, on_event=on_event) is None:
        job.cancel()
        job.wait(timeout=job.grace_seconds + 5, on_event=on_event)
    return job


__all__ = [
    "EXIT_INPUT",
    "EXIT_INTERNAL",
    "EXIT_OK",
    "EngineJob",
    "Event",
    "describe_error",
    "parse_line",
    "progress_fraction",
    "run_engine",
]

if __name__ == "__main__":  # pragma: no cover - a manual check: python process.py CMD ...
    job = run_engine(sys.argv[1:], on_event=lambda e: print(e))
    sys.exit(job.returncode or 0)

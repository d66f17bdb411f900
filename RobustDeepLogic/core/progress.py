"""Progress reporting for people (a progress bar) and for programs (JSON lines).

Engine functions that take long accept an optional :class:`Progress` and report through it; they never
print. The command line picks the mode:

``bar``
    a tqdm progress bar on stderr when stderr is a terminal, nothing otherwise;
``json``
    one JSON object per line on stdout, the protocol that the Slicer module reads:

    - ``{"event": "progress", "stage": str, "done": int, "total": int|null, "message": str}``
    - ``{"event": "log", "level": "INFO"|"WARNING"|..., "message": str}``
    - ``{"event": "result", "command": str, "outputs": {name: path}, "figures": {name: number}}``
    - ``{"event": "error", "kind": "input"|"internal", "message": str, "file": str|null,
      "patient": str|null, "hint": str|null}``
``none``
    silent (the default inside the library).
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from typing import Any, Dict, Optional, TextIO

#: The ``--progress`` modes of the command line (see the module doc).
MODES = ("bar", "json", "none")


def _jsonable(value: Any) -> Any:
    """Convert numpy scalars, paths and non-finite floats so that ``json.dumps`` accepts them."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


class Progress:
    """A progress sink; ``Progress()`` itself is silent (see :func:`make_progress` for the others).

    Subclasses override :meth:`emit` and the private hooks that a stage calls when it advances and
    when it closes. The constructor makes a lock, which :class:`JsonProgress` holds while it writes,
    since events may come from several threads.

    Attributes
    ----------
    mode : str
        The mode's name, one of :data:`MODES` (``"none"`` here).
    """

    mode = "none"

    def __init__(self) -> None:
        self._lock = threading.Lock()

    # -- events ---------------------------------------------------------------------------------
    def emit(self, event: Dict[str, Any]) -> None:
        """Send one protocol event (ignored by the silent sink).

        Parameters
        ----------
        event : dict
            An event of the protocol in the module doc (``{"event": "log", ...}`` ...).
        """

    def log(self, level: str, message: str) -> None:
        """Send a ``log`` event.

        Parameters
        ----------
        level : str
            A :mod:`logging` level name: ``"DEBUG"``, ``"INFO"``, ``"WARNING"``, ``"ERROR"`` ...
        message : str
            The text of the message.
        """
        self.emit({"event": "log", "level": level, "message": message})

    def result(self, command: str, outputs: Dict[str, Any], figures: Dict[str, Any]) -> None:
        """Send the ``result`` event of a command that has finished.

        Parameters
        ----------
        command : str
            The command's name.
        outputs : dict
            Name of each output -> its path.
        figures : dict
            Name of each figure of merit -> its number (non-finite numbers become null in JSON).
        """
        self.emit({"event": "result", "command": command, "outputs": outputs, "figures": figures})

    def error(self, event: Dict[str, Any]) -> None:
        """Send an ``error`` event.

        Parameters
        ----------
        event : dict
            The event, for example :meth:`RobustDeepLogic.core.errors.InputError.as_event`.
        """
        self.emit(event)

    # -- stages ---------------------------------------------------------------------------------
    def stage(self, name: str, total: Optional[int] = None, message: str = "") -> "Stage":
        """A stage of ``total`` steps, to use as a context manager; call ``advance`` on it.

        Parameters
        ----------
        name : str
            The stage's name, shown on the bar and sent as ``stage`` in progress events.
        total : int, optional
            The number of steps; None when it is not known.
        message : str, optional
            The initial message.

        Returns
        -------
        Stage
            The stage; it reports 0 steps done on entering the ``with`` block and closes on leaving it.
        """
        return Stage(self, name, total, message)

    def _update(self, stage: "Stage", message: str) -> None:
        self.emit(
            {
                "event": "progress",
                "stage": stage.name,
                "done": stage.done,
                "total": stage.total,
                "message": message,
            }
        )

    def _close(self, stage: "Stage") -> None:
        pass


class Stage:
    """One stage of a job: ``done`` out of ``total`` steps (made by :meth:`Progress.stage`).

    Parameters
    ----------
    progress : Progress
        The sink that receives the stage's events.
    name : str
        The stage's name.
    total : int or None
        The number of steps; None when it is not known.
    message : str
        The current message, sent with each progress event.

    Attributes
    ----------
    done : int
        Steps done so far (0 at first).
    """

    def __init__(self, progress: Progress, name: str, total: Optional[int], message: str) -> None:
        self.progress = progress
        self.name = name
        self.total = total
        self.done = 0
        self.message = message

    def __enter__(self) -> "Stage":
        self.progress._update(self, self.message)
        return self

    def advance(self, steps: int = 1, message: Optional[str] = None) -> None:
        """Count ``steps`` more steps done and report.

        Parameters
        ----------
        steps : int, optional
            Steps just done (default 1).
        message : str, optional
            A new message; None keeps the current one.
        """
        self.done += steps
        if message is not None:
            self.message = message
        self.progress._update(self, self.message)

    def __exit__(self, *exc) -> None:
        self.progress._close(self)


class JsonProgress(Progress):
    """One JSON object per line on ``stream`` (stdout by default), flushed at once.

    Numpy scalars become numbers, paths strings and non-finite floats null.

    Parameters
    ----------
    stream : file-like, optional
        A text stream; None means ``sys.stdout`` (at the time the sink is made).
    min_interval : float, optional
        Least time in seconds between two progress events; the first and last event of a stage are
        always sent. 0 (the default) sends every one.
    """

    mode = "json"

    def __init__(self, stream: Optional[TextIO] = None, min_interval: float = 0.0) -> None:
        super().__init__()
        self.stream = stream if stream is not None else sys.stdout
        self.min_interval = min_interval
        self._last = 0.0

    def emit(self, event: Dict[str, Any]) -> None:
        """Write ``event`` as one JSON line and flush.

        Parameters
        ----------
        event : dict
            An event of the protocol in the module doc.
        """
        line = json.dumps(_jsonable(event), sort_keys=False)
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()

    def _update(self, stage: Stage, message: str) -> None:
        now = time.monotonic()
        final = stage.total is not None and stage.done >= stage.total
        if final or stage.done == 0 or now - self._last >= self.min_interval:
            self._last = now
            super()._update(stage, message)


class BarProgress(Progress):
    """A tqdm bar per stage on ``stream`` (stderr by default); warnings and errors as plain lines.

    Of the log events only ``WARNING`` and ``ERROR`` are shown; ``result`` and ``error`` events are not
    (the command line reports those itself). Needs tqdm.

    Parameters
    ----------
    stream : file-like, optional
        A text stream; None means ``sys.stderr`` (at the time the sink is made).
    """

    mode = "bar"

    def __init__(self, stream: Optional[TextIO] = None) -> None:
        super().__init__()
        self.stream = stream if stream is not None else sys.stderr
        self._bars: Dict[int, Any] = {}

    def emit(self, event: Dict[str, Any]) -> None:
        """Show a ``WARNING`` or ``ERROR`` log event as a line above the bars; ignore the rest.

        Parameters
        ----------
        event : dict
            An event of the protocol in the module doc.
        """
        if event.get("event") == "log" and event.get("level") in ("WARNING", "ERROR"):
            from tqdm import tqdm

            tqdm.write(f"{event['level'].lower()}: {event['message']}", file=self.stream)

    def _update(self, stage: Stage, message: str) -> None:
        from tqdm import tqdm

        bar = self._bars.get(id(stage))
        if bar is None:
            bar = tqdm(total=stage.total, desc=stage.name, file=self.stream, leave=True,
                       dynamic_ncols=True)
            self._bars[id(stage)] = bar
        bar.n = stage.done
        if message:
            bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    def _close(self, stage: Stage) -> None:
        bar = self._bars.pop(id(stage), None)
        if bar is not None:
            bar.close()


def make_progress(mode: str) -> Progress:
    """The sink for a command-line ``--progress`` mode.

    Parameters
    ----------
    mode : str
        One of :data:`MODES`: ``"json"`` gives a :class:`JsonProgress` on stdout; ``"bar"`` a
        :class:`BarProgress` when stderr is a terminal, a silent :class:`Progress` otherwise;
        ``"none"`` a silent :class:`Progress`.

    Returns
    -------
    Progress
        The sink.

    Raises
    ------
    ValueError
        ``mode`` is not one of :data:`MODES`.
    """
    if mode == "json":
        return JsonProgress()
    if mode == "bar":
        return BarProgress() if sys.stderr.isatty() else Progress()
    if mode == "none":
        return Progress()
    raise ValueError(f"unknown progress mode {mode!r}; choose one of {', '.join(MODES)}")

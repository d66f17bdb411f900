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
    """A progress sink. ``Progress()`` is silent; see :func:`make_progress` for the others."""

    mode = "none"

    def __init__(self) -> None:
        self._lock = threading.Lock()

    # -- events ---------------------------------------------------------------------------------
    def emit(self, event: Dict[str, Any]) -> None:
        """Send one protocol event (ignored by the silent sink)."""

    def log(self, level: str, message: str) -> None:
        self.emit({"event": "log", "level": level, "message": message})

    def result(self, command: str, outputs: Dict[str, Any], figures: Dict[str, Any]) -> None:
        self.emit({"event": "result", "command": command, "outputs": outputs, "figures": figures})

    def error(self, event: Dict[str, Any]) -> None:
        self.emit(event)

    # -- stages ---------------------------------------------------------------------------------
    def stage(self, name: str, total: Optional[int] = None, message: str = "") -> "Stage":
        """A context manager for one stage of ``total`` steps; call ``advance`` on it."""
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
    """One stage of a job: ``done`` out of ``total`` steps."""

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
        self.done += steps
        if message is not None:
            self.message = message
        self.progress._update(self, self.message)

    def __exit__(self, *exc) -> None:
        self.progress._close(self)


class JsonProgress(Progress):
    """One JSON object per line on ``stream`` (stdout by default), flushed at once."""

    mode = "json"

    def __init__(self, stream: Optional[TextIO] = None, min_interval: float = 0.0) -> None:
        super().__init__()
        self.stream = stream if stream is not None else sys.stdout
        self.min_interval = min_interval
        self._last = 0.0

    def emit(self, event: Dict[str, Any]) -> None:
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
    """A tqdm bar per stage on stderr; log events go to stderr as plain lines."""

    mode = "bar"

    def __init__(self, stream: Optional[TextIO] = None) -> None:
        super().__init__()
        self.stream = stream if stream is not None else sys.stderr
        self._bars: Dict[int, Any] = {}

    def emit(self, event: Dict[str, Any]) -> None:
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
    """The sink for a command-line ``--progress`` mode (``bar`` falls back to silent off a TTY)."""
    if mode == "json":
        return JsonProgress()
    if mode == "bar":
        return BarProgress() if sys.stderr.isatty() else Progress()
    if mode == "none":
        return Progress()
    raise ValueError(f"unknown progress mode {mode!r}; choose one of {', '.join(MODES)}")

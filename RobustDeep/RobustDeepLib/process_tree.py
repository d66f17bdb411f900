"""A child process and everything it started: how it is launched (no console window on Windows) and how
the whole tree is ended.

Ending only the process that :class:`subprocess.Popen` started is not enough: on Windows that process
is Slicer's launcher (``PythonSlicer.exe``), which starts the real Python, and a command may start
workers of its own (DataLoader workers, a process pool). :func:`signal_tree` therefore takes the tree
*before* it signals anything (children of an ended parent are handed to another parent and can no longer
be found from it), then signals every process of it:

- with ``psutil`` (when importable): ``Process.children(recursive=True)``, then ``terminate`` / ``kill``
  of each (on Windows both are ``TerminateProcess``);
- without it, on POSIX: the descendants read from ``/proc`` (Linux), plus the child's process group
  (the child leads a session of its own), by signal;
- without it, on Windows: ``taskkill /T /F``, which walks the tree itself.

Free of Qt and of Slicer: tested with plain pytest, against real process trees.
"""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any, Dict, List, Optional, Sequence

try:  # optional: Slicer may not ship it; the fallbacks below do without
    import psutil  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the environment
    psutil = None


def popen_options(windows: Optional[bool] = None) -> Dict[str, Any]:
    """Keyword arguments of :class:`subprocess.Popen` for an engine job.

    On Windows the job gets no console window (``CREATE_NO_WINDOW``, and a hidden window in its start-up
    information, as ``slicer.util.launchConsoleProcess`` does) and a process group of its own; on POSIX it
    leads a new session, so that its process group is the job's.

    Parameters
    ----------
    windows : bool, optional
        Options for Windows (True) or POSIX (False); None: for this system.

    Returns
    -------
    dict
        ``creationflags`` and ``startupinfo`` (Windows) or ``start_new_session`` (POSIX).
    """
    if not (os.name == "nt" if windows is None else windows):
        return {"start_new_session": True}
    info = subprocess.STARTUPINFO()  # type: ignore[attr-defined]
    info.dwFlags |= subprocess.STARTF_USESHOWWINDOW  # type: ignore[attr-defined]
    info.wShowWindow = 0  # SW_HIDE
    flags = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0) | getattr(subprocess, "CREATE_NO_WINDOW", 0)
    return {"creationflags": flags, "startupinfo": info}


def _proc_children() -> Dict[int, List[int]]:
    """``{parent pid: [child pids]}`` of every process, read from ``/proc`` (Linux)."""
    children: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def descendants(pid: int) -> List[int]:
    """The pids of every process below ``pid`` (children, their children, ...), parents first.

    Parameters
    ----------
    pid : int
        The root of the tree (not included).

    Returns
    -------
    list of int
        Empty when the process has ended, has no children, or the tree cannot be read here (neither
        ``psutil`` nor ``/proc``).
    """
    if psutil is not None:
        try:
            return [p.pid for p in psutil.Process(pid).children(recursive=True)]
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return []
    if not os.path.isdir("/proc"):
        return []
    table = _proc_children()
    found: List[int] = []
    todo = list(table.get(pid, []))
    while todo:
        child = todo.pop(0)
        if child not in found:
            found.append(child)
            todo += table.get(child, [])
    return found


def _signal_pid(pid: int, terminate: bool) -> None:
    try:
        if psutil is not None:
            process = psutil.Process(pid)
            process.terminate() if terminate else process.kill()
        elif os.name != "nt":
            os.kill(pid, signal.SIGTERM if terminate else signal.SIGKILL)
    except Exception:  # ended already, or not ours to signal
        pass


def signal_tree(proc: subprocess.Popen, terminate: bool, known: Sequence[int] = ()) -> List[int]:
    """Ask (``terminate``) or force (kill) a child process and all its descendants to end.

    Parameters
    ----------
    proc : subprocess.Popen
        The child, started with :func:`popen_options`.
    terminate : bool
        True: SIGTERM (POSIX) / ``TerminateProcess`` (Windows, with psutil); False: kill.
    known : sequence of int, optional
        Descendants found earlier (by the terminate before a kill): signalled too, since those whose
        parent has ended are no longer below ``proc``.

    Returns
    -------
    list of int
        The descendants that were signalled (``known`` and those found now), for a later kill.
    """
    tree = list(dict.fromkeys([*known, *descendants(proc.pid)]))
    if os.name == "nt" and psutil is None:
        if proc.poll() is None:
            subprocess.run(["taskkill", "/T", "/F", "/PID", str(proc.pid)], capture_output=True, check=False,
                           creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))
        return tree
    if os.name != "nt":
        try:  # the job's process group: its members that are not (or no longer) below it
            os.killpg(proc.pid, signal.SIGTERM if terminate else signal.SIGKILL)
        except OSError:
            pass
    for pid in tree:
        _signal_pid(pid, terminate)
    if proc.poll() is None:
        try:
            proc.terminate() if terminate else proc.kill()
        except OSError:
            pass
    return tree


__all__ = ["descendants", "popen_options", "signal_tree"]

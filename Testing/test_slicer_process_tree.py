"""Cancel ends the job's whole process tree, and a job has no console window on Windows (issue 14 item 7).

Real process trees (POSIX): a grandchild that left the job's process group (its own session, as a
worker pool or a Windows-style launcher's child would be out of reach of a group signal) must end with
the job. Both ways of finding the tree are tested: ``psutil`` where it is installed, ``/proc`` without.
Standard library only, so that these tests also run in the MRML environment.
"""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers import wait_until_gone

MODULE_DIR = Path(__file__).resolve().parents[1] / "RobustDeep"
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

from RobustDeepLib import process as rdproc  # noqa: E402
from RobustDeepLib import process_tree  # noqa: E402

pytestmark = pytest.mark.skipif(os.name == "nt" or not os.path.isdir("/proc"), reason="POSIX trees via /proc")

#: A job that starts a grandchild in a session of its own (out of the job's process group), prints its
#: pid, and sleeps. GRANDCHILD_CODE is what the grandchild runs.
JOB = """
    import json, subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", GRANDCHILD_CODE], start_new_session=True)
    print(json.dumps({"event": "log", "level": "INFO", "message": str(child.pid)}), flush=True)
    time.sleep(60)
"""


@pytest.fixture(params=["proc", "psutil"])
def finder(request, monkeypatch):
    """Find the tree through /proc (psutil hidden), or through psutil (skipped when not installed)."""
    if request.param == "psutil":
        psutil = pytest.importorskip("psutil")
        monkeypatch.setattr(process_tree, "psutil", psutil)
    else:
        monkeypatch.setattr(process_tree, "psutil", None)
    return request.param


def _start(grandchild_code: str, grace: float) -> tuple:
    code = textwrap.dedent(JOB).replace("GRANDCHILD_CODE", repr(textwrap.dedent(grandchild_code)))
    job = rdproc.EngineJob([sys.executable, "-u", "-c", code], grace_seconds=grace).start()
    deadline = time.monotonic() + 20
    while True:
        logs = [e for e in job.poll() if e["event"] == "log"]
        if logs:
            return job, int(logs[0]["message"])
        assert time.monotonic() < deadline, "the job printed nothing"
        time.sleep(0.02)


def test_descendants_are_found_below_the_job_and_nothing_else(finder):
    job, grandchild = _start("import time; time.sleep(60)", grace=5)
    try:
        assert process_tree.descendants(job.proc.pid) == [grandchild]
        assert process_tree.descendants(grandchild) == []
        assert os.getpid() not in process_tree.descendants(job.proc.pid)
    finally:
        job.cancel()
        job.wait(timeout=20)


def test_cancel_reaches_a_grandchild_outside_the_jobs_process_group(finder):
    job, grandchild = _start("import time; time.sleep(60)", grace=10)
    assert os.getpgid(grandchild) != os.getpgid(job.proc.pid)  # a group signal cannot reach it
    job.cancel()
    assert job.wait(timeout=20) == -signal.SIGTERM
    assert wait_until_gone(grandchild, 5.0), "the grandchild survived the cancel"


def test_the_kill_after_the_grace_period_reaches_an_orphaned_grandchild_that_ignores_terminate(finder):
    # The job ends on SIGTERM; its grandchild ignores it and keeps the job's output pipes open, so the
    # job cannot finish until the kill after the grace period finds it (its parent has gone by then).
    job, grandchild = _start("""
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(60)
    """, grace=0.5)
    job.cancel()
    assert job.wait(timeout=20) is not None, "the job never finished: its grandchild holds the pipes"
    assert job.cancelled and wait_until_gone(grandchild, 5.0)


def test_jobs_have_no_console_window_on_windows_and_a_session_of_their_own_on_posix(monkeypatch):
    assert process_tree.popen_options(windows=False) == {"start_new_session": True}

    class StartupInfo:  # subprocess.STARTUPINFO exists on Windows only
        dwFlags = 0
        wShowWindow = 1

    # The Win32 values (winbase.h / winuser.h): STARTF_USESHOWWINDOW 0x1, SW_HIDE 0,
    # CREATE_NEW_PROCESS_GROUP 0x200, CREATE_NO_WINDOW 0x08000000.
    for name, value in (("STARTUPINFO", StartupInfo), ("STARTF_USESHOWWINDOW", 0x1),
                        ("CREATE_NEW_PROCESS_GROUP", 0x200), ("CREATE_NO_WINDOW", 0x08000000)):
        monkeypatch.setattr(process_tree.subprocess, name, value, raising=False)
    options = process_tree.popen_options(windows=True)
    assert options["creationflags"] & 0x08000000 and options["creationflags"] & 0x200
    assert options["startupinfo"].dwFlags & 0x1 and options["startupinfo"].wShowWindow == 0
    assert "start_new_session" not in options

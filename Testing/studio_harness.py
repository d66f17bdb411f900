"""What the studio's browser tests and benchmark share: a tiny study, the server on a loopback port,
headless Chromium (the system's, driven by Playwright), and the pixels of a slice view.

- :func:`studio_requirements` says what is missing (trame-slicer, Playwright, a Chromium executable);
  the tests skip with that message, or fail when ``RD_REQUIRE_STUDIO=1`` (CI).
- :class:`StudioServer` runs ``robustdeep studio WORKSPACE --port 0`` in its own process, reads the
  address it prints, and ends it by its process id.
- :func:`view_pixels` is a screenshot of the n-th slice view of the page as an RGB array.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
from helpers import process_alive

#: Chromium flags for a closed network and no GPU (as root, no sandbox).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> Optional[str]:
    """The system Chromium (``RD_CHROMIUM``, else ``chromium`` / ``chromium-browser`` on PATH)."""
    found = os.environ.get("RD_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    return found if found and Path(found).exists() else None


def studio_requirements() -> List[str]:
    """What the browser tests need and this machine lacks (empty when all is there)."""
    missing = []
    for module, what in (("trame_slicer", "the studio extra (pip install -e '.[studio]')"),
                         ("playwright", "Playwright (pip install playwright; no browser download)")):
        try:
            __import__(module)
        except ImportError:
            missing.append(what)
    if chromium_path() is None:
        missing.append("Chromium (apt-get install chromium, or RD_CHROMIUM=/path/to/chrome)")
    return missing


def tiny_study(root: Path) -> Path:
    """``robustdeep reproduce --profile tiny`` into ``root/tiny`` (about 1-2 minutes on 2 cores)."""
    out = root / "tiny"
    code = subprocess.call([sys.executable, "-m", "RobustDeepLogic.cli", "reproduce", "--profile", "tiny",
                            "--out", str(out), "--progress", "none"], stdout=subprocess.DEVNULL)
    if code != 0:
        raise RuntimeError(f"robustdeep reproduce --profile tiny failed with status {code}")
    return out


class StudioServer:
    """``robustdeep studio`` on 127.0.0.1 and a free port, in its own process (its own session).

    Parameters
    ----------
    workspace : pathlib.Path
        The workspace.
    extra : sequence of str
        More arguments (``--project``, ``--token``).
    log : pathlib.Path, optional
        Where its stderr goes.
    """

    def __init__(self, workspace: Path, extra: Sequence[str] = (), log: Optional[Path] = None) -> None:
        self.log = log or workspace / "studio-server.log"
        self._err = open(self.log, "w")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "RobustDeepLogic.cli", "studio", str(workspace), "--port", "0",
             "--idle-exit", "1800", "--progress", "none", *extra],
            stdout=subprocess.PIPE, stderr=self._err, text=True, start_new_session=True)
        self.url = self._wait_for_url(timeout=120.0)
        self.ready_seconds = time.perf_counter() - self.started

    def _wait_for_url(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the studio exited with {self.proc.returncode}: "
                                       f"{self.log.read_text()[-3000:]}")
                continue
            found = re.search(r"RobustDeep Studio: (http://\S+)", line)
            if found:
                return found.group(1)
        raise TimeoutError(f"the studio printed no address in {timeout:g} s")

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.proc.pid

    def rss_mb(self) -> float:
        """The server's resident memory, in MB (from /proc)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
        return float("nan")

    def stop(self) -> None:
        """End the server by its process id (SIGTERM, then SIGKILL after 15 s)."""
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)
        self._err.close()


def new_browser(playwright):
    """Headless system Chromium."""
    return playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)


def view_pixels(page, index: int, margin: float = 0.08) -> np.ndarray:
    """The n-th slice view of the page (layout order) as an RGB uint8 array, its border cropped
    (the view's buttons and slider are left out)."""
    from PIL import Image

    element = page.locator(".remote-controlled-area").nth(index)
    png = element.screenshot()
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    h, w = rgb.shape[:2]
    dy, dx = int(h * margin), int(w * margin)
    return rgb[dy: h - max(dy, 40), dx: w - dx]


def wait_for_image(page, index: int, timeout: float = 30.0) -> None:
    """Wait until the n-th view shows a streamed image."""
    page.wait_for_function(
        "i => { const v = document.querySelectorAll('.remote-controlled-area')[i];"
        " const img = v && v.querySelector('img.image-display-area');"
        " return img && img.src && img.src.startsWith('blob:') && img.naturalWidth > 0; }",
        arg=index, timeout=timeout * 1000)


def image_src(page, index: int) -> str:
    """The current image address (a blob URL) of the n-th view."""
    return page.evaluate("i => document.querySelectorAll('.remote-controlled-area')[i]"
                         ".querySelector('img.image-display-area').src", index)


def descendants_alive(pids: Sequence[int]) -> List[int]:
    """Those of ``pids`` that still exist and are not zombies."""
    return [pid for pid in pids if process_alive(pid)]

"""Benchmark of RobustDeep Studio against trame-slicer's own minimal viewer, measured in the same run.

    python benchmarks/bench_studio.py STUDY [--shots DIR] [--frames 15]

STUDY is a study folder (``robustdeep demo`` / ``reproduce``). Both servers show the same volume (the
first patient's FD) in Slicer slice views, served on 127.0.0.1 and opened in headless system Chromium
(Playwright). Measured for each:

- server start: from launching the process to the server printing its address;
- page load to first image: from ``page.goto`` to the axial view showing a streamed image;
- slice scroll: per frame, from pressing an arrow key on the axial view's slider to a new image;
- server memory: resident set of the server process after the page and a few panels were shown.

Printed with the targets of the studio (first image < 5 s after page load, < 300 ms per scrolled frame,
< 1.5 GB) and the ratio studio / reference. ``--shots DIR`` also saves a screenshot of every panel
(Cohort, Registration, Masks, Blend preview, Jobs, Review) of the studio on STUDY. Requires the studio
extra, Playwright and Chromium (as the browser tests, ``Testing/studio_harness.py``).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Testing"))
from studio_harness import StudioServer, image_src, new_browser, studio_requirements, wait_for_image  # noqa: E402

#: The reference: trame-slicer's minimal viewer (its hello-world example) showing one volume.
REFERENCE_APP = r'''
import os, sys
os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
from trame.app import TrameApp
from trame_vuetify.ui.vuetify3 import SinglePageLayout
from trame_slicer.core import LayoutManager, SlicerApp
from trame_slicer.rca_view import register_rca_factories

class Minimal(TrameApp):
    def __init__(self, volume):
        super().__init__()
        self.slicer = SlicerApp()
        register_rca_factories(self.slicer.view_manager, self.server)
        self.layouts = LayoutManager(self.slicer.scene, self.slicer.view_manager, self.server)
        self.layouts.register_layout_dict(LayoutManager.default_grid_configuration())
        self.layouts.set_layout("Axial Primary")
        node = self.slicer.io_manager.load_volumes([volume])[0]
        self.slicer.display_manager.show_volume(node, do_reset_views=True)
        with SinglePageLayout(self.server) as self.ui, self.ui.content:
            self.layouts.initialize_layout_grid(self.ui)
        self.server.controller.on_server_ready.add(
            lambda **_: print(f"RobustDeep Studio: http://127.0.0.1:{self.server.port}/", flush=True))

sys.argv = sys.argv[:2]
app = Minimal(sys.argv[1])
sys.argv = sys.argv[:1]
app.server.start(host="127.0.0.1", port=0, open_browser=False, show_connection_info=False, timeout=0)
'''


class ReferenceServer(StudioServer):
    """The minimal trame-slicer viewer, started like the studio (same address line, same stop)."""

    def __init__(self, volume: Path, folder: Path) -> None:
        import os

        self.log = folder / "reference.log"
        self._err = open(self.log, "w")
        script = folder / "reference_app.py"
        script.write_text(REFERENCE_APP)
        self.started = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, str(script), str(volume)], stdout=subprocess.PIPE,
                                     stderr=self._err, text=True, start_new_session=True, env=dict(os.environ))
        self.url = self._wait_for_url(timeout=120.0)
        self.ready_seconds = time.perf_counter() - self.started


def measure(browser, server, frames: int, view_index: int, before_scroll=None) -> dict:
    """Page load to first image, scroll latency per frame, and memory, for one server."""
    page = browser.new_page(viewport={"width": 1500, "height": 900})
    t0 = time.perf_counter()
    page.goto(server.url)
    wait_for_image(page, view_index, timeout=60.0)
    first_image = time.perf_counter() - t0
    if before_scroll is not None:
        before_scroll(page)
    thumb = page.locator(".slice-slider .v-slider-thumb").nth(view_index)
    thumb.focus()
    times = []
    for _ in range(frames):
        old = image_src(page, view_index)
        t = time.perf_counter()
        page.keyboard.press("ArrowRight")
        page.wait_for_function("([i, old]) => document.querySelectorAll('.remote-controlled-area')[i]"
                               ".querySelector('img.image-display-area').src != old",
                               arg=[view_index, old], timeout=10000)
        times.append(time.perf_counter() - t)
    memory = server.rss_mb()
    page.close()
    return {"start_s": server.ready_seconds, "first_image_s": first_image,
            "scroll_ms": 1000 * statistics.median(times), "scroll_max_ms": 1000 * max(times), "rss_mb": memory}


def _idle(page) -> None:
    """Wait until the studio has finished opening its project (no work in its threads)."""
    page.wait_for_function("() => !document.querySelector('#rd-status').textContent.trim()", timeout=120000)


def panel_shots(browser, server, folder: Path) -> None:
    """A screenshot of each panel, after what a user would do there first."""
    page = browser.new_page(viewport={"width": 1500, "height": 900})
    page.goto(server.url)
    page.wait_for_selector("#rd-tab-cohort", timeout=60000)

    def tab(name: str, settle: float = 2.5) -> None:
        page.click(f"#rd-tab-{name}")
        page.wait_for_timeout(int(settle * 1000))

    def idle() -> None:
        page.wait_for_function("() => !document.querySelector('#rd-status').textContent.trim()", timeout=120000)
        page.wait_for_timeout(2000)

    tab("cohort")
    idle()
    page.screenshot(path=str(folder / "studio-cohort.png"))
    tab("registration")
    page.locator("#rd-reg-table tbody tr").nth(0).click()
    idle()
    page.screenshot(path=str(folder / "studio-registration.png"))
    tab("masks")
    page.click("#rd-mask-make")
    idle()
    page.screenshot(path=str(folder / "studio-masks.png"))
    tab("blend")
    page.click("#rd-blend-run")
    idle()
    page.screenshot(path=str(folder / "studio-blend.png"))
    tab("jobs")
    page.screenshot(path=str(folder / "studio-jobs.png"))
    tab("review")
    idle()
    page.screenshot(path=str(folder / "studio-review.png"))
    page.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path, help="a study folder (robustdeep demo / reproduce)")
    parser.add_argument("--frames", type=int, default=15, help="slice steps timed per server")
    parser.add_argument("--shots", type=Path, default=None, help="save a screenshot of every panel here")
    args = parser.parse_args()
    missing = studio_requirements()
    if missing:
        print("bench_studio: needs " + "; ".join(missing), file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    from RobustDeepLogic.cohort import Cohort

    study = args.study.resolve()
    cohort = Cohort.load(study / "cohort")
    volume = cohort.path(cohort.ids[0], "FD")
    results = {}
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        browser = new_browser(p)
        ref = ReferenceServer(volume, Path(tmp))
        try:
            results["trame-slicer minimal viewer (reference)"] = measure(browser, ref, args.frames, 0)
        finally:
            ref.stop()
        studio = StudioServer(study.parent, ["--project", study.name], log=Path(tmp) / "studio.log")
        try:
            results["RobustDeep Studio"] = measure(browser, studio, args.frames, 0, before_scroll=_idle)
            if args.shots:
                args.shots.mkdir(parents=True, exist_ok=True)
                panel_shots(browser, studio, args.shots)
                results["RobustDeep Studio"]["rss_after_panels_mb"] = studio.rss_mb()
        finally:
            studio.stop()
        browser.close()
    ref_r, std = results["trame-slicer minimal viewer (reference)"], results["RobustDeep Studio"]
    import SimpleITK as sitk

    size = sitk.ReadImage(str(volume)).GetSize()
    print(f"volume: {volume} ({' x '.join(map(str, size))} voxels)")
    print(f"{'':44s}{'start (s)':>11s}{'1st image (s)':>15s}{'scroll (ms/frame)':>19s}{'max (ms)':>10s}"
          f"{'memory (MB)':>13s}")
    for name, r in results.items():
        print(f"{name:44s}{r['start_s']:11.2f}{r['first_image_s']:15.2f}{r['scroll_ms']:19.0f}"
              f"{r['scroll_max_ms']:10.0f}{r['rss_mb']:13.0f}")
    print(f"{'ratio studio / reference':44s}{std['start_s'] / ref_r['start_s']:11.2f}"
          f"{std['first_image_s'] / ref_r['first_image_s']:15.2f}{std['scroll_ms'] / ref_r['scroll_ms']:19.2f}"
          f"{'':10s}{std['rss_mb'] / ref_r['rss_mb']:13.2f}")
    print(f"{'targets (studio)':44s}{'':11s}{'< 5':>15s}{'< 300':>19s}{'':10s}{'< 1536':>13s}")
    if "rss_after_panels_mb" in std:
        print(f"studio memory after every panel was shown: {std['rss_after_panels_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""RobustDeep Studio as a person uses it: the real server (``robustdeep studio`` on a loopback port) and
headless Chromium driven by Playwright, on a tiny simulated study (``reproduce --profile tiny``).

Each test checks pixels of the streamed slice views or the files written, against independent truths
(the engine's ``laplacian_blend``, the template grid, the radiological convention of the axial view,
the process table), and saves a screenshot of its panel (``RD_STUDIO_SCREENSHOTS``, default: the test's
temporary folder). Skipped with the reason when trame-slicer, Playwright or Chromium is missing; an error
then when ``RD_REQUIRE_STUDIO=1`` (CI).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from studio_harness import (
    StudioServer,
    descendants_alive,
    new_browser,
    studio_requirements,
    tiny_study,
    view_pixels,
    wait_for_image,
)

MISSING = studio_requirements()
if MISSING:
    if os.environ.get("RD_REQUIRE_STUDIO") == "1":
        raise RuntimeError("RD_REQUIRE_STUDIO=1 but the studio tests cannot run: " + "; ".join(MISSING))
    pytest.skip("studio browser tests need " + "; ".join(MISSING), allow_module_level=True)

pytestmark = pytest.mark.usefixtures("need_assets")

TOKEN = "studio-test-token-42"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("studio-ws")
    tiny_study(root)
    return root


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = Path(os.environ.get("RD_STUDIO_SCREENSHOTS") or tmp_path_factory.mktemp("studio-shots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def server(workspace):
    srv = StudioServer(workspace, ["--project", "tiny"])
    yield srv
    srv.stop()
    assert srv.proc.returncode is not None


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = new_browser(p)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    pg = browser.new_page(viewport={"width": 1500, "height": 900})
    _open(pg, server.url)
    yield pg
    pg.close()


def _open(page, url: str) -> None:
    """Open the studio; the panel shown is the server's (the state lives there): go to Cohort."""
    page.goto(url)
    page.wait_for_selector("#rd-tab-cohort", timeout=60000)
    _tab(page, "cohort")
    page.wait_for_selector("#rd-patient-SIM001", timeout=60000)


def _tab(page, name: str) -> None:
    page.click(f"#rd-tab-{name}")
    page.wait_for_selector(f"#rd-panel-{name}", state="visible")


def _idle(page, timeout: float = 60.0) -> None:
    """Wait until the status line is empty (no preview computing)."""
    page.wait_for_function("() => !document.querySelector('#rd-status').textContent.trim()",
                           timeout=timeout * 1000)


def _grey(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float32).mean(axis=2)


def _coloured(rgb: np.ndarray, spread: int = 40) -> np.ndarray:
    x = rgb.astype(np.int32)
    return (x.max(axis=2) - x.min(axis=2)) > spread


# --------------------------------------------------------------------------------------------------
def test_cohort_panel_shows_the_patients_and_renders_their_volumes(page, workspace, shots):
    rows = page.locator("#rd-cohort-table tbody tr")
    assert rows.count() == 6  # the tiny study's six patients
    assert "6 patients" in page.inner_text("#rd-cohort-summary")
    page.click("#rd-patient-SIM002")
    page.click("#rd-modality-FD")
    _idle(page)
    page.wait_for_timeout(1500)
    wait_for_image(page, 0)
    fd = view_pixels(page, 0)
    page.screenshot(path=str(shots / "cohort.png"))
    grey = _grey(fd)
    # A real render of a head: grey levels only (a grey colour table), dark background, bright brain.
    assert not _coloured(fd, 12).any()
    assert 0.05 < (grey > 40).mean() < 0.95, (grey > 40).mean()
    assert grey.std() > 20
    # The same view after switching to the CT changes: another volume, another window.
    page.click("#rd-modality-CT")
    _idle(page)
    page.wait_for_timeout(1500)
    ct = _grey(view_pixels(page, 0))
    assert np.abs(ct - grey).mean() > 5
    # The three planes differ (axial, coronal, sagittal of one volume).
    coronal, sagittal = _grey(view_pixels(page, 1)), _grey(view_pixels(page, 2))
    assert coronal.std() > 10 and sagittal.std() > 10


def test_registration_panel_qc_table_and_fused_overlay(page, workspace, shots):
    _tab(page, "registration")
    page.wait_for_selector("#rd-reg-SIM001")
    qc = (workspace / "tiny" / "registered" / "registration_qc.csv").read_text().splitlines()
    assert page.locator("#rd-reg-table tbody tr").count() == len(qc) - 1
    page.click("#rd-reg-SIM001")
    _idle(page)
    page.wait_for_timeout(2000)
    fused = view_pixels(page, 0)
    page.screenshot(path=str(shots / "registration.png"))
    # The registered FD in PET colours over the grey template: coloured pixels in the head.
    assert _coloured(fused).mean() > 0.05

    # Registering again runs as a job into a folder of its own: the study's registered cohort (its
    # splits and folds) is left as it was.
    manifest = workspace / "tiny" / "registered" / "manifest.json"
    before = manifest.read_bytes()
    page.click("#rd-reg-start")
    page.wait_for_selector("#rd-reg-summary:has-text('registered-studio')", timeout=300000)
    assert manifest.read_bytes() == before
    own = (workspace / "tiny" / "registered-studio" / "registration_qc.csv").read_text().splitlines()
    assert page.locator("#rd-reg-table tbody tr").count() == len(own) - 1 == 6


def test_mask_painted_by_mouse_is_saved_on_the_template_grid(page, workspace, shots):
    _tab(page, "masks")
    page.click("#rd-mask-empty")
    _idle(page)
    page.click("#rd-mask-tool-paint")
    page.wait_for_timeout(800)
    view = page.locator(".remote-controlled-area").nth(0)
    box = view.bounding_box()
    y = box["y"] + 0.45 * box["height"]
    page.mouse.move(box["x"] + 0.25 * box["width"], y)
    page.mouse.down()
    for i in range(1, 13):  # a horizontal stroke in the left half of the axial view
        page.mouse.move(box["x"] + (0.25 + 0.015 * i) * box["width"], y)
        page.wait_for_timeout(60)
    page.mouse.up()
    page.wait_for_timeout(1000)
    offset = float(page.locator(".slice-slider .v-slider-thumb").nth(0).get_attribute("aria-valuenow"))
    page.fill("#rd-mask-name", "painted-test")
    page.click("#rd-mask-save")
    page.wait_for_selector("#rd-mask-saved:has-text('saved')", timeout=30000)
    page.screenshot(path=str(shots / "masks.png"))

    saved = sitk.ReadImage(str(workspace / "tiny" / "masks" / "painted-test.nii.gz"))
    template = sitk.ReadImage(str(workspace / "tiny" / "registered" / "template" / "fdg_template.nii.gz"))
    assert saved.GetSize() == template.GetSize()
    np.testing.assert_allclose(saved.GetSpacing(), template.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(saved.GetOrigin(), template.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(saved.GetDirection(), template.GetDirection(), atol=1e-6)
    mask = sitk.GetArrayFromImage(saved)
    k, j, i = np.nonzero(mask)
    assert k.size > 3, "the stroke painted nothing"
    points = np.array([saved.TransformIndexToPhysicalPoint((int(a), int(b), int(c)))
                       for a, b, c in zip(i, j, k)])  # LPS mm
    # The stroke lies on the axial slice shown (S = LPS z), within the brush radius and a voxel.
    assert np.abs(points[:, 2] - offset).max() <= 6.0 + max(template.GetSpacing())
    # Horizontal stroke: it spans left-right more than anterior-posterior.
    assert np.ptp(points[:, 0]) > np.ptp(points[:, 1])
    # Radiological convention: the screen's left half is the patient's right (LPS x < centre).
    size = np.array(template.GetSize()) - 1
    centre = np.array(template.TransformContinuousIndexToPhysicalPoint((size / 2.0).tolist()))
    assert points[:, 0].mean() < centre[0]
    # The engine reads it as a blending mask (what synthesize --mask FILE does).
    from RobustDeepLogic.io.volumes import Grid
    from RobustDeepLogic.masks.presets import mask_from_spec

    engine = mask_from_spec(str(workspace / "tiny" / "masks" / "painted-test.nii.gz"), Grid.of(template))
    np.testing.assert_array_equal(engine > 0.5, mask > 0)


def test_blend_preview_equals_the_engines_laplacian_blend(page, workspace, shots):
    from RobustDeepLogic.blending.baselines import naive_blend
    from RobustDeepLogic.blending.blend import laplacian_blend
    from RobustDeepLogic.io.volumes import read_array
    from RobustDeepLogic.masks.presets import mask_from_spec

    _tab(page, "blend")
    page.click("#rd-blend-run")
    page.wait_for_selector("#rd-blend-info:has-text('SIM001')", timeout=60000)
    _idle(page)
    page.wait_for_timeout(2000)
    page.screenshot(path=str(shots / "blend.png"))
    a_px, lap_px, naive_px = (_grey(view_pixels(page, i)) for i in (0, 3, 4))
    assert lap_px.std() > 10 and a_px.std() > 10
    page.click("#rd-blend-save")
    page.wait_for_selector("#rd-blend-saved:has-text('saved')", timeout=30000)
    saved = next((workspace / "tiny" / "blends").glob("SIM001-SIM002-simple-FD-L4.nii.gz"))

    reg = workspace / "tiny" / "registered"
    a, grid = read_array(reg / "SIM001" / "FD.nii.gz")
    b, _ = read_array(reg / "SIM002" / "FD.nii.gz")
    mask = mask_from_spec("simple", grid)
    expected = laplacian_blend(a, b, mask, 4)
    shown, shown_grid = read_array(saved)
    assert shown_grid.matches(grid)
    np.testing.assert_allclose(shown, expected, rtol=1e-5, atol=1e-5)
    # ... and it is not the naive blend (which the view beside it shows).
    assert np.abs(expected - naive_blend(a, b, mask)).max() > 1e-3


def test_jobs_run_to_100_percent_survive_a_reload_and_cancel_ends_the_process_tree(page, workspace, shots):
    _tab(page, "jobs")
    page.fill("#rd-job-count", "2")
    page.click("#rd-job-start")
    first = _newest_job(page)
    page.wait_for_selector(f"#{first}-state:has-text('done')", timeout=180000)
    assert page.inner_text(f"#{first}-text").startswith("100")
    assert "studio-simple" in page.inner_text(f"#{first}-result")  # its output folder
    manifest = json.loads((workspace / "tiny" / "synthetic" / "studio-simple" / "manifest.json").read_text())
    assert len(manifest["patients"]) == 2
    page.reload()  # the server keeps the state: the Jobs panel, its jobs
    page.wait_for_selector(f"#{first}-state", timeout=60000)
    assert "done" in page.inner_text(f"#{first}-state")
    assert page.inner_text(f"#{first}-text").startswith("100")

    # A job the engine refuses: its error, naming what is wrong, and the engine's hint.
    page.fill("#rd-job-mask", "no-such-mask")
    page.keyboard.press("Enter")
    page.click("#rd-job-start")
    bad = _newest_job(page)
    page.wait_for_selector(f"#{bad}-state:has-text('failed')", timeout=120000)
    error = page.inner_text(f"#{bad}-error")
    assert "no-such-mask" in error and "hint" in error, error

    # A long job (the tiny study again, into another folder), cancelled once it runs.
    page.locator(".v-select:has(#rd-job-command)").click()
    page.get_by_role("option", name="reproduce").click()
    page.fill("#rd-job-out", "cancel-me")
    page.click("#rd-job-start")
    job = _newest_job(page)
    assert job != first
    page.wait_for_function(f"() => /pid [1-9]/.test(document.querySelector('#{job}-text').textContent)")
    page.wait_for_timeout(4000)
    pid = int(page.inner_text(f"#{job}-text").split("pid")[1].split()[0])
    from RobustDeepLib.process_tree import descendants

    tree = [pid] + descendants(pid)
    assert descendants_alive([pid]) == [pid]
    page.screenshot(path=str(shots / "jobs.png"))
    page.click(f"#{job}-cancel")
    page.wait_for_selector(f"#{job}-state:has-text('cancelled')", timeout=60000)
    deadline = time.monotonic() + 20
    while descendants_alive(tree) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert descendants_alive(tree) == []


def _newest_job(page) -> str:
    page.wait_for_timeout(500)
    ids = page.evaluate("() => Array.from(document.querySelectorAll('[id$=\"-state\"]'))"
                        ".map(e => e.id).filter(i => /^rd-job-[0-9]+-state$/.test(i))")
    return max((i[: -len("-state")] for i in ids), key=lambda s: int(s.split("-")[2]))


def test_review_shows_bias_overlay_in_the_ten_percent_window_and_switches_arms(page, workspace, shots):
    _tab(page, "review")
    page.wait_for_selector("#rd-rev-info:has-text('RMSE')", timeout=90000)
    _idle(page)
    page.wait_for_timeout(2000)
    page.screenshot(path=str(shots / "review.png"))
    assert "10 %" in page.inner_text("#rd-rev-legend")
    reference, bias = view_pixels(page, 0), view_pixels(page, 2)
    # Coloured bias inside the head, none in the reference view.
    assert _coloured(bias).mean() > 0.02
    assert not _coloured(reference, 12).any()
    # Transparent outside the head: there the bias view is the reference view, pixel for pixel.
    outside = ~_coloured(bias, 12)
    assert np.abs(_grey(bias)[outside] - _grey(reference)[outside]).mean() < 3.0
    # The image of the +-10 % window: the engine's map saturates at the window's colours.
    first = page.inner_text("#rd-rev-info")
    assert page.locator("#rd-rev-plot").is_visible()
    page.click("#rd-arm-PM2")
    page.wait_for_selector("#rd-rev-info:has-text('PM2')", timeout=90000)
    assert page.inner_text("#rd-rev-info") != first
    rows = page.locator("#rd-rev-table tbody tr").count()
    assert rows == 2  # the tiny study's two test patients


def test_a_cohort_as_the_workspace_is_checked_and_registered_inside_it(workspace, browser, tmp_path, shots):
    """``robustdeep studio COHORT``: the cohort alone (no study), registered from the page."""
    cohort = tmp_path / "cohort"
    shutil.copytree(workspace / "tiny" / "cohort", cohort)
    srv = StudioServer(cohort, log=tmp_path / "cohort-ws.log")
    try:
        pg = browser.new_page(viewport={"width": 1500, "height": 900})
        _open(pg, srv.url)
        assert "6 patients" in pg.inner_text("#rd-cohort-summary")
        _tab(pg, "registration")
        assert "not registered yet" in pg.inner_text("#rd-reg-summary")
        pg.click("#rd-reg-start")
        pg.wait_for_selector("#rd-reg-summary:has-text('6 patients registered (registered)')", timeout=300000)
        assert (cohort / "registered" / "manifest.json").is_file()
        pg.click("#rd-reg-SIM002")
        _idle(pg)
        pg.wait_for_timeout(1500)
        assert _coloured(view_pixels(pg, 0)).mean() > 0.05
        pg.screenshot(path=str(shots / "registration-cohort.png"))
        pg.close()
    finally:
        srv.stop()


def test_the_token_is_required_when_one_is_set(workspace, browser):
    srv = StudioServer(workspace, ["--token", TOKEN, "--project", "tiny"], log=workspace / "token.log")
    try:
        base = srv.url.split("?")[0]
        assert srv.url.endswith(f"?token={TOKEN}")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base, timeout=30)
        assert refused.value.code == 403
        with pytest.raises(urllib.error.HTTPError) as ws_refused:
            urllib.request.urlopen(urllib.request.Request(
                base + "ws", headers={"Connection": "Upgrade", "Upgrade": "websocket",
                                      "Sec-WebSocket-Version": "13",
                                      "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}), timeout=30)
        assert ws_refused.value.code == 403
        pg = browser.new_page()
        pg.goto(base)
        assert "access token required" in pg.content()
        _open(pg, srv.url)  # with the token: the app, and its websocket through the cookie
        _open(pg, base)  # the cookie keeps it
        pg.close()
    finally:
        srv.stop()

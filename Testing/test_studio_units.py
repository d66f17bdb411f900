"""RobustDeep Studio's modules that need neither trame nor Slicer, tested on their own (no browser, no server).

- :mod:`RobustDeepStudio.workspace`: the workspace root that no path may leave, the projects found in
  it, and where a project's parts are.
- :mod:`RobustDeepStudio.jobs`: real ``robustdeep`` commands run as jobs, their records on disk,
  cancel that ends the whole process tree, and jobs left running shown as interrupted.
- :mod:`RobustDeepStudio.security`: loopback detection, access tokens and the aiohttp token middleware.
- :mod:`RobustDeepStudio.commands`: the command lines, parsed by the engine's own parser.
- ``robustdeep studio``: exit status 2 and a hint when the studio is not installed or the folder is wrong.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import process_alive, wait_until_gone, write_tiny_cohort

from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.masks.presets import mask_tag
from RobustDeepStudio import commands
from RobustDeepStudio.jobs import JobManager
from RobustDeepStudio.workspace import Workspace, WorkspaceError


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------
def _cohort(folder: Path, n: int) -> None:
    """A valid cohort of ``n`` patients with one small FD volume each (real NIfTI files)."""
    write_tiny_cohort(folder, n, modalities=("FD",), shape=(3, 4, 3))


def _parse(command):
    """The engine's own parse of a ``robustdeep`` argument list (fails on an unknown option)."""
    from RobustDeepLogic.cli.commands import all_commands
    from RobustDeepLogic.cli.frame import build_parser

    return build_parser(all_commands()).parse_args(list(command))


def _inside(path, folder: Path) -> bool:
    path = Path(path).resolve()
    folder = Path(folder).resolve()
    return path == folder or folder in path.parents


# --------------------------------------------------------------------------------------------------
# workspace
# --------------------------------------------------------------------------------------------------
def test_resolve_returns_paths_inside_and_refuses_every_way_out(tmp_path):
    root = tmp_path / "ws"
    (root / "a").mkdir(parents=True)
    (root / "a" / "b.txt").write_text("x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("s")
    (root / "inner-link").symlink_to(root / "a")
    (root / "escape").symlink_to(outside)

    ws = Workspace(root)
    real_root = root.resolve()
    assert ws.root == real_root
    assert ws.resolve("a/b.txt") == real_root / "a" / "b.txt"
    assert ws.resolve("a/../a/./b.txt") == real_root / "a" / "b.txt"
    assert ws.resolve(root / "a") == real_root / "a"  # absolute, inside
    assert ws.resolve(".") == real_root
    assert ws.resolve("inner-link/b.txt") == real_root / "a" / "b.txt"  # a link that stays inside
    assert ws.resolve("not-yet/made.nii.gz") == real_root / "not-yet" / "made.nii.gz"
    assert ws.relative(root / "a" / "b.txt") == "a/b.txt"
    assert ws.relative(root) == "."

    for escaping in ("..", "../outside/secret.txt", "a/../../outside", str(outside / "secret.txt"), "/",
                     "escape", "escape/secret.txt"):
        with pytest.raises(WorkspaceError) as info:
            ws.resolve(escaping)
        assert isinstance(info.value, InputError)
        assert escaping in str(info.value), str(info.value)
    with pytest.raises(WorkspaceError):
        ws.relative(outside)

    for bad_root in (tmp_path / "missing", root / "a" / "b.txt"):
        with pytest.raises(WorkspaceError) as info:
            Workspace(bad_root)
        assert str(bad_root) in str(info.value)


def test_projects_lists_studies_and_cohorts_but_not_hidden_broken_or_too_deep_folders(tmp_path):
    root = tmp_path / "ws"
    (root / "study1").mkdir(parents=True)
    (root / "study1" / "study.json").write_text("{}")
    _cohort(root / "study1" / "cohort", 2)
    _cohort(root / "cohortA", 3)
    _cohort(root / ".x", 1)  # hidden: skipped
    _cohort(root / "group" / "sub" / "deep3", 1)  # depth 3: listed
    _cohort(root / "group" / "sub" / "deep3" / "deep4", 1)  # depth 4: past max_depth
    (root / "broken").mkdir()
    (root / "broken" / "manifest.json").write_text("{not json")  # not a readable cohort
    (root / "plain").mkdir()  # neither

    entries = Workspace(root).projects()
    assert [(e.relative, e.kind) for e in entries] == [
        ("cohortA", "cohort"),
        ("group/sub/deep3", "cohort"),
        ("study1", "study"),
        ("study1/cohort", "cohort"),
    ]
    labels = {e.relative: e.label for e in entries}
    assert "cohortA" in labels["cohortA"] and "3 patients" in labels["cohortA"]
    assert "2 patients" in labels["study1/cohort"]
    assert "study" in labels["study1"] and "patients" not in labels["study1"]
    assert [e.relative for e in Workspace(root).projects(max_depth=4)][1:3] == [
        "group/sub/deep3", "group/sub/deep3/deep4"]

    # The workspace root can be a project itself; project() opens what projects() lists.
    assert [(e.relative, e.kind) for e in Workspace(root / "cohortA").projects()] == [(".", "cohort")]
    ws = Workspace(root)
    assert ws.project("study1").kind == "study" and ws.project("study1/cohort").kind == "cohort"
    assert ws.project("study1").cohort_dir == ws.root / "study1" / "cohort"
    assert ws.project("cohortA").cohort_dir == ws.root / "cohortA"
    assert len(ws.project("study1").cohort()) == 2
    with pytest.raises(WorkspaceError) as info:
        ws.project("plain")
    assert str(ws.root / "plain") in str(info.value)
    with pytest.raises(WorkspaceError):
        ws.project("../")


def _write_csv(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_project_review_metric_and_qc_accessors_read_the_study_layout(tmp_path):
    root = tmp_path / "ws"
    study = root / "study"
    study.mkdir(parents=True)
    (study / "study.json").write_text(json.dumps({"tasks": ["nac2mac", "ld2fd"]}))
    _cohort(study / "cohort", 3)
    for task, arm, pids in (("ld2fd", "PR", ["P002", "P001"]), ("ld2fd", "PU", ["P003"]),
                            ("mr2ct", "PU", ["P001"]), ("nac2mac", "PM", ["P001"])):
        for pid in pids:
            (study / "predictions" / task / arm).mkdir(parents=True, exist_ok=True)
            (study / "predictions" / task / arm / f"{pid}.nii.gz").write_bytes(b"")
    (study / "predictions" / "ld2fd" / "PR" / "notes.txt").write_text("not a volume")
    (study / "predictions" / "README").write_text("not a task")

    project = Workspace(root).project("study")
    assert project.review_tasks() == ["nac2mac", "ld2fd", "mr2ct"]  # the study's order, then the rest
    assert project.review_arms("ld2fd") == ["PR", "PU"]
    assert project.review_arms("absent") == []
    assert project.review_patients("ld2fd", "PR") == ["P001", "P002"]
    assert project.review_patients("ld2fd", "PM") == []
    paths = project.review_paths("ld2fd", "PR", "P001")
    assert paths["modality"] == "FD"
    assert paths["prediction"] == project.root / "predictions" / "ld2fd" / "PR" / "P001.nii.gz"
    assert Path(paths["reference"]).resolve() == (study / "cohort" / "P001" / "FD.nii.gz").resolve()

    # metrics: only task / scenario / units / region == head rows
    assert project.metric_rows("ld2fd", "PR") == []  # before evaluation
    base = dict(task="ld2fd", scenario="PR", patient="P001", units="physical", region="head",
                rmse="0.5", psnr="30.1", ssim_global="0.91")
    rows = [base, dict(base, patient="P002", rmse="0.7"),
            dict(base, task="mr2ct"), dict(base, scenario="PU"), dict(base, units="scaled", rmse="0.05"),
            dict(base, region="brain")]
    _write_csv(study / "evaluation" / "metrics.csv", rows)
    got = project.metric_rows("ld2fd", "PR")
    assert [(r["patient"], r["rmse"]) for r in got] == [("P001", "0.5"), ("P002", "0.7")]
    assert [r["rmse"] for r in project.metric_rows("ld2fd", "PR", units="scaled")] == ["0.05"]
    assert [r["scenario"] for r in project.metric_rows("ld2fd", "PU")] == ["PU"]
    assert project.metric_rows("nac2mac", "PM") == []

    # registration QC: [] before, the table's rows once registered/ is a cohort (its manifest written)
    assert project.registered_dir is None
    assert project.qc_rows() == []
    qc = [dict(patient="P001", ncc="0.93", ok="True"), dict(patient="P002", ncc="0.41", ok="False")]
    _write_csv(study / "registered" / "registration_qc.csv", qc)
    assert project.qc_rows() == []  # an unfinished registration (no manifest yet)
    _cohort(study / "registered", 2)
    assert project.registered_dir == study.resolve() / "registered"
    assert project.registration_dir() == project.registered_dir
    assert project.qc_rows() == qc
    # The studio's own registration (registered-studio/), once finished, is the one the panel shows;
    # the study's registered cohort stays the one the other panels use.
    own = [dict(patient="P001", ncc="0.95", ok="True")]
    _write_csv(study / "registered-studio" / "registration_qc.csv", own)
    assert project.qc_rows() == qc
    _cohort(study / "registered-studio", 1)
    assert project.registration_dir() == study.resolve() / "registered-studio"
    assert project.qc_rows() == own
    assert project.registered_dir == study.resolve() / "registered"


def test_a_cohort_that_is_the_workspace_is_registered_inside_it(tmp_path):
    # ``robustdeep studio COHORT``: nothing beside the cohort is the studio's to write, so the
    # registration goes to COHORT/registered; before it finishes the QC table is empty.
    _cohort(tmp_path / "cohort", 2)
    ws = Workspace(tmp_path / "cohort")
    project = ws.project(".")
    assert project.kind == "cohort" and project.registered_dir is None
    assert project.qc_rows() == []
    assert project.registration_out() == ws.root / "registered"
    assert commands.registration(project)[1][2] == str(ws.root / "registered")
    _write_csv(ws.root / "registered" / "registration_qc.csv", [dict(patient="P001", ok="True")])
    assert project.qc_rows() == []  # not finished: no manifest yet
    _cohort(ws.root / "registered", 2)
    assert project.registered_dir == ws.root / "registered" == project.registration_dir()
    assert project.qc_rows() == [dict(patient="P001", ok="True")]
    assert [e.relative for e in ws.projects()] == [".", "registered"]


# --------------------------------------------------------------------------------------------------
# jobs
# --------------------------------------------------------------------------------------------------
def _volume(path: Path, seed: int) -> np.ndarray:
    """A random float32 volume on a coarse MNI-like grid (24 x 28 x 24 voxels of 4 mm)."""
    arr = np.random.default_rng(seed).uniform(0, 10, (24, 28, 24)).astype(np.float32)
    image = sitk.GetImageFromArray(arr)
    image.SetSpacing((4.0, 4.0, 4.0))
    image.SetOrigin((-46.0, -62.0, -40.0))
    sitk.WriteImage(image, str(path))
    return arr


def test_jobs_run_real_commands_keep_their_records_and_report_failures(tmp_path):
    from RobustDeepLogic.blending.blend import laplacian_blend
    from RobustDeepLogic.io.volumes import Grid, read_array
    from RobustDeepLogic.masks.presets import mask_from_spec

    a_path, b_path = tmp_path / "a.nii.gz", tmp_path / "b.nii.gz"
    a, b = _volume(a_path, 1), _volume(b_path, 2)
    out = tmp_path / "out" / "blend.nii.gz"
    missing = tmp_path / "no-such-volume.nii.gz"
    records = tmp_path / "studio" / "jobs.json"
    changed = []
    jobs = JobManager(records, on_change=lambda r: changed.append((r.id, r.state)))
    assert jobs.list() == []

    good = jobs.start("blend", ["blend", a_path, b_path, "simple", out, "--levels", "2"])
    bad = jobs.start("blend missing", ["blend", a_path, missing, "simple", tmp_path / "bad.nii.gz"])
    assert (good.id, bad.id) == ("job-1", "job-2")
    assert good.state == "running" and good.pid > 0
    assert good.command_line.startswith("robustdeep blend ")
    assert json.loads(records.read_text())[0]["state"] == "running"  # on disk from the start

    good = jobs.wait(good.id, timeout=180)
    bad = jobs.wait(bad.id, timeout=180)
    assert jobs.running() == []

    assert good.state == "done", (good.error, good.log)
    assert good.progress == 1.0 and good.returncode == 0 and good.error == ""
    assert good.ended >= good.started > 0
    assert good.result["outputs"] == {"blend": str(out)}
    assert out.is_file()
    written, grid = read_array(out)
    image = sitk.ReadImage(str(a_path))
    mask = mask_from_spec("simple", Grid.of(image))
    assert grid.matches(Grid.of(image))
    expected = laplacian_blend(a, b, mask, 2)
    np.testing.assert_allclose(written, expected, rtol=1e-6, atol=1e-5)
    assert not np.allclose(written, a) and not np.allclose(written, b)
    assert good.to_state()["percent"] == 100.0

    assert bad.state == "failed" and bad.returncode == 2
    assert str(missing) in bad.error, bad.error
    assert not (tmp_path / "bad.nii.gz").exists()
    assert (good.id, "done") in changed and (bad.id, "failed") in changed

    # The records on disk, and a new manager (a restarted studio) on them.
    on_disk = {item["id"]: item for item in json.loads(records.read_text())}
    assert on_disk["job-1"]["state"] == "done" and on_disk["job-2"]["state"] == "failed"
    again = JobManager(records)
    assert {r.id: r.state for r in again.list()} == {"job-1": "done", "job-2": "failed"}
    assert again.records["job-1"].command == good.command
    assert again.records["job-1"].result == good.result
    assert again.records["job-2"].error == bad.error
    assert again.running() == [] and again.cancel("job-1") is False


@pytest.mark.assets
@pytest.mark.skipif(os.name == "nt", reason="POSIX process trees")
def test_cancel_ends_the_whole_process_tree_of_a_job(tmp_path):
    from RobustDeepLib.process_tree import descendants

    jobs = JobManager(tmp_path / "jobs.json")
    record = jobs.start("simulate", ["simulate", tmp_path / "sim", "--profile", "quick", "--subjects", "8",
                                     "--workers", "2"])
    tree = []
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            jobs.poll()
            assert record.state == "running", (record.state, record.error, record.log)
            tree = descendants(record.pid)
            if len(tree) >= 2:  # the two simulation workers (and the pool's helpers) have started
                break
            time.sleep(0.1)
        assert len(tree) >= 2, f"no worker processes after 90 s: {tree}"
        tree = [record.pid, *tree]
        assert all(process_alive(pid) for pid in tree)
        assert jobs.cancel(record.id) is True
    finally:
        if record.id in jobs.running():
            jobs.cancel(record.id)
        ended = jobs.wait(record.id, timeout=60)
    assert ended.state == "cancelled", (ended.state, ended.returncode, ended.log)
    assert ended.returncode != 0 and ended.ended > 0
    survivors = [pid for pid in tree if not wait_until_gone(pid, 10.0)]
    assert survivors == [], f"still running after cancel: {survivors}"
    assert jobs.cancel(record.id) is False
    assert JobManager(tmp_path / "jobs.json").records[record.id].state == "cancelled"


def test_jobs_left_running_by_a_stopped_studio_are_interrupted(tmp_path):
    records = tmp_path / "jobs.json"
    records.write_text(json.dumps([
        {"id": "job-7", "title": "register cohort", "command": ["register", "c", "r"], "state": "running",
         "progress": 0.4, "stage": "register 2/5", "log": ["started"], "pid": 999999, "started": 200.0},
        {"id": "job-3", "title": "masks", "command": ["masks", "list"], "state": "done", "progress": 1.0,
         "started": 100.0, "ended": 101.0, "returncode": 0, "unknown_future_field": 1},
    ]))
    jobs = JobManager(records)
    assert [r.id for r in jobs.list()] == ["job-7", "job-3"]  # newest first
    interrupted = jobs.records["job-7"]
    assert interrupted.state == "interrupted"
    assert interrupted.progress == 0.4 and interrupted.stage == "register 2/5"
    assert interrupted.log[0] == "started" and "again" in interrupted.log[-1]
    assert jobs.records["job-3"].state == "done"
    assert jobs.running() == [] and jobs.cancel("job-7") is False

    # A new job gets a number past the recorded ones, and saving keeps the old records.
    record = jobs.start("masks", ["masks", "list"])
    assert record.id == "job-8"
    assert jobs.wait(record.id, timeout=120).state == "done"
    assert {i["id"]: i["state"] for i in json.loads(records.read_text())} == {
        "job-7": "interrupted", "job-3": "done", "job-8": "done"}

    # An unreadable records file is not worth stopping the studio for.
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{ not json")
    assert JobManager(garbage).list() == []


# --------------------------------------------------------------------------------------------------
# security
# --------------------------------------------------------------------------------------------------
def test_loopback_and_access_tokens():
    pytest.importorskip("aiohttp")
    from RobustDeepStudio.security import access_token, is_loopback

    for host in ("127.0.0.1", "127.3.2.1", "::1", "[::1]", "localhost", "LOCALHOST"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "192.168.1.5", "10.0.0.1", "gpu-server.example.org", "localhost.evil.com"):
        assert not is_loopback(host), host

    assert access_token("127.0.0.1", None) is None
    assert access_token("localhost", None) is None
    first, second = access_token("0.0.0.0", None), access_token("192.168.1.5", None)
    assert isinstance(first, str) and len(first) >= 8 and len(second) >= 8
    assert first != second
    assert access_token("0.0.0.0", "my-own-token") == "my-own-token"
    assert access_token("127.0.0.1", "my-own-token") == "my-own-token"
    with pytest.raises(ValueError):
        access_token("0.0.0.0", "short")
    with pytest.raises(ValueError):
        access_token("127.0.0.1", "1234567")


def test_token_middleware_refuses_requests_without_the_token_and_keeps_it_in_a_cookie():
    pytest.importorskip("aiohttp")
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from RobustDeepStudio.security import COOKIE, QUERY, token_middleware

    token = "right-token-123"

    async def handler(request):
        return web.Response(text="ok")

    async def scenario():
        app = web.Application(middlewares=[token_middleware(token)])
        app.router.add_get("/", handler)
        app.router.add_get("/page", handler)
        async with TestClient(TestServer(app)) as client:
            client.session.cookie_jar.clear()
            out = {}
            resp = await client.get("/")
            out["none"] = (resp.status, await resp.text(), resp.cookies.get(COOKIE))
            resp = await client.get("/", params={QUERY: "wrong-token-123"})
            out["wrong"] = (resp.status, await resp.text(), resp.cookies.get(COOKIE))
            resp = await client.get("/page", headers={"Cookie": f"{COOKIE}=wrong-token-123"})
            out["wrong_cookie"] = resp.status
            resp = await client.get("/", params={QUERY: token})
            morsel = resp.cookies.get(COOKIE)
            out["right"] = (resp.status, await resp.text(), morsel and morsel.value,
                            morsel and morsel["httponly"], morsel and morsel["samesite"])
            client.session.cookie_jar.clear()
            resp = await client.get("/page", headers={"Cookie": f"{COOKIE}={morsel.value}"})
            out["cookie"] = (resp.status, await resp.text())
            return out

    out = asyncio.run(scenario())
    assert out["none"][0] == 403 and "token" in out["none"][1] and out["none"][2] is None
    assert out["wrong"][0] == 403 and out["wrong"][2] is None
    assert out["wrong_cookie"] == 403
    assert out["right"][:3] == (200, "ok", token)
    assert out["right"][3] and str(out["right"][4]).lower() == "strict"
    assert out["cookie"] == (200, "ok")


# --------------------------------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------------------------------
@pytest.fixture
def study_workspace(tmp_path):
    """A workspace with a study (native and registered cohorts, a run, predictions, a synthetic cohort)
    and a separate native cohort."""
    root = tmp_path / "ws"
    study = root / "study"
    study.mkdir(parents=True)
    (study / "study.json").write_text("{}")
    _cohort(study / "cohort", 2)
    _cohort(study / "registered", 2)
    _cohort(study / "synthetic" / "s1", 1)
    (study / "runs" / "studio" / "ld2fd-PU").mkdir(parents=True)
    (study / "runs" / "studio" / "ld2fd-PU" / "run.json").write_text(
        json.dumps({"task": {"name": "ld2fd"}, "space": "native"}))
    (study / "runs" / "studio" / "ld2fd-PR").mkdir(parents=True)
    (study / "runs" / "studio" / "ld2fd-PR" / "run.json").write_text(
        json.dumps({"task": {"name": "ld2fd"}, "space": "template"}))
    (study / "predictions" / "ld2fd" / "PR").mkdir(parents=True)
    (study / "predictions" / "ld2fd" / "PR" / "P001.nii.gz").write_bytes(b"")
    _cohort(root / "cohortA", 2)
    return Workspace(root)


def test_command_lines_parse_and_write_only_inside_the_project(study_workspace):
    ws = study_workspace
    study = ws.project("study")
    native = ws.project("cohortA")

    assert commands.trained_runs(study) == ["study/runs/studio/ld2fd-PR", "study/runs/studio/ld2fd-PU"]
    assert commands.prediction_folders(study) == ["study/predictions"]
    assert commands.synthetic_cohorts(study) == ["study/synthetic/s1"]

    built = {
        "register study": (commands.registration(study), study.root, ("cohort", study.root / "cohort")),
        "register cohort": (commands.registration(native), ws.root / "cohortA-registered",
                            ("cohort", native.root)),
        "synthesize": (commands.synthesis(study, "simple", 4, seed=3, levels=2), study.root,
                       ("registered", study.root / "registered")),
        "train PU": (commands.training(study, "ld2fd", "PU", 2), study.root, ("cohort", study.root / "cohort")),
        "train PR": (commands.training(study, "ld2fd", "PR", 2), study.root,
                     ("cohort", study.root / "registered")),
        "train PM": (commands.training(study, "ld2fd", "PM", 2, synthetic=["study/synthetic/s1"]), study.root,
                     ("cohort", study.root / "registered")),
        "predict": (commands.prediction(study, "study/runs/studio/ld2fd-PU", ["P001"]), study.root,
                    ("run", study.root / "runs" / "studio" / "ld2fd-PU")),
        "predict PR": (commands.prediction(study, "study/runs/studio/ld2fd-PR"), study.root,
                       ("run", study.root / "runs" / "studio" / "ld2fd-PR")),
        "evaluate": (commands.evaluation(study, "study/predictions"), study.root,
                     ("predictions", study.root / "predictions")),
        "reproduce": (commands.reproduction(ws, "tiny", "studies/new", settings=["epochs=1"]), ws.root,
                      ("profile", "tiny")),
    }
    outs = {}
    for name, ((title, command), within, (key, value)) in built.items():
        assert title and all(isinstance(c, str) for c in command), name
        ns = _parse(command)
        got = getattr(ns, key)
        assert (got == value if isinstance(value, str) else Path(got).resolve() == Path(value).resolve()), (
            name, key, got)
        assert _inside(ns.out, within), (name, ns.out)
        assert _inside(ns.out, ws.root), (name, ns.out)
        outs[name] = Path(ns.out).resolve()
    # every command writes to a folder of its own, never onto its input
    assert len(set(outs.values())) == len(outs)
    # Never over the study's own registered cohort (its splits and folds): a folder of its own.
    assert outs["register study"] == study.root / "registered-studio"
    assert outs["reproduce"] == ws.root / "studies" / "new"

    synth = _parse(built["synthesize"][0][1])
    assert (synth.mask, synth.count, synth.seed, synth.levels) == (["simple"], 4, 3, 2)
    pm = _parse(built["train PM"][0][1])
    assert (pm.task, pm.scenario, pm.epochs) == ("ld2fd", "PM", 2)
    assert pm.synthetic_cohorts == ["study/synthetic/s1"]
    assert getattr(_parse(built["train PR"][0][1]), "synthetic_cohorts", None) in (None, [])
    assert _parse(built["predict"][0][1]).inputs == [str(study.cohort_dir), "P001"]
    # A template-space run (PR) predicts from the registered cohort, its test patients by default.
    assert _parse(built["predict PR"][0][1]).inputs == [str(study.registered_dir)]
    assert outs["predict PR"] == study.root / "predictions-studio-template" / "ld2fd" / "ld2fd-PR"
    assert outs["predict"] == study.root / "predictions-studio-native" / "ld2fd" / "ld2fd-PU"

    # Evaluating what a predict job wrote: a case table pairs each <patient>_FD with its reference.
    folder = outs["predict PR"]
    folder.mkdir(parents=True)
    (folder / "P001_FD.nii.gz").write_bytes(b"")
    assert commands.prediction_folders(study) == ["study/predictions",
                                                  "study/predictions-studio-template/ld2fd/ld2fd-PR"]
    title, command = commands.evaluation(study, "study/predictions-studio-template/ld2fd/ld2fd-PR")
    ns = _parse(command)
    assert Path(ns.cases) == folder / "cases.csv" and Path(ns.cohort) == study.registered_dir
    assert Path(ns.out) == folder.parent / "ld2fd-PR-evaluation"
    with open(folder / "cases.csv", newline="") as fh:
        cases = list(csv.DictReader(fh))
    from RobustDeepLogic.cohort import Cohort

    assert cases == [{"task": "ld2fd", "scenario": "ld2fd-PR", "patient": "P001",
                      "reference": str(Cohort.load(study.registered_dir).path("P001", "FD")),
                      "prediction": str(folder / "P001_FD.nii.gz")}]
    (folder / "P009_FD.nii.gz").write_bytes(b"")
    with pytest.raises(ValueError, match="P009"):
        commands.evaluation(study, "study/predictions-studio-template/ld2fd/ld2fd-PR")
    assert _parse(built["reproduce"][0][1]).set == ["epochs=1"]
    assert "studies/new" in built["reproduce"][0][0]

    with pytest.raises(ValueError, match="synthetic"):
        commands.training(study, "ld2fd", "PM", 2)
    with pytest.raises(ValueError, match="registered"):
        commands.synthesis(native, "simple", 2)
    with pytest.raises(ValueError, match="registered"):
        commands.training(native, "ld2fd", "PR", 2)
    with pytest.raises(ValueError, match="nope"):
        commands.reproduction(ws, "nope", "x")
    with pytest.raises(ValueError, match="not a study"):
        commands.reproduction(ws, "tiny", "study/cohort")  # a cohort is never turned into a study
    assert commands.reproduction(ws, "tiny", "study")[1][-1] == str(study.root)  # a study resumes
    with pytest.raises(WorkspaceError) as info:
        commands.reproduction(ws, "tiny", "../x")
    assert "../x" in str(info.value)
    with pytest.raises(WorkspaceError):
        commands.prediction(study, "../elsewhere/run", ["P001"])
    with pytest.raises(WorkspaceError):
        commands.evaluation(study, "/")


def test_mask_arguments_resolve_files_inside_the_workspace_and_keep_specs(study_workspace):
    ws = study_workspace
    assert commands.mask_argument(ws, " simple ") == "simple"
    assert commands.mask_argument(ws, "sphere:centre=0,-20,10;radius=30") == "sphere:centre=0,-20,10;radius=30"
    assert commands.mask_argument(ws, "study/masks/m.nii.gz#label=1+2") == \
        str(ws.root / "study" / "masks" / "m.nii.gz") + "#label=1+2"
    with pytest.raises(WorkspaceError):
        commands.mask_argument(ws, "../elsewhere/m.nii.gz")
    # Synthesis is named by the engine's mask tag: a preset by its name, a file by its stem and a hash.
    project = ws.project("study")
    assert Path(_parse(commands.synthesis(project, "simple", 2)[1]).out).name == "studio-simple"
    painted = commands.mask_argument(ws, "study/masks/painted.nii.gz")
    out = Path(_parse(commands.synthesis(project, painted, 2)[1]).out).name
    assert out == f"studio-{mask_tag(painted)}" and out.startswith("studio-painted-")


# --------------------------------------------------------------------------------------------------
# robustdeep studio
# --------------------------------------------------------------------------------------------------
def _robustdeep(code: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=False, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def test_studio_command_without_the_studio_installed_exits_2_with_the_install_hint(tmp_path):
    proc = _robustdeep("""
        import sys
        sys.modules["RobustDeepStudio.server"] = None  # import RobustDeepStudio.server raises ImportError
        from RobustDeepLogic.cli import main
        sys.exit(main(["studio", "."]))
    """, cwd=tmp_path)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "robustdeep[studio]" in proc.stderr
    assert "not installed" in proc.stderr


def test_studio_command_on_a_missing_folder_exits_2_naming_it(tmp_path):
    pytest.importorskip("trame_slicer")  # without the studio the install hint comes first (test above)
    missing = tmp_path / "does" / "not" / "exist"
    proc = _robustdeep(f"""
        import sys
        from RobustDeepLogic.cli import main
        sys.exit(main(["studio", {str(missing)!r}, "--port", "0"]))
    """, cwd=tmp_path)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert str(missing) in proc.stderr
    assert "RobustDeep Studio:" not in proc.stdout  # it never served

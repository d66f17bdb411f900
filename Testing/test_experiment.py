"""The study in one command: the tiny profile end to end, its report, resumption, no leakage, geometry."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import SimpleITK as sitk

from RobustDeepLogic import study as X
from RobustDeepLogic.cohort.manifest import Cohort
from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.evaluate.results import read_metrics_csv

pytestmark = pytest.mark.assets


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """``robustdeep reproduce --profile tiny`` through the CLI (simulates its own 6-patient cohort)."""
    from RobustDeepLogic.cli.main import main

    out = tmp_path_factory.mktemp("study") / "tiny"
    code = main(["reproduce", "--profile", "tiny", "--out", str(out), "--progress", "none"])
    assert code == 0
    return out


def test_the_report_holds_every_table_and_figure(study):
    html = (study / "evaluation" / "report.html").read_text()
    md = (study / "evaluation" / "report.md").read_text()
    for table in ("table-study-reductions", "table-study-training", "table-study-headline",
                  "table-study-improvement"):
        assert f"id='{table}'" in html
    for task in X.ALL_TASKS:
        for kind in ("scaled", "physical", "fits", "tests"):
            assert f"id='table-{task}-{kind}'" in html, (task, kind)
        for fig in ("images", "bias", "jointhist", "history"):
            assert f"id='fig-{task}-{fig}'" in html, (task, fig)
            assert (study / "evaluation" / "report_files" / f"fig-{task}-{fig}.png").is_file()
    assert "## Provenance" in md and "## Study design" in md and "## Headline" in md
    # the reductions table says what the tiny profile changed against the paper's design
    assert "synthetic subjects per mask and fold | 2 | 350" in md
    assert "epochs | 1 | 20" in md


def test_every_arm_of_every_task_is_evaluated_on_the_test_patients(study):
    record = json.loads((study / "study.json").read_text())
    test = record["split"]["test"]
    rows = [r for r in read_metrics_csv(study / "evaluation" / "metrics.csv")
            if r["units"] == "scaled" and r["region"] == "head"]
    got = {(r["task"], r["scenario"], r["patient"]) for r in rows}
    for task in X.ALL_TASKS:
        arms = list(X.MAIN_ARMS) + (list(X.ABLATION_ARMS) + list(X.COMPUTE_ARMS) if task == "ld2fd" else [])
        for arm in arms:
            for pid in test:
                assert (task, arm, pid) in got, (task, arm, pid)
    assert {("ld2fd", "input", pid) for pid in test} <= got
    assert all(np.isfinite(r["rmse"]) and np.isfinite(r["ssim_global"]) for r in rows)
    headline = (study / "evaluation" / "headline.md").read_text()
    assert re.search(r"\| ld2fd \| PM2 \| 2 \| \d\.\d{4}", headline)


def test_predictions_are_in_the_native_frame_and_units(study):
    source = Cohort.load(study / "cohort")
    record = json.loads((study / "study.json").read_text())
    pid = record["split"]["test"][0]
    for task, target, arm in (("ld2fd", "FD", "PM2"), ("mr2ct", "CT", "PR"), ("mr2ct", "CT", "PU")):
        pred = sitk.ReadImage(str(X.prediction_path(study, task, arm, pid)))
        ref = source.read(pid, target)
        assert pred.GetSize() == ref.GetSize()
        np.testing.assert_allclose(pred.GetOrigin(), ref.GetOrigin(), atol=1e-6)
        np.testing.assert_allclose(pred.GetSpacing(), ref.GetSpacing(), atol=1e-9)
        np.testing.assert_allclose(pred.GetDirection(), ref.GetDirection(), atol=1e-9)
        arr = sitk.GetArrayFromImage(pred)
        background = -1000.0 if target == "CT" else 0.0
        if arm != "PU":  # outside the template's head box, mapped back: the background, exactly
            assert arr[0, 0, 0] == background and arr[-1, -1, -1] == background
        if target == "CT":  # HU, not scaled [0, 1]
            assert np.percentile(arr, 1) < -500
        else:  # SUV, not scaled [0, 1]
            assert np.percentile(arr, 99) > 1.5 and np.percentile(arr, 1) >= -0.5


def test_synthetic_parents_and_ablation_pairs_come_from_the_training_fold(study):
    from RobustDeepLogic.data.on_the_fly import on_the_fly_source
    from RobustDeepLogic.cohort.folds import FoldPlan, fold_seed

    record = json.loads((study / "study.json").read_text())
    plan = FoldPlan.from_dict(record["split"])
    training = set(plan.training(0))
    pairs = {}
    for key in ("PM1", "PM2"):
        syn = Cohort.load(study / "synthetic" / key)
        subjects = [p for p in syn.patients if p.is_synthetic]
        assert len(subjects) == X.PROFILES["tiny"].synthetic
        for p in subjects:
            assert set(p.parents) <= training
        pairs[key] = sorted(tuple(p.parents) for p in subjects)
    registered = Cohort.load(study / "registered")
    otf = on_the_fly_source(registered, plan.training(0), ["FD"], count=X.PROFILES["tiny"].synthetic,
                            method="mixup", seed=fold_seed(record["seed"], 0))
    assert sorted(otf.parents(s) for s in otf.ids) == pairs["PM2"]
    assert {p.split for p in registered.patients} == {"train", "test"}
    assert {p.id for p in registered.patients if p.split == "test"} == set(plan.test)


def test_equal_compute_arm_trains_for_the_steps_of_pr(study):
    record = json.loads((study / "study.json").read_text())
    trained = record["trained"]
    assert trained["ld2fd/PM2-steps"]["steps"] == trained["ld2fd/PR"]["steps"]
    assert trained["ld2fd/PM2"]["steps"] > trained["ld2fd/PR"]["steps"]  # by epochs, more data, more steps
    assert trained["ld2fd/PM2"]["synthetic"] == X.PROFILES["tiny"].synthetic


def test_a_second_run_resumes_without_redoing_work(study):
    ckpt = study / "runs" / "ld2fd" / "PM2" / "fold0" / "last.pt"
    pred = next((study / "predictions" / "ld2fd" / "PM2").glob("*.nii.gz"))
    before = (ckpt.stat().st_mtime_ns, pred.stat().st_mtime_ns,
              (study / "evaluation" / "metrics.csv").stat().st_mtime_ns)
    result = X.reproduce(study, profile="tiny")
    assert (ckpt.stat().st_mtime_ns, pred.stat().st_mtime_ns,
            (study / "evaluation" / "metrics.csv").stat().st_mtime_ns) == before
    assert result["headline"] == (study / "evaluation" / "headline.md").read_text()


def test_a_study_folder_refuses_another_profile_or_seed(study):
    with pytest.raises(InputError, match="profile"):
        X.reproduce(study, profile="quick")
    with pytest.raises(InputError, match="seed"):
        X.reproduce(study, profile="tiny", seed=3)


def test_bad_arguments_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="task"):
        X.reproduce(tmp_path / "a", profile="tiny", tasks=["ct2mr"])
    with pytest.raises(InputError, match="arm"):
        X.reproduce(tmp_path / "b", profile="tiny", arms=["PX"])
    with pytest.raises(InputError, match="PM2-steps needs PR"):
        X.reproduce(tmp_path / "c", profile="tiny", arms=["PM2-steps"])
    with pytest.raises(InputError, match="profile"):
        X.reproduce(tmp_path / "d", profile="huge")


def test_the_native_cohort_moves_mr_into_the_pet_ct_frame(study):
    """PU's T1 overlaps the CT head after the within-patient registration, not before."""
    from RobustDeepLogic.io.headmask import head_mask
    from RobustDeepLogic.data.sources import resample_onto

    source = Cohort.load(study / "cohort")
    native = Cohort.load(study / "native")
    assert native.space == "native"
    for pid in source.ids[:2]:
        ct = source.read(pid, "CT")
        ct_head = head_mask((sitk.GetArrayFromImage(ct) + 1000) / 3000)
        t1 = native.scaling_for("T1").scale  # MR scaled, above its Rician background (about 0.02)
        moved = sitk.GetArrayFromImage(native.read(pid, "T1")) / t1
        raw = sitk.GetArrayFromImage(resample_onto(source.read(pid, "T1"), ct)) / t1
        def dice(a, b):
            return 2 * (a & b).sum() / (a.sum() + b.sum())
        assert dice(head_mask(moved, threshold=0.1), ct_head) > 0.85
        assert dice(head_mask(moved, threshold=0.1), ct_head) > dice(head_mask(raw, threshold=0.1), ct_head)
        # the PET/CT files are the originals, referenced, not copied
        assert native.path(pid, "FD") == source.path(pid, "FD").resolve()


def test_reductions_are_listed_against_the_paper():
    assert X.reductions(X.PROFILES["paper"]) == []
    quick = dict((k, (a, b)) for k, a, b in X.reductions(X.PROFILES["quick"]))
    assert quick["patients"] == ("12", "45") and quick["folds trained"] == ("0", "all")
    assert "PET grid (simulated)" in quick

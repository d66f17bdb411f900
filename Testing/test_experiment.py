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


#: The settings the study below changes from the tiny profile: every fold trained (both of them).
SETTINGS = {"train_folds": "all"}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """``robustdeep reproduce --profile tiny --set train_folds=all`` through the CLI (simulates its own
    6-patient cohort; 2 test patients, 2 folds of 2, both trained)."""
    from RobustDeepLogic.cli.main import main

    out = tmp_path_factory.mktemp("study") / "tiny"
    code = main(["reproduce", "--profile", "tiny", "--out", str(out), "--progress", "none",
                 "--set", "train_folds=all"])
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
        else:  # SUV (x 15 of the scaled values): the tiny networks (3 steps) output about 0.07 scaled,
            # so scaled values would stay far below 1; the exact scaling is tested in test_predict
            assert arr.max() > 1.0 and np.percentile(arr, 1) >= -0.5


def test_synthetic_parents_and_ablation_pairs_come_from_the_training_fold(study):
    from RobustDeepLogic.data.on_the_fly import on_the_fly_source
    from RobustDeepLogic.cohort.folds import FoldPlan, fold_seed
    from RobustDeepLogic.training.fold_subjects import read_fold_subjects

    record = json.loads((study / "study.json").read_text())
    plan = FoldPlan.from_dict(record["split"])
    assert plan.k == 2
    count = X.PROFILES["tiny"].synthetic
    registered = Cohort.load(study / "registered")
    for fold in range(plan.k):
        training = set(plan.training(fold))
        pairs = {}
        for key in ("PM1", "PM2"):
            syn = Cohort.load(study / "synthetic" / key)
            # every trained fold drew its subjects into the one folder, from its training patients only
            mine = [p for p in syn.patients if p.is_synthetic and set(p.parents) <= training]
            assert len(mine) == count
            pairs[key] = sorted(tuple(p.parents) for p in mine)
            # and its networks trained on exactly these, never on another fold's
            used = read_fold_subjects(study / "runs" / "ld2fd" / key, fold)
            assert sorted(used["real"]) == sorted(training)
            assert sorted(used["synthetic"]) == sorted(p.id for p in mine)
        otf = on_the_fly_source(registered, plan.training(fold), ["FD"], count=count, method="mixup",
                                seed=fold_seed(record["seed"], fold))
        assert sorted(otf.parents(s) for s in otf.ids) == pairs["PM2"]
    for key in ("PM1", "PM2"):
        assert len(Cohort.load(study / "synthetic" / key)) == count * plan.k  # the folds' pools are disjoint
    assert {p.split for p in registered.patients} == {"train", "test"}
    assert {p.id for p in registered.patients if p.split == "test"} == set(plan.test)


def test_every_fold_of_every_arm_is_trained_and_recorded(study):
    from RobustDeepLogic.training.runs import checkpoints

    record = json.loads((study / "study.json").read_text())
    assert record["settings"] == {"train_folds": None}
    assert record["profile"]["train_folds"] is None
    for key in record["trained"]:
        assert sorted(checkpoints(study / "runs" / key, "best")) == [0, 1], key
    # the report's subjects per fold are those trained: 2 real patients, and 2 synthetic subjects for
    # the arms that add them (the tiny profile's cap, which every fold reached)
    trained = record["trained"]
    assert trained["ld2fd/PR"]["real"] == 2 and "synthetic" in trained["ld2fd/PR"]
    assert trained["ld2fd/PR"]["synthetic"] == 0
    for arm in ("PM1", "PM2", "PR-mixup", "PM2-steps"):
        assert trained[f"ld2fd/{arm}"]["synthetic"] == X.PROFILES["tiny"].synthetic, arm
    md = (study / "evaluation" / "report.md").read_text()
    assert "train_folds=all" in md.splitlines()[0]
    # a missing TensorBoard is said once for the study, not once per run (20 runs here)
    assert "tensorboard" in record["stages"]["train"]
    assert (study / "robustdeep.log").read_text().count("TensorBoard") <= 1
    # validation metrics over folds: each fold's best epoch (lowest val_rmse), mean and SD over folds,
    # computed here from history.csv with the csv module
    import csv
    import statistics

    rows = list(csv.DictReader((study / "runs" / "ld2fd" / "PM2" / "history.csv").open()))
    best = [min((r for r in rows if r["fold"] == str(f)), key=lambda r: float(r["val_rmse"])) for f in (0, 1)]
    values = [float(r["val_rmse"]) for r in best]
    got = trained["ld2fd/PM2"]
    assert got["folds"] == 2
    assert got["val_rmse"] == pytest.approx(statistics.mean(values), abs=1e-5)
    assert got["val_rmse_sd"] == pytest.approx(statistics.stdev(values), abs=1e-5)
    assert f"{got['val_rmse']:.4f} ± {got['val_rmse_sd']:.4f}" in md


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
    result = X.reproduce(study, profile="tiny", settings=SETTINGS)
    assert (ckpt.stat().st_mtime_ns, pred.stat().st_mtime_ns,
            (study / "evaluation" / "metrics.csv").stat().st_mtime_ns) == before
    assert result["headline"] == (study / "evaluation" / "headline.md").read_text()


def test_a_study_folder_refuses_another_profile_setting_or_seed(study):
    with pytest.raises(InputError, match="profile"):
        X.reproduce(study, profile="quick")
    with pytest.raises(InputError, match="seed"):
        X.reproduce(study, profile="tiny", seed=3, settings=SETTINGS)
    with pytest.raises(InputError, match=r"train_folds=None \(asked: \[0\]\)"):
        X.reproduce(study, profile="tiny")  # the tiny profile trains fold 0 only
    with pytest.raises(InputError, match=r"epochs=1 \(asked: 2\)"):
        X.reproduce(study, profile="tiny", settings={**SETTINGS, "epochs": 2})


def test_bad_arguments_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="task"):
        X.reproduce(tmp_path / "a", profile="tiny", tasks=["ct2mr"])
    with pytest.raises(InputError, match="arm"):
        X.reproduce(tmp_path / "b", profile="tiny", arms=["PX"])
    with pytest.raises(InputError, match="PM2-steps needs PR"):
        X.reproduce(tmp_path / "c", profile="tiny", arms=["PM2-steps"])
    with pytest.raises(InputError, match="profile"):
        X.reproduce(tmp_path / "d", profile="huge")


def test_a_patient_flagged_at_registration_stops_the_study(tmp_path, monkeypatch):
    """The registered cohort leaves a QC-flagged patient out, but the study's split names it: the
    study stops with an error naming the patient and its flags (registration itself is faked)."""
    from RobustDeepLogic.cohort.patient import Patient
    from RobustDeepLogic.registration.cohort import CohortRegistration
    from RobustDeepLogic.study import stages

    cohort = Cohort(root=tmp_path / "cohort")
    for i in range(4):
        cohort.add(Patient(f"P{i}", {"FD": f"P{i}/FD.nii.gz"}))
    cohort.save()

    def register_cohort(source, out, **kwargs):
        registered = Cohort(root=out, space="template")
        registered.patients = [p for p in source.patients if p.id != "P3"]
        registered.save()
        return CohortRegistration(registered, ["P0", "P1", "P2", "P3"], [], {}, ["P3"],
                                  out / "registration_qc.csv", 1.0,
                                  excluded={"P3": "head-mask Dice 0.000 < 0.85"})

    monkeypatch.setattr(stages, "register_cohort", register_cohort)
    with pytest.raises(InputError, match="P3: head-mask Dice 0.000"):
        X.reproduce(tmp_path / "study", profile="tiny", cohort=cohort.root, tasks=["ld2fd"])


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

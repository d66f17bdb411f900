"""`robustdeep evaluate` and RobustDeepLogic.evaluate on tiny phantom volumes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import yaml

from RobustDeepLogic import evaluate as M
from RobustDeepLogic.cli.main import run_command
from RobustDeepLogic.cohort.manifest import Cohort
from RobustDeepLogic.cohort.patient import Patient
from RobustDeepLogic.cohort.scaling import Scaling
from RobustDeepLogic.evaluate.cases import CSV_COLUMNS, Case, EvaluationOptions, load_cases
from RobustDeepLogic.evaluate.evaluation import evaluate_cases
from RobustDeepLogic.evaluate.results import read_metrics_csv
from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.io.volumes import read_array

SHAPE = (14, 22, 20)
SPACING = (2.0, 2.0, 2.2)
ORIGIN = (-20.0, -22.0, -15.0)


def _write(path: Path, array: np.ndarray, spacing=SPACING, origin=ORIGIN) -> Path:
    image = sitk.GetImageFromArray(np.asarray(array, np.float32))
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    sitk.WriteImage(image, str(path))
    return path


def _head():
    zz, yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    return ((zz - 7) / 5.5) ** 2 + ((yy - 11) / 9) ** 2 + ((xx - 10) / 8) ** 2 < 1


@pytest.fixture
def phantom(tmp_path, rng):
    """FD reference (SUV), LD input, and predictions of 2 scenarios for 2 patients."""
    head = _head()
    files = {}
    for pid in ("P1", "P2"):
        fd = np.where(head, 3.0 + 4.0 * rng.random(SHAPE), 0.0)
        files[pid, "FD"] = _write(tmp_path / f"{pid}_FD.nii.gz", fd)
        files[pid, "LD"] = _write(tmp_path / f"{pid}_LD.nii.gz", fd + head * rng.normal(0, 1.0, SHAPE))
        for scen, noise in (("PR", 0.4), ("PM2", 0.2)):
            files[pid, scen] = _write(tmp_path / f"{pid}_{scen}.nii.gz", fd + head * rng.normal(0, noise, SHAPE))
    return tmp_path, files


def _run(args, capsys=None):
    code = run_command([*args, "--progress", "none"])
    return code


def test_single_pair_cli(phantom, capsys):
    root, files = phantom
    out = root / "ev"
    code = _run(["evaluate", "--reference", str(files["P1", "FD"]), "--prediction", str(files["P1", "PR"]),
                 "--input", str(files["P1", "LD"]), "--task", "ld2fd", "--scenario", "PR", "--out", str(out)])
    assert code == 0
    rows = read_metrics_csv(out / "metrics.csv")
    with open(out / "metrics.csv") as fh:
        assert tuple(next(csv.reader(fh))) == CSV_COLUMNS
    by = {(r["scenario"], r["units"]): r for r in rows}
    assert set(by) == {("PR", "scaled"), ("PR", "physical"), ("input", "scaled"), ("input", "physical")}
    pr_s, pr_p = by["PR", "scaled"], by["PR", "physical"]
    assert pr_p["unit"] == "SUV" and pr_s["patient"] == "P1_FD"
    # physical RMSE is the scaled one times the scaling constant (SUV / 15)
    assert pr_p["rmse"] == pytest.approx(15 * pr_s["rmse"], rel=1e-5)
    assert pr_p["ssim_3d"] == pytest.approx(pr_s["ssim_3d"], abs=1e-7)
    # independent recomputation of the scaled metrics on the saved mask
    ref, grid = read_array(files["P1", "FD"])
    pred, _ = read_array(files["P1", "PR"])
    mask, mgrid = read_array(out / "masks" / "ld2fd" / "P1_FD.nii.gz")
    mask = mask > 0
    assert mgrid.matches(grid) and mask.sum() == pr_s["n_voxels"]
    assert pr_s["rmse"] == pytest.approx(M.rmse(ref / 15, pred / 15, mask), rel=1e-5)
    assert pr_s["psnr"] == pytest.approx(M.psnr(ref / 15, pred / 15, mask), rel=1e-5)
    assert pr_s["ssim_global"] == pytest.approx(M.ssim_global(ref / 15, pred / 15, mask), rel=1e-5)
    # the input (LD) is worse than the prediction
    assert by["input", "scaled"]["rmse"] > pr_s["rmse"]
    # bias maps on the reference grid, relative error inside the mask only
    rel, rgrid = read_array(out / "maps" / "ld2fd" / "PR" / "P1_FD_relerr.nii.gz")
    assert rgrid.matches(grid)
    assert np.all(rel[~mask] == 0)
    np.testing.assert_allclose(rel[mask], ((pred - ref) / np.maximum(ref, 0.75))[mask], rtol=1e-4, atol=1e-6)
    absd, _ = read_array(out / "maps" / "ld2fd" / "PR" / "P1_FD_abserr.nii.gz")
    np.testing.assert_allclose(absd[mask], (pred - ref)[mask], atol=1e-5)
    assert (out / "png" / "ld2fd" / "PR" / "P1_FD_bias.png").stat().st_size > 1000
    assert (out / "png" / "ld2fd" / "PR" / "P1_FD_jointhist.png").is_file()
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["format"] == "robustdeep-evaluation" and len(doc["rows"]) == 4
    assert doc["provenance"]["scaling"]["FD"]["scale"] == 15.0


def test_mismatched_grid_is_rejected(phantom, capsys):
    root, files = phantom
    moved = _write(root / "moved.nii.gz", sitk.GetArrayFromImage(sitk.ReadImage(str(files["P1", "PR"]))),
                   origin=(0.0, 0.0, 0.0))
    code = _run(["evaluate", "--reference", str(files["P1", "FD"]), "--prediction", str(moved),
                 "--modality", "FD", "--out", str(root / "ev")])
    assert code == 2
    err = capsys.readouterr().err
    assert "does not match the reference grid" in err and "moved.nii.gz" in err and "resample" in err
    small = _write(root / "small.nii.gz", np.zeros((10, 22, 20)))
    assert _run(["evaluate", "--reference", str(files["P1", "FD"]), "--prediction", str(small),
                 "--modality", "FD", "--out", str(root / "ev")]) == 2
    assert "does not match" in capsys.readouterr().err


def test_empty_masks_are_rejected(phantom, capsys):
    root, files = phantom
    empty = _write(root / "empty_mask.nii.gz", np.zeros(SHAPE))
    code = _run(["evaluate", "--reference", str(files["P1", "FD"]), "--prediction", str(files["P1", "PR"]),
                 "--modality", "FD", "--mask", str(empty), "--out", str(root / "ev")])
    assert code == 2
    assert "head mask is empty" in capsys.readouterr().err
    zeros = _write(root / "zeros.nii.gz", np.zeros(SHAPE))
    code = _run(["evaluate", "--reference", str(zeros), "--prediction", str(files["P1", "PR"]),
                 "--modality", "FD", "--out", str(root / "ev")])
    assert code == 2
    err = capsys.readouterr().err
    assert "head mask from the reference is empty" in err and "--mask" in err


def test_missing_modality_and_forms(phantom, capsys):
    root, files = phantom
    assert _run(["evaluate", "--reference", str(files["P1", "FD"]), "--prediction", str(files["P1", "PR"]),
                 "--out", str(root / "ev")]) == 2
    assert "--modality" in capsys.readouterr().err
    assert _run(["evaluate", "--out", str(root / "ev")]) == 2


def _case_rows(files):
    rows = []
    for pid in ("P1", "P2"):
        for scen in ("PR", "PM2"):
            rows.append({"task": "ld2fd", "scenario": scen, "patient": pid,
                         "reference": files[pid, "FD"].name, "prediction": files[pid, scen].name,
                         "input": files[pid, "LD"].name})
    return rows


def test_batch_csv_and_yaml(phantom):
    root, files = phantom
    rows = _case_rows(files)
    rows.append({"task": "ld2fd", "scenario": "PM2", "patient": "P1", "reference": files["P1", "FD"].name,
                 "prediction": files["P1", "PR"].name, "input": "", "epoch": "3"})
    with open(root / "cases.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["task", "scenario", "patient", "reference", "prediction", "input",
                                           "epoch"])
        w.writeheader()
        w.writerows(rows)
    (root / "cases.yaml").write_text(yaml.safe_dump({"cases": rows[:4]}))
    cases = load_cases(root / "cases.csv")
    assert len(cases) == 5 and cases[-1].epoch == 3 and cases[0].modality == "FD"
    assert cases[0].input_modality == "LD" and cases[0].reference.is_absolute()
    assert [c.patient for c in load_cases(root / "cases.yaml")] == ["P1", "P1", "P2", "P2"]
    out = root / "batch"
    assert _run(["evaluate", "--cases", str(root / "cases.csv"), "--out", str(out), "--no-pngs",
                 "--no-maps"]) == 0
    got = read_metrics_csv(out / "metrics.csv")
    keys = {(r["scenario"], r["patient"], r["epoch"]) for r in got if r["units"] == "scaled"}
    assert keys == {("PR", "P1", None), ("PM2", "P1", None), ("PR", "P2", None), ("PM2", "P2", None),
                    ("PM2", "P1", 3), ("input", "P1", None), ("input", "P2", None)}
    assert not (out / "maps").exists() and not (out / "png").exists()
    assert (out / "slices" / "ld2fd" / "PM2" / "P1_epoch3.npz").is_file()
    scaled = {(r["scenario"], r["patient"]): r for r in got if r["units"] == "scaled" and r["epoch"] is None}
    for pid in ("P1", "P2"):
        assert scaled["PM2", pid]["rmse"] < scaled["PR", pid]["rmse"] < scaled["input", pid]["rmse"]


def test_case_table_errors(tmp_path):
    (tmp_path / "bad.csv").write_text("task,scenario,patient,reference\nld2fd,PR,P1,a.nii.gz\n")
    with pytest.raises(InputError, match="missing 'prediction'"):
        load_cases(tmp_path / "bad.csv")
    (tmp_path / "odd.csv").write_text("task,scenario,patient,reference,prediction,colour\nx,PR,P1,a,b,red\n")
    with pytest.raises(InputError, match="unknown column"):
        load_cases(tmp_path / "odd.csv")
    (tmp_path / "custom.csv").write_text("task,scenario,patient,reference,prediction\nmine,PR,P1,a,b\n")
    with pytest.raises(InputError, match="modality"):
        load_cases(tmp_path / "custom.csv")
    (tmp_path / "dup.csv").write_text("task,scenario,patient,reference,prediction\n"
                                      "ld2fd,PR,P1,a,b\nld2fd,PR,P1,a,c\n")
    with pytest.raises(InputError, match="duplicate"):
        load_cases(tmp_path / "dup.csv")


def test_predictions_folder_with_cohort(phantom):
    root, files = phantom
    cohort = Cohort(root=root / "cohort", scaling={"FD": Scaling(10.0, 0.0, "SUV"), "LD": Scaling(10.0, 0.0, "SUV")})
    for pid in ("P1", "P2"):
        cohort.add(Patient(pid, {"FD": str(files[pid, "FD"]), "LD": str(files[pid, "LD"])}, split="test"))
    cohort.save()
    pred = root / "pred" / "ld2fd" / "PR"
    pred.mkdir(parents=True)
    for pid in ("P1", "P2"):
        (pred / f"{pid}.nii.gz").write_bytes(files[pid, "PR"].read_bytes())
    (pred / "epoch_2").mkdir()
    (pred / "epoch_2" / "P1.nii.gz").write_bytes(files["P1", "PM2"].read_bytes())
    out = root / "fromdir"
    assert _run(["evaluate", "--predictions", str(root / "pred"), "--cohort", str(cohort.root), "--out", str(out),
                 "--no-pngs", "--no-maps"]) == 0
    rows = [r for r in read_metrics_csv(out / "metrics.csv") if r["units"] == "scaled"]
    assert {(r["scenario"], r["patient"], r["epoch"]) for r in rows} == {
        ("PR", "P1", None), ("PR", "P2", None), ("PR", "P1", 2), ("input", "P1", None), ("input", "P2", None)}
    ssim_range = {r["ssim_data_range"] for r in rows}
    assert ssim_range == {1.0}
    phys = [r for r in read_metrics_csv(out / "metrics.csv") if r["units"] == "physical"]
    assert {r["ssim_data_range"] for r in phys} == {10.0}  # the cohort's constant, not the default 15


def test_ct_offset_units_and_regions(tmp_path, rng):
    """CT in HU: scaled = (HU + 1000) / 3000; SSIM and PSNR differ between units; label regions."""
    head = _head()
    ct = np.where(head, 40.0 + 20 * rng.standard_normal(SHAPE), -1000.0)
    ct[head & (np.indices(SHAPE)[2] < 6)] = 900.0  # "bone"
    pred = ct + head * rng.normal(0, 60, SHAPE)
    labels = np.zeros(SHAPE)
    labels[head & (np.indices(SHAPE)[2] < 6)] = 1
    labels[head & (np.indices(SHAPE)[2] >= 6)] = 2
    case = Case("mr2ct", "PR", "C1", _write(tmp_path / "ct.nii.gz", ct), _write(tmp_path / "p.nii.gz", pred),
                labels=_write(tmp_path / "lab.nii.gz", labels), modality="CT")
    result = evaluate_cases([case], tmp_path / "ev", options=EvaluationOptions(pngs=False))
    rows = {(r["units"], r["region"]): r for r in result["rows"]}
    assert set(rows) == {(u, g) for u in ("scaled", "physical") for g in ("head", "label_1", "label_2")}
    s, p = rows["scaled", "head"], rows["physical", "head"]
    assert p["unit"] == "HU"
    assert p["rmse"] == pytest.approx(3000 * s["rmse"], rel=1e-5)
    assert p["psnr"] != pytest.approx(s["psnr"], abs=0.1)  # Max depends on the HU offset
    assert p["slope"] == pytest.approx(s["slope"], rel=1e-6)
    assert p["intercept"] == pytest.approx(3000 * s["intercept"] - 1000 * (1 - s["slope"]), abs=1e-3)
    assert rows["scaled", "label_1"]["n_voxels"] + rows["scaled", "label_2"]["n_voxels"] == int(head.sum())
    # relative error relative to HU + 1000 (scaled units), not to HU
    rel, _ = read_array(tmp_path / "ev" / "maps" / "mr2ct" / "PR" / "C1_relerr.nii.gz")
    m = head
    np.testing.assert_allclose(rel[m], ((pred - ct) / np.maximum(ct + 1000, 150))[m], rtol=1e-3, atol=1e-5)


def test_scaled_files_give_the_same_metrics(phantom):
    root, files = phantom
    ref, grid = read_array(files["P1", "FD"])
    pred, _ = read_array(files["P1", "PR"])
    rs = _write(root / "ref_scaled.nii.gz", ref / 15)
    ps = _write(root / "pred_scaled.nii.gz", pred / 15)
    a = evaluate_cases([Case("ld2fd", "PR", "P1", files["P1", "FD"], files["P1", "PR"], modality="FD")],
                       root / "a", options=EvaluationOptions(pngs=False, maps=False))["rows"]
    b = evaluate_cases([Case("ld2fd", "PR", "P1", rs, ps, modality="FD")], root / "b",
                       options=EvaluationOptions(units="scaled", pngs=False, maps=False))["rows"]
    for ra, rb in zip(a, b):
        assert ra["units"] == rb["units"]
        for key in ("rmse", "psnr", "ssim_global", "ssim_3d", "ssim_2d", "r2", "n_voxels"):
            assert ra[key] == pytest.approx(rb[key], rel=1e-4)

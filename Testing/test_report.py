"""`robustdeep report`: a report built from a tiny run holds every table and figure."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from RobustDeepLogic.cli.main import run_command
from RobustDeepLogic.evaluate.cases import Case, EvaluationOptions
from RobustDeepLogic.evaluate.evaluation import evaluate_cases
from RobustDeepLogic.evaluate.results import read_metrics_csv
from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.report.figures import _case_slices
from RobustDeepLogic.report.document import build_report
from RobustDeepLogic.report.data import final_rows, load_paper_results, load_report_data, read_history

SHAPE = (12, 20, 18)
SCENARIOS = {"PU": 0.5, "PR": 0.35, "PM1": 0.25, "PM2": 0.15}


def _write(path: Path, array) -> Path:
    image = sitk.GetImageFromArray(np.asarray(array, np.float32))
    image.SetSpacing((2.0, 2.0, 2.2))
    sitk.WriteImage(image, str(path))
    return path


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """An evaluation folder of 3 patients x 4 scenarios (+ LD input, + per-epoch rows) and histories."""
    root = tmp_path_factory.mktemp("run")
    rng = np.random.default_rng(7)
    zz, yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    head = ((zz - 6) / 5) ** 2 + ((yy - 10) / 8) ** 2 + ((xx - 9) / 7) ** 2 < 1
    cases = []
    for pid in ("T1", "T2", "T3"):
        fd = np.where(head, 3.0 + 4.0 * rng.random(SHAPE), 0.0)
        ref = _write(root / f"{pid}_FD.nii.gz", fd)
        ld = _write(root / f"{pid}_LD.nii.gz", fd + head * rng.normal(0, 1.0, SHAPE))
        for scen, noise in SCENARIOS.items():
            pred = _write(root / f"{pid}_{scen}.nii.gz", fd + head * rng.normal(0, noise, SHAPE))
            cases.append(Case("ld2fd", scen, pid, ref, pred, input=ld, modality="FD", input_modality="LD"))
        for epoch in (1, 2):
            for scen in ("PR", "PM2"):
                noise = SCENARIOS[scen] * (1.5 if epoch == 1 else 1.0)
                pred = _write(root / f"{pid}_{scen}_e{epoch}.nii.gz", fd + head * rng.normal(0, noise, SHAPE))
                cases.append(Case("ld2fd", scen, pid, ref, pred, epoch=epoch, modality="FD"))
    ev = root / "evaluation"
    evaluate_cases(cases, ev, options=EvaluationOptions(pngs=False, maps=False))
    hist = root / "history" / "ld2fd"
    hist.mkdir(parents=True)
    for scen in ("PR", "PM2"):
        lines = ["epoch,step,train_loss,val_rmse,val_psnr,val_ssim"]
        lines += [f"{e},{e * 7},{1.0 / e},{0.1 / e},{20 + e},{0.8 + e / 100}" for e in range(1, 6)]
        (hist / f"{scen}.csv").write_text("\n".join(lines) + "\n")
    (root / "provenance.json").write_text(json.dumps({"seeds": {"train": 1234}, "cohort": "sim45"}))
    return root


@pytest.fixture(scope="module")
def report_paths(tiny_run):
    return build_report(tiny_run)  # default: into the evaluation folder


def test_report_has_every_table_and_figure(tiny_run, report_paths):
    paths = report_paths
    assert paths["html"].parent == tiny_run / "evaluation"
    page = paths["html"].read_text()
    for tid in ("table-ld2fd-scaled", "table-ld2fd-physical", "table-ld2fd-fits", "table-ld2fd-tests"):
        assert f"id='{tid}'" in page
    figures = ("fig-ld2fd-images", "fig-ld2fd-bias", "fig-ld2fd-jointhist", "fig-ld2fd-history",
               "fig-ld2fd-epochs")
    for fid in figures:
        match = re.search(rf"<figure id='{fid}'><img alt='[^']*' src='data:image/png;base64,([A-Za-z0-9+/=]+)'",
                          page)
        assert match, fid
        assert base64.b64decode(match.group(1))[:8] == b"\x89PNG\r\n\x1a\n"
    assert "src='http" not in page and "src=\"" not in page  # self-contained
    # the paper's numbers beside ours, our scenarios and the LD input row, provenance
    assert "0.20 ± 0.05" in page and "37.14 ± 0.10" in page and "LD input" in page
    for scen in SCENARIOS:
        assert f"<td>{scen}</td>" in page
    assert "PR → PM2" in page and "PU → PR" in page and "PM1 → PM2" in page
    assert "id='provenance'" in page and "1234" in page and "robustdeep-evaluation" in page
    md = paths["markdown"].read_text()
    assert md.count("| scenario |") >= 3 and "| A → B |" in md
    for fid in figures:
        assert f"![{fid}](report_files/{fid}.png)" in md
        assert (paths["files"] / f"{fid}.png").stat().st_size > 1000


def test_report_tables_are_computed_from_final_rows(tiny_run, report_paths):
    rows = read_metrics_csv(tiny_run / "evaluation" / "metrics.csv")
    final = final_rows(rows)
    pr = [r for r in final if r["scenario"] == "PR" and r["units"] == "scaled"]
    assert len(pr) == 3 and all(r["epoch"] is None for r in pr)
    mean_rmse = np.mean([r["rmse"] for r in pr])
    sd_rmse = np.std([r["rmse"] for r in pr], ddof=1)
    page = report_paths["html"].read_text()
    assert f"{mean_rmse:.3f} ± {sd_rmse:.3f}" in page
    # only epoch rows: the largest epoch stands for the scenario
    only_epochs = [dict(r, epoch=e) for e in (1, 4) for r in pr]
    assert {r["epoch"] for r in final_rows(only_epochs)} == {4}


def test_report_cli(tiny_run, tmp_path, capsys):
    # a copy of metrics.csv alone (no slices, no history): tables only, and quick
    tables_only = tmp_path / "tables_only"
    tables_only.mkdir()
    (tables_only / "metrics.csv").write_bytes((tiny_run / "evaluation" / "metrics.csv").read_bytes())
    out = tmp_path / "cli"
    assert run_command(["report", str(tables_only), "--out", str(out), "--pairs", "PU:PM2",
                        "--progress", "none"]) == 0
    page = (out / "report.html").read_text()
    assert "PU → PM2" in page and "PR → PM1" not in page
    assert "id='table-ld2fd-scaled'" in page and "fig-ld2fd-epochs" in page
    assert "fig-ld2fd-images" not in page  # no slices: no image figures
    assert (out / "report.md").is_file()
    capsys.readouterr()
    (tmp_path / "nothing").mkdir()
    assert run_command(["report", str(tmp_path / "nothing"), "--progress", "none"]) == 2
    assert "no metrics.csv" in capsys.readouterr().err


def test_patient_shown_in_figures(tiny_run):
    data = load_report_data(tiny_run)
    assert _case_slices(data, "ld2fd", "T2")[0] == "T2"
    shown, slices = _case_slices(data, "ld2fd", None)
    assert shown == "T1" and set(slices) == {"input", "PU", "PR", "PM1", "PM2"}
    assert "input_axial" in slices["PR"] and slices["PR"]["reference_axial"].shape == SHAPE[1:]


def test_report_without_metrics_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        build_report(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="metrics.csv"):
        build_report(tmp_path / "empty")


def test_history_needs_epoch(tmp_path):
    (tmp_path / "h.csv").write_text("step,val_rmse\n1,0.2\n")
    with pytest.raises(InputError, match="epoch"):
        read_history(tmp_path / "h.csv")
    (tmp_path / "g.csv").write_text("epoch,val_rmse\n2,0.1\n1,0.2\n")
    assert [r["epoch"] for r in read_history(tmp_path / "g.csv")] == [1.0, 2.0]


def test_paper_results_match_method_md():
    paper = load_paper_results()
    assert set(paper["tasks"]) == {"ld2fd", "ldmr2fd", "nac2mac", "mr2ct"}
    for task in paper["tasks"].values():
        assert {"PU", "PR", "PM1", "PM2"} <= set(task["scenarios"])
    assert paper["tasks"]["ld2fd"]["scenarios"]["input"]["rmse"] == [0.42, 3.24]
    assert paper["tasks"]["mr2ct"]["scenarios"]["PM2"]["psnr"] == [30.55, 1.98]
    assert paper["tasks"]["nac2mac"]["fits"]["PM2"] == {"slope": 0.98, "r2": 0.99}
    assert paper["tasks"]["ldmr2fd"]["improvement_PR_PM2"] == {"rmse": 40, "ssim": 7}

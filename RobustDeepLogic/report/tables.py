"""TODO docstring (RobustDeepLogic.report)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, List, Mapping, Optional, Sequence, Tuple

from RobustDeepLogic.cohort.tasks import BUILTIN_TASKS
from RobustDeepLogic.evaluate.cases import INPUT_SCENARIO
from RobustDeepLogic.evaluate.maps import LinearFit
from RobustDeepLogic.evaluate.slices import load_slices
from RobustDeepLogic.evaluate.statistics import compare, default_pairs, summarize
from RobustDeepLogic.report.data import TEST_METRICS, ReportData, _ordered, _slices_path


# --------------------------------------------------------------------------------------------------
# Tables (as lists of rows of strings; rendered to HTML and Markdown)
# --------------------------------------------------------------------------------------------------
@dataclass
class Table:
    id: str
    title: str
    header: List[str]
    rows: List[List[str]]
    note: str = ""


def _task_label(data: ReportData, task: str) -> str:
    paper = data.paper.get("tasks", {}).get(task, {})
    return paper.get("label", task)


def _scenario_label(data: ReportData, task: str, scenario: str) -> str:
    if scenario == INPUT_SCENARIO:
        t = BUILTIN_TASKS.get(task)
        return f"{t.inputs[0]} input" if t is not None else "input"
    return scenario


def _paper_cell(paper_task: Mapping[str, Any], scenario: str, metric: str, digits: int) -> str:
    v = paper_task.get("scenarios", {}).get(scenario, {}).get(metric)
    if not v:
        return "-"
    return f"{v[0]:.{digits}f} ± {v[1]:.{digits}f}"


def _unit_of(rows: Sequence[Mapping[str, Any]]) -> str:
    for r in rows:
        if r.get("unit"):
            return str(r["unit"])
    return ""


def table_scaled(data: ReportData, task: str) -> Table:
    """The paper's table form (Tables 2 to 5): scaled units, mean +- SD over patients."""
    paper_task = data.paper.get("tasks", {}).get(task, {})
    header = ["scenario", "n", "RMSE", "SSIM (global, paper's)", "PSNR (dB)", "SSIM (windowed 3D)",
              "SSIM (windowed 2D)", "paper RMSE", "paper SSIM", "paper PSNR"]
    rows = []
    for scen in data.scenarios(task):
        sel = data.select(task, scen)
        if not sel:
            continue
        s = {m: summarize(r[m] for r in sel) for m in ("rmse", "ssim_global", "psnr", "ssim_3d", "ssim_2d")}
        rows.append([_scenario_label(data, task, scen), str(s["rmse"].n), s["rmse"].format(3),
                     s["ssim_global"].format(3), s["psnr"].format(2), s["ssim_3d"].format(3),
                     s["ssim_2d"].format(3), _paper_cell(paper_task, scen, "rmse", 2),
                     _paper_cell(paper_task, scen, "ssim", 2), _paper_cell(paper_task, scen, "psnr", 2)])
    table_no = paper_task.get("table")
    return Table(
        f"table-{task}-scaled",
        f"{_task_label(data, task)}: scaled [0, 1] units" + (f" (the paper's Table {table_no})" if table_no else ""),
        header, rows,
        "Mean ± SD over patients. SSIM (global, paper's): one statistic over the head mask with "
        "c1 = 0.01, c2 = 0.02. SSIM (windowed): Gaussian window σ = 1.5 voxels, c1 = (0.01 D)², "
        "c2 = (0.03 D)², mean of the SSIM map over the head mask (3D window, or per axial slice). "
        "Paper columns: the published clinical results, for reference only.",
    )


def table_physical(data: ReportData, task: str) -> Table:
    rows = []
    unit = _unit_of(data.select(task, units="physical"))
    header = ["scenario", "n", f"RMSE ({unit})", f"MAE ({unit})", "PSNR (dB)", "SSIM (global)",
              "SSIM (windowed 3D)", "mean relative error (%)", "mean |relative error| (%)"]
    for scen in data.scenarios(task):
        sel = data.select(task, scen, units="physical")
        if not sel:
            continue
        s = {m: summarize(r[m] for r in sel) for m in
             ("rmse", "mae", "psnr", "ssim_global", "ssim_3d", "mean_rel_error_pct", "mean_abs_rel_error_pct")}
        digits = 1 if unit == "HU" else 3
        rows.append([_scenario_label(data, task, scen), str(s["rmse"].n), s["rmse"].format(digits),
                     s["mae"].format(digits), s["psnr"].format(2), s["ssim_global"].format(3),
                     s["ssim_3d"].format(3), s["mean_rel_error_pct"].format(2),
                     s["mean_abs_rel_error_pct"].format(2)])
    return Table(f"table-{task}-physical", f"{_task_label(data, task)}: physical units ({unit})", header, rows,
                 "PSNR in physical units uses the larger maximum in those units (for CT in HU it differs "
                 "from the scaled value because of the offset). Relative errors are voxel-wise "
                 "(P - R) / max(R, floor) in scaled units, averaged over head voxels with R at or above "
                 "the floor.")


def _pooled_fit(data: ReportData, task: str, scenario: str) -> Optional[LinearFit]:
    fits = []
    for r in data.select(task, scenario):
        npz = _slices_path(data, r)
        if npz.is_file():
            fits.append(LinearFit(*[float(v) for v in load_slices(npz)["fit"]]))
    return LinearFit.pooled(fits) if fits else None


def table_fits(data: ReportData, task: str) -> Table:
    paper_task = data.paper.get("tasks", {}).get(task, {})
    header = ["scenario", "slope (per patient)", "intercept (scaled)", "R² (per patient)",
              "pooled slope", "pooled R²", "paper slope", "paper R²"]
    rows = []
    for scen in data.scenarios(task):
        sel = data.select(task, scen)
        if not sel:
            continue
        pooled = _pooled_fit(data, task, scen)
        pf = paper_task.get("fits", {}).get(scen, {})
        rows.append([_scenario_label(data, task, scen), summarize(r["slope"] for r in sel).format(3),
                     summarize(r["intercept"] for r in sel).format(4),
                     summarize(r["r2"] for r in sel).format(3),
                     f"{pooled.slope:.3f}" if pooled else "-", f"{pooled.r2:.3f}" if pooled else "-",
                     f"{pf['slope']:.2f}" if "slope" in pf else "-", f"{pf['r2']:.2f}" if "r2" in pf else "-"])
    return Table(f"table-{task}-fits", f"{_task_label(data, task)}: joint-histogram fits", header, rows,
                 "Least-squares line prediction = slope × reference + intercept over head voxels "
                 "(scaled units); pooled: one fit over the voxels of all patients.")


def table_tests(data: ReportData, task: str, pairs: Optional[Sequence[Tuple[str, str]]]) -> Table:
    paper_task = data.paper.get("tasks", {}).get(task, {})
    scenarios = [s for s in data.scenarios(task) if s != INPUT_SCENARIO]
    chosen = list(pairs) if pairs else default_pairs(scenarios)
    header = ["A → B", "metric", "n", "mean A", "mean B", "improvement (%)", "paper (%)", "t", "p",
              "p < 0.05"]
    rows = []
    for a, b in chosen:
        ra, rb = data.select(task, a), data.select(task, b)
        if not ra or not rb:
            continue
        for metric in TEST_METRICS:
            test, improvement = compare(ra, rb, metric)
            paper_imp = "-"
            if (a, b) == ("PR", "PM2") and metric in ("rmse", "ssim_global"):
                v = paper_task.get("improvement_PR_PM2", {}).get("rmse" if metric == "rmse" else "ssim")
                paper_imp = "-" if v is None else f"{v:.0f}"
            rows.append([f"{a} → {b}", metric, str(test.n), _num(test.mean_a, 4), _num(test.mean_b, 4),
                         _num(improvement, 1), paper_imp, _num(test.t, 2), _pval(test.p),
                         "yes" if test.significant else "no"])
    return Table(f"table-{task}-tests", f"{_task_label(data, task)}: paired t-tests and relative improvement",
                 header, rows,
                 "Student's paired t-test over the patients present in both scenarios (two-sided), scaled "
                 "units. Improvement: 100 (A - B) / A for RMSE, 100 (B - A) / A for SSIM and PSNR, on "
                 "the means.")


def table_regions(data: ReportData, task: str) -> Optional[Table]:
    regions = _ordered((r.get("region", "head") for r in data.final if r["task"] == task), ("head",))
    regions = [g for g in regions if g != "head"]
    if not regions:
        return None
    header = ["scenario", "region", "n", "RMSE (scaled)", "SSIM (global)", "mean relative error (%)"]
    rows = []
    for scen in data.scenarios(task):
        for region in regions:
            sel = data.select(task, scen, region=region)
            if not sel:
                continue
            rows.append([_scenario_label(data, task, scen), region, str(len(sel)),
                         summarize(r["rmse"] for r in sel).format(3),
                         summarize(r["ssim_global"] for r in sel).format(3),
                         summarize(r["mean_rel_error_pct"] for r in sel).format(2)])
    return Table(f"table-{task}-regions", f"{_task_label(data, task)}: regions of the label volume",
                 header, rows)


def _num(v: float, digits: int) -> str:
    if v is None or not isinstance(v, (int, float)) or math.isnan(v):
        return "-"
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    return f"{v:.{digits}f}"


def _pval(p: float) -> str:
    if p is None or math.isnan(p):
        return "-"
    return "< 0.0001" if p < 1e-4 else f"{p:.4f}"

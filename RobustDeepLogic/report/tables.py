"""The report's tables of one task, as rows of strings.

Each function makes one :class:`Table` from a :class:`~RobustDeepLogic.report.data.ReportData`:
the paper's table form in scaled units with the published numbers beside ours
(:func:`table_scaled`), the same metrics in physical units (:func:`table_physical`), the
joint-histogram fits (:func:`table_fits`), paired t-tests with relative improvements
(:func:`table_tests`) and metrics per label region (:func:`table_regions`). Cells are mean +- SD
over patients (:mod:`RobustDeepLogic.evaluate.statistics`). Rendering to HTML and Markdown is
:mod:`RobustDeepLogic.report.document`'s work.
"""

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
    """One table of the report, rendered to HTML and Markdown by :mod:`RobustDeepLogic.report.document`.

    Attributes
    ----------
    id : str
        HTML element id, e.g. ``'table-ld2fd-scaled'``.
    title : str
        Heading above the table.
    header : list of str
        Column headings.
    rows : list of list of str
        The cells, row by row, already formatted.
    note : str
        A note below the table; empty for none.
    """
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
    """The paper's table form (Tables 2 to 5): scaled units, mean +- SD over patients.

    Columns: n; RMSE, the paper's global SSIM, PSNR (dB), windowed SSIM 3D and 2D; the paper's RMSE,
    SSIM and PSNR for the same scenario (``-`` where it has none). One row per scenario with results.

    Parameters
    ----------
    data : ReportData
        The report's data (:func:`RobustDeepLogic.report.data.load_report_data`).
    task : str
        Task name, e.g. ``'ld2fd'``.

    Returns
    -------
    Table
        Id ``table-<task>-scaled``.

    References
    ----------
    .. [1] docs/method.md §8 and §9 (the metrics; the paper's Tables 2 to 5).
    """
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
    """The metrics in physical units (SUV or HU), mean +- SD over patients.

    Columns: n; RMSE and MAE (3 decimals, 1 for HU), PSNR (dB), global and windowed 3D SSIM, mean
    relative error and mean absolute relative error (%). One row per scenario with results.

    Parameters
    ----------
    data : ReportData
        The report's data (:func:`RobustDeepLogic.report.data.load_report_data`).
    task : str
        Task name, e.g. ``'ld2fd'``.

    Returns
    -------
    Table
        Id ``table-<task>-physical``.
    """
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
    """The joint-histogram fits of each scenario, with the paper's slope and R^2.

    Columns: slope, intercept (scaled units) and R^2 per patient (mean +- SD); slope and R^2 of one fit
    over the head voxels of all patients (from the slices files; ``-`` without them); the paper's slope
    and R^2 where it gives them.

    Parameters
    ----------
    data : ReportData
        The report's data (:func:`RobustDeepLogic.report.data.load_report_data`).
    task : str
        Task name, e.g. ``'ld2fd'``.

    Returns
    -------
    Table
        Id ``table-<task>-fits``.

    References
    ----------
    .. [1] docs/method.md §8 and §9.
    """
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
    """Paired t-tests and relative improvements between pairs of scenarios, in scaled units.

    For each pair (A, B) whose two scenarios have results and each metric of
    :data:`~RobustDeepLogic.report.data.TEST_METRICS`: n, the means, the improvement A -> B (%), the
    paper's improvement (PR -> PM2, RMSE and SSIM only), t, p and whether p < 0.05
    (:func:`RobustDeepLogic.evaluate.statistics.compare`).

    Parameters
    ----------
    data : ReportData
        The report's data (:func:`RobustDeepLogic.report.data.load_report_data`).
    task : str
        Task name, e.g. ``'ld2fd'``.
    pairs : sequence of tuple of str, optional
        ``(A, B)`` scenario pairs; None or empty uses
        :func:`RobustDeepLogic.evaluate.statistics.default_pairs` of the task's scenarios (the
        ``input`` scenario aside).

    Returns
    -------
    Table
        Id ``table-<task>-tests``.

    References
    ----------
    .. [1] docs/method.md §8 (paired t-tests) and §9 (the paper's improvements).
    """
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
    """Metrics per region of the label volume: RMSE (scaled), global SSIM, mean relative error (%).

    Parameters
    ----------
    data : ReportData
        The report's data (:func:`RobustDeepLogic.report.data.load_report_data`).
    task : str
        Task name, e.g. ``'ld2fd'``.

    Returns
    -------
    Table or None
        Id ``table-<task>-regions``; None when the task has no region but the head.
    """
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

"""The report of an evaluation: tables and figures in the paper's form, as HTML and Markdown.

:func:`build_report` reads an evaluation folder (written by :func:`evaluate.evaluate_cases`:
``metrics.csv``, ``metrics.json``, ``slices/``) and, when present, the training stage's per-epoch
validation curves ``history/<task>/<scenario>.csv`` and a run-level ``provenance.json`` (or
``.yaml``); see docs/evaluation.md. It writes ``report.html`` (self-contained: images embedded as
base64 PNG) and ``report.md`` (images in ``report_files/``).

Contents, per task: the paper's Tables 2 to 5 (mean +- SD over patients of RMSE, SSIM, PSNR in the
scaled units, with the published numbers beside ours), the same in physical units (SUV, HU),
joint-histogram fits (slope, R^2), paired t-tests and relative improvements between scenarios; figures
like the paper's Figs. 2 to 9 (reference, input and each scenario's prediction; relative-error maps on
+-10 %; joint histograms with fits), and Fig. 10 (metrics over epochs); then provenance.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from . import evaluate as E
from . import metrics as M
from . import stats as S
from .errors import InputError
from .progress import Progress
from .volumes import PathLike, atomic_write_bytes, atomic_write_text

REPORT_HTML = "report.html"
REPORT_MD = "report.md"
REPORT_FILES = "report_files"
HISTORY_DIR = "history"
#: Order of scenarios in tables and figures; others follow in order of appearance.
SCENARIO_ORDER = ("input", "PU", "PR", "PM1", "PM2")
TASK_ORDER = ("ld2fd", "ldmr2fd", "nac2mac", "mr2ct")
#: Metrics compared with paired t-tests.
TEST_METRICS = ("rmse", "ssim_global", "ssim_3d", "psnr")
HISTORY_METRICS = ("train_loss", "val_rmse", "val_psnr", "val_ssim")


# --------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------
def load_paper_results() -> Dict[str, Any]:
    """The published numbers (resources/paper_results.yaml)."""
    import yaml

    path = Path(__file__).parent / "resources" / "paper_results.yaml"
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def find_evaluation(run: PathLike) -> Tuple[Path, Path]:
    """``(evaluation folder, run folder)``: RUN itself if it holds metrics.csv, else RUN/evaluation."""
    run = Path(run)
    if not run.exists():
        raise InputError("run folder not found", file=run)
    if (run / E.METRICS_CSV).is_file():
        return run, run
    if (run / "evaluation" / E.METRICS_CSV).is_file():
        return run / "evaluation", run
    raise InputError("no metrics.csv in this folder (nor in its evaluation/ subfolder)", file=run,
                     hint="run 'robustdeep evaluate ... --out RUN' first")


def read_history(path: PathLike) -> List[Dict[str, float]]:
    """One validation-history CSV: columns ``epoch`` (required), ``step``, ``train_loss``,
    ``val_rmse``, ``val_psnr``, ``val_ssim`` and any other numeric columns; rows sorted by epoch."""
    path = Path(path)
    text = path.read_text(encoding="utf-8-sig")
    reader = csv.DictReader(io.StringIO(text))
    if "epoch" not in (reader.fieldnames or []):
        raise InputError("a history CSV needs an 'epoch' column", file=path,
                         hint="columns: epoch,step,train_loss,val_rmse,val_psnr,val_ssim")
    rows = []
    for i, raw in enumerate(reader):
        row: Dict[str, float] = {}
        for k, v in raw.items():
            if k is None:
                continue
            try:
                row[k.strip()] = float(v) if v not in (None, "") else float("nan")
            except ValueError:
                raise InputError(f"line {i + 2}: {k} is not a number ({v!r})", file=path) from None
        rows.append(row)
    return sorted(rows, key=lambda r: (r["epoch"], r.get("step", 0.0)))


def load_histories(*folders: Path) -> Dict[str, Dict[str, List[Dict[str, float]]]]:
    """``{task: {scenario: rows}}`` from ``<folder>/history/<task>/<scenario>.csv`` (first folder wins)."""
    out: Dict[str, Dict[str, List[Dict[str, float]]]] = {}
    for folder in folders:
        root = folder / HISTORY_DIR
        if not root.is_dir():
            continue
        for task_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            for f in sorted(task_dir.glob("*.csv")):
                out.setdefault(task_dir.name, {}).setdefault(f.stem, read_history(f))
    return out


def _load_run_provenance(run: Path, eval_dir: Path) -> Dict[str, Any]:
    import yaml

    for folder in dict.fromkeys((run, eval_dir)):
        for name in ("provenance.json", "provenance.yaml", "provenance.yml"):
            p = folder / name
            if p.is_file():
                try:
                    text = p.read_text(encoding="utf-8")
                    data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
                except (ValueError, yaml.YAMLError) as exc:
                    raise InputError(f"cannot read the run provenance ({exc})", file=p) from None
                return {"file": str(p), **(data if isinstance(data, dict) else {"value": data})}
    return {}


def _ordered(names, order) -> List[str]:
    names = list(dict.fromkeys(names))
    return [n for n in order if n in names] + [n for n in names if n not in order]


def final_rows(rows: Sequence[Mapping[str, Any]]) -> List[Mapping[str, Any]]:
    """The rows that stand for each (task, scenario, patient, units, region): the row without an epoch
    if there is one, else the row of the largest epoch."""
    best: Dict[Tuple, Mapping[str, Any]] = {}
    for r in rows:
        key = (r["task"], r["scenario"], r["patient"], r.get("units", "scaled"), r.get("region", "head"))
        ep = r.get("epoch")
        rank = math.inf if ep is None else ep
        old = best.get(key)
        old_rank = None if old is None else (math.inf if old.get("epoch") is None else old["epoch"])
        if old is None or rank > old_rank:
            best[key] = r
    return list(best.values())


@dataclass
class ReportData:
    eval_dir: Path
    run_dir: Path
    rows: List[Mapping[str, Any]]
    final: List[Mapping[str, Any]]
    tasks: List[str]
    history: Dict[str, Dict[str, List[Dict[str, float]]]]
    evaluation: Dict[str, Any]
    run_provenance: Dict[str, Any]
    paper: Dict[str, Any]
    figures: Dict[str, bytes] = field(default_factory=dict)

    def select(self, task: str, scenario: Optional[str] = None, units: str = "scaled",
               region: str = "head", final: bool = True) -> List[Mapping[str, Any]]:
        src = self.final if final else self.rows
        return [r for r in src if r["task"] == task and (scenario is None or r["scenario"] == scenario)
                and r.get("units", "scaled") == units and r.get("region", "head") == region]

    def scenarios(self, task: str) -> List[str]:
        return _ordered((r["scenario"] for r in self.rows if r["task"] == task), SCENARIO_ORDER)


def load_report_data(run: PathLike) -> ReportData:
    eval_dir, run_dir = find_evaluation(run)
    rows = E.read_metrics_csv(eval_dir / E.METRICS_CSV)
    if not rows:
        raise InputError("metrics.csv has no rows", file=eval_dir / E.METRICS_CSV)
    evaluation: Dict[str, Any] = {}
    jpath = eval_dir / E.METRICS_JSON
    if jpath.is_file():
        try:
            evaluation = json.loads(jpath.read_text(encoding="utf-8"))
            evaluation.pop("rows", None)
        except ValueError:
            evaluation = {}
    tasks = _ordered((r["task"] for r in rows), TASK_ORDER)
    return ReportData(
        eval_dir=eval_dir, run_dir=run_dir, rows=rows, final=final_rows(rows), tasks=tasks,
        history=load_histories(eval_dir, run_dir), evaluation=evaluation,
        run_provenance=_load_run_provenance(run_dir, eval_dir), paper=load_paper_results(),
    )


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
    if scenario == E.INPUT_SCENARIO:
        from .tasks import BUILTIN_TASKS

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
        s = {m: S.summarize(r[m] for r in sel) for m in ("rmse", "ssim_global", "psnr", "ssim_3d", "ssim_2d")}
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
        s = {m: S.summarize(r[m] for r in sel) for m in
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


def _pooled_fit(data: ReportData, task: str, scenario: str) -> Optional[M.LinearFit]:
    fits = []
    for r in data.select(task, scenario):
        npz = _slices_path(data, r)
        if npz.is_file():
            fits.append(M.LinearFit(*[float(v) for v in E.load_slices(npz)["fit"]]))
    return M.LinearFit.pooled(fits) if fits else None


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
        rows.append([_scenario_label(data, task, scen), S.summarize(r["slope"] for r in sel).format(3),
                     S.summarize(r["intercept"] for r in sel).format(4),
                     S.summarize(r["r2"] for r in sel).format(3),
                     f"{pooled.slope:.3f}" if pooled else "-", f"{pooled.r2:.3f}" if pooled else "-",
                     f"{pf['slope']:.2f}" if "slope" in pf else "-", f"{pf['r2']:.2f}" if "r2" in pf else "-"])
    return Table(f"table-{task}-fits", f"{_task_label(data, task)}: joint-histogram fits", header, rows,
                 "Least-squares line prediction = slope × reference + intercept over head voxels "
                 "(scaled units); pooled: one fit over the voxels of all patients.")


def table_tests(data: ReportData, task: str, pairs: Optional[Sequence[Tuple[str, str]]]) -> Table:
    paper_task = data.paper.get("tasks", {}).get(task, {})
    scenarios = [s for s in data.scenarios(task) if s != E.INPUT_SCENARIO]
    chosen = list(pairs) if pairs else S.default_pairs(scenarios)
    header = ["A → B", "metric", "n", "mean A", "mean B", "improvement (%)", "paper (%)", "t", "p",
              "p < 0.05"]
    rows = []
    for a, b in chosen:
        ra, rb = data.select(task, a), data.select(task, b)
        if not ra or not rb:
            continue
        for metric in TEST_METRICS:
            test, improvement = S.compare(ra, rb, metric)
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
                         S.summarize(r["rmse"] for r in sel).format(3),
                         S.summarize(r["ssim_global"] for r in sel).format(3),
                         S.summarize(r["mean_rel_error_pct"] for r in sel).format(2)])
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


# --------------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------------
def _slices_path(data: ReportData, row: Mapping[str, Any]) -> Path:
    stem = row["patient"] if row.get("epoch") is None else f"{row['patient']}_epoch{row['epoch']}"
    return (data.eval_dir / "slices" / E._safe(row["task"]) / E._safe(row["scenario"])
            / f"{E._safe(stem)}.npz")


def _case_slices(data: ReportData, task: str, patient: Optional[str]) -> Tuple[Optional[str], Dict[str, Dict]]:
    """``(patient, {scenario: slices})`` of the patient shown in a task's figures."""
    by_patient: Dict[str, Dict[str, Dict]] = {}
    for scen in data.scenarios(task):
        for r in data.select(task, scen):
            p = _slices_path(data, r)
            if p.is_file():
                by_patient.setdefault(r["patient"], {})[scen] = p
    if not by_patient:
        return None, {}
    if patient is None or patient not in by_patient:
        patient = sorted(by_patient, key=lambda k: (-len(by_patient[k]), k))[0]
    return patient, {s: E.load_slices(p) for s, p in by_patient[patient].items()}


def figure_images(data: ReportData, task: str, patient: str, slices: Mapping[str, Dict]):
    """Reference, input and each scenario's prediction (axial and coronal), as the paper's Figs. 2-9."""
    first = next(iter(slices.values()))
    unit = first["meta"].get("unit") or ""
    columns: List[Tuple[str, Dict, str]] = [("reference", first, "reference")]
    with_input = next((s for s in slices.values() if "input_axial" in s), None)
    if with_input is not None:
        columns.append((_scenario_label(data, task, E.INPUT_SCENARIO), with_input, "input"))
    for scen, s in slices.items():
        if scen != E.INPUT_SCENARIO:
            columns.append((scen, s, "prediction"))
    ref_vals = first["reference_axial"][first["mask_axial"] > 0]
    vmin = float(np.percentile(ref_vals, 0.5)) if ref_vals.size else None
    vmax = float(np.percentile(ref_vals, 99.5)) if ref_vals.size else None
    views = ("axial", "coronal")
    fig = E.new_figure(2.1 * len(columns) + 0.8, 2.2 * len(views) + 0.4)
    axes = np.atleast_2d(fig.subplots(len(views), len(columns), squeeze=False))
    artist = None
    for j, (label, s, key) in enumerate(columns):
        for i, view in enumerate(views):
            ax = axes[i, j]
            img = s[f"{key}_{view}"]
            same_unit = key != "input" or _input_in_unit(task)
            kw = {"cmap": "gray_r" if unit == "SUV" else "gray"}
            if same_unit:
                kw.update(vmin=vmin, vmax=vmax)
            a = E.show_slice(ax, img, view, s["spacing"], **kw)
            if key != "input":
                artist = a
            if i == 0:
                ax.set_title(label, fontsize=9)
            if j == 0:
                ax.set_ylabel(view, fontsize=8)
    if artist is not None:
        bar = fig.colorbar(artist, ax=axes.ravel().tolist(), shrink=0.7)
        bar.set_label(unit)
    fig.suptitle(f"{_task_label(data, task)}, patient {patient}", fontsize=10)
    return fig


def _input_in_unit(task: str) -> bool:
    from .cohort import UNITS
    from .tasks import BUILTIN_TASKS

    t = BUILTIN_TASKS.get(task)
    return t is not None and UNITS.get(t.inputs[0]) == UNITS.get(t.target)


def figure_bias_maps(data: ReportData, task: str, patient: str, slices: Mapping[str, Dict]):
    """Relative-error maps of every scenario (rows: views; columns: scenarios) on +-10 %."""
    names = list(slices)
    views = E.VIEWS
    fig = E.new_figure(2.1 * len(names) + 1.0, 2.1 * len(views) + 0.4)
    axes = np.atleast_2d(fig.subplots(len(views), len(names), squeeze=False))
    artist = None
    for j, scen in enumerate(names):
        for i, view in enumerate(views):
            artist = E.draw_bias(axes[i, j], slices[scen], view)
            if i == 0:
                axes[i, j].set_title(_scenario_label(data, task, scen), fontsize=9)
            if j == 0:
                axes[i, j].set_ylabel(view, fontsize=8)
    w = E.BIAS_WINDOW
    bar = fig.colorbar(artist, ax=axes.ravel().tolist(), shrink=0.7)
    bar.set_ticks([-w, 0, w])
    bar.set_ticklabels([f"-{100 * w:.0f} %", "0", f"+{100 * w:.0f} %"])
    bar.set_label("(P - R) / R")
    fig.suptitle(f"{_task_label(data, task)}: relative error, patient {patient}", fontsize=10)
    return fig


def figure_joint_histograms(data: ReportData, task: str):
    """Joint histograms pooled over all patients, one panel per scenario, with the pooled fit."""
    panels = []
    for scen in data.scenarios(task):
        hist, fits, meta = None, [], None
        for r in data.select(task, scen):
            p = _slices_path(data, r)
            if not p.is_file():
                continue
            s = E.load_slices(p)
            hist = s["hist"].astype(np.float64) if hist is None else hist + s["hist"]
            fits.append(M.LinearFit(*[float(v) for v in s["fit"]]))
            meta = s
        if hist is not None:
            panels.append((scen, hist, M.LinearFit.pooled(fits), meta))
    if not panels:
        return None
    fig = E.new_figure(3.3 * len(panels), 3.4)
    axes = np.atleast_1d(fig.subplots(1, len(panels), squeeze=False)[0])
    for ax, (scen, hist, fit, meta) in zip(axes, panels):
        E.draw_joint_histogram(ax, hist, meta["hist_range"], fit, meta["scaling"], meta["meta"].get("unit") or "",
                               _scenario_label(data, task, scen))
        ax.set_title(_scenario_label(data, task, scen), fontsize=9)
    fig.suptitle(f"{_task_label(data, task)}: joint histograms of all patients", fontsize=10)
    return fig


def figure_history(data: ReportData, task: str):
    """Validation metrics per epoch of each scenario (the paper's Fig. 10), from history CSVs."""
    hist = data.history.get(task, {})
    if not hist:
        return None
    names = _ordered(hist, SCENARIO_ORDER)
    metrics = [m for m in HISTORY_METRICS if any(m in r for rows in hist.values() for r in rows)]
    extra = sorted({k for rows in hist.values() for r in rows for k in r
                    if k.startswith("val_") and k not in HISTORY_METRICS})
    metrics += extra
    if not metrics:
        return None
    fig = E.new_figure(3.2 * len(metrics), 3.0)
    axes = np.atleast_1d(fig.subplots(1, len(metrics), squeeze=False)[0])
    for ax, metric in zip(axes, metrics):
        for scen in names:
            rows = [r for r in hist[scen] if metric in r and math.isfinite(r[metric])]
            if rows:
                ax.plot([r["epoch"] for r in rows], [r[metric] for r in rows], marker="o", ms=3, label=scen)
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_title(metric, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    fig.suptitle(f"{_task_label(data, task)}: validation metrics over epochs", fontsize=10)
    return fig


def figure_epochs(data: ReportData, task: str):
    """Test metrics (mean +- SD over patients) of the rows of metrics.csv that name an epoch."""
    rows = [r for r in data.rows if r["task"] == task and r.get("epoch") is not None
            and r.get("units", "scaled") == "scaled" and r.get("region", "head") == "head"]
    if not rows:
        return None
    names = _ordered((r["scenario"] for r in rows), SCENARIO_ORDER)
    metrics = ("rmse", "ssim_global", "psnr")
    fig = E.new_figure(3.2 * len(metrics), 3.0)
    axes = fig.subplots(1, len(metrics))
    for ax, metric in zip(axes, metrics):
        for scen in names:
            epochs = sorted({r["epoch"] for r in rows if r["scenario"] == scen})
            summ = [S.summarize(r[metric] for r in rows if r["scenario"] == scen and r["epoch"] == e)
                    for e in epochs]
            ax.errorbar(epochs, [s.mean for s in summ], yerr=[0 if math.isnan(s.sd) else s.sd for s in summ],
                        marker="o", ms=3, capsize=2, label=scen)
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_title(f"{metric} (test, scaled)", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    fig.suptitle(f"{_task_label(data, task)}: test metrics over epochs (mean ± SD)", fontsize=10)
    return fig


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------
@dataclass
class Section:
    title: str
    tables: List[Table] = field(default_factory=list)
    figures: List[Tuple[str, str, bytes]] = field(default_factory=list)  # (id, caption, png)
    text: str = ""


def _html_table(t: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in t.header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in t.rows)
    note = f"<p class='note'>{html.escape(t.note)}</p>" if t.note else ""
    return (f"<h3>{html.escape(t.title)}</h3><table id='{t.id}'><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>{note}")


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _md_table(t: Table) -> str:
    lines = [f"### {t.title}", "", "| " + " | ".join(_md_escape(h) for h in t.header) + " |",
             "|" + "|".join("---" for _ in t.header) + "|"]
    lines += ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in t.rows]
    if t.note:
        lines += ["", f"*{t.note}*"]
    return "\n".join(lines) + "\n"


_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right; }
th { background: #eee; } td:first-child, th:first-child { text-align: left; }
.note { font-size: 0.85em; color: #555; max-width: 60em; }
figure { margin: 1em 0; } figcaption { font-size: 0.85em; color: #444; }
img { max-width: 100%; } pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 0.8em; }
"""


def _provenance_text(data: ReportData) -> str:
    import yaml

    prov: Dict[str, Any] = {"evaluation folder": str(data.eval_dir)}
    if data.evaluation:
        prov["evaluation"] = {k: data.evaluation.get(k) for k in ("format", "version", "options", "provenance",
                                                                  "config") if k in data.evaluation}
    if data.run_provenance:
        prov["run"] = data.run_provenance
    configs = sorted(p.name for p in data.eval_dir.glob("robustdeep-*.config.yaml"))
    if configs:
        prov["config files"] = configs
    if data.history:
        prov["history"] = {t: sorted(v) for t, v in data.history.items()}
    prov["patients"] = {t: sorted({r["patient"] for r in data.final if r["task"] == t}) for t in data.tasks}
    return yaml.safe_dump(E._plain(prov), sort_keys=False, default_flow_style=False, allow_unicode=True)


def build_sections(data: ReportData, patient: Optional[str] = None,
                   pairs: Optional[Sequence[Tuple[str, str]]] = None,
                   progress: Optional[Progress] = None) -> List[Section]:
    progress = progress or Progress()
    sections = []
    with progress.stage("report", total=len(data.tasks)) as st:
        for task in data.tasks:
            sec = Section(f"{_task_label(data, task)} ({task})")
            sec.tables += [table_scaled(data, task), table_physical(data, task), table_fits(data, task),
                           table_tests(data, task, pairs)]
            regions = table_regions(data, task)
            if regions is not None:
                sec.tables.append(regions)
            shown, slices = _case_slices(data, task, patient)
            if slices:
                sec.figures.append((f"fig-{task}-images", f"Reference, input and predictions of patient {shown} "
                                    "(the paper's Figs. 2-9 form).",
                                    E.figure_png_bytes(figure_images(data, task, shown, slices))))
                sec.figures.append((f"fig-{task}-bias", f"Relative error (P - R) / R of patient {shown}, "
                                    f"colour scale ±{100 * E.BIAS_WINDOW:.0f} %.",
                                    E.figure_png_bytes(figure_bias_maps(data, task, shown, slices))))
            fig = figure_joint_histograms(data, task)
            if fig is not None:
                sec.figures.append((f"fig-{task}-jointhist", "Joint histograms of reference against predicted "
                                    "voxels (all patients, head mask) with the identity and the pooled "
                                    "least-squares line.", E.figure_png_bytes(fig)))
            fig = figure_history(data, task)
            if fig is not None:
                sec.figures.append((f"fig-{task}-history", "Validation metrics after each epoch (the paper's "
                                    "Fig. 10: robustness over epochs).", E.figure_png_bytes(fig)))
            fig = figure_epochs(data, task)
            if fig is not None:
                sec.figures.append((f"fig-{task}-epochs", "Test metrics of per-epoch predictions.",
                                    E.figure_png_bytes(fig)))
            sections.append(sec)
            st.advance(message=task)
    return sections


def build_report(
    run: PathLike,
    out_dir: Optional[PathLike] = None,
    *,
    patient: Optional[str] = None,
    pairs: Optional[Sequence[Tuple[str, str]]] = None,
    title: str = "RobustDeep evaluation report",
    preface: Sequence[Section] = (),
    progress: Optional[Progress] = None,
) -> Dict[str, Path]:
    """Write ``report.html`` and ``report.md`` (+ ``report_files/*.png``) for an evaluation folder.

    Parameters
    ----------
    run:
        A folder with ``metrics.csv`` (or ``evaluation/metrics.csv``).
    out_dir:
        Where the report goes (default: the evaluation folder).
    patient:
        The patient shown in image figures (default: the one with the most scenarios).
    pairs:
        Scenario pairs for t-tests (default: :data:`stats.DEFAULT_PAIRS` that are present).
    preface:
        Sections placed before the per-task ones (e.g. a study's design and headline).
    """
    data = load_report_data(run)
    out = Path(out_dir) if out_dir is not None else data.eval_dir
    out.mkdir(parents=True, exist_ok=True)
    sections = list(preface) + build_sections(data, patient, pairs, progress)
    provenance = _provenance_text(data)
    intro = ("Metrics over the head mask of every test patient; RMSE and PSNR in the scaled [0, 1] units "
             "unless stated. Two SSIMs are reported and labelled: the paper's single global statistic "
             "and the standard windowed SSIM. The paper's numbers (clinical data; "
             f"{data.paper.get('source', '')}) are shown beside ours for reference; our data differ.")
    # HTML
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1><p>{html.escape(intro)}</p>"]
    md = [f"# {title}", "", intro, ""]
    files_dir = out / REPORT_FILES
    for sec in sections:
        parts.append(f"<h2>{html.escape(sec.title)}</h2>")
        md += [f"## {sec.title}", ""]
        if sec.text:
            parts.append(f"<p>{html.escape(sec.text)}</p>")
            md += [sec.text, ""]
        for t in sec.tables:
            parts.append(_html_table(t))
            md.append(_md_table(t))
        for fid, caption, png in sec.figures:
            b64 = base64.b64encode(png).decode("ascii")
            parts.append(f"<figure id='{fid}'><img alt='{html.escape(fid)}' src='data:image/png;base64,{b64}'>"
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
            atomic_write_bytes(files_dir / f"{fid}.png", png)
            md += [f"![{fid}]({REPORT_FILES}/{fid}.png)", "", f"*{caption}*", ""]
    parts.append(f"<h2>Provenance</h2><pre id='provenance'>{html.escape(provenance)}</pre></body></html>")
    md += ["## Provenance", "", "```yaml", provenance.rstrip(), "```", ""]
    html_path = atomic_write_text(out / REPORT_HTML, "\n".join(parts) + "\n")
    md_path = atomic_write_text(out / REPORT_MD, "\n".join(md))
    return {"html": html_path, "markdown": md_path, "files": files_dir}

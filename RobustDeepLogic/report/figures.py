"""The report's figures of one task, drawn from the evaluation's slices files and histories.

Reference, input and predictions of one patient (the paper's Figs. 2-9 form), relative-error maps
of every scenario, joint histograms pooled over patients, validation metrics over epochs (the
paper's Fig. 10) and test metrics of per-epoch predictions. They use the drawing helpers of
:mod:`RobustDeepLogic.evaluate.figures` (Agg canvas, no pyplot state) and return matplotlib
figures; :mod:`RobustDeepLogic.report.document` turns them into PNGs.
"""

from __future__ import annotations

import math
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np

from RobustDeepLogic.cohort.tasks import BUILTIN_TASKS
from RobustDeepLogic.core.modalities import UNITS
from RobustDeepLogic.evaluate.cases import INPUT_SCENARIO
from RobustDeepLogic.evaluate.figures import (
    BIAS_WINDOW,
    VIEWS,
    draw_bias,
    draw_joint_histogram,
    new_figure,
    show_slice,
)
from RobustDeepLogic.evaluate.maps import LinearFit
from RobustDeepLogic.evaluate.slices import load_slices
from RobustDeepLogic.evaluate.statistics import summarize
from RobustDeepLogic.report.data import (
    HISTORY_METRICS,
    SCENARIO_ORDER,
    ReportData,
    _ordered,
    _slices_path,
)
from RobustDeepLogic.report.tables import _scenario_label, _task_label


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
    return patient, {s: load_slices(p) for s, p in by_patient[patient].items()}


def figure_images(data: ReportData, task: str, patient: str, slices: Mapping[str, Dict]):
    """Reference, input and each scenario's prediction (axial and coronal), as the paper's Figs. 2-9.

    Columns: the reference, the input (when a slices file holds it) and each scenario but ``input``;
    rows: axial and coronal slices. The grey scale spans the 0.5th to 99.5th percentile of the
    reference's axial slice inside the mask (inverted for SUV); the input shares it only when the
    task is built in and its first input has the target's unit (LD for FD, NAC for MAC).

    Parameters
    ----------
    data : ReportData
        The report's data (:func:`RobustDeepLogic.report.data.load_report_data`).
    task : str
        Task name, e.g. ``'ld2fd'``.
    patient : str
        The patient shown, named in the title.
    slices : mapping of str to dict
        ``{scenario: slices}`` of that patient, each as
        :func:`RobustDeepLogic.evaluate.slices.load_slices` returns it, in the report's scenario order.

    Returns
    -------
    matplotlib.figure.Figure
        The figure, with a colour bar in the reference's physical unit.
    """
    first = next(iter(slices.values()))
    unit = first["meta"].get("unit") or ""
    columns: List[Tuple[str, Dict, str]] = [("reference", first, "reference")]
    with_input = next((s for s in slices.values() if "input_axial" in s), None)
    if with_input is not None:
        columns.append((_scenario_label(data, task, INPUT_SCENARIO), with_input, "input"))
    for scen, s in slices.items():
        if scen != INPUT_SCENARIO:
            columns.append((scen, s, "prediction"))
    ref_vals = first["reference_axial"][first["mask_axial"] > 0]
    vmin = float(np.percentile(ref_vals, 0.5)) if ref_vals.size else None
    vmax = float(np.percentile(ref_vals, 99.5)) if ref_vals.size else None
    views = ("axial", "coronal")
    fig = new_figure(2.1 * len(columns) + 0.8, 2.2 * len(views) + 0.4)
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
            a = show_slice(ax, img, view, s["spacing"], **kw)
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
    t = BUILTIN_TASKS.get(task)
    return t is not None and UNITS.get(t.inputs[0]) == UNITS.get(t.target)


def figure_bias_maps(data: ReportData, task: str, patient: str, slices: Mapping[str, Dict]):
    """Relative-error maps of every scenario (rows: views; columns: scenarios) on +-10 %.

    Parameters
    ----------
    data : ReportData
        The report's data (:func:`RobustDeepLogic.report.data.load_report_data`).
    task : str
        Task name, e.g. ``'ld2fd'``.
    patient : str
        The patient shown, named in the title.
    slices : mapping of str to dict
        ``{scenario: slices}`` of that patient, each as
        :func:`RobustDeepLogic.evaluate.slices.load_slices` returns it, in the report's scenario order.

    Returns
    -------
    matplotlib.figure.Figure
        The figure; the colour window is :data:`RobustDeepLogic.evaluate.figures.BIAS_WINDOW`.

    References
    ----------
    .. [1] docs/method.md §8 (bias maps in a window of +-10 %).
    """
    names = list(slices)
    views = VIEWS
    fig = new_figure(2.1 * len(names) + 1.0, 2.1 * len(views) + 0.4)
    axes = np.atleast_2d(fig.subplots(len(views), len(names), squeeze=False))
    artist = None
    for j, scen in enumerate(names):
        for i, view in enumerate(views):
            artist = draw_bias(axes[i, j], slices[scen], view)
            if i == 0:
                axes[i, j].set_title(_scenario_label(data, task, scen), fontsize=9)
            if j == 0:
                axes[i, j].set_ylabel(view, fontsize=8)
    w = BIAS_WINDOW
    bar = fig.colorbar(artist, ax=axes.ravel().tolist(), shrink=0.7)
    bar.set_ticks([-w, 0, w])
    bar.set_ticklabels([f"-{100 * w:.0f} %", "0", f"+{100 * w:.0f} %"])
    bar.set_label("(P - R) / R")
    fig.suptitle(f"{_task_label(data, task)}: relative error, patient {patient}", fontsize=10)
    return fig


def figure_joint_histograms(data: ReportData, task: str):
    """Joint histograms pooled over all patients, one panel per scenario, with the pooled fit.

    The patients' histograms and fit sums are added from their slices files (the final rows, scaled
    units, head region).

    Parameters
    ----------
    data : ReportData
        The report's data (:func:`RobustDeepLogic.report.data.load_report_data`).
    task : str
        Task name, e.g. ``'ld2fd'``.

    Returns
    -------
    matplotlib.figure.Figure or None
        The figure; None when no slices file is found.

    References
    ----------
    .. [1] docs/method.md §8 (joint histograms with the linear fit).
    """
    panels = []
    for scen in data.scenarios(task):
        hist, fits, meta = None, [], None
        for r in data.select(task, scen):
            p = _slices_path(data, r)
            if not p.is_file():
                continue
            s = load_slices(p)
            hist = s["hist"].astype(np.float64) if hist is None else hist + s["hist"]
            fits.append(LinearFit(*[float(v) for v in s["fit"]]))
            meta = s
        if hist is not None:
            panels.append((scen, hist, LinearFit.pooled(fits), meta))
    if not panels:
        return None
    fig = new_figure(3.3 * len(panels), 3.4)
    axes = np.atleast_1d(fig.subplots(1, len(panels), squeeze=False)[0])
    for ax, (scen, hist, fit, meta) in zip(axes, panels):
        draw_joint_histogram(ax, hist, meta["hist_range"], fit, meta["scaling"], meta["meta"].get("unit") or "",
                               _scenario_label(data, task, scen))
        ax.set_title(_scenario_label(data, task, scen), fontsize=9)
    fig.suptitle(f"{_task_label(data, task)}: joint histograms of all patients", fontsize=10)
    return fig


def figure_history(data: ReportData, task: str):
    """Validation metrics per epoch of each scenario (the paper's Fig. 10), from history CSVs.

    One panel per metric of :data:`~RobustDeepLogic.report.data.HISTORY_METRICS` present, then any
    other ``val_*`` column; one line per scenario.

    Parameters
    ----------
    data : ReportData
        The report's data (:func:`RobustDeepLogic.report.data.load_report_data`).
    task : str
        Task name, e.g. ``'ld2fd'``.

    Returns
    -------
    matplotlib.figure.Figure or None
        The figure; None when the task has no history or no metric to draw.

    References
    ----------
    .. [1] docs/method.md §8 (robustness: the metrics after each epoch).
    """
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
    fig = new_figure(3.2 * len(metrics), 3.0)
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
    """Test metrics (mean +- SD over patients) of the rows of metrics.csv that name an epoch.

    RMSE, global SSIM and PSNR in scaled units over the head, one line per scenario.

    Parameters
    ----------
    data : ReportData
        The report's data (:func:`RobustDeepLogic.report.data.load_report_data`).
    task : str
        Task name, e.g. ``'ld2fd'``.

    Returns
    -------
    matplotlib.figure.Figure or None
        The figure; None when no row of the task names an epoch.
    """
    rows = [r for r in data.rows if r["task"] == task and r.get("epoch") is not None
            and r.get("units", "scaled") == "scaled" and r.get("region", "head") == "head"]
    if not rows:
        return None
    names = _ordered((r["scenario"] for r in rows), SCENARIO_ORDER)
    metrics = ("rmse", "ssim_global", "psnr")
    fig = new_figure(3.2 * len(metrics), 3.0)
    axes = fig.subplots(1, len(metrics))
    for ax, metric in zip(axes, metrics):
        for scen in names:
            epochs = sorted({r["epoch"] for r in rows if r["scenario"] == scen})
            summ = [summarize(r[metric] for r in rows if r["scenario"] == scen and r["epoch"] == e)
                    for e in epochs]
            ax.errorbar(epochs, [s.mean for s in summ], yerr=[0 if math.isnan(s.sd) else s.sd for s in summ],
                        marker="o", ms=3, capsize=2, label=scen)
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_title(f"{metric} (test, scaled)", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    fig.suptitle(f"{_task_label(data, task)}: test metrics over epochs (mean ± SD)", fontsize=10)
    return fig

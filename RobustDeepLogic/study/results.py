"""The study's results: the evaluation of every arm, the training histories, the headline tables.

:func:`evaluate_study` scores every test prediction against the untouched native reference
(docs/method.md §8); :func:`write_histories` writes each arm's metrics over epochs (means over
folds). :func:`headline_rows`, :func:`improvement_rows` and :func:`preface_sections` build the
study's own sections of the report (design, reductions, arms trained, headline), which
:func:`RobustDeepLogic.report.document.build_report` puts before its per-task sections;
:func:`headline_markdown` is the headline that ``robustdeep demo`` prints.

The metrics themselves are in :mod:`RobustDeepLogic.evaluate`, the report in
:mod:`RobustDeepLogic.report`; :mod:`RobustDeepLogic.study.stages` calls these functions.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence

from RobustDeepLogic.cohort.tasks import get_task
from RobustDeepLogic.core.files import atomic_path
from RobustDeepLogic.core.progress import Progress
from RobustDeepLogic.evaluate.cases import METRICS_CSV, Case, EvaluationOptions
from RobustDeepLogic.evaluate.evaluation import evaluate_cases
from RobustDeepLogic.evaluate.results import read_metrics_csv
from RobustDeepLogic.evaluate.statistics import Summary, compare, summarize
from RobustDeepLogic.report.data import final_rows, load_paper_results
from RobustDeepLogic.report.document import Section, markdown_table
from RobustDeepLogic.report.tables import Table
from RobustDeepLogic.study.folder import Study, prediction_path, task_arms
from RobustDeepLogic.study.profiles import (
    ABLATION_ARMS,
    COMPUTE_ARMS,
    MAIN_ARMS,
    _show,
    reductions,
)
from RobustDeepLogic.training.fold_subjects import read_fold_subjects
from RobustDeepLogic.training.runs import read_history

#: File name of the headline tables (Markdown), in the study's evaluation folder.
HEADLINE_MD = "headline.md"


def _fold_mean_history(run_dir: Path) -> List[Dict[str, Any]]:
    """Per-epoch means over folds of a run's history (the report's metrics-over-epochs figure)."""
    by_epoch: Dict[int, List[Dict[str, Any]]] = {}
    for r in read_history(run_dir):
        by_epoch.setdefault(int(r["epoch"]), []).append(r)
    rows = []
    for epoch in sorted(by_epoch):
        group = by_epoch[epoch]
        row: Dict[str, Any] = {"epoch": epoch}
        for key in ("step", "train_loss", "val_rmse", "val_psnr", "val_ssim"):
            vals = [float(r[key]) for r in group if r.get(key) is not None and math.isfinite(float(r[key]))]
            row[key] = sum(vals) / len(vals) if vals else None
        rows.append(row)
    return rows


def write_histories(study: Study, eval_dir: Path) -> None:
    """Write every trained arm's metrics over epochs, as means over its folds.

    One CSV per task and arm, ``eval_dir/history/<task>/<arm>.csv``, with the columns ``epoch``,
    ``step``, ``train_loss``, ``val_rmse``, ``val_psnr``, ``val_ssim``: each the mean over the folds
    of ``runs/<task>/<arm>/history.csv`` (non-finite values left out; an empty cell when none is
    left). Arms without a history are skipped. The report draws its metrics-over-epochs figure
    from these files.

    Parameters
    ----------
    study : Study
        The study (its folder and the arms of each task).
    eval_dir : Path
        The study's evaluation folder.
    """
    for task, arms in task_arms(study).items():
        for arm in arms:
            rows = _fold_mean_history(study.root / "runs" / task / arm.name)
            if not rows:
                continue
            path = eval_dir / "history" / task / f"{arm.name}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
                w = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
                w.writeheader()
                w.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)


# --------------------------------------------------------------------------------------------------
# Report pieces
# --------------------------------------------------------------------------------------------------
def _final_scaled_head(rows: Sequence[Mapping[str, Any]]) -> List[Mapping[str, Any]]:
    return [r for r in final_rows(rows) if r.get("units") == "scaled" and r.get("region", "head") == "head"]


def headline_rows(rows: Sequence[Mapping[str, Any]], tasks: Sequence[str]) -> List[List[str]]:
    """Per task and arm (and the input): mean RMSE, global SSIM, PSNR over test patients, scaled.

    Parameters
    ----------
    rows : sequence of mapping
        Metric rows of ``metrics.csv``
        (:func:`~RobustDeepLogic.evaluate.results.read_metrics_csv`). Only the final row of each
        case is used (the row without an epoch, else the last epoch), in scaled units over the head.
    tasks : sequence of str
        The tasks, in the order of the table.

    Returns
    -------
    list of list of str
        One row ``[task, arm, n, RMSE, SSIM (global), PSNR]`` per task and arm that has results:
        ``n`` test patients, each metric as mean ± SD over them (RMSE in scaled [0, 1] units,
        PSNR in dB, SSIM the paper's global statistic; docs/method.md §8). Arms come in the order
        ``input`` (the network's input scored as it is), the main, ablation and compute arms.
    """
    final = _final_scaled_head(rows)
    out = []
    for task in tasks:
        for scen in ("input",) + MAIN_ARMS + ABLATION_ARMS + COMPUTE_ARMS:
            sel = [r for r in final if r["task"] == task and r["scenario"] == scen]
            if not sel:
                continue
            s = {m: summarize(r[m] for r in sel) for m in ("rmse", "ssim_global", "psnr")}
            out.append([task, scen, str(s["rmse"].n), s["rmse"].format(4), s["ssim_global"].format(3),
                        s["psnr"].format(2)])
    return out


def improvement_rows(rows: Sequence[Mapping[str, Any]], tasks: Sequence[str]) -> List[List[str]]:
    """PR -> PM2 relative improvement of RMSE and global SSIM per task, ours and the paper's.

    Parameters
    ----------
    rows : sequence of mapping
        Metric rows of ``metrics.csv``; as in :func:`headline_rows`, the final scaled head rows are
        used.
    tasks : sequence of str
        The tasks, in the order of the table.

    Returns
    -------
    list of list of str
        One row per task with both PR and PM2 results: ``[task, RMSE (%), p, paper RMSE (%),
        SSIM (%), p, paper SSIM (%)]``. Improvements are relative, in percent (positive: PM2 is
        better); ``p`` is the paired t-test over the test patients both arms have; the paper's
        figures come from ``RobustDeepLogic/report/resources/paper_results.yaml``
        (docs/method.md §9, the headline). ``-`` where a value is missing.

    References
    ----------
    .. [1] docs/method.md §8 (paired t-tests) and §9 (the paper's headline improvements).
    """
    paper = load_paper_results().get("tasks", {})
    final = _final_scaled_head(rows)
    out = []
    for task in tasks:
        a = [r for r in final if r["task"] == task and r["scenario"] == "PR"]
        b = [r for r in final if r["task"] == task and r["scenario"] == "PM2"]
        if not a or not b:
            continue
        cells = [task]
        for metric, key in (("rmse", "rmse"), ("ssim_global", "ssim")):
            test, imp = compare(a, b, metric)
            ref = paper.get(task, {}).get("improvement_PR_PM2", {}).get(key)
            cells += [f"{imp:.1f}", f"{test.p:.3g}" if math.isfinite(test.p) else "-",
                      "-" if ref is None else f"{ref:.0f}"]
        out.append(cells)
    return out


def _training_table(study: Study):
    rows = []
    for task, arms in task_arms(study).items():
        for arm in arms:
            t = study.trained.get(f"{task}/{arm.name}", {})
            rows.append([task, arm.name, arm.description, str(t.get("real", "-")), str(t.get("synthetic", "-")),
                         str(t.get("steps", "-")), str(t.get("epochs", "-")), str(t.get("seconds", "-")),
                         _spread(t, "val_rmse"), _spread(t, "val_ssim")])
    return Table("table-study-training", "Arms trained: subjects per fold, optimizer steps, time, "
                 "validation metrics over folds",
                 ["task", "arm", "what it trains on", "real / fold", "synthetic / fold", "steps / fold",
                  "epochs", "seconds / fold", "val RMSE (folds)", "val SSIM (folds)"], rows,
                 "PU, PR, PM1 and PM2 are the paper's scenarios, trained by epochs as in the paper (so PM "
                 "arms take more optimizer steps). PR-naive / PR-mixup / PR-cutmix: the augmentation "
                 "ablation. PM2-steps: PM2's data at PR's number of steps (equal compute). Validation "
                 "metrics: each fold's best epoch on its own validation patients (scaled units, head "
                 "mask), mean ± SD over the trained folds.")


def preface_sections(study: Study, rows: Sequence[Mapping[str, Any]]):
    """The study's own sections of the report: design, reductions, arms, headline.

    Parameters
    ----------
    study : Study
        The study: profile, cohort, split, seed and the arms trained.
    rows : sequence of mapping
        Metric rows of ``metrics.csv``.

    Returns
    -------
    list of Section
        Two :class:`~RobustDeepLogic.report.document.Section` objects: ``Study design`` (text, the
        profile's reductions against ``paper`` when there are any, the arms trained) and
        ``Headline`` (:func:`headline_rows`, and :func:`improvement_rows` when there are any).
    """
    p = study.profile
    design = Section("Study design")
    test = ", ".join(study.split.get("test", []))
    folds = study.split.get("folds", [])
    design.text = (
        f"Profile '{p.name}' ({p.notes}). Cohort: {study.cohort}. {len(study.split.get('test', []))} "
        f"held-out test patients ({test}); {sum(len(f) for f in folds)} development patients in "
        f"{len(folds)} patient-level folds; folds trained: {_show(p.train_folds)}. Synthetic subjects "
        f"come only from the training patients of the fold they are used in. Every arm is evaluated "
        f"on the test patients in their native PET/CT frame, in SUV / HU, against the untouched "
        f"reference: PR and PM predictions are mapped back through the inverse registration. Seed "
        f"{study.seed}. Nothing here is tuned toward the paper's numbers, which come from clinical data.")
    red = reductions(p)
    if red:
        design.tables.append(Table("table-study-reductions", f"What the '{p.name}' profile reduces against "
                                   "the paper's design", ["setting", p.name, "paper"],
                                   [list(r) for r in red]))
    design.tables.append(_training_table(study))
    head = Section("Headline")
    head.tables.append(Table("table-study-headline", "Test metrics per task and arm (scaled units, head mask)",
                             ["task", "arm", "n", "RMSE", "SSIM (global)", "PSNR (dB)"],
                             headline_rows(rows, study.tasks)))
    imp = improvement_rows(rows, study.tasks)
    if imp:
        head.tables.append(Table("table-study-improvement", "PR -> PM2: relative improvement (%), as in the "
                                 "paper's abstract", ["task", "RMSE (%)", "p", "paper RMSE (%)",
                                                      "SSIM (%)", "p", "paper SSIM (%)"], imp,
                                 "Positive = PM2 better. p: paired t-test over test patients."))
    return [design, head]


def headline_markdown(study: Study, rows: Sequence[Mapping[str, Any]]) -> str:
    """The headline tables as Markdown (printed by ``robustdeep demo``).

    Parameters
    ----------
    study : Study
        The study.
    rows : sequence of mapping
        Metric rows of ``metrics.csv``.

    Returns
    -------
    str
        The tables of the ``Headline`` section of :func:`preface_sections`, as Markdown.
    """
    _, head = preface_sections(study, rows)
    return "\n".join(markdown_table(t) for t in head.tables)


def _subject_counts(run_dir: Path, folds: Sequence[int]) -> Dict[str, Any]:
    """Real and synthetic subjects the ``folds`` trained on (``fold<k>/subjects.json``), per fold.

    One number when every fold trained on as many, ``"min-max"`` otherwise (the report's training
    table).
    """
    records = [r for r in (read_fold_subjects(run_dir, f) for f in folds) if r]
    out: Dict[str, Any] = {}
    for key in ("real", "synthetic"):
        counts = sorted({len(r[key]) for r in records})
        if counts:
            out[key] = counts[0] if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    return out


def _run_figures(run_dir: Path, folds: Sequence[int]) -> Dict[str, Any]:
    """Optimizer steps, epochs and training seconds of a run, per fold (means over ``folds``)."""
    rows = [r for r in read_history(run_dir) if r.get("fold") in set(folds)]
    per_fold = [[r for r in rows if r["fold"] == f] for f in folds]
    per_fold = [g for g in per_fold if g]
    if not per_fold:
        return {}
    n = len(per_fold)
    out = {"steps": int(round(sum(max(int(r["step"]) for r in g) for g in per_fold) / n)),
           "epochs": max(int(r["epoch"]) for g in per_fold for r in g),
           "seconds": round(sum(sum(float(r.get("seconds") or 0.0) for r in g) for g in per_fold) / n, 1),
           "folds": n}
    # the validation metrics of each fold's best epoch (the checkpoint that predicts): their spread
    # over folds says how much the result depends on which patients a fold trained on
    best = [min((r for r in g if _finite(r.get("val_rmse"))), key=lambda r: float(r["val_rmse"]), default=None)
            for g in per_fold]
    best = [r for r in best if r is not None]
    for key in ("val_rmse", "val_ssim"):
        summary = summarize(float(r[key]) for r in best if _finite(r.get(key)))
        if summary.n:
            out[key] = round(summary.mean, 5)
            out[f"{key}_sd"] = round(summary.sd, 5) if summary.n > 1 else 0.0
    return out


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _spread(t: Mapping[str, Any], key: str) -> str:
    """``mean ± SD`` of a validation metric over the trained folds, for the training table."""
    if key not in t:
        return "-"
    return Summary(t[key], t.get(key + "_sd", 0.0), t.get("folds", 1)).format(4)


def evaluate_study(study: Study, source, native, eval_dir: Path, *, progress: Progress) -> Dict[str, Any]:
    """Evaluate every prediction against the native reference (kept when nothing is newer).

    One case per task, arm and test patient: the prediction at
    :func:`~RobustDeepLogic.study.folder.prediction_path` against the target of ``source`` (native
    space, SUV / HU), with the task's first input from the PU cohort for the input row and the
    figures (docs/method.md §8). When ``metrics.csv`` is newer than every prediction and holds every case,
    it is kept as it is.

    Parameters
    ----------
    study : Study
        The study: tasks, arms, test patients, profile (``eval_pngs``).
    source : Cohort
        The native-space cohort: the references and their scaling constants.
    native : Cohort
        The PU cohort: the inputs, on the native grids.
    eval_dir : Path
        The evaluation folder.
    progress : Progress
        Progress sink.

    Returns
    -------
    dict
        What :func:`~RobustDeepLogic.evaluate.evaluation.evaluate_cases` returns (``rows``,
        ``files``, ``csv``, ``json``), or only ``{"csv": path}`` when the existing evaluation was
        kept.

    Raises
    ------
    InputError
        From the evaluation: a missing or unreadable volume, a prediction off the reference's grid.
    """
    cases = []
    for task, arms in task_arms(study).items():
        t = get_task(task)
        for arm in arms:
            for pid in study.split["test"]:
                cases.append(Case(task=task, scenario=arm.name, patient=pid,
                                  reference=source.path(pid, t.target),
                                  prediction=prediction_path(study.root, task, arm.name, pid),
                                  input=native.path(pid, t.inputs[0]), modality=t.target,
                                  input_modality=t.inputs[0]))
    csv_path = eval_dir / METRICS_CSV
    if csv_path.is_file():
        newest = max(c.prediction.stat().st_mtime for c in cases)
        have = {(r["task"], r["scenario"], r["patient"]) for r in read_metrics_csv(csv_path)}
        if csv_path.stat().st_mtime >= newest and all((c.task, c.scenario, c.patient) in have for c in cases):
            return {"csv": csv_path}
    options = EvaluationOptions(pngs=study.profile.eval_pngs)
    return evaluate_cases(cases, eval_dir, scaling=dict(source.scaling), options=options, cohort=source,
                          progress=progress, config={"study": str(study.root), "profile": study.profile.name})

"""What the report reads: an evaluation folder, validation histories, provenance, the paper's numbers.

:func:`load_report_data` gathers, in a :class:`ReportData`, the rows of ``metrics.csv`` (and the
row that stands for each case, :func:`final_rows`), ``metrics.json`` without its rows, the
per-epoch validation histories, a run-level provenance file and the paper's published numbers
(docs/method.md §9). The module also names the report's files and the order of tasks and
scenarios. The tables are made in :mod:`RobustDeepLogic.report.tables`, the figures in
:mod:`RobustDeepLogic.report.figures`, the document in :mod:`RobustDeepLogic.report.document`.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import yaml

from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.files import safe_name
from RobustDeepLogic.core.types import PathLike
from RobustDeepLogic.evaluate.cases import METRICS_CSV, METRICS_JSON
from RobustDeepLogic.evaluate.results import read_metrics_csv

#: File names of the report: the HTML page, the Markdown page and the folder of its PNGs.
REPORT_HTML = "report.html"

REPORT_MD = "report.md"

REPORT_FILES = "report_files"

#: Folder of the validation histories, ``history/<task>/<scenario>.csv``.
HISTORY_DIR = "history"

#: Order of scenarios in tables and figures; others follow in order of appearance.
SCENARIO_ORDER = ("input", "PU", "PR", "PM1", "PM2")

#: Order of tasks; others follow in order of appearance.
TASK_ORDER = ("ld2fd", "ldmr2fd", "nac2mac", "mr2ct")

#: Metrics compared with paired t-tests.
TEST_METRICS = ("rmse", "ssim_global", "ssim_3d", "psnr")

#: History columns drawn over epochs (extra ``val_*`` columns follow).
HISTORY_METRICS = ("train_loss", "val_rmse", "val_psnr", "val_ssim")


# --------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------
def load_paper_results() -> Dict[str, Any]:
    """The published numbers (``RobustDeepLogic/report/resources/paper_results.yaml``).

    Returns
    -------
    dict
        ``source``, ``units`` (``'scaled'``), ``ssim`` (``'global'``) and ``tasks``: per task key
        (``ld2fd`` ...) a ``label``, the paper's ``table`` number, ``scenarios`` (``{scenario: {rmse,
        ssim, psnr: [mean, sd]}}``), ``fits`` (``{scenario: {slope, r2}}``) and
        ``improvement_PR_PM2`` (``{rmse, ssim}`` in %).

    References
    ----------
    .. [1] docs/method.md §9.
    """
    path = Path(__file__).parent / "resources" / "paper_results.yaml"
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def find_evaluation(run: PathLike) -> Tuple[Path, Path]:
    """``(evaluation folder, run folder)``: RUN itself if it holds metrics.csv, else RUN/evaluation.

    Parameters
    ----------
    run : str or os.PathLike
        An evaluation folder, or a run folder with an ``evaluation/`` subfolder.

    Returns
    -------
    tuple of pathlib.Path
        ``(RUN, RUN)`` or ``(RUN/evaluation, RUN)``.

    Raises
    ------
    InputError
        If ``run`` does not exist or neither folder holds ``metrics.csv``.
    """
    run = Path(run)
    if not run.exists():
        raise InputError("run folder not found", file=run)
    if (run / METRICS_CSV).is_file():
        return run, run
    if (run / "evaluation" / METRICS_CSV).is_file():
        return run / "evaluation", run
    raise InputError("no metrics.csv in this folder (nor in its evaluation/ subfolder)", file=run,
                     hint="run 'robustdeep evaluate ... --out RUN' first")


def read_history(path: PathLike) -> List[Dict[str, float]]:
    """Read one validation-history CSV, rows sorted by epoch (then step).

    Columns: ``epoch`` (required), ``step``, ``train_loss``, ``val_rmse``, ``val_psnr``, ``val_ssim``
    and any other numeric columns; an empty cell reads as NaN.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file, e.g. ``history/<task>/<scenario>.csv``.

    Returns
    -------
    list of dict of str to float
        One dict per row, keyed by column name.

    Raises
    ------
    InputError
        If there is no ``epoch`` column or a cell is not a number.
    FileNotFoundError
        If the file does not exist.
    """
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
    """``{task: {scenario: rows}}`` from ``<folder>/history/<task>/<scenario>.csv`` (first folder wins).

    Parameters
    ----------
    *folders : pathlib.Path
        The folders to look in, in order of preference; those without ``history/`` are skipped.

    Returns
    -------
    dict
        ``{task: {scenario: rows}}``, the rows as :func:`read_history` returns them; empty when there
        is no history.

    Raises
    ------
    InputError
        If a history file is invalid (see :func:`read_history`).
    """
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
    """The rows that stand for each (task, scenario, patient, units, region).

    That is the row without an epoch if there is one, else the row of the largest epoch.

    Parameters
    ----------
    rows : sequence of mapping
        Rows of ``metrics.csv`` (:func:`RobustDeepLogic.evaluate.results.read_metrics_csv`); rows
        without ``units`` or ``region`` count as ``'scaled'`` and ``'head'``.

    Returns
    -------
    list of mapping
        One row per (task, scenario, patient, units, region), in order of first appearance.
    """
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
    """Everything a report is made from, as :func:`load_report_data` reads it.

    Attributes
    ----------
    eval_dir : pathlib.Path
        The evaluation folder (holding ``metrics.csv``).
    run_dir : pathlib.Path
        The run folder: ``eval_dir`` itself or its parent.
    rows : list of mapping
        All rows of ``metrics.csv``, per-epoch rows included.
    final : list of mapping
        The rows that stand for each case (:func:`final_rows`).
    tasks : list of str
        The tasks present, in :data:`TASK_ORDER` and then in order of appearance.
    history : dict
        ``{task: {scenario: rows}}`` of the validation histories (:func:`load_histories`).
    evaluation : dict
        ``metrics.json`` without its rows (format, version, options, provenance, config, files);
        empty when it is missing or unreadable.
    run_provenance : dict
        The run-level ``provenance.json`` (or ``.yaml``, ``.yml``) with its path under ``file``;
        empty when there is none.
    paper : dict
        The published numbers (:func:`load_paper_results`).
    figures : dict of str to bytes
        PNG bytes by name; empty by default and not used by the report itself.
    """
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
        """The rows of a task (and scenario) in one unit set and region.

        Parameters
        ----------
        task : str
            Task name.
        scenario : str, optional
            Scenario name; None keeps every scenario.
        units : {'scaled', 'physical'}, optional
            Unit set of the rows (default ``'scaled'``).
        region : str, optional
            Region of the rows (default ``'head'``; ``'label_<k>'`` for a label).
        final : bool, optional
            True (default) selects from :attr:`final`, False from all :attr:`rows` (per-epoch rows too).

        Returns
        -------
        list of mapping
            The matching rows.
        """
        src = self.final if final else self.rows
        return [r for r in src if r["task"] == task and (scenario is None or r["scenario"] == scenario)
                and r.get("units", "scaled") == units and r.get("region", "head") == region]

    def scenarios(self, task: str) -> List[str]:
        """The scenarios of a task: those of :data:`SCENARIO_ORDER` first, then the others as they appear.

        Parameters
        ----------
        task : str
            Task name.

        Returns
        -------
        list of str
            Scenario names present in the task's rows.
        """
        return _ordered((r["scenario"] for r in self.rows if r["task"] == task), SCENARIO_ORDER)


def load_report_data(run: PathLike) -> ReportData:
    """Read everything a report needs from an evaluation or run folder.

    Parameters
    ----------
    run : str or os.PathLike
        An evaluation folder, or a run folder with an ``evaluation/`` subfolder
        (:func:`find_evaluation`). Histories are looked for in the evaluation folder first, then in
        the run folder; the provenance file in the run folder first.

    Returns
    -------
    ReportData
        The rows, the final rows, the tasks, histories, ``metrics.json``, provenance and the paper's
        numbers.

    Raises
    ------
    InputError
        If no ``metrics.csv`` is found, it is not a metrics table or has no rows, a history file is
        invalid, or the provenance file cannot be read.
    """
    eval_dir, run_dir = find_evaluation(run)
    rows = read_metrics_csv(eval_dir / METRICS_CSV)
    if not rows:
        raise InputError("metrics.csv has no rows", file=eval_dir / METRICS_CSV)
    evaluation: Dict[str, Any] = {}
    jpath = eval_dir / METRICS_JSON
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
# Figures
# --------------------------------------------------------------------------------------------------
def _slices_path(data: ReportData, row: Mapping[str, Any]) -> Path:
    stem = row["patient"] if row.get("epoch") is None else f"{row['patient']}_epoch{row['epoch']}"
    return (data.eval_dir / "slices" / safe_name(row["task"]) / safe_name(row["scenario"])
            / f"{safe_name(stem)}.npz")

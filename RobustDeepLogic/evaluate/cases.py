"""What an evaluation evaluates: cases, the options, and the names of its output files.

A :class:`Case` is one prediction (task, scenario, patient, epoch) with the paths of its reference
and, optionally, its input, head mask and label volume. Cases come from a case table
(:func:`load_cases`) or from a predictions folder and a cohort (:func:`cases_from_predictions`).
:class:`EvaluationOptions` holds the settings of an evaluation; the constants name the output files
and the columns of ``metrics.csv`` (docs/evaluation.md). Evaluating the cases is
:mod:`RobustDeepLogic.evaluate.evaluation`'s work; writing and reading ``metrics.csv`` is
:mod:`RobustDeepLogic.evaluate.results`'.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence, Tuple, Union

import yaml

from RobustDeepLogic.cohort.manifest import Cohort
from RobustDeepLogic.cohort.tasks import BUILTIN_TASKS
from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.files import (
    strip_volume_suffix,
    volume_suffix,
)
from RobustDeepLogic.core.modalities import normalise_modality
from RobustDeepLogic.core.types import PathLike
from RobustDeepLogic.evaluate.maps import (
    RELATIVE_ERROR_FLOOR,
)
from RobustDeepLogic.io.headmask import HEAD_CLOSING, HEAD_THRESHOLD

#: ``format`` of metrics.json.
EVALUATION_FORMAT = "robustdeep-evaluation"

#: ``version`` of metrics.json.
EVALUATION_VERSION = 1

#: File names of the metrics table and of its JSON form, in the evaluation folder.
METRICS_CSV = "metrics.csv"

METRICS_JSON = "metrics.json"

#: Scenario name of rows that evaluate the network input itself against the reference.
INPUT_SCENARIO = "input"

#: Columns of metrics.csv, in order (docs/evaluation.md).
CSV_COLUMNS: Tuple[str, ...] = (
    "task", "scenario", "patient", "epoch", "units", "unit", "modality", "region", "n_voxels",
    "rmse", "mae", "psnr", "psnr_max", "ssim_global", "ssim_3d", "ssim_2d", "ssim_data_range",
    "slope", "intercept", "r2", "mean_reference", "mean_prediction",
    "mean_rel_error_pct", "mean_abs_rel_error_pct", "mask_source", "reference", "prediction", "input",
)

#: Columns a case table (CSV or YAML) may have; the first five are required.
CASE_COLUMNS: Tuple[str, ...] = (
    "task", "scenario", "patient", "reference", "prediction",
    "input", "epoch", "mask", "labels", "modality", "input_modality",
)


@dataclass
class Case:
    """One prediction to evaluate. Paths are absolute or relative to the current folder.

    Attributes
    ----------
    task : str
        Task name, e.g. ``'ld2fd'`` (a built-in task or any other name).
    scenario : str
        Scenario name, e.g. ``'PR'`` or ``'PM2'`` (``'input'`` for the input itself).
    patient : str
        Patient id.
    reference : pathlib.Path
        The reference volume (the task's target), in physical units (SUV, HU) or scaled units as
        :attr:`EvaluationOptions.units` says.
    prediction : pathlib.Path
        The predicted volume, on the reference's grid and in the reference's units.
    input : pathlib.Path, optional
        The network input volume (for a task with several inputs, its first input modality), on the
        reference's grid; None if not given.
    epoch : int, optional
        The training epoch of a per-epoch prediction; None for the final prediction.
    mask : pathlib.Path, optional
        A head-mask volume (voxels > 0) on the reference's grid; None computes the default head mask
        from the reference (:func:`RobustDeepLogic.io.headmask.head_mask`).
    labels : pathlib.Path, optional
        An integer label volume on the reference's grid; each non-zero label adds a region.
    modality : str, optional
        The reference's modality (``'FD'``, ``'MAC'``, ``'CT'`` ...), which selects its scaling
        constant.
    input_modality : str, optional
        The input's modality, e.g. ``'LD'``.
    """

    task: str
    scenario: str
    patient: str
    reference: Path
    prediction: Path
    input: Optional[Path] = None
    epoch: Optional[int] = None
    mask: Optional[Path] = None
    labels: Optional[Path] = None
    modality: Optional[str] = None
    input_modality: Optional[str] = None

    @property
    def stem(self) -> str:
        """File-name stem of the case's outputs: the patient id, with ``_epoch<k>`` for an epoch."""
        return self.patient if self.epoch is None else f"{self.patient}_epoch{self.epoch}"


@dataclass
class EvaluationOptions:
    """Settings of an evaluation (all documented in docs/evaluation.md).

    Attributes
    ----------
    units : {'physical', 'scaled'}
        What the volume files hold: ``'physical'`` (SUV, HU: the default) or ``'scaled'`` (the [0, 1]
        units of the scaling constants).
    mask_threshold : float
        Threshold of the default head mask in scaled units (default
        :data:`~RobustDeepLogic.io.headmask.HEAD_THRESHOLD`; see
        :func:`RobustDeepLogic.io.headmask.head_mask`).
    mask_closing : int
        Radius in voxels of the closing of the default head mask (default 2; 0: none).
    relative_floor : float
        Positive floor on the scaled reference of relative-error maps (default
        :data:`~RobustDeepLogic.evaluate.maps.RELATIVE_ERROR_FLOOR`).
    ssim_data_range : str or float
        D of the windowed SSIM: ``'nominal'`` (D = 1 in scaled units, D = the scaling constant in
        physical units; the default, the same for every patient), ``'reference'`` (the scaled
        reference's range over the head mask), or a positive number in scaled units.
    input_metrics : {'auto', 'always', 'never'}
        Whether the input itself is evaluated as scenario ``'input'``: ``'auto'`` (default: when the
        input has the reference's physical unit, SUV or HU), ``'always'`` or ``'never'``.
    maps : bool
        Write the relative- and absolute-error volumes (default True).
    pngs : bool
        Write the PNG figures of each case (default True).
    hist_bins : int
        Number of joint-histogram bins along each axis (default 128; at least 2).
    hist_max : float
        Upper end of the joint-histogram range [0, hist_max], in scaled units (default 1.0).
    """

    units: str = "physical"
    mask_threshold: float = HEAD_THRESHOLD
    mask_closing: int = HEAD_CLOSING
    relative_floor: float = RELATIVE_ERROR_FLOOR
    ssim_data_range: Union[str, float] = "nominal"
    input_metrics: str = "auto"
    maps: bool = True
    pngs: bool = True
    hist_bins: int = 128
    hist_max: float = 1.0

    def check(self) -> None:
        """Check the settings; a numeric string ``ssim_data_range`` is converted to a float in place.

        Raises
        ------
        InputError
            If ``units``, ``input_metrics`` or ``ssim_data_range`` has an unknown value, or
            ``relative_floor``, a numeric ``ssim_data_range``, ``hist_max`` is not positive, or
            ``hist_bins`` is below 2.
        """
        if self.units not in ("physical", "scaled"):
            raise InputError(f"units must be 'physical' or 'scaled', got {self.units!r}")
        if self.input_metrics not in ("auto", "always", "never"):
            raise InputError(f"input_metrics must be auto, always or never, got {self.input_metrics!r}")
        if not self.relative_floor > 0:
            raise InputError(f"relative_floor must be positive, got {self.relative_floor}")
        if isinstance(self.ssim_data_range, str):
            if self.ssim_data_range not in ("nominal", "reference"):
                try:
                    self.ssim_data_range = float(self.ssim_data_range)
                except ValueError:
                    raise InputError(
                        f"ssim_data_range must be 'nominal', 'reference' or a number, got "
                        f"{self.ssim_data_range!r}") from None
        if not isinstance(self.ssim_data_range, str) and not float(self.ssim_data_range) > 0:
            raise InputError(f"ssim_data_range must be positive, got {self.ssim_data_range}")
        if self.hist_bins < 2 or not self.hist_max > 0:
            raise InputError("hist_bins must be >= 2 and hist_max positive")


# --------------------------------------------------------------------------------------------------
# Case tables
# --------------------------------------------------------------------------------------------------
def _task_target(task: str) -> Optional[str]:
    t = BUILTIN_TASKS.get(task)
    return t.target if t is not None else None


def _task_input(task: str) -> Optional[str]:
    t = BUILTIN_TASKS.get(task)
    return t.inputs[0] if t is not None else None


def _case_from_mapping(row: Mapping[str, Any], base: Path, source: Path, line: str) -> Case:
    row = {str(k).strip().lower(): v for k, v in row.items() if k is not None}
    unknown = sorted(set(row) - set(CASE_COLUMNS))
    if unknown:
        raise InputError(f"{line}: unknown column(s) {', '.join(unknown)}", file=source,
                         hint=f"columns are {', '.join(CASE_COLUMNS)}")
    values = {k: (None if v is None or (isinstance(v, str) and not v.strip()) else v) for k, v in row.items()}
    for key in CASE_COLUMNS[:5]:
        if values.get(key) is None:
            raise InputError(f"{line}: missing {key!r}", file=source,
                             hint=f"required columns are {', '.join(CASE_COLUMNS[:5])}")

    def path(key: str) -> Optional[Path]:
        v = values.get(key)
        if v is None:
            return None
        p = Path(str(v).strip())
        return p if p.is_absolute() else base / p

    epoch = values.get("epoch")
    if epoch is not None:
        try:
            epoch = int(float(epoch))
        except (TypeError, ValueError):
            raise InputError(f"{line}: epoch must be an integer, got {epoch!r}", file=source) from None
    task = str(values["task"]).strip()
    modality = values.get("modality") or _task_target(task)
    if modality is None:
        raise InputError(f"{line}: task {task!r} is not built in, so the row needs a 'modality'",
                         file=source, hint="the reference's modality, e.g. FD, MAC or CT")
    input_modality = values.get("input_modality") or _task_input(task)
    return Case(
        task=task,
        scenario=str(values["scenario"]).strip(),
        patient=str(values["patient"]).strip(),
        reference=path("reference"),
        prediction=path("prediction"),
        input=path("input"),
        epoch=epoch,
        mask=path("mask"),
        labels=path("labels"),
        modality=normalise_modality(str(modality), file=source),
        input_modality=None if input_modality is None else normalise_modality(str(input_modality), file=source),
    )


def load_cases(path: PathLike) -> List[Case]:
    """Read a case table: CSV with a header row, or YAML (a list of mappings, or ``{cases: [...]}``).

    Relative paths in the table are relative to the table's folder. Columns: :data:`CASE_COLUMNS`, of
    which ``task``, ``scenario``, ``patient``, ``reference`` and ``prediction`` are required (column
    names are case-insensitive, empty cells count as missing). For a built-in task, ``modality``
    defaults to its target and ``input_modality`` to its first input.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.csv`` or ``.tsv`` file with a header row, or a ``.yaml``, ``.yml`` or ``.json`` file
        (read as YAML).

    Returns
    -------
    list of Case
        One case per row, in the table's order.

    Raises
    ------
    InputError
        If the file is missing, is not valid YAML or not a list of mappings, has another ending, has
        no rows; or if a row has an unknown column, lacks a required one, has an epoch that is not a
        number, an unknown modality, or no ``modality`` for a task that is not built in; or if a
        (task, scenario, patient, epoch) is repeated.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("case table not found", file=path)
    base = path.parent.resolve()
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml", ".json"):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise InputError(f"not valid YAML: {exc}", file=path) from None
        if isinstance(data, dict):
            data = data.get("cases")
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise InputError("a YAML case table is a list of mappings (or a mapping with 'cases')", file=path)
        rows = [(r, f"case {i + 1}") for i, r in enumerate(data)]
    elif suffix in (".csv", ".tsv"):
        text = path.read_text(encoding="utf-8-sig")
        reader = csv.DictReader(io.StringIO(text), delimiter="\t" if suffix == ".tsv" else ",")
        rows = [(r, f"line {i + 2}") for i, r in enumerate(reader)]
    else:
        raise InputError("a case table must be .csv, .tsv, .yaml or .yml", file=path)
    cases = [_case_from_mapping(r, base, path, line) for r, line in rows]
    if not cases:
        raise InputError("the case table has no rows", file=path)
    _check_unique(cases, path)
    return cases


def _check_unique(cases: Sequence[Case], source: Optional[Path] = None) -> None:
    seen = set()
    for c in cases:
        key = (c.task, c.scenario, c.patient, c.epoch)
        if key in seen:
            raise InputError(f"duplicate case task={c.task} scenario={c.scenario} epoch={c.epoch}",
                             file=source, patient=c.patient)
        seen.add(key)


def cases_from_predictions(predictions: PathLike, cohort: Cohort) -> List[Case]:
    """Cases from a predictions folder and the cohort that holds the references.

    Layout: ``PRED/<task>/<scenario>/<patient>.nii.gz`` (any volume format; ``<patient>_<TARGET>``,
    as ``robustdeep predict`` names its outputs, is read as ``<patient>`` too), optionally
    ``PRED/<task>/<scenario>/epoch_<k>/<patient>.nii.gz`` for per-epoch predictions. ``<task>``
    must be a built-in task (ld2fd, ldmr2fd, nac2mac, mr2ct): its target modality is the reference,
    its first input modality the input (when the patient has it), both read from the cohort. Files
    that are not volumes, and ``epoch_*`` folders whose suffix is not an integer, are skipped.

    Parameters
    ----------
    predictions : str or os.PathLike
        The predictions folder ``PRED``.
    cohort : RobustDeepLogic.cohort.manifest.Cohort
        The cohort whose images are the references and inputs (the predictions must be on their
        grids).

    Returns
    -------
    list of Case
        In sorted order of the task and scenario folders, then of the file and ``epoch_<k>`` folder
        names.

    Raises
    ------
    InputError
        If the folder is missing, a task folder is not a built-in task, a patient is not in the
        cohort or has no image of the task's target, no prediction is found, or a
        (task, scenario, patient, epoch) is repeated.
    """
    root = Path(predictions)
    if not root.is_dir():
        raise InputError("predictions folder not found", file=root)
    cases: List[Case] = []
    for task_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        task = BUILTIN_TASKS.get(task_dir.name)
        if task is None:
            raise InputError(f"unknown task folder {task_dir.name!r}", file=task_dir,
                             hint=f"task folders are named {', '.join(BUILTIN_TASKS)}; use a case table "
                             "for other tasks")
        for scen_dir in sorted(p for p in task_dir.iterdir() if p.is_dir()):
            found: List[Tuple[Optional[int], Path]] = []
            for f in sorted(scen_dir.iterdir()):
                if f.is_file() and volume_suffix(f):
                    found.append((None, f))
                elif f.is_dir() and f.name.startswith("epoch_"):
                    try:
                        ep = int(f.name[len("epoch_"):])
                    except ValueError:
                        continue
                    found += [(ep, g) for g in sorted(f.iterdir()) if g.is_file() and volume_suffix(g)]
            for epoch, f in found:
                pid = strip_volume_suffix(f)
                suffix = f"_{task.target}"
                if pid not in cohort.ids and pid.endswith(suffix) and pid[: -len(suffix)] in cohort.ids:
                    pid = pid[: -len(suffix)]  # robustdeep predict's <patient>_<TARGET> file names
                patient = cohort.patient(pid)
                inp = task.inputs[0]
                cases.append(Case(
                    task=task.name, scenario=scen_dir.name, patient=pid,
                    reference=cohort.path(patient, task.target), prediction=f,
                    input=cohort.path(patient, inp) if inp in patient.modalities else None,
                    epoch=epoch, modality=task.target, input_modality=inp,
                ))
    if not cases:
        raise InputError("no predictions found", file=root,
                         hint="expected PRED/<task>/<scenario>/<patient>.nii.gz")
    _check_unique(cases, root)
    return cases

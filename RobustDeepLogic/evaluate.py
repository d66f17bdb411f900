"""Evaluation of predicted volumes against references: metrics, bias maps, joint histograms.

The input is a list of :class:`Case` rows (task, scenario, patient, reference path, prediction path,
optional input path, optional epoch), made from a CSV or YAML table (:func:`load_cases`), from a
predictions folder laid out by task and scenario plus a cohort (:func:`cases_from_predictions`), or
for one pair directly. :func:`evaluate_cases` writes, under an output folder (docs/evaluation.md)::

    OUT/metrics.csv                   one row per task / scenario / patient / epoch / units / region
    OUT/metrics.json                  the same rows, the options, scaling and provenance
    OUT/masks/<task>/<patient>.nii.gz the head mask used (uint8, reference grid)
    OUT/maps/<task>/<scenario>/<stem>_relerr.nii.gz   (P - R) / max(R, floor), scaled units, fraction
    OUT/maps/<task>/<scenario>/<stem>_abserr.nii.gz   P - R in physical units (SUV, HU)
    OUT/png/<task>/<scenario>/<stem>_bias.png         relative error on a +-10 % colour scale
    OUT/png/<task>/<scenario>/<stem>_jointhist.png    joint histogram with the linear fit
    OUT/slices/<task>/<scenario>/<stem>.npz           small slices + histogram for the report

``stem`` is the patient id, with ``_epoch<k>`` appended for a row that names an epoch. Inputs are
read in physical units (SUV, HU; ``units='scaled'`` if the files hold scaled values) and converted
with the cohort's fixed :class:`~RobustDeepLogic.cohort.Scaling` constants. When a case has an input
volume in the same physical unit as the reference (LD for FD, NAC for MAC), the input itself is
evaluated once per task and patient as scenario ``input`` (the paper's "LD input" row).
"""

from __future__ import annotations

import csv
import io
import json
import math
import platform
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import metrics as M
from .cohort import DEFAULT_SCALING, UNITS, Cohort, Scaling, normalise_modality
from .errors import InputError
from .progress import Progress
from .volumes import Grid, PathLike, atomic_path, atomic_write_text, image_from_array, read_volume, \
    strip_volume_suffix, volume_suffix, write_volume

EVALUATION_FORMAT = "robustdeep-evaluation"
EVALUATION_VERSION = 1
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
    """One prediction to evaluate. Paths are absolute or relative to the current folder."""

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
        return self.patient if self.epoch is None else f"{self.patient}_epoch{self.epoch}"


@dataclass
class EvaluationOptions:
    """Settings of an evaluation (all documented in docs/evaluation.md).

    ``units``: what the files hold, ``'physical'`` (SUV, HU: the default) or ``'scaled'``.
    ``mask_threshold`` / ``mask_closing``: the default head mask (:func:`metrics.head_mask`).
    ``relative_floor``: floor on the scaled reference of relative-error maps.
    ``ssim_data_range``: ``'nominal'`` (D = 1 in scaled units, D = the scaling constant in physical
    units; the default, the same for every patient) or ``'reference'`` (the reference's range over
    the head mask), or a number in scaled units.
    ``input_metrics``: ``'auto'`` (when the input has the reference's physical unit), ``'always'``,
    ``'never'``. ``maps`` / ``pngs``: write bias-map volumes / PNG figures. ``hist_bins``,
    ``hist_max``: joint-histogram bins on [0, hist_max] in scaled units.
    """

    units: str = "physical"
    mask_threshold: float = M.HEAD_THRESHOLD
    mask_closing: int = 2
    relative_floor: float = M.RELATIVE_ERROR_FLOOR
    ssim_data_range: Union[str, float] = "nominal"
    input_metrics: str = "auto"
    maps: bool = True
    pngs: bool = True
    hist_bins: int = 128
    hist_max: float = 1.0

    def check(self) -> None:
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
    from .tasks import BUILTIN_TASKS

    t = BUILTIN_TASKS.get(task)
    return t.target if t is not None else None


def _task_input(task: str) -> Optional[str]:
    from .tasks import BUILTIN_TASKS

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

    Relative paths in the table are relative to the table's folder. Columns: :data:`CASE_COLUMNS`.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("case table not found", file=path)
    base = path.parent.resolve()
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml", ".json"):
        import yaml

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
    its first input modality the input, both read from the cohort.
    """
    from .tasks import BUILTIN_TASKS

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


# --------------------------------------------------------------------------------------------------
# One case
# --------------------------------------------------------------------------------------------------
def _read(path: Path, what: str, patient: str):
    image = read_volume(path, patient=patient, dtype=np.float32)
    return image


def _same_grid(grid: Grid, other: Grid, path: Path, what: str, patient: str) -> None:
    if not grid.matches(other):
        raise InputError(
            f"the {what} grid ({other.describe()}, origin {tuple(round(v, 2) for v in other.origin)}) "
            f"does not match the reference grid ({grid.describe()}, origin "
            f"{tuple(round(v, 2) for v in grid.origin)})",
            file=path, patient=patient,
            hint=f"resample the {what} onto the reference grid before evaluating "
            "(predictions must be written on the reference's grid)",
        )


def _centre_index(mask: np.ndarray) -> Tuple[int, int, int]:
    idx = np.argwhere(mask)
    return tuple(int(v) for v in np.round(idx.mean(axis=0)))  # type: ignore[return-value]


def _three_slices(volume: np.ndarray, centre: Tuple[int, int, int]) -> Dict[str, np.ndarray]:
    z, y, x = centre
    return {
        "axial": np.ascontiguousarray(volume[z]),
        "coronal": np.ascontiguousarray(volume[:, y, :]),
        "sagittal": np.ascontiguousarray(volume[:, :, x]),
    }


@dataclass
class CaseResult:
    """Rows of one evaluated case and the files written for it."""

    rows: List[Dict[str, Any]]
    files: Dict[str, str] = field(default_factory=dict)


class _Reference:
    """A reference volume with its mask, read once per (task, patient, reference, mask)."""

    def __init__(self, case: Case, scaling: Scaling, options: EvaluationOptions, out_dir: Optional[Path]):
        image = _read(case.reference, "reference", case.patient)
        self.grid = Grid.of(image)
        values = np.asarray(_array(image))
        if options.units == "scaled":
            self.scaled = values
            self.physical = scaling.to_physical(values).astype(np.float32)
        else:
            self.physical = values
            self.scaled = scaling.to_scaled(values).astype(np.float32)
        if case.mask is not None:
            mimage = read_volume(case.mask, patient=case.patient)
            _same_grid(self.grid, Grid.of(mimage), case.mask, "mask", case.patient)
            self.mask = _array(mimage) > 0
            self.mask_source = f"file:{case.mask}"
            if not self.mask.any():
                raise InputError("the head mask is empty (no voxel > 0)", file=case.mask,
                                 patient=case.patient, hint="give a mask that covers the head")
        else:
            self.mask = M.head_mask(self.scaled, options.mask_threshold, options.mask_closing)
            self.mask_source = f"reference>{options.mask_threshold:g} scaled, closing {options.mask_closing}"
            if not self.mask.any():
                raise InputError(
                    f"the head mask from the reference is empty: no voxel above "
                    f"{options.mask_threshold:g} in scaled units "
                    f"({scaling.to_physical(options.mask_threshold):g} {scaling.unit or 'physical units'})",
                    file=case.reference, patient=case.patient,
                    hint="check the reference's units (--units), its scaling constant, or pass --mask",
                )
        self.labels: Optional[np.ndarray] = None
        if case.labels is not None:
            limage = read_volume(case.labels, patient=case.patient)
            _same_grid(self.grid, Grid.of(limage), case.labels, "label volume", case.patient)
            self.labels = np.rint(_array(limage)).astype(np.int64)
        self.centre = _centre_index(self.mask)
        self.mask_file: Optional[Path] = None
        if out_dir is not None:
            self.mask_file = out_dir / "masks" / case.task / f"{_safe(case.patient)}.nii.gz"
            write_volume(image_from_array(self.mask.astype(np.uint8), self.grid), self.mask_file)


def _array(image) -> np.ndarray:
    from .volumes import array_from_image

    return array_from_image(image)


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(name))


def _data_range(ref: _Reference, options: EvaluationOptions) -> float:
    if options.ssim_data_range == "nominal":
        return 1.0
    if options.ssim_data_range == "reference":
        v = ref.scaled[ref.mask]
        span = float(v.max() - v.min())
        return span if span > 0 else 1.0
    return float(options.ssim_data_range)


def evaluate_case(
    case: Case,
    scaling: Scaling,
    options: Optional[EvaluationOptions] = None,
    out_dir: Optional[PathLike] = None,
    reference: Optional[_Reference] = None,
) -> CaseResult:
    """Evaluate one prediction (or input) against its reference; write maps and figures to ``out_dir``.

    Returns the metric rows (one per units x region) and the paths written. Raises
    :class:`InputError` for a missing file, a grid that differs from the reference's, an empty mask.
    """
    options = options or EvaluationOptions()
    out = Path(out_dir) if out_dir is not None else None
    ref = reference or _Reference(case, scaling, options, out)
    pimage = _read(case.prediction, "prediction", case.patient)
    _same_grid(ref.grid, Grid.of(pimage), case.prediction, "prediction", case.patient)
    pvalues = _array(pimage)
    if options.units == "scaled":
        p_scaled, p_phys = pvalues, scaling.to_physical(pvalues).astype(np.float32)
    else:
        p_phys, p_scaled = pvalues, scaling.to_scaled(pvalues).astype(np.float32)
    if not np.isfinite(p_phys[ref.mask]).all():
        raise InputError("the prediction has NaN or infinite values inside the head mask",
                         file=case.prediction, patient=case.patient)

    d_scaled = _data_range(ref, options)
    s3 = M.ssim_map(ref.scaled, p_scaled, d_scaled, "3d")
    s2 = M.ssim_map(ref.scaled, p_scaled, d_scaled, "2d")
    rel = M.relative_error_map(ref.scaled, p_scaled, ref.mask, options.relative_floor)
    valid = ref.scaled >= options.relative_floor
    unit_name = scaling.unit or UNITS.get(case.modality or "", "")
    sets = [("scaled", "scaled", ref.scaled, p_scaled, d_scaled, 1.0, s3, s2)]
    if scaling.offset == 0:
        phys_maps = (s3, s2)  # SSIM is unchanged by a scale factor applied to data and constants
    else:
        phys_maps = (M.ssim_map(ref.physical, p_phys, d_scaled * scaling.scale, "3d"),
                     M.ssim_map(ref.physical, p_phys, d_scaled * scaling.scale, "2d"))
    sets.append(("physical", unit_name, ref.physical, p_phys, d_scaled * scaling.scale,
                 scaling.scale ** 2) + phys_maps)
    regions: List[Tuple[str, np.ndarray]] = [("head", ref.mask)]
    if ref.labels is not None:
        for label in np.unique(ref.labels):
            if label != 0:  # a region is the label's voxels inside the head mask
                regions.append((f"label_{int(label)}", (ref.labels == label) & ref.mask))
    rows: List[Dict[str, Any]] = []
    for units, unit, r, p, d, cscale, m3, m2 in sets:
        for region, rmask in regions:
            values = M.region_metrics(r, p, rmask, data_range=d, constants_scale=cscale,
                                      relative_error=rel, relative_valid=valid,
                                      ssim3d_values=m3, ssim2d_values=m2)
            rows.append({
                "task": case.task, "scenario": case.scenario, "patient": case.patient,
                "epoch": case.epoch, "units": units, "unit": unit, "modality": case.modality,
                "region": region, **values, "mask_source": ref.mask_source,
                "reference": str(case.reference), "prediction": str(case.prediction),
                "input": "" if case.input is None else str(case.input),
            })
    files: Dict[str, str] = {}
    if out is not None:
        sub = Path(_safe(case.task)) / _safe(case.scenario)
        stem = _safe(case.stem)
        if ref.mask_file is not None:
            files["mask"] = str(ref.mask_file)
        if options.maps:
            rel_path = out / "maps" / sub / f"{stem}_relerr.nii.gz"
            abs_path = out / "maps" / sub / f"{stem}_abserr.nii.gz"
            write_volume(image_from_array(rel, ref.grid), rel_path)
            write_volume(image_from_array(M.absolute_error_map(ref.physical, p_phys, ref.mask), ref.grid),
                         abs_path)
            files["relerr"] = str(rel_path)
            files["abserr"] = str(abs_path)
        fit = M.LinearFit.of(ref.scaled, p_scaled, ref.mask)
        hist = M.joint_histogram(ref.scaled, p_scaled, ref.mask, options.hist_bins, (0.0, options.hist_max))
        slices_path = out / "slices" / sub / f"{stem}.npz"
        _write_slices(slices_path, case, ref, p_phys, rel, hist, fit, scaling, options)
        files["slices"] = str(slices_path)
        if options.pngs:
            bias_png = out / "png" / sub / f"{stem}_bias.png"
            hist_png = out / "png" / sub / f"{stem}_jointhist.png"
            data = load_slices(slices_path)
            title = f"{case.task} {case.scenario} {case.patient}"
            save_figure(figure_bias(data, title), bias_png)
            save_figure(figure_joint_histogram(data, title), hist_png)
            files["bias_png"] = str(bias_png)
            files["jointhist_png"] = str(hist_png)
    return CaseResult(rows, files)


def _write_slices(path: Path, case: Case, ref: _Reference, p_phys: np.ndarray, rel: np.ndarray,
                  hist: np.ndarray, fit: M.LinearFit, scaling: Scaling, options: EvaluationOptions) -> None:
    arrays: Dict[str, np.ndarray] = {}
    for name, vol in (("reference", ref.physical), ("prediction", p_phys), ("relerr", rel),
                      ("mask", ref.mask.astype(np.uint8))):
        for view, sl in _three_slices(vol, ref.centre).items():
            arrays[f"{name}_{view}"] = sl
    arrays["hist"] = hist.astype(np.float32)
    arrays["hist_range"] = np.array([0.0, options.hist_max])
    arrays["fit"] = np.array([fit.n, fit.sx, fit.sy, fit.sxx, fit.syy, fit.sxy])
    arrays["spacing"] = np.array(ref.grid.spacing)
    arrays["centre"] = np.array(ref.centre)
    arrays["scaling"] = np.array([scaling.scale, scaling.offset])
    meta = {"task": case.task, "scenario": case.scenario, "patient": case.patient, "epoch": case.epoch,
            "modality": case.modality, "unit": scaling.unit, "relative_floor": options.relative_floor}
    arrays["meta"] = np.array(json.dumps(meta))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)


def load_slices(path: PathLike) -> Dict[str, Any]:
    """The content of a ``slices/...npz`` file (see :func:`evaluate_case`) as a dict."""
    with np.load(path, allow_pickle=False) as data:
        out: Dict[str, Any] = {k: data[k] for k in data.files}
    out["meta"] = json.loads(str(out["meta"]))
    return out


def _add_input_slices(path: Path, ref: _Reference, inp_phys: np.ndarray) -> None:
    """Add the input's slices to an existing slices file (for the reference / input / prediction panel)."""
    data = dict(np.load(path, allow_pickle=False))
    for view, sl in _three_slices(inp_phys, ref.centre).items():
        data[f"input_{view}"] = sl
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **data)


# --------------------------------------------------------------------------------------------------
# Many cases
# --------------------------------------------------------------------------------------------------
def _scaling_for(modality: Optional[str], scaling: Mapping[str, Scaling], where: Optional[Path]) -> Scaling:
    if modality is None:
        raise InputError("the reference modality is unknown", file=where,
                         hint="give --modality (single pair) or a 'modality' column")
    if modality not in scaling:
        raise InputError(f"no scaling constant for {modality}", file=where,
                         hint="evaluate FD, MAC, NAC, LD or CT, or pass a cohort whose manifest has one")
    return scaling[modality]


def _wants_input(case: Case, options: EvaluationOptions, scaling: Mapping[str, Scaling]) -> bool:
    """Whether to evaluate the input itself (scenario ``input``) for this case.

    ``auto``: only when the input modality is known and has the reference's physical unit (SUV or
    HU), and, for files in scaled units, the same scaling constant (the input is read with the
    reference's constant).
    """
    if case.input is None or options.input_metrics == "never":
        return False
    if options.input_metrics == "always":
        return True
    if case.input_modality is None or case.modality is None:
        return False
    if UNITS.get(case.input_modality) != UNITS.get(case.modality) or UNITS.get(case.modality) not in ("SUV", "HU"):
        return False
    if options.units == "scaled":
        return scaling.get(case.input_modality) == scaling.get(case.modality)
    return True


def _provenance(cohort: Optional[Cohort], scaling: Mapping[str, Scaling]) -> Dict[str, Any]:
    import scipy
    import SimpleITK as sitk

    from . import __version__

    prov: Dict[str, Any] = {
        "robustdeep": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "SimpleITK": sitk.Version_VersionString(),
        "platform": platform.platform(),
        "scaling": {k: v.as_dict() for k, v in scaling.items()},
    }
    if cohort is not None:
        prov["cohort"] = {"root": str(cohort.root), "patients": len(cohort), "space": cohort.space,
                          "test_patients": [p.id for p in cohort.select(split="test")]}
    return prov


def evaluate_cases(
    cases: Sequence[Case],
    out_dir: PathLike,
    *,
    scaling: Optional[Mapping[str, Scaling]] = None,
    options: Optional[EvaluationOptions] = None,
    cohort: Optional[Cohort] = None,
    progress: Optional[Progress] = None,
    config: Optional[Mapping[str, Any]] = None,
) -> Dict[str, Any]:
    """Evaluate every case; write ``metrics.csv``, ``metrics.json``, maps, PNGs and slices.

    Parameters
    ----------
    cases:
        From :func:`load_cases`, :func:`cases_from_predictions` or built directly.
    out_dir:
        The evaluation folder (created).
    scaling:
        Scaling constants by modality (default: the cohort's, else :data:`cohort.DEFAULT_SCALING`).
    options:
        :class:`EvaluationOptions`.
    config:
        The resolved command configuration, stored in metrics.json for provenance.

    Returns
    -------
    dict
        ``{"rows": [...], "files": {...}, "csv": path, "json": path}``.
    """
    options = options or EvaluationOptions()
    options.check()
    progress = progress or Progress()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if scaling is None:
        scaling = dict(cohort.scaling) if cohort is not None else dict(DEFAULT_SCALING)
    cases = list(cases)
    _check_unique(cases)
    rows: List[Dict[str, Any]] = []
    files: Dict[str, Dict[str, str]] = {}
    refs: Dict[Tuple, _Reference] = {}
    inputs_done: set = set()
    with progress.stage("evaluate", total=len(cases)) as st:
        for case in cases:
            sc = _scaling_for(case.modality, scaling, case.reference)
            key = (case.task, case.patient, str(case.reference), str(case.mask), str(case.labels))
            if key not in refs:
                refs.clear()  # keep one reference in memory at a time (cases are usually grouped)
                refs[key] = _Reference(case, sc, options, out)
            ref = refs[key]
            result = evaluate_case(case, sc, options, out, ref)
            rows += result.rows
            files[f"{case.task}/{case.scenario}/{case.stem}"] = result.files
            if case.input is not None and "slices" in result.files:
                _add_input_slices(Path(result.files["slices"]), ref, _input_physical(case, scaling, options, ref))
            ikey = (case.task, case.patient, str(case.input))
            if _wants_input(case, options, scaling) and ikey not in inputs_done:
                inputs_done.add(ikey)
                icase = replace(case, scenario=INPUT_SCENARIO, prediction=case.input, epoch=None)
                iresult = evaluate_case(icase, sc, options, out, ref)
                rows += iresult.rows
                files[f"{case.task}/{INPUT_SCENARIO}/{icase.stem}"] = iresult.files
                if "slices" in iresult.files:
                    _add_input_slices(Path(iresult.files["slices"]), ref,
                                      _input_physical(case, scaling, options, ref))
            st.advance(message=f"{case.task} {case.scenario} {case.patient}")
    csv_path = write_metrics_csv(rows, out / METRICS_CSV)
    doc = {
        "format": EVALUATION_FORMAT,
        "version": EVALUATION_VERSION,
        "options": {k: getattr(options, k) for k in options.__dataclass_fields__},
        "provenance": _provenance(cohort, scaling),
        "config": dict(config or {}),
        "files": files,
        "rows": rows,
    }
    json_path = out / METRICS_JSON
    atomic_write_text(json_path, json.dumps(_plain(doc), indent=1) + "\n")
    return {"rows": rows, "files": files, "csv": csv_path, "json": json_path}


def _input_physical(case: Case, scaling: Mapping[str, Scaling], options: EvaluationOptions,
                    ref: _Reference) -> np.ndarray:
    """The input volume in physical units (for figures); MR inputs stay in their own units."""
    image = _read(case.input, "input", case.patient)
    _same_grid(ref.grid, Grid.of(image), case.input, "input", case.patient)
    values = _array(image)
    if options.units == "scaled" and case.input_modality in scaling:
        return scaling[case.input_modality].to_physical(values).astype(np.float32)
    return values


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    return str(value)


def write_metrics_csv(rows: Sequence[Mapping[str, Any]], path: PathLike) -> Path:
    """Write rows as a tidy CSV with :data:`CSV_COLUMNS` (atomically)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([_format(row.get(c)) for c in CSV_COLUMNS])
    return atomic_write_text(path, buf.getvalue())


_NUMERIC = set(CSV_COLUMNS) - {"task", "scenario", "patient", "units", "unit", "modality", "region",
                               "mask_source", "reference", "prediction", "input", "epoch"}


def read_metrics_csv(path: PathLike) -> List[Dict[str, Any]]:
    """Read a metrics.csv back: numbers as floats, ``epoch`` as int or None, other columns as text.

    Extra columns are kept (as text, or floats where they parse); missing optional columns are None.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("metrics.csv not found", file=path, hint="run 'robustdeep evaluate' first")
    text = path.read_text(encoding="utf-8-sig")
    reader = csv.DictReader(io.StringIO(text))
    missing = {"task", "scenario", "patient", "rmse", "psnr"} - set(reader.fieldnames or [])
    if missing:
        raise InputError(f"not a metrics table: missing column(s) {', '.join(sorted(missing))}", file=path)
    rows = []
    for raw in reader:
        row: Dict[str, Any] = {}
        for k, v in raw.items():
            if k is None:
                continue
            v = (v or "").strip()
            if k == "epoch":
                row[k] = int(float(v)) if v else None
            elif k in _NUMERIC or k not in CSV_COLUMNS:
                try:
                    row[k] = float(v) if v else float("nan")
                except ValueError:
                    row[k] = v
            else:
                row[k] = v
        row.setdefault("units", "scaled")
        row.setdefault("region", "head")
        row.setdefault("epoch", None)
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------------
# Figures of one case (matplotlib, Agg canvas: no global pyplot state)
# --------------------------------------------------------------------------------------------------
#: Colour window of relative-error figures: +-10 % (method.md section 8).
BIAS_WINDOW = 0.10
VIEWS = ("axial", "coronal", "sagittal")


def new_figure(width: float, height: float):
    """A matplotlib Figure on an Agg canvas (safe in threads, never opens a window)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def figure_png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, bbox_inches="tight", pad_inches=0.1)
    return buf.getvalue()


def save_figure(fig, path: PathLike) -> Path:
    """Write ``fig`` as a PNG atomically."""
    from .volumes import atomic_write_bytes

    return atomic_write_bytes(path, figure_png_bytes(fig))


def view_aspect(spacing: Sequence[float], view: str) -> float:
    """imshow aspect (row spacing / column spacing) of a slice; spacing is (x, y, z) in mm."""
    sx, sy, sz = spacing
    return {"axial": sy / sx, "coronal": sz / sx, "sagittal": sz / sy}[view]


def show_slice(ax, image: np.ndarray, view: str, spacing: Sequence[float], **kwargs):
    """Show a slice in radiological habit: axial as stored (anterior up for LPS grids), coronal and
    sagittal flipped so that superior is up."""
    shown = image if view == "axial" else image[::-1]
    artist = ax.imshow(shown, aspect=view_aspect(spacing, view), interpolation="nearest", **kwargs)
    ax.set_xticks([])
    ax.set_yticks([])
    return artist


def draw_bias(ax, data: Mapping[str, Any], view: str, window: float = BIAS_WINDOW):
    """The relative error slice (fraction) on a symmetric colour scale of +-``window``."""
    rel = np.where(data[f"mask_{view}"] > 0, data[f"relerr_{view}"], np.nan)
    return show_slice(ax, rel, view, data["spacing"], cmap="RdBu_r", vmin=-window, vmax=window)


def figure_bias(data: Mapping[str, Any], title: str = "", window: float = BIAS_WINDOW):
    """Three orthogonal relative-error slices of one case with a +-10 % colour bar."""
    fig = new_figure(9.0, 3.4)
    axes = fig.subplots(1, 3)
    artist = None
    for ax, view in zip(axes, VIEWS):
        artist = draw_bias(ax, data, view, window)
        ax.set_title(view, fontsize=9)
    bar = fig.colorbar(artist, ax=list(axes), shrink=0.8)
    bar.set_label("(P - R) / R")
    bar.set_ticks([-window, -window / 2, 0, window / 2, window])
    bar.set_ticklabels([f"{100 * t:+.0f} %" for t in (-window, -window / 2, 0, window / 2, window)])
    if title:
        fig.suptitle(f"relative error: {title}", fontsize=10)
    return fig


def hist_extent(hist: np.ndarray, hist_range: Sequence[float], quantile: float = 0.999) -> float:
    """Upper edge (scaled units) that holds ``quantile`` of the counts along both axes."""
    lo, hi = float(hist_range[0]), float(hist_range[1])
    edges = np.linspace(lo, hi, hist.shape[0] + 1)
    total = hist.sum()
    if total <= 0:
        return hi
    top = 0
    for marginal in (hist.sum(axis=1), hist.sum(axis=0)):
        cum = np.cumsum(marginal) / total
        top = max(top, int(np.searchsorted(cum, quantile)) + 2)
    return float(edges[min(top, hist.shape[0])])


def draw_joint_histogram(ax, hist: np.ndarray, hist_range: Sequence[float], fit: M.LinearFit,
                         scaling: Sequence[float], unit: str, label: str = ""):
    """A log-count joint histogram (reference on x, prediction on y) in physical units, with the
    identity line and the least-squares line; slope and R^2 (of the scaled-unit fit) in the legend."""
    from matplotlib.colors import LogNorm

    scale, offset = float(scaling[0]), float(scaling[1])
    lo, hi = float(hist_range[0]), float(hist_range[1])
    top = hist_extent(hist, hist_range)
    ext = [lo * scale + offset, hi * scale + offset] * 2
    counts = np.ma.masked_less_equal(hist.T, 0)
    if counts.count():
        ax.imshow(counts, origin="lower", extent=ext, aspect="auto", cmap="viridis",
                  norm=LogNorm(vmin=1, vmax=max(2.0, float(counts.max()))), interpolation="nearest")
    p0, p1 = lo * scale + offset, top * scale + offset
    ax.plot([p0, p1], [p0, p1], color="0.6", lw=0.8, ls="--", label="identity")
    slope, icpt = fit.slope, fit.intercept * scale + offset * (1 - fit.slope)
    if math.isfinite(slope):
        ax.plot([p0, p1], [slope * p0 + icpt, slope * p1 + icpt], color="red", lw=1.0,
                label=f"fit: slope {slope:.3f}, R$^2$ {fit.r2:.3f}")
    ax.set_xlim(p0, p1)
    ax.set_ylim(p0, p1)
    ax.set_xlabel(f"reference ({unit})", fontsize=8)
    ax.set_ylabel(f"{label or 'prediction'} ({unit})", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, loc="upper left")


def figure_joint_histogram(data: Mapping[str, Any], title: str = ""):
    """The joint histogram of one case with its linear fit."""
    fig = new_figure(4.2, 4.0)
    ax = fig.subplots(1, 1)
    fit = M.LinearFit(*[float(v) for v in data["fit"]])
    draw_joint_histogram(ax, data["hist"], data["hist_range"], fit, data["scaling"],
                         data["meta"].get("unit") or "", data["meta"].get("scenario", ""))
    if title:
        ax.set_title(title, fontsize=9)
    return fig

"""Evaluation of predicted volumes against references: metrics, bias maps, joint histograms.

The input is a list of :class:`~RobustDeepLogic.evaluate.cases.Case` rows (task, scenario,
patient, reference path, prediction path, optional input path, optional epoch), made from a CSV or
YAML table (:func:`~RobustDeepLogic.evaluate.cases.load_cases`), from a predictions folder laid out
by task and scenario plus a cohort (:func:`~RobustDeepLogic.evaluate.cases.cases_from_predictions`),
or for one pair directly. :func:`evaluate_case` evaluates one of them; :func:`evaluate_cases`
evaluates them all (``robustdeep evaluate``) and writes, under an output folder
(docs/evaluation.md)::

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
with the fixed :class:`~RobustDeepLogic.cohort.scaling.Scaling` constants (the cohort's, or the
defaults). When a case has an input volume in the same physical unit as the reference (LD for FD,
NAC for MAC), the input itself is evaluated once per task and patient as scenario ``input`` (the
paper's "LD input" row; :attr:`~RobustDeepLogic.evaluate.cases.EvaluationOptions.input_metrics`).

The metrics (docs/method.md §8) are in :mod:`RobustDeepLogic.evaluate.regions` and the modules it
draws on, the reference side of a case in :mod:`RobustDeepLogic.evaluate.reference`, the CSV in
:mod:`RobustDeepLogic.evaluate.results`, the slices files in :mod:`RobustDeepLogic.evaluate.slices`,
the PNGs in :mod:`RobustDeepLogic.evaluate.figures`.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import scipy
import SimpleITK as sitk

from RobustDeepLogic.cohort.manifest import Cohort
from RobustDeepLogic.cohort.scaling import DEFAULT_SCALING, Scaling
from RobustDeepLogic.core.config import plain_value
from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.files import atomic_write_text, safe_name
from RobustDeepLogic.core.modalities import UNITS
from RobustDeepLogic.core.progress import Progress
from RobustDeepLogic.core.types import PathLike
from RobustDeepLogic.core.version import __version__
from RobustDeepLogic.evaluate.cases import (
    EVALUATION_FORMAT,
    EVALUATION_VERSION,
    INPUT_SCENARIO,
    METRICS_CSV,
    METRICS_JSON,
    Case,
    EvaluationOptions,
    _check_unique,
)
from RobustDeepLogic.evaluate.figures import (
    figure_bias,
    figure_joint_histogram,
    save_figure,
)
from RobustDeepLogic.evaluate.maps import (
    LinearFit,
    absolute_error_map,
    joint_histogram,
    relative_error_map,
)
from RobustDeepLogic.evaluate.reference import (
    _array,
    _data_range,
    _read,
    _Reference,
    _same_grid,
)
from RobustDeepLogic.evaluate.regions import region_metrics
from RobustDeepLogic.evaluate.results import write_metrics_csv
from RobustDeepLogic.evaluate.slices import (
    _add_input_slices,
    _write_slices,
    load_slices,
)
from RobustDeepLogic.evaluate.ssim import ssim_map
from RobustDeepLogic.io.volumes import (
    Grid,
    image_from_array,
    write_volume,
)


@dataclass
class CaseResult:
    """Rows of one evaluated case and the files written for it.

    Attributes
    ----------
    rows : list of dict
        One ``metrics.csv`` row per units (``'scaled'``, ``'physical'``) and region (``'head'``, then
        ``'label_<k>'``), keyed by the names of
        :data:`~RobustDeepLogic.evaluate.cases.CSV_COLUMNS`.
    files : dict of str to str
        Paths written, by kind: ``mask``, ``relerr``, ``abserr``, ``slices``, ``bias_png``,
        ``jointhist_png`` (those that were written).
    """

    rows: List[Dict[str, Any]]
    files: Dict[str, str] = field(default_factory=dict)


def evaluate_case(
    case: Case,
    scaling: Scaling,
    options: Optional[EvaluationOptions] = None,
    out_dir: Optional[PathLike] = None,
    reference: Optional[_Reference] = None,
) -> CaseResult:
    """Evaluate one prediction (or input) against its reference; write maps and figures to ``out_dir``.

    The prediction is read in ``options.units``, converted to the other unit set with ``scaling``, and
    scored over the head mask and over each non-zero label of the label volume (inside the head
    mask), in both unit sets (:func:`RobustDeepLogic.evaluate.regions.region_metrics`).

    Parameters
    ----------
    case : Case
        The case; its ``modality`` should match ``scaling``.
    scaling : RobustDeepLogic.cohort.scaling.Scaling
        The fixed scaling constant of the reference's modality.
    options : EvaluationOptions, optional
        Settings; None uses the defaults. They are not checked here
        (:meth:`~RobustDeepLogic.evaluate.cases.EvaluationOptions.check`).
    out_dir : str or os.PathLike, optional
        The evaluation folder: the mask, the maps (``options.maps``), the slices file and the PNGs
        (``options.pngs``) go under it (see the module docstring). None writes nothing.
    reference : _Reference, optional
        The reference side already read (:mod:`RobustDeepLogic.evaluate.reference`), shared by the
        cases of one patient; None reads it (and writes its mask under ``out_dir``).

    Returns
    -------
    CaseResult
        The metric rows (one per units x region) and the paths written.

    Raises
    ------
    InputError
        For a missing or unreadable file, a grid that differs from the reference's, an empty head
        mask, or NaN or infinite predicted values inside the head mask.
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
    s3 = ssim_map(ref.scaled, p_scaled, d_scaled, "3d")
    s2 = ssim_map(ref.scaled, p_scaled, d_scaled, "2d")
    rel = relative_error_map(ref.scaled, p_scaled, ref.mask, options.relative_floor)
    valid = ref.scaled >= options.relative_floor
    unit_name = scaling.unit or UNITS.get(case.modality or "", "")
    sets = [("scaled", "scaled", ref.scaled, p_scaled, d_scaled, 1.0, s3, s2)]
    if scaling.offset == 0:
        phys_maps = (s3, s2)  # SSIM is unchanged by a scale factor applied to data and constants
    else:
        phys_maps = (ssim_map(ref.physical, p_phys, d_scaled * scaling.scale, "3d"),
                     ssim_map(ref.physical, p_phys, d_scaled * scaling.scale, "2d"))
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
            values = region_metrics(r, p, rmask, data_range=d, constants_scale=cscale,
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
        sub = Path(safe_name(case.task)) / safe_name(case.scenario)
        stem = safe_name(case.stem)
        if ref.mask_file is not None:
            files["mask"] = str(ref.mask_file)
        if options.maps:
            rel_path = out / "maps" / sub / f"{stem}_relerr.nii.gz"
            abs_path = out / "maps" / sub / f"{stem}_abserr.nii.gz"
            write_volume(image_from_array(rel, ref.grid), rel_path)
            write_volume(image_from_array(absolute_error_map(ref.physical, p_phys, ref.mask), ref.grid),
                         abs_path)
            files["relerr"] = str(rel_path)
            files["abserr"] = str(abs_path)
        fit = LinearFit.of(ref.scaled, p_scaled, ref.mask)
        hist = joint_histogram(ref.scaled, p_scaled, ref.mask, options.hist_bins, (0.0, options.hist_max))
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

    Cases that share a reference (task, patient, reference, mask, labels) reuse it when they are
    consecutive. As ``options.input_metrics`` says
    (:class:`~RobustDeepLogic.evaluate.cases.EvaluationOptions`), the input of a case is also
    evaluated, once per task, patient and input, as scenario ``input``.

    Parameters
    ----------
    cases : sequence of Case
        From :func:`~RobustDeepLogic.evaluate.cases.load_cases`,
        :func:`~RobustDeepLogic.evaluate.cases.cases_from_predictions` or built directly.
    out_dir : str or os.PathLike
        The evaluation folder (created).
    scaling : mapping of str to Scaling, optional
        Scaling constants by modality (default: the cohort's, else
        :data:`RobustDeepLogic.cohort.scaling.DEFAULT_SCALING`).
    options : EvaluationOptions, optional
        Settings, checked here; None uses the defaults.
    cohort : RobustDeepLogic.cohort.manifest.Cohort, optional
        The cohort of the references: its scaling constants (when ``scaling`` is None) and its root,
        size, space and test patients, recorded in the provenance of metrics.json.
    progress : Progress, optional
        Reports one step per case (stage ``evaluate``); None is silent.
    config : mapping, optional
        The resolved command configuration, stored in metrics.json for provenance.

    Returns
    -------
    dict
        ``{"rows": [...], "files": {...}, "csv": path, "json": path}``: all metric rows, the files
        of each case by ``"<task>/<scenario>/<stem>"``, and the paths of ``metrics.csv`` and
        ``metrics.json`` (:class:`pathlib.Path`).

    Raises
    ------
    InputError
        For invalid options, a repeated (task, scenario, patient, epoch), a case whose modality is
        unknown or has no scaling constant, and any error of :func:`evaluate_case`.

    References
    ----------
    .. [1] docs/method.md §8.
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
    atomic_write_text(json_path, json.dumps(plain_value(doc, nonfinite=True), indent=1) + "\n")
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

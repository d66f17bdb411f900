"""``robustdeep evaluate``: metrics, bias maps and joint histograms of predictions (docs/evaluation.md).

The metrics are those of docs/method.md §8, computed by :mod:`RobustDeepLogic.evaluate`; the three
forms of the command (one pair, a case table, a predictions folder) are in its epilog.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from RobustDeepLogic.cli.frame import Command, Options, Result

_EPILOG = """\
forms:
  one pair:     robustdeep evaluate --reference FD.nii.gz --prediction P.nii.gz [--input LD.nii.gz]
                    [--mask M.nii.gz] --modality FD --out DIR
  a case table: robustdeep evaluate --cases cases.csv --out DIR
                    (columns task,scenario,patient,reference,prediction[,input,epoch,mask,labels,
                     modality,input_modality]; or the same as a YAML list)
  a folder:     robustdeep evaluate --predictions PRED --cohort COHORT --out DIR
                    (PRED/<task>/<scenario>/<patient>.nii.gz, references and inputs from the cohort)
writes DIR/metrics.csv, metrics.json, masks/, maps/ (bias volumes), png/, slices/ (for the report).
"""


def _arguments(o: Options) -> None:
    o.option("--out", help="output folder (the evaluation folder)", metavar="DIR")
    o.option("--reference", help="reference volume (one-pair form)", metavar="FILE")
    o.option("--prediction", help="predicted volume on the reference grid (one-pair form)", metavar="FILE")
    o.option("--input", help="network input volume, for figures and the input row (one-pair form)",
             metavar="FILE")
    o.option("--mask", help="head mask volume (voxels > 0); default: derived from the reference",
             metavar="FILE")
    o.option("--labels", help="label volume for per-region statistics (one-pair form)", metavar="FILE")
    o.option("--modality", help="modality of the reference (FD, MAC, CT, ...; one-pair form; default: the "
             "task's target)")
    o.option("--input-modality", help="modality of --input (default: the task's first input)")
    o.option("--task", help="task name in the outputs (one-pair form)", default="task")
    o.option("--scenario", help="scenario name in the outputs (one-pair form)", default="prediction")
    o.option("--patient", help="patient id in the outputs (default: the reference file name)")
    o.option("--epoch", type=int, help="epoch of the prediction (one-pair form)")
    o.option("--cases", help="case table (.csv or .yaml) for the batch form", metavar="FILE")
    o.option("--predictions", help="predictions folder PRED/<task>/<scenario>/<patient>.nii.gz",
             metavar="DIR")
    o.option("--cohort", help="cohort folder: scaling constants (and references for --predictions)",
             metavar="DIR")
    o.option("--scaling", help="override scaling constants, e.g. 'FD=15,CT=3000:-1000' "
             "(scaled = (value - offset) / scale)")
    o.option("--units", default="physical", choices=("physical", "scaled"),
             help="units of the volume files")
    o.option("--mask-threshold", type=float, default=0.02,
             help="default head mask: reference above this, in scaled units")
    o.option("--mask-closing", type=int, default=2, help="default head mask: closing radius in voxels")
    o.option("--relative-floor", type=float, default=0.05,
             help="floor on the scaled reference in relative-error maps")
    o.option("--ssim-data-range", default="nominal",
             help="windowed SSIM data range D: nominal (1 scaled), reference, or a number (scaled units)")
    o.option("--input-metrics", default="auto", choices=("auto", "always", "never"),
             help="also evaluate the input itself (scenario 'input')")
    o.option("--maps", flag=True, default=True, help="write bias-map volumes")
    o.option("--pngs", flag=True, default=True, help="write PNG figures per case")
    o.option("--hist-bins", type=int, default=128, help="joint-histogram bins")
    o.option("--hist-max", type=float, default=1.0, help="joint-histogram upper edge, scaled units")


def _parse_scaling(text, base):
    from RobustDeepLogic.cohort.scaling import Scaling
    from RobustDeepLogic.core.errors import InputError
    from RobustDeepLogic.core.modalities import normalise_modality

    out = dict(base)
    for item in str(text).split(","):
        item = item.strip()
        if not item:
            continue
        try:
            name, _, value = item.partition("=")
            scale, _, offset = value.partition(":")
            mod = normalise_modality(name)
            unit = base[mod].unit if mod in base else ""
            out[mod] = Scaling(float(scale), float(offset or 0.0), unit)
        except ValueError:
            raise InputError(f"--scaling: cannot read {item!r}", hint="e.g. FD=15,CT=3000:-1000") from None
        if out[mod].scale == 0:
            raise InputError(f"--scaling: the scale of {mod} must not be 0")
    return out


def _run(config, ctx) -> Result:
    from RobustDeepLogic.cohort.manifest import Cohort
    from RobustDeepLogic.cohort.scaling import DEFAULT_SCALING
    from RobustDeepLogic.cohort.tasks import BUILTIN_TASKS
    from RobustDeepLogic.core.errors import InputError
    from RobustDeepLogic.core.files import strip_volume_suffix
    from RobustDeepLogic.core.modalities import normalise_modality
    from RobustDeepLogic.evaluate.cases import (
        Case,
        EvaluationOptions,
        cases_from_predictions,
        load_cases,
    )
    from RobustDeepLogic.evaluate.evaluation import evaluate_cases
    from RobustDeepLogic.evaluate.statistics import summarize

    if not config.get("out"):
        raise InputError("--out is required", hint="the folder that receives metrics.csv and the maps")
    forms = [bool(config.get("reference") or config.get("prediction")), bool(config.get("cases")),
             bool(config.get("predictions"))]
    if sum(forms) != 1:
        raise InputError("give exactly one of: --reference with --prediction, --cases, or --predictions")
    cohort = Cohort.load(config["cohort"]) if config.get("cohort") else None
    scaling = dict(cohort.scaling) if cohort is not None else dict(DEFAULT_SCALING)
    if config.get("scaling"):
        scaling = _parse_scaling(config["scaling"], scaling)
    if forms[0]:
        if not (config.get("reference") and config.get("prediction")):
            raise InputError("the one-pair form needs both --reference and --prediction")
        task = BUILTIN_TASKS.get(config.get("task") or "")
        modality = config.get("modality") or (task.target if task else None)
        if modality is None:
            raise InputError("give --modality (the reference's modality, e.g. FD) or a built-in --task")
        input_modality = config.get("input_modality") or (task.inputs[0] if task else None)
        reference = Path(config["reference"])
        cases = [Case(
            task=str(config.get("task") or "task"), scenario=str(config.get("scenario") or "prediction"),
            patient=str(config.get("patient") or strip_volume_suffix(reference)), reference=reference,
            prediction=Path(config["prediction"]),
            input=Path(config["input"]) if config.get("input") else None,
            epoch=config.get("epoch"), mask=Path(config["mask"]) if config.get("mask") else None,
            labels=Path(config["labels"]) if config.get("labels") else None,
            modality=normalise_modality(modality),
            input_modality=normalise_modality(input_modality) if input_modality else None,
        )]
    elif forms[1]:
        cases = load_cases(config["cases"])
    else:
        if cohort is None:
            raise InputError("--predictions needs --cohort (the references are read from it)")
        cases = cases_from_predictions(config["predictions"], cohort)
    if config.get("mask") and not forms[0]:
        cases = [c if c.mask is not None else _with_mask(c, Path(config["mask"])) for c in cases]
    options = EvaluationOptions(
        units=config["units"], mask_threshold=float(config["mask_threshold"]),
        mask_closing=int(config["mask_closing"]), relative_floor=float(config["relative_floor"]),
        ssim_data_range=config["ssim_data_range"], input_metrics=config["input_metrics"],
        maps=bool(config["maps"]), pngs=bool(config["pngs"]), hist_bins=int(config["hist_bins"]),
        hist_max=float(config["hist_max"]),
    )
    result = evaluate_cases(cases, config["out"], scaling=scaling, options=options, cohort=cohort,
                            progress=ctx.progress, config=config)
    head = [r for r in result["rows"] if r["units"] == "scaled" and r["region"] == "head"]
    figures = {"cases": len(cases), "rows": len(result["rows"])}
    if head:
        figures.update({"mean_rmse_scaled": summarize(r["rmse"] for r in head).mean,
                        "mean_psnr": summarize(r["psnr"] for r in head).mean,
                        "mean_ssim_global": summarize(r["ssim_global"] for r in head).mean,
                        "mean_ssim_3d": summarize(r["ssim_3d"] for r in head).mean})
    summary = f"evaluated {len(cases)} case(s)"
    if len(head) == 1 or (forms[0] and head):
        r = head[0]
        summary += (f": RMSE {r['rmse']:.4f} (scaled), PSNR {r['psnr']:.2f} dB, SSIM global "
                    f"{r['ssim_global']:.4f}, SSIM 3D {r['ssim_3d']:.4f}")
    return Result(outputs={"metrics": str(result["csv"]), "json": str(result["json"])}, figures=figures,
                  summary=summary)


def _with_mask(case, mask):
    return replace(case, mask=mask)


COMMAND = Command("evaluate", "metrics, bias maps and joint histograms of predictions against references",
                  _arguments, _run, output="out", epilog=_EPILOG,
                  description="Evaluate predicted volumes against references in the head region: RMSE, "
                  "PSNR, the paper's global SSIM and the standard windowed SSIM (3D and per slice), in scaled "
                  "and physical units; joint histograms with linear fits; bias maps. See docs/evaluation.md.")

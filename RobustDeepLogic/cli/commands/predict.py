"""``robustdeep predict``: predict whole volumes with a trained run, in SUV / HU.

The inputs are volume files (one per input of the task) or a cohort folder and patient ids; the
fold networks are averaged. A template-space prediction of one patient can be mapped back onto its
native grid (``--native-reference`` with ``--transform``). The engine's functions are in
:mod:`RobustDeepLogic.predict`.
"""

from __future__ import annotations

from pathlib import Path

from RobustDeepLogic.cli.frame import Command, Options, Result

#: Output formats (``--format``) and their file endings.
FORMATS = {"nii.gz": ".nii.gz", "nii": ".nii", "nrrd": ".nrrd", "mha": ".mha"}


def _arguments(o: Options) -> None:
    o.positional("run", help="run folder of 'robustdeep train'")
    o.positional("inputs", nargs="+", help="either one volume per task input, in the task's input order "
                 "(e.g. LD T1 T2), or a cohort folder followed by patient ids (none: the run's test "
                 "patients found in the cohort, else all its real patients)")
    o.option("--out", default=None, help="output folder (required)")
    o.option("--name", default=None, help="output file name without ending, for volume inputs "
             "(default: <first input>_<TARGET>)")
    o.option("--format", default="nii.gz", choices=sorted(FORMATS), help="output format")
    o.option("--reference", default=None, help="volume whose grid the prediction is made on (default: "
             "the first input's; in a cohort: the patient's target image when present)")
    o.option("--native-reference", default=None, help="native-space volume of the patient: map the "
             "template-space prediction back onto its grid (needs --transform)")
    o.option("--transform", default=None, help="ITK transform file of the registration stage (template "
             "points -> native points, ITK's resampling convention; see --transform-direction)")
    o.option("--transform-direction", default="resampling", choices=["resampling", "forward"],
             help="'resampling': the file maps template points to native points (as SimpleITK "
             "registration with fixed = template returns and BRAINSFit writes); 'forward': native -> template")
    o.option("--which", default="best", choices=["best", "last"], help="checkpoint of each fold")
    o.option("--fold", type=int, nargs="+", default=None, help="use only these folds (default: all)")
    o.option("--average", flag=True, default=True, help="average the fold networks' predictions")
    o.option("--crop-head", flag=True, default=True, help="predict only the head region (faster); "
             "elsewhere the target's background value")
    o.option("--batch-size", type=int, default=None, help="axial slices per batch (default: 1 on a CPU, "
             "where larger batches are slower per slice; 16 on a GPU)")
    o.option("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    o.option("--amp", default="auto", choices=["auto", "bf16", "fp16", "off"], help="mixed precision on CUDA")
    o.option("--channels-last", flag=True, default=True, help="channels-last memory format")


def _run(config: dict, ctx) -> Result:
    from RobustDeepLogic.core.errors import InputError
    from RobustDeepLogic.io.transforms import read_transform
    from RobustDeepLogic.io.volumes import is_volume_path, read_volume, write_volume
    from RobustDeepLogic.predict.ensemble import load_models
    from RobustDeepLogic.predict.volumes import (
        inference_device,
        predict_image,
        to_native,
    )

    if not config.get("out"):
        raise InputError("--out DIR is required")
    out_dir = Path(config["out"])
    device = inference_device(str(config["device"]))
    info, models = load_models(config["run"], which=config["which"], folds=config["fold"],
                               device=device, channels_last=bool(config["channels_last"]))
    suffix = FORMATS[config["format"]]
    inputs = [Path(p) for p in config["inputs"]]
    common = dict(average=bool(config["average"]), batch_size=config["batch_size"], device=device,
                  amp=config["amp"], channels_last=bool(config["channels_last"]),
                  crop_head=bool(config["crop_head"]), progress=ctx.progress)
    target = info.target
    background = info.scaling_of(target).to_physical(0.0)
    outputs = {}
    if inputs[0].is_dir() and (inputs[0] / "manifest.json").is_file():
        from RobustDeepLogic.cohort.manifest import Cohort

        if config.get("native_reference") or config.get("transform"):
            raise InputError("--native-reference / --transform apply to one patient given as volume files",
                             hint="predict that patient from its files")
        cohort = Cohort.load(inputs[0])
        if cohort.space != info.space:
            ctx.log.warning("the run was trained on %s-space data; this cohort is in %s space",
                            info.space, cohort.space)
        ids = [str(p) for p in config["inputs"][1:]]
        if not ids:
            test = [p for p in info.folds.get("test", []) if p in cohort.ids]
            ids = test or [p.id for p in cohort.patients if not p.is_synthetic]
        for pid in ids:
            patient = cohort.patient(pid)
            images = [cohort.read(pid, m) for m in info.inputs]
            reference = cohort.read(pid, target) if target in patient.modalities else None
            pred = predict_image(info, models, images, reference=reference, patient=pid, **common)
            outputs[pid] = str(write_volume(pred, out_dir / f"{pid}_{target}{suffix}"))
    else:
        for p in inputs:
            if not is_volume_path(p):
                raise InputError("not a volume file or a cohort folder", file=p)
        images = [read_volume(p, dtype=__import__("numpy").float32) for p in inputs]
        reference = read_volume(config["reference"]) if config.get("reference") else None
        pred = predict_image(info, models, images, reference=reference, **common)
        if config.get("native_reference") or config.get("transform"):
            if not (config.get("native_reference") and config.get("transform")):
                raise InputError("--native-reference and --transform go together")
            pred = to_native(pred, read_volume(config["native_reference"]),
                             read_transform(config["transform"]),
                             direction=config["transform_direction"], default_value=background)
        from RobustDeepLogic.core.files import strip_volume_suffix

        name = config.get("name") or f"{strip_volume_suffix(inputs[0])}_{target}"
        outputs[name] = str(write_volume(pred, out_dir / f"{name}{suffix}"))
    return Result(outputs=outputs, figures={"volumes": len(outputs), "folds": len(models)},
                  summary=f"predicted {target} ({info.scaling_of(target).unit or 'scaled'}) for "
                  f"{len(outputs)} volume(s) with {len(models) if config['average'] else 1} network(s)")


COMMAND = Command("predict", "predict whole volumes with a trained run (back to SUV / HU)", _arguments,
                  _run, output="out")

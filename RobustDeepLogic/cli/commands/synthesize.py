"""``robustdeep synthesize REGISTERED OUT``: synthetic subjects from pairs of patients (docs/method.md §6).

Ordered pairs of registered patients (``--count`` random pairs, ``--per-patient`` or
``--all-pairs``) are blended with each mask (docs/method.md §4), every modality with the same mask;
each subject's parents and mask are recorded. The engine's function is
:func:`RobustDeepLogic.synthesis.disk.synthesize`.
"""

from __future__ import annotations

from typing import Any, Dict

from RobustDeepLogic.cli.frame import Command, Options, Result, RunContext


def _arguments(o: Options) -> None:
    o.positional("registered", help="a registered cohort (space 'template')")
    o.positional("out", help="output cohort folder (created or extended; may be REGISTERED itself)")
    o.option("--mask", nargs="+", default=None, metavar="MASK",
             help="mask(s): preset names, generator specs or files; each pair is blended with each mask")
    o.option("--count", type=int, default=None, help="this many distinct random ordered pairs")
    o.option("--per-patient", type=int, default=None,
             help="K pairs per patient (each patient is parent 1 K times and parent 2 K times)")
    o.option("--all-pairs", flag=True, default=False, help="all N(N-1) ordered pairs")
    o.option("--seed", type=int, default=None, help="seed of the pair choice (required)")
    o.option("--patients", nargs="+", default=None, metavar="ID",
             help="parents only from these patients (e.g. a training fold)")
    o.option("--folds", nargs="+", type=int, default=None, metavar="K",
             help="parents only from patients of these cross-validation folds")
    o.option("--modalities", nargs="+", default=None, metavar="MOD",
             help="modalities to blend (default: all that every parent has)")
    o.option("--levels", type=int, default=4, help="pyramid levels")
    o.option("--method", choices=["laplacian", "naive"], default="laplacian", help="blend method")
    o.option("--format", choices=["nii.gz", "nii", "nrrd", "mha"], default="nii.gz",
             help="output file format")
    o.option("--workers", type=int, default=1, help="parallel worker processes")
    o.option("--scheduler", default=None,
             help="run on Dask: 'dask' for a local cluster of --workers, or a scheduler address "
             "(tcp://host:8786); needs pip install 'dask[distributed]'")


def _run(config: Dict[str, Any], ctx: RunContext) -> Result:
    from RobustDeepLogic.core.errors import InputError
    from RobustDeepLogic.synthesis.disk import synthesize

    if config["seed"] is None:
        raise InputError("give --seed S: it fixes the pair choice and is recorded in provenance")
    if not config["mask"]:
        raise InputError("give --mask (a preset such as 'simple' or 'complex', a spec or a file)")
    report = synthesize(
        config["registered"], config["out"], list(config["mask"]),
        count=config["count"], per_patient=config["per_patient"], all_pairs=bool(config["all_pairs"]),
        seed=int(config["seed"]), patients=config["patients"], folds=config["folds"],
        modalities=config["modalities"], levels=int(config["levels"]), method=config["method"],
        suffix="." + config["format"], workers=int(config["workers"]), scheduler=config["scheduler"],
        progress=ctx.progress,
    )
    ctx.log.info("synthesized %d, kept %d, from pool %s", report.made, report.skipped, report.pool)
    return Result(
        outputs={"cohort": str(report.out)},
        figures={"planned": report.planned, "made": report.made, "skipped": report.skipped,
                 "pool": len(report.pool), "seconds": round(report.seconds, 2)},
        summary=f"{report.made} synthetic subjects made, {report.skipped} already there "
                f"(parents from {len(report.pool)} patients) in {report.seconds:.1f} s",
    )


COMMAND = Command(
    "synthesize",
    "make synthetic subjects by blending pairs of registered patients",
    _arguments,
    _run,
    output="out",
)

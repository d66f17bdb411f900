"""``robustdeep cohort``: check a cohort, import one from a folder of files, list it.

A cohort is a folder per patient and a manifest (:mod:`RobustDeepLogic.cohort.manifest`).
``cohort check`` reports every problem with its patient and file and modifies nothing (exit status 2
when there is an error); ``cohort import`` builds a cohort from NIfTI / NRRD / MetaImage files or
DICOM series (PET in SUV, CT in HU) and checks it (exit status 2 when the check finds an error: the
imported cohort stays on disk, complete, for a look); ``cohort list`` shows the patients by modality.
"""

from __future__ import annotations

from RobustDeepLogic.cli.frame import Command, Options, Result
from RobustDeepLogic.core.errors import InputError


def _show(problems, ctx) -> None:
    """Each problem as a line on stdout, or a JSON ``error`` event; and in the log file."""
    for problem in problems:
        ctx.log.info("%s", problem, extra={"console": False})  # the log file only
        if ctx.progress.mode == "json":
            ctx.progress.emit(problem.as_event())
        else:
            print(problem)


def _check_arguments(o: Options) -> None:
    o.positional("cohort", help="cohort folder (holding manifest.json)")
    o.option("--task", nargs="+", default=[], help="tasks whose modalities every patient must have "
             "(ld2fd ldmr2fd nac2mac mr2ct or your own); default: the manifest's tasks")
    o.option("--negative-suv-tolerance", type=float, default=0.01,
             help="PET voxels below minus this SUV count as negative")
    o.option("--workers", type=int, default=2, help="volumes read in parallel")


def _check_run(config: dict, ctx) -> Result:
    from RobustDeepLogic.cohort.check import check_cohort, summarise
    from RobustDeepLogic.cohort.manifest import Cohort

    cohort = Cohort.load(config["cohort"])
    problems = check_cohort(cohort, tasks=config["task"],
                            negative_suv_tolerance=float(config["negative_suv_tolerance"]),
                            workers=int(config["workers"]), progress=ctx.progress)
    errors, warnings = summarise(problems)
    _show(problems, ctx)
    n_volumes = sum(len(p.modalities) for p in cohort)
    if errors:
        raise InputError(f"{errors} error(s) and {warnings} warning(s) in {len(cohort)} patients",
                         file=cohort.root, hint="each problem is listed above")
    return Result(figures={"patients": len(cohort), "volumes": n_volumes, "errors": 0,
                           "warnings": warnings},
                  summary=f"cohort OK: {len(cohort)} patients, {n_volumes} volumes, {warnings} warning(s)")


def _import_arguments(o: Options) -> None:
    o.positional("source", help="folder of patient images (see the naming rule below)")
    o.positional("out", help="new cohort folder")
    o.option("--task", nargs="+", default=[], help="tasks this cohort is meant for (recorded, checked)")


def _import_run(config: dict, ctx) -> Result:
    from RobustDeepLogic.cohort.check import check_cohort, summarise
    from RobustDeepLogic.cohort.importer import import_cohort

    cohort, skipped = import_cohort(config["source"], config["out"], tasks=config["task"],
                                    progress=ctx.progress)
    for line in skipped:
        ctx.log.warning("skipped %s", line)
    problems = check_cohort(cohort, progress=ctx.progress)
    _show(problems, ctx)
    errors, warnings = summarise(problems)
    if errors:  # every volume and the manifest are written whole; the cohort is not usable as it is
        raise InputError(f"imported {len(cohort)} patients, but the check found {errors} error(s) and "
                         f"{warnings} warning(s): the cohort is not usable as it is", file=cohort.root,
                         hint="each problem is listed above; fix the source and import into a new "
                         "folder (importing again into this one keeps the volumes already there), or "
                         "fix this folder and run 'robustdeep cohort check'")
    return Result(
        outputs={"cohort": str(cohort.root), "manifest": str(cohort.manifest_path)},
        figures={"patients": len(cohort), "skipped": len(skipped), "errors": errors, "warnings": warnings},
        summary=f"imported {len(cohort)} patients ({len(skipped)} files skipped; check: {errors} "
        f"error(s), {warnings} warning(s))",
    )


def _list_arguments(o: Options) -> None:
    o.positional("cohort", help="cohort folder")


def _list_run(config: dict, ctx) -> Result:
    from RobustDeepLogic.cohort.manifest import Cohort
    from RobustDeepLogic.core.modalities import MODALITIES

    cohort = Cohort.load(config["cohort"])
    rows = [f"{'patient':<14}{'split':<7}{'fold':<6}{'kind':<11}" + "".join(f"{m:<5}" for m in MODALITIES)]
    for p in cohort:
        kind = p.provenance.get("kind", "real")
        rows.append(f"{p.id:<14}{p.split or '-':<7}{'-' if p.fold is None else p.fold:<6}{kind:<11}"
                    + "".join(f"{'x' if m in p.modalities else '.':<5}" for m in MODALITIES))
    n_synth = sum(p.is_synthetic for p in cohort)
    return Result(
        figures={"patients": len(cohort), "synthetic": n_synth},
        summary="\n".join(rows) + f"\n{len(cohort)} subjects ({n_synth} synthetic), space {cohort.space}",
    )


_NAMING = """naming rule:
  SRC/<patient>/<modality>.nii.gz   (or .nii .nrrd .nhdr .mha .mhd)
  SRC/<patient>/<modality>/         a DICOM series (PET -> SUV, CT -> HU)
  SRC/<patient>_<modality>.nii.gz   flat files
modalities: FD LD NAC MAC CT T1 T2 (aliases: fulldose lowdose ac ctac t1w mprage t2w ...)
patient ids: ASCII letters, digits, . _ - (no spaces or accents)"""

COMMAND = Command(
    "cohort",
    "check, import or list a cohort (a folder per patient and a manifest)",
    subcommands=[
        Command("check", "validate a cohort and report every problem with its patient and file; "
                "modifies nothing", _check_arguments, _check_run),
        Command("import", "build a cohort from a folder of NIfTI / NRRD / MetaImage files or DICOM "
                "series, and check it (exit status 2 when the check finds an error)", _import_arguments,
                _import_run, output="out", epilog=_NAMING),
        Command("list", "list the patients of a cohort by modality", _list_arguments, _list_run),
    ],
)

"""``robustdeep register COHORT OUT``: rigid registration of a cohort to the MNI FDG template.

FD PET goes to the FDG template (6 DOF, Mattes mutual information, then a brain refinement that
absorbs a head larger or smaller than the template and keeps the closest rigid transform over the
brain); LD, NAC, MAC and CT follow it;
T1 and T2 go to the patient's CT (to FD without CT) and follow. Every modality is resampled onto the
template grid (about 2 mm, the head); OUT is a registered cohort (space 'template') with per-patient
transforms (ITK .tfm / .h5, loadable in 3D Slicer as they are), head masks, QC pictures and the table
OUT/registration_qc.csv, which flags likely failures. Flagged patients are left out of the
registered cohort (the manifest lists them under meta.registration.excluded, with their flags, and a
warning names each); --keep-flagged keeps them. When QC leaves no patient, the exit status is 2.

Patients run in parallel processes (--workers); a run resumes: patients already registered with the
same options are skipped unless --force. Options named after BRAINSFit take BRAINSFit's spelling too
(--samplingPercentage, --initializeTransformMode, ...). See docs/registration.md.
"""

from __future__ import annotations

from pathlib import Path

from RobustDeepLogic.cli.frame import Command, Options, Result


def add_rigid_options(o: Options) -> None:
    """Declare the BRAINSFit-like rigid registration options (shared with ``template build``).

    Their config keys are fields of :class:`RobustDeepLogic.registration.config.RigidConfig`.

    Parameters
    ----------
    o : Options
        The command's options.
    """
    o.option("--cost-metric", "--costMetric", default="MMI", choices=["MMI", "MSE", "NC"],
             help="similarity metric: Mattes mutual information, mean squares, normalised correlation")
    o.option("--number-of-histogram-bins", "--numberOfHistogramBins", type=int, default=50,
             help="Mattes histogram bins")
    o.option("--sampling-percentage", "--samplingPercentage", type=float, default=0.02,
             help="fraction of template voxels sampled at full resolution (coarser levels sample "
             "p x shrink^2)")
    o.option("--initialize-transform-mode", "--initializeTransformMode", default="useMomentsAlign",
             choices=["useMomentsAlign", "useCenterOfHeadAlign", "useGeometryAlign", "Off"],
             help="initial alignment before the rotation search")
    o.option("--rotation-search-deg", type=float, default=30.0,
             help="half-range of the coarse exhaustive rotation search about each axis (0: off)")
    o.option("--rotation-search-step-deg", type=float, default=15.0, help="its step, degrees")
    o.option("--number-of-iterations", "--numberOfIterations", type=int, default=200,
             help="maximum optimizer iterations per resolution level")
    o.option("--maximum-step-length", type=float, default=2.0,
             help="initial step of the regular-step gradient descent (physical-shift-scaled units, "
             "about mm)")
    o.option("--minimum-step-length", "--minimumStepLength", type=float, default=0.01,
             help="the optimizer stops when its step falls below this")
    o.option("--relaxation-factor", "--relaxationFactor", type=float, default=0.5,
             help="step shrink factor when the gradient changes direction")
    o.option("--shrink-factors", type=int, nargs="+", default=[4, 2, 1],
             help="multi-resolution shrink factors, coarse to fine")
    o.option("--smoothing-sigmas", type=float, nargs="+", default=[2.0, 1.0, 0.0],
             help="Gaussian smoothing per level, in voxels")
    o.option("--mask-processing-mode", "--maskProcessingMode", default="ROIAUTO",
             choices=["NOMASK", "ROIAUTO", "ROI"],
             help="restrict the metric to the head: ROI uses the template head mask (template "
             "registrations always do unless NOMASK), ROIAUTO an automatic head mask of the fixed "
             "image (MR to CT always does unless NOMASK)")
    o.option("--brain-refinement", default="similarity", choices=["similarity", "off"],
             help="to a template: refine the rigid result by a similarity fit inside the template "
             "brain and keep its closest rigid transform over the brain (off: the rigid result, as "
             "BRAINSFit's rigid stage)")
    o.option("--working-spacing", type=float, default=2.0,
             help="images with finer voxels are block-averaged to about this (mm) before registering")
    o.option("--seed", type=int, default=20220430, help="seed of the metric's random sampling")


def _arguments(o: Options) -> None:
    o.positional("cohort", help="native-space cohort folder (with manifest.json)")
    o.positional("out", help="output folder: the registered cohort")
    o.option("--template", default="fdg",
             help="'fdg' (the tissue-model FDG template) or an FDG template volume in MNI space, "
             "e.g. from 'robustdeep template build'")
    o.option("--spacing", type=float, default=2.0, help="template grid spacing in mm")
    o.option("--fwhm", type=float, default=6.0, help="PET resolution of the model FDG template (mm)")
    o.option("--workers", type=int, default=0, help="parallel processes (0: one per core)")
    o.option("--force", flag=True, default=False, help="register again patients already done")
    o.option("--patients", nargs="+", default=None, help="only these patient ids")
    o.option("--keep-going", flag=True, default=True,
             help="record a patient's input error and go on with the others (exit status 2 at the end)")
    o.option("--keep-flagged", flag=True, default=False,
             help="keep patients that QC flags in the registered cohort (by default they are left "
             "out, with a warning naming each, and stay in registration_qc.csv)")
    o.option("--exclude-flagged", flag=True, default=None,
             help="deprecated: flagged patients are left out by default; --no-exclude-flagged is "
             "--keep-flagged")
    o.option("--transform-format", default="tfm", choices=["tfm", "h5"], help="transform file type")
    o.option("--qc-images", flag=True, default=True, help="write a QC picture per patient")
    o.option("--dice-threshold", type=float, default=0.85,
             help="flag a patient whose head-mask Dice with the template is below this")
    o.option("--correlation-threshold", type=float, default=0.7,
             help="flag a patient whose PET correlates less than this with the FDG template")
    o.option("--mr-dice-threshold", type=float, default=0.85,
             help="flag a patient whose T1/T2 head mask overlaps its CT/PET head less than this")
    add_rigid_options(o)


def rigid_config_from(config: dict):
    """The rigid registration settings in a command's resolved configuration.

    Parameters
    ----------
    config : dict
        The resolved configuration of ``register`` (keys of :func:`add_rigid_options`).

    Returns
    -------
    RigidConfig
        :meth:`RobustDeepLogic.registration.config.RigidConfig.from_mapping` of ``config``.

    Raises
    ------
    InputError
        When a value is not valid (as ``RigidConfig.from_mapping`` checks it).
    """
    from RobustDeepLogic.registration.config import RigidConfig

    return RigidConfig.from_mapping(config)


def _run(config: dict, ctx) -> Result:
    from RobustDeepLogic.cohort.manifest import Cohort
    from RobustDeepLogic.core.errors import InputError
    from RobustDeepLogic.registration.cohort import register_cohort
    from RobustDeepLogic.registration.config import RegistrationOptions
    from RobustDeepLogic.registration.template_space import (
        load_template_image,
        write_template_space,
    )

    keep_flagged = bool(config["keep_flagged"])
    if config.get("exclude_flagged") is not None:  # deprecated: --exclude-flagged is the default
        if config["exclude_flagged"] and keep_flagged:
            raise InputError("--exclude-flagged and --keep-flagged contradict each other",
                             hint="flagged patients are left out by default; give --keep-flagged "
                             "alone to keep them")
        ctx.log.warning("--exclude-flagged is deprecated: flagged patients are left out by default "
                        "(--keep-flagged keeps them)")
        keep_flagged = keep_flagged or not config["exclude_flagged"]
    source = Cohort.load(config["cohort"])
    out_dir = Path(config["out"])
    options = RegistrationOptions(
        rigid=rigid_config_from(config),
        transform_format=config["transform_format"],
        qc_images=bool(config["qc_images"]),
        dice_threshold=float(config["dice_threshold"]),
        correlation_threshold=float(config["correlation_threshold"]),
        mr_dice_threshold=float(config["mr_dice_threshold"]),
    )
    spacing = float(config["spacing"])
    with ctx.progress.stage("template", total=1) as st:
        fdg = load_template_image(config["template"], spacing=spacing, fwhm_mm=float(config["fwhm"]))
        files = write_template_space(out_dir / "template", spacing=spacing, fdg=fdg, with_t1=False)
        st.advance()
    outcome = register_cohort(
        source, out_dir, options=options, template_files=files, spacing=spacing,
        workers=int(config["workers"]), force=bool(config["force"]), patients=config["patients"],
        keep_going=bool(config["keep_going"]), keep_flagged=keep_flagged, progress=ctx.progress,
    )
    for pid in outcome.flagged:
        if pid in outcome.excluded:
            what, flags = "left out of the registered cohort", outcome.excluded[pid]
        else:
            qc = outcome.cohort.patient(pid).meta["registration"]["qc"]
            what, flags = "kept (--keep-flagged)", "; ".join(qc.get("flags", []))
        ctx.log.warning("patient %s: registration flagged by QC, %s: %s (see %s and %s)", pid, what,
                        flags, outcome.summary_csv, out_dir / pid / "qc.png")
    summary = (f"registered {len(outcome.done)} patients, kept {len(outcome.skipped)} done before, "
               f"{len(outcome.flagged)} flagged by QC ({len(outcome.excluded)} left out), "
               f"{len(outcome.failed)} failed, in {outcome.seconds:.1f} s")
    left_out = (f"; flagged by QC and left out: {', '.join(outcome.excluded)}"
                if outcome.excluded else "")
    if outcome.failed:
        ids = ", ".join(sorted(outcome.failed))
        raise InputError(f"{len(outcome.failed)} patient(s) could not be registered: {ids}"
                         f"{left_out}; the others are in {out_dir}",
                         file=outcome.summary_csv, hint="see the errors in registration_qc.csv")
    if outcome.excluded and not outcome.cohort.patients:
        raise InputError(
            "QC flagged every registered patient, so the registered cohort is empty: "
            + "; ".join(f"{pid}: {flags}" for pid, flags in outcome.excluded.items()),
            file=outcome.summary_csv,
            hint="look at registration_qc.csv and each patient's qc.png; fix the images (origin, "
            "direction, modality) or rerun with --keep-flagged to keep them")
    return Result(
        outputs={"cohort": str(out_dir), "qc": str(outcome.summary_csv),
                 "template": str(files["fdg"])},
        figures={"registered": len(outcome.done), "skipped": len(outcome.skipped),
                 "flagged": len(outcome.flagged), "excluded": len(outcome.excluded),
                 "failed": len(outcome.failed),
                 "seconds": round(outcome.seconds, 2)},
        summary=summary,
    )


COMMAND = Command(
    "register",
    "rigid registration of a cohort to the MNI FDG template (PET/CT family follows FD, MR via CT)",
    _arguments,
    _run,
    description=__doc__,
    output="out",
)

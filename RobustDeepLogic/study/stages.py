"""The paper's study in one call (docs/method.md §9): ``robustdeep reproduce`` and ``robustdeep demo``.

:func:`reproduce` composes the engine's stages into the experiment of Sanaat et al. (2022):

1. **cohort**: simulate the digital cohort (or take a given one; it is only read);
2. **split**: held-out test patients and patient-level folds, drawn once with the study seed (or
   taken from the cohort's manifest);
3. **register**: every patient rigidly to the MNI FDG template (PR and PM data);
4. **native**: the PU data, each patient left in its own PET/CT frame; T1 and T2 are moved into that
   frame with the within-patient MR -> CT registration (a network cannot learn from unpaired images),
   but nothing goes to MNI;
5. **synthesize**: for every trained fold, synthetic subjects blended (Laplacian) from that fold's
   training patients only, with mask #1 (PM1) and mask #2 (PM2);
6. **train** every arm of every task: PU, PR, PM1, PM2 (the paper's scenarios); the augmentation
   ablation PR-naive, PR-mixup, PR-cutmix (PR plus the same number of subjects made from the same
   parent pairs by naive mask blending, MixUp or CutMix, blended on the fly); and PM2-steps (PM2's
   data trained for PR's number of optimizer steps: the equal-compute comparison);
7. **predict** the test patients with each arm (fold networks averaged), back in the patient's native
   PET/CT frame and in SUV / HU, so that every arm is judged against the same untouched reference;
8. **evaluate** (RMSE, PSNR, both SSIMs, joint histograms, bias maps) and 9. **report**.

Every stage resumes: a stage whose outputs exist is skipped, a training continues from its last
checkpoint, so running the same command again after an interruption continues where it stopped.

Layout of a study folder::

    OUT/study.json                      profile, settings, split, stage timings (written as it goes)
    OUT/cohort/                         the simulated cohort (absent with --cohort)
    OUT/registered/                     template space (PR, PM), with the split in its manifest
    OUT/native/                         the PU cohort (PET/CT files referenced, MR moved to the CT)
    OUT/synthetic/PM1/  OUT/synthetic/PM2/          synthetic subjects with provenance
    OUT/runs/<task>/<arm>/              training runs (checkpoints, history.csv, run.json)
    OUT/predictions/<task>/<arm>/<patient>.nii.gz  native space, SUV / HU
    OUT/evaluation/                     metrics.csv, maps, history/, provenance.json
    OUT/evaluation/report.html, report.md, headline.md

Profiles and arms are in :mod:`RobustDeepLogic.study.profiles`, the study record and the split in
:mod:`RobustDeepLogic.study.folder`, the evaluation and the headline in :mod:`RobustDeepLogic.study.results`.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy
import SimpleITK

from RobustDeepLogic.cohort.folds import FoldPlan, fold_seed
from RobustDeepLogic.cohort.manifest import Cohort
from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.files import atomic_write_text
from RobustDeepLogic.core.progress import Progress
from RobustDeepLogic.core.types import PathLike
from RobustDeepLogic.core.version import __version__
from RobustDeepLogic.evaluate.results import read_metrics_csv
from RobustDeepLogic.registration.cohort import register_cohort
from RobustDeepLogic.registration.config import RegistrationOptions
from RobustDeepLogic.registration.template_space import (
    load_template_image,
    write_template_space,
)
from RobustDeepLogic.report.document import build_report
from RobustDeepLogic.simulate.cohort import simulate_cohort
from RobustDeepLogic.study.folder import (
    Study,
    build_native_cohort,
    choose_split,
    task_arms,
    write_split,
)
from RobustDeepLogic.study.predictions import predict_test_patients
from RobustDeepLogic.study.profiles import (
    ALL_TASKS,
    ARMS,
    MASKS,
    STUDY_PAIRS,
    Arm,
    get_profile,
)
from RobustDeepLogic.study.results import (
    HEADLINE_MD,
    _run_figures,
    _subject_counts,
    evaluate_study,
    headline_markdown,
    preface_sections,
    write_histories,
)
from RobustDeepLogic.study.settings import changed_settings, with_settings
from RobustDeepLogic.synthesis.disk import synthesize
from RobustDeepLogic.training.loop import tensorboard_error, train_run


def _blend_device(device: str) -> str:
    """Where on-the-fly subjects are blended: the GPU when training runs on one."""
    import torch

    if str(device).startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        return "cuda"
    return "cpu"


def _train_config(study: Study, task: str, arm: Arm, *, device: str, workers: int) -> Dict[str, Any]:
    p = study.profile
    cfg: Dict[str, Any] = {
        "task": task, "folds": p.folds, "fold": list(p.train_folds) if p.train_folds else None,
        "test_ids": list(study.split["test"]), "seed": study.seed, "epochs": p.epochs,
        "batch_size": p.batch_size, "lr": p.lr, "weight_decay": p.weight_decay, "window": list(p.window),
        "widths": list(p.widths), "slices_per_subject": p.slices_per_subject, "val_slices": p.val_slices,
        "device": device, "workers": workers, "resume": True,
        "scenario": "PU" if arm.space == "native" else ("PR" if arm.synthetic is None else "PM"),
    }
    if arm.synthetic is not None:
        cfg["synthetic_cohorts"] = [str(study.root / "synthetic" / arm.synthetic)]
        cfg["max_synthetic"] = p.synthetic
    if arm.on_the_fly is not None:
        cfg["on_the_fly"] = {"count": p.synthetic, "method": arm.on_the_fly, "levels": p.levels,
                             "seed": study.seed, "masks": [MASKS["PM2"]] if arm.on_the_fly == "naive" else [],
                             "device": _blend_device(device)}
    return cfg


def _provenance(study: Study, source) -> Dict[str, Any]:
    import torch


    return {"study": str(study.root), "profile": study.profile.as_dict(), "seed": study.seed,
            "cohort": study.cohort, "cohort_meta": {k: v for k, v in source.meta.items()
                                                    if isinstance(v, (str, int, float, bool))},
            "split": study.split, "tasks": study.tasks, "arms": study.arms,
            "stages": study.stages, "versions": {"robustdeep": __version__, "torch": torch.__version__,
                                                 "numpy": numpy.__version__,
                                                 "SimpleITK": SimpleITK.Version_VersionString(),
                                                 "python": platform.python_version()}}


# --------------------------------------------------------------------------------------------------
# The whole study
# --------------------------------------------------------------------------------------------------
def reproduce(
    out: PathLike,
    *,
    profile: str = "quick",
    cohort: Optional[PathLike] = None,
    tasks: Optional[Sequence[str]] = None,
    arms: Optional[Sequence[str]] = None,
    seed: int = 0,
    device: str = "auto",
    workers: int = 0,
    settings: Optional[Mapping[str, Any]] = None,
    progress: Optional[Progress] = None,
    log=None,
) -> Dict[str, Any]:
    """Run (or resume) the study into ``out``; returns output paths, the headline and timings.

    Parameters
    ----------
    out : str or PathLike
        The study folder (layout in the module doc); created, or resumed when it holds this study.
    profile : str, optional
        ``tiny``, ``quick`` (default) or ``paper`` (:data:`~RobustDeepLogic.study.profiles.PROFILES`).
    cohort : str or PathLike, optional
        A native-space cohort to use instead of simulating one (only read).
    tasks : sequence of str, optional
        Tasks to run (default all four: ld2fd, ldmr2fd, nac2mac, mr2ct).
    arms : sequence of str, optional
        Arms to train (default: all of :data:`~RobustDeepLogic.study.profiles.ARMS`; the ablation and
        compute arms only for the profile's tasks). PM2-steps needs PR; the ablation arms blend
        from the parent pairs of PM2 on the fly.
    seed : int, optional
        Seed of the simulated cohort, the split, the synthetic pairs and the network weights.
    device : str, optional
        ``auto``, ``cpu`` or ``cuda`` (training, prediction, on-the-fly blending).
    workers : int, optional
        Processes for simulation, registration and synthesis (0: one per core).
    settings : mapping of str to object, optional
        Settings of the profile to change (``--set``; :func:`~RobustDeepLogic.study.settings.with_settings`),
        e.g. ``{"train_folds": "all", "epochs": 10}``; recorded in ``study.json``.
    progress : Progress, optional
        Progress sink (default: silent).
    log : logging.Logger, optional
        Receives the split, the synthesis counts and the training messages.

    Returns
    -------
    dict
        ``study``, ``report`` (report.html), ``markdown`` (report.md) and ``metrics`` (metrics.csv)
        paths as str; ``headline`` (Markdown); ``timings`` (seconds per stage); ``runs``
        (``{"<task>/<arm>": run folder}``); ``rows`` (the metric rows).

    Raises
    ------
    InputError
        For an unknown profile, task or arm; a bad setting; PM2-steps without PR; a cohort not in
        native space; a folder that holds another study (another profile, setting, seed or cohort);
        too few patients; a patient failed or flagged at registration.
    """
    progress = progress or Progress()
    prof = with_settings(get_profile(profile), settings)
    root = Path(out)
    tasks = list(tasks) if tasks else list(ALL_TASKS)
    for t in tasks:
        if t not in ALL_TASKS:
            raise InputError(f"unknown task {t!r}", hint=f"tasks: {', '.join(ALL_TASKS)}")
    arm_names = list(arms) if arms else list(ARMS)
    for a in arm_names:
        if a not in ARMS:
            raise InputError(f"unknown arm {a!r}", hint=f"arms: {', '.join(ARMS)}")
    arm_names = [a for a in ARMS if a in arm_names]  # the order of ARMS (dependencies first)
    if "PM2-steps" in arm_names and "PR" not in arm_names:
        raise InputError("the arm PM2-steps needs PR (it trains for PR's number of steps)")
    timings: Dict[str, float] = {}

    def log_info(msg: str, *args: Any) -> None:
        if log is not None:
            log.info(msg, *args)

    # 1. cohort
    t0 = time.perf_counter()
    if cohort is None:
        cohort_dir = root / "cohort"
        study = Study.open(root, prof, seed, tasks, arm_names, "simulated:" + prof.simulate)
        simulate_cohort(cohort_dir, subjects=prof.subjects, seed=seed, profile=prof.simulate,
                        workers=workers or None, progress=progress)  # resumes: done subjects are kept
        study.done("cohort", time.perf_counter() - t0)
    else:
        cohort_dir = Path(cohort)
        study = Study.open(root, prof, seed, tasks, arm_names, str(cohort_dir.resolve()))
    study.tasks, study.arms = tasks, arm_names
    source = Cohort.load(cohort_dir)
    if source.space != "native":
        raise InputError("reproduce starts from a native-space cohort (it registers it itself)",
                         file=source.manifest_path)
    timings["cohort"] = time.perf_counter() - t0

    # 2. split
    if not study.split:
        study.split = choose_split(source, prof, seed).as_dict()
        study.save()
    plan = FoldPlan.from_dict(study.split)
    missing = [pid for pid in plan.test + tuple(plan.development) if pid not in source.ids]
    if missing:
        raise InputError(f"the study's split names patients not in the cohort: {missing}", file=study.path,
                         hint="use a new --out folder for another cohort")
    log_info("split: test %s; folds %s", list(plan.test), [list(f) for f in plan.folds])

    # 3. register
    t0 = time.perf_counter()
    reg_dir = root / "registered"
    spacing = prof.spacing
    with progress.stage("template", total=1) as st:
        files = write_template_space(reg_dir / "template", spacing=spacing,
                                     fdg=load_template_image("fdg", spacing=spacing), with_t1=False)
        st.advance()
    outcome = register_cohort(source, reg_dir, options=RegistrationOptions(), template_files=files,
                              spacing=spacing, workers=workers, progress=progress,
                              patients=[p.id for p in source.patients if not p.is_synthetic])
    if outcome.failed or outcome.excluded:  # the split names every patient: each must register well
        flagged = "; ".join(f"{pid}: {flags}" for pid, flags in outcome.excluded.items())
        raise InputError(f"registration failed for {', '.join(sorted(outcome.failed)) or 'none'}; flagged "
                         f"by QC (likely misregistered): {flagged or 'none'}", file=outcome.summary_csv,
                         hint="see registration_qc.csv and qc.png; fix or remove the patient (new --out)")
    registered = Cohort.load(reg_dir)
    write_split(registered, plan)
    timings["register"] = time.perf_counter() - t0
    study.done("register", timings["register"], flagged=sorted(outcome.flagged))

    # 4. native (PU) cohort
    t0 = time.perf_counter()
    native = build_native_cohort(source, registered, root / "native", plan, progress=progress)
    timings["native"] = time.perf_counter() - t0
    study.done("native", timings["native"])

    # 5. synthesize (on disk, per trained fold, from its training patients only)
    t0 = time.perf_counter()
    trained_folds = list(prof.train_folds) if prof.train_folds else list(range(plan.k))
    needed = sorted({ARMS[a].synthetic for a in arm_names if ARMS[a].synthetic})
    for key in needed:
        for f in trained_folds:
            report = synthesize(registered, root / "synthetic" / key, [MASKS[key]], count=prof.synthetic,
                                seed=fold_seed(seed, f), patients=plan.training(f), levels=prof.levels,
                                workers=workers or (os.cpu_count() or 1), progress=progress)
            log_info("synthetic %s fold %d: %d made, %d kept", key, f, report.made, report.skipped)
    timings["synthesize"] = time.perf_counter() - t0
    study.done("synthesize", timings["synthesize"])

    # 6-7. train and predict every arm of every task
    t0 = time.perf_counter()
    tb_error = tensorboard_error()  # said once for the study, not once per run
    if tb_error is not None and log is not None:
        log.warning("TensorBoard logs are not written: the 'tensorboard' package cannot be imported "
                    "(pip install 'robustdeep[tensorboard]')")
    runs: Dict[str, str] = {}
    predictions: Dict[str, Dict[str, str]] = {}
    for task, arms_of_task in task_arms(study).items():
        for arm in arms_of_task:
            run_dir = root / "runs" / task / arm.name
            cfg = {**_train_config(study, task, arm, device=device, workers=0), "tensorboard": tb_error is None}
            if arm.steps_of is not None:
                steps = _run_figures(root / "runs" / task / arm.steps_of, trained_folds).get("steps")
                if steps is None:
                    raise InputError(f"{arm.name} needs {arm.steps_of} trained first", file=run_dir)
                cfg["steps"] = steps
            cohort_of_arm = native if arm.space == "native" else registered
            train_run(cohort_of_arm.root, run_dir, cfg, progress=progress, log=log)
            key = f"{task}/{arm.name}"
            study.trained[key] = {**_run_figures(run_dir, trained_folds),
                                  **_subject_counts(run_dir, trained_folds)}
            study.save()
            runs[key] = str(run_dir)
            predictions[key] = predict_test_patients(study, task, arm, run_dir, source, registered, native,
                                                     device=device, progress=progress)
    timings["train+predict"] = time.perf_counter() - t0
    study.done("train", timings["train+predict"], tensorboard=tb_error is None)

    # 8. evaluate
    t0 = time.perf_counter()
    eval_dir = root / "evaluation"
    result = evaluate_study(study, source, native, eval_dir, progress=progress)
    timings["evaluate"] = time.perf_counter() - t0
    study.done("evaluate", timings["evaluate"])

    # 9. report
    t0 = time.perf_counter()

    write_histories(study, eval_dir)
    atomic_write_text(eval_dir / "provenance.json",
                      json.dumps(_provenance(study, source), indent=1, default=str) + "\n")

    metric_rows = read_metrics_csv(result["csv"])
    paths = build_report(eval_dir, patient=plan.test[0] if plan.test else None, pairs=list(STUDY_PAIRS),
                         title=f"Robust-Deep reproduced: the '{prof.name}' profile" + "".join(
                             f", {k}={'all' if v is None else v}" for k, v in changed_settings(prof).items()),
                         preface=preface_sections(study, metric_rows), progress=progress)
    headline = headline_markdown(study, metric_rows)
    atomic_write_text(eval_dir / HEADLINE_MD, headline)
    timings["report"] = time.perf_counter() - t0
    study.done("report", timings["report"])
    return {"study": str(root), "report": str(paths["html"]), "markdown": str(paths["markdown"]),
            "headline": headline, "metrics": str(result["csv"]), "timings": timings,
            "runs": runs, "rows": metric_rows}

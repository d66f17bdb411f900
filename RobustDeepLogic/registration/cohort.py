"""A whole cohort into template space (``robustdeep register``): :func:`register_cohort`.

Patients run in parallel processes, each registered by
:func:`~RobustDeepLogic.registration.patient.register_patient` and written by
:func:`~RobustDeepLogic.registration.patient.save_patient`. A run resumes (patients already done with
the same options and template are kept); by default a patient's bad input is recorded without
stopping the others; the QC table ``registration_qc.csv`` (:mod:`RobustDeepLogic.registration.qc`)
closes the run. The result is a registered cohort (manifest space ``'template'``); patients that QC
flags (likely misregistered) are left out of it unless ``keep_flagged``, and listed with their flags
under the manifest's ``meta['registration']['excluded']``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import SimpleITK as sitk

from RobustDeepLogic.cohort.manifest import Cohort
from RobustDeepLogic.cohort.patient import Patient
from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.progress import Progress
from RobustDeepLogic.core.types import PathLike
from RobustDeepLogic.io.volumes import Grid, read_volume
from RobustDeepLogic.registration.config import RegistrationOptions, RigidConfig
from RobustDeepLogic.registration.patient import (
    load_done,
    register_patient,
    save_patient,
)
from RobustDeepLogic.registration.qc import (
    summary_rows,
    write_summary_csv,
)
from RobustDeepLogic.registration.template_space import (
    TemplateSpace,
    write_template_space,
)


# --------------------------------------------------------------------------------------------------
# A cohort, in parallel, resumable
# --------------------------------------------------------------------------------------------------
def _worker_init(threads: int) -> None:
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(max(1, int(threads)))
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, int(threads))))


def _register_and_save(job: Dict[str, Any]) -> Dict[str, Any]:
    """One patient in a worker process: register, save, return the manifest entry (JSON)."""
    cohort = Cohort.load(job["cohort"])
    patient = Patient.from_json(job["patient"])
    template = TemplateSpace.from_files(job["template_files"])
    rigid = RigidConfig.from_mapping(job["rigid"])
    options = RegistrationOptions(rigid=rigid, **job["options"])
    try:
        reg = register_patient(cohort, patient, template, options)
        entry = save_patient(reg, job["out"], patient, options, job["fingerprint"],
                             template_fdg=template.fdg)
        return {"ok": True, "entry": entry.to_json(), "seconds": reg.seconds}
    except InputError as exc:
        return {"ok": False, "id": patient.id, "error": str(exc), "kind": "input"}


@dataclass
class CohortRegistration:
    """What :func:`register_cohort` did: the registered cohort and per-patient outcomes.

    Attributes
    ----------
    cohort : Cohort
        The registered cohort (space ``'template'``), saved in the output folder.
    done : list of str
        Ids of the patients registered by this run.
    skipped : list of str
        Ids of the chosen patients kept from an earlier run with the same fingerprint.
    failed : dict of str to str
        Error message by id of the patients whose input was not usable.
    flagged : list of str
        Ids of the registered patients (this run or earlier) whose QC failed.
    summary_csv : pathlib.Path
        The QC table, ``out_dir/registration_qc.csv``.
    seconds : float
        Wall time of the run.
    excluded : dict of str to str
        The flagged patients left out of the registered cohort (all of ``flagged`` unless
        ``keep_flagged``), with their QC flags joined by ``'; '``.
    """

    cohort: Cohort
    done: List[str]
    skipped: List[str]
    failed: Dict[str, str]
    flagged: List[str]
    summary_csv: Path
    seconds: float
    excluded: Dict[str, str] = field(default_factory=dict)


def register_cohort(
    source: Cohort,
    out_dir: PathLike,
    *,
    options: Optional[RegistrationOptions] = None,
    template_files: Optional[Mapping[str, PathLike]] = None,
    spacing: float = 2.0,
    workers: int = 1,
    force: bool = False,
    patients: Optional[Sequence[str]] = None,
    keep_going: bool = True,
    keep_flagged: bool = False,
    progress: Optional[Progress] = None,
) -> CohortRegistration:
    """Register every patient of ``source`` into template space and write a registered cohort.

    Parameters
    ----------
    source : Cohort
        The native-space cohort.
    out_dir : path-like
        The registered cohort's folder (same layout; ``manifest.json`` with space ``template``),
        created if needed; it must not be ``source``'s folder.
    options : RegistrationOptions, optional
        Rigid options, transform format, QC pictures and thresholds (default:
        ``RegistrationOptions()``).
    template_files : mapping of str to path-like, optional
        ``{'fdg', 'head_mask', 'brain_mask'}`` paths on one grid; default: the model FDG template
        at ``spacing`` mm, written to ``out_dir/template/``.
    spacing : float, optional
        Template grid spacing in mm when ``template_files`` is not given (default 2).
    workers : int, optional
        Processes (each runs ``cores // workers`` ITK threads), at most one per patient to do; 0 or
        less means one per core. With 1, patients run in this process.
    force : bool, optional
        Redo patients already registered (otherwise those with a matching fingerprint are kept).
    patients : sequence of str, optional
        A subset of patient ids (default: all). Patients outside it registered by an earlier run with
        the same fingerprint stay in the registered manifest.
    keep_going : bool, optional
        On a patient's :class:`~RobustDeepLogic.core.errors.InputError`, record it and go on (the rest
        is registered); else stop with that error.
    keep_flagged : bool, optional
        Keep patients whose QC failed in the registered manifest. By default they are left out (a
        registered cohort never holds a patient QC took for misregistered): their files stay in
        ``out_dir``, their rows in the CSV, and the manifest's ``meta['registration']['excluded']``
        lists them with their flags. A later run with ``keep_flagged`` takes them in without
        registering them again.
    progress : Progress, optional
        Progress reporting (stages ``template`` and ``register``; warnings for failed patients);
        default: silent.

    Returns
    -------
    CohortRegistration
        With the summary table ``out_dir/registration_qc.csv`` (see
        :mod:`RobustDeepLogic.registration.qc`) and the flagged patients left out (``excluded``).

    Raises
    ------
    InputError
        When an option is not valid, ``source`` is not in native space, ``out_dir`` is ``source``'s
        folder, there are no patients to register (or an id is unknown), or a patient fails and
        ``keep_going`` is False.

    References
    ----------
    .. [1] docs/method.md §3.4.
    """
    progress = progress or Progress()
    options = options or RegistrationOptions()
    options.rigid.validate()
    start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if source.space != "native":
        raise InputError(f"this cohort is already in {source.space!r} space",
                         file=source.manifest_path, hint="register a native-space cohort")
    if Path(out_dir).resolve() == source.root.resolve():
        raise InputError("the output folder is the input cohort's folder", file=out_dir,
                         hint="write the registered cohort to a new folder")
    if template_files is None:
        with progress.stage("template", total=1) as st:
            template_files = write_template_space(out_dir / "template", spacing=spacing,
                                                  with_t1=False)
            st.advance()
    template_files = {k: str(Path(v).resolve()) for k, v in template_files.items()}
    fingerprint = options.fingerprint(template_files)
    chosen = source.select(patients)
    if not chosen:
        raise InputError("no patients to register", file=source.manifest_path)

    out = source.copy_for(out_dir)
    out.space = "template"
    out.meta["registration"] = {
        "template": {k: os.path.relpath(v, out_dir) if str(v).startswith(str(out_dir.resolve()))
                     else v for k, v in template_files.items()},
        "grid": {"size": list(Grid.of(read_volume(template_files["fdg"])).size),
                 "spacing": list(Grid.of(read_volume(template_files["fdg"])).spacing)},
        "config": options.rigid.as_dict(),
        "source": str(source.root),
        "transform_convention": "ITK resampling transforms (template -> native points, LPS); "
                                "load in Slicer as they are",
        "qc_thresholds": {"dice": options.dice_threshold,
                          "correlation": options.correlation_threshold,
                          "mr_dice": options.mr_dice_threshold},
    }
    entries: Dict[str, Patient] = {}
    done: List[str] = []
    skipped: List[str] = []
    failed: Dict[str, str] = {}
    todo: List[Patient] = []
    chosen_ids = {p.id for p in chosen}
    for p in source.patients:
        if p.id not in chosen_ids:  # registered by an earlier run on another subset: keep it
            previous = load_done(out_dir, p.id, fingerprint)
            if previous is not None:
                entries[p.id] = previous
    for p in chosen:
        previous = None if force else load_done(out_dir, p.id, fingerprint)
        if previous is not None:
            entries[p.id] = previous
            skipped.append(p.id)
        else:
            todo.append(p)

    excluded: Dict[str, str] = {}

    def save_manifest() -> None:
        excluded.clear()
        for pid, entry in entries.items():
            qc = entry.meta["registration"]["qc"]
            if not keep_flagged and not qc.get("ok", False):
                excluded[pid] = "; ".join(qc.get("flags", [])) or "QC failed"
        out.patients = [entries[p.id] for p in source.patients
                        if p.id in entries and p.id not in excluded]
        out.meta["registration"]["excluded"] = {p.id: excluded[p.id] for p in source.patients
                                                if p.id in excluded}
        out.save()

    ncores = os.cpu_count() or 1
    nworkers = ncores if workers <= 0 else int(workers)
    nworkers = max(1, min(nworkers, len(todo) or 1))
    threads = max(1, ncores // nworkers)
    base_options = {"transform_format": options.transform_format, "qc_images": options.qc_images,
                    "dice_threshold": options.dice_threshold,
                    "correlation_threshold": options.correlation_threshold,
                    "mr_dice_threshold": options.mr_dice_threshold}
    jobs = [{"cohort": str(source.root), "patient": p.to_json(), "template_files": template_files,
             "rigid": options.rigid.as_dict(), "options": base_options, "out": str(out_dir),
             "fingerprint": fingerprint} for p in todo]

    def handle(outcome: Dict[str, Any], st) -> None:
        if outcome["ok"]:
            entry = Patient.from_json(outcome["entry"])
            entries[entry.id] = entry
            done.append(entry.id)
            save_manifest()
            st.advance(message=f"{entry.id} {outcome['seconds']:.1f} s")
        else:
            failed[outcome["id"]] = outcome["error"]
            progress.log("WARNING", outcome["error"])
            st.advance(message=f"{outcome['id']} failed")
            if not keep_going:
                raise InputError(outcome["error"].split(": ", 1)[-1], patient=outcome["id"],
                                 hint="fix this patient, or run with --keep-going")

    save_manifest()
    with progress.stage("register", total=len(todo)) as st:
        if nworkers == 1:
            threads_before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
            _worker_init(threads if threads > 0 else ncores)
            try:
                for job in jobs:
                    handle(_register_and_save(job), st)
            finally:
                sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads_before)
        else:
            ctx = mp.get_context("spawn")
            with ProcessPoolExecutor(nworkers, mp_context=ctx, initializer=_worker_init,
                                     initargs=(threads,)) as pool:
                futures = [pool.submit(_register_and_save, job) for job in jobs]
                try:
                    for fut in as_completed(futures):
                        handle(fut.result(), st)
                except BaseException:
                    for fut in futures:
                        fut.cancel()
                    raise
    save_manifest()
    rows = summary_rows([entries[p.id] for p in source.patients if p.id in entries], failed)
    csv_path = write_summary_csv(rows, out_dir / "registration_qc.csv")
    flagged = [r["patient"] for r in rows if r["status"] == "done" and not r["ok"]]
    return CohortRegistration(out, done, skipped, failed, flagged, csv_path,
                              time.perf_counter() - start,
                              excluded=dict(out.meta["registration"]["excluded"]))

"""Simulate a whole digital cohort: subjects in parallel, resumable, reproducible by seed.

Subject ``i`` of a cohort with seed ``S`` draws every random number from
``numpy.random.SeedSequence([S, i])`` (one child stream per stage), so a subject does not depend on
how many subjects are made, in which order, or by which worker: the same seed gives the same
volumes bit for bit (the DICOM series carry fresh UIDs). Volumes are written atomically and the
manifest is saved after every subject; a subject whose manifest entry is complete and whose files
exist is skipped when the command runs again.

This module makes and writes subjects; what a subject is made of is in :mod:`.anatomy`, :mod:`.mr`,
:mod:`.ct`, :mod:`.pet`, :mod:`.pose`, :mod:`.streams` and :mod:`.truth`. Output layout and manifest
fields: ``docs/simulation.md`` §1.
"""

from __future__ import annotations

import datetime as _dt
import multiprocessing as mp
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from RobustDeepLogic.cohort.mr_constants import store_mr_scaling
from RobustDeepLogic.cohort.manifest import Cohort
from RobustDeepLogic.cohort.patient import Patient
from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.files import remove_stale_temporaries
from RobustDeepLogic.core.progress import Progress
from RobustDeepLogic.io.dicom import write_pet_series
from RobustDeepLogic.io.volumes import Grid, image_from_array, write_volume
from RobustDeepLogic.registration.assets import asset_path
from RobustDeepLogic.simulate import ct as ctmod
from RobustDeepLogic.simulate.anatomy import LABELS, template_anatomy
from RobustDeepLogic.simulate.mr import mr_image
from RobustDeepLogic.simulate.pet import (
    HALF_LIFE_S,
    activity_suv,
    decay_factor,
    draw_fdg,
    simulate_pet,
)
from RobustDeepLogic.simulate.pet_physics import FWHM_TO_SIGMA
from RobustDeepLogic.simulate.pose import (
    HEAD_CENTRE_LPS,
    native_grid_origin,
    random_pose,
)
from RobustDeepLogic.simulate.profiles import Profile, get_profile
from RobustDeepLogic.simulate.streams import _rngs
from RobustDeepLogic.simulate.subject_anatomy import (
    draw_subject_anatomy,
    label_map,
    sample_tissues,
)
from RobustDeepLogic.simulate.truth import _rigid_part_meta

SIMULATOR_VERSION = 1

GENERATOR = "RobustDeepLogic.simulate"

_BASE_DATE = _dt.datetime(2021, 3, 1, 8, 30, 0)


def patient_id(index: int) -> str:
    """The patient id of a simulated subject: ``SIM001`` for subject 0.

    Parameters
    ----------
    index : int
        The subject's index in the cohort, from 0.

    Returns
    -------
    str
        ``'SIM'`` and ``index + 1`` with at least three digits.
    """
    return f"SIM{index + 1:03d}"


def native_grid(size: Sequence[int], spacing: Sequence[float]) -> Grid:
    """The axis-aligned native grid of a profile's modality (identity direction, LPS).

    Parameters
    ----------
    size : sequence of 3 int
        Grid size in voxels, ITK order ``(x, y, z)``.
    spacing : sequence of 3 float
        Voxel size ``(x, y, z)`` in mm.

    Returns
    -------
    Grid
        A :class:`~RobustDeepLogic.io.volumes.Grid` centred on
        :data:`~RobustDeepLogic.simulate.pose.HEAD_CENTRE_LPS` (:func:`.pose.native_grid_origin`).
    """
    return Grid(tuple(int(s) for s in size), tuple(float(s) for s in spacing),
                native_grid_origin(size, spacing))


def simulate_subject(index: int, seed: int, profile: Profile, out_root: Path, *,
                     assets_folder: Optional[str] = None, device: Optional[str] = None,
                     write_dicom: Optional[bool] = None) -> Dict[str, Any]:
    """Simulate subject ``index`` and write its volumes under ``out_root/SIMnnn/``.

    T1, T2, CT, FD, LD, NAC and MAC are written atomically as ``.nii.gz``, the label maps and the
    true activity under ``truth/``, and, if asked, the FD as a DICOM series under ``dicom/FD/``.
    The manifest is not touched (:func:`simulate_cohort` records the entry).

    Parameters
    ----------
    index : int
        The subject's index in the cohort, from 0 (patient id :func:`patient_id`).
    seed : int
        The cohort's seed.
    profile : Profile
        The :class:`~RobustDeepLogic.simulate.profiles.Profile` (grids, scanner and reconstruction).
    out_root : pathlib.Path
        The cohort folder; the subject's files go to ``out_root/SIMnnn/``.
    assets_folder : str, optional
        Folder of the prepared template assets; None uses the default one.
    device : str, optional
        None: OSEM in numpy/scipy. A torch device such as ``'cuda'``: OSEM in torch.
    write_dicom : bool, optional
        Write the FD as a DICOM series too; None (default) does so for the first
        ``profile.dicom_subjects`` subjects.

    Returns
    -------
    dict
        The patient's manifest entry (:meth:`RobustDeepLogic.cohort.Patient.to_json`): paths relative
        to ``out_root``; ``meta`` as in ``docs/simulation.md`` §1, with ``complete: True``.

    Raises
    ------
    InputError
        A template asset is not prepared (``robustdeep assets``).
    """
    t_start, cpu_start = time.perf_counter(), time.process_time()
    pid = patient_id(index)
    folder = Path(out_root) / pid
    r = _rngs(seed, index)
    timings: Dict[str, float] = {}
    template = template_anatomy(profile.template_spacing_mm, assets_folder)
    anatomy = draw_subject_anatomy(r["anatomy"])
    pose_petct, pose_mr = random_pose(r["pose"]), random_pose(r["pose"])
    fdg = draw_fdg(r["pet_params"])
    clin = r["clinical"]
    weight = float(np.round(clin.uniform(55.0, 100.0), 1))
    dose = float(np.round(clin.uniform(185e6, 225e6), -5))
    injection = _BASE_DATE + _dt.timedelta(days=int(index), minutes=int(clin.integers(0, 240)))
    uptake_s = float(np.round(clin.uniform(33.0, 40.0) * 60.0))
    scan_start = injection + _dt.timedelta(seconds=uptake_s)
    ct_params = {"bone_hu": float(clin.uniform(1500, 1900)), "diploe_hu": float(clin.uniform(600, 900)),
                 "noise_hu": float(clin.uniform(8, 14))}
    mr_params = {"T1": {"noise_fraction": float(clin.uniform(0.02, 0.035)),
                        "bias_amplitude": float(clin.uniform(0.10, 0.20))},
                 "T2": {"noise_fraction": float(clin.uniform(0.02, 0.035)),
                        "bias_amplitude": float(clin.uniform(0.10, 0.20))}}
    rel: Dict[str, str] = {}
    truth: Dict[str, str] = {}

    def write(name: str, array: np.ndarray, grid: Grid, sub: str = "") -> str:
        path = folder / sub / f"{name}.nii.gz"
        write_volume(image_from_array(array, grid), path)
        return str(path.relative_to(out_root))

    # -- MR frame ----------------------------------------------------------------------------------
    t = time.perf_counter()
    mr_grid = native_grid(profile.mr_size, profile.mr_spacing)
    fr = sample_tissues(template, anatomy, pose_mr, profile.mr_size, profile.mr_spacing)
    for w in ("T1", "T2"):
        img = mr_image(fr, w, r[w.lower()], **mr_params[w])
        rel[w] = write(w, np.clip(np.rint(img), 0, 32767).astype(np.int16), mr_grid)
    truth["labels_mr"] = write("labels_mr", label_map(fr), mr_grid, "truth")
    del fr
    timings["mr_s"] = time.perf_counter() - t

    # -- CT ------------------------------------------------------------------------------------------
    t = time.perf_counter()
    ct_grid = native_grid(profile.ct_size, profile.ct_spacing)
    fr = sample_tissues(template, anatomy, pose_petct, profile.ct_size, profile.ct_spacing)
    hu = ctmod.ct_hu(fr, profile.ct_spacing, r["ct"], **ct_params)
    rel["CT"] = write("CT", hu, ct_grid)
    truth["labels_ct"] = write("labels_ct", label_map(fr), ct_grid, "truth")
    del fr
    timings["ct_s"] = time.perf_counter() - t

    # -- PET -----------------------------------------------------------------------------------------
    t = time.perf_counter()
    pet_grid = native_grid(profile.pet_size, profile.pet_spacing)
    fr = sample_tissues(template, anatomy, pose_petct, profile.pet_size, profile.pet_spacing,
                        extra=fdg.gm_factor)
    activity = activity_suv(fr, fdg)
    mu_true = ctmod.mu_true(fr, bone_hu=ct_params["bone_hu"], diploe_hu=ct_params["diploe_hu"])
    ct_on_pet = sitk.Resample(image_from_array(hu.astype(np.float32), ct_grid),
                              image_from_array(np.zeros(pet_grid.shape, np.float32), pet_grid),
                              sitk.Transform(), sitk.sitkLinear, -1000.0, sitk.sitkFloat32)
    mu_ct = ctmod.mu_from_ct(sitk.GetArrayFromImage(ct_on_pet))
    mu_ct = ndimage.gaussian_filter(mu_ct, [4.0 * FWHM_TO_SIGMA / s for s in profile.pet_spacing[::-1]])
    labels_pet = label_map(fr)
    del fr
    timings["pet_truth_s"] = time.perf_counter() - t
    t = time.perf_counter()
    images, info = simulate_pet(activity, mu_true, mu_ct, profile.pet_spacing, profile, r["pet_counts"],
                                dose_bq=dose, uptake_s=uptake_s, device=device)
    timings["pet_physics_s"] = time.perf_counter() - t
    for name in ("FD", "LD", "NAC", "MAC"):
        rel[name] = write(name, images[name], pet_grid)
    truth["labels_pet"] = write("labels_pet", labels_pet, pet_grid, "truth")
    truth["activity_suv"] = write("activity_suv", activity, pet_grid, "truth")
    gm, wm = labels_pet == LABELS["gm"], labels_pet == LABELS["wm"]
    if gm.any() and wm.any():
        info["gm_wm_truth"] = float(activity[gm].mean() / activity[wm].mean())
        info["gm_wm_fd"] = float(images["FD"][gm].mean() / images["FD"][wm].mean())

    dicom: Dict[str, str] = {}
    if write_dicom if write_dicom is not None else index < profile.dicom_subjects:
        dfolder = folder / "dicom" / "FD"
        dfolder.parent.mkdir(parents=True, exist_ok=True)
        # Write beside the destination, then swap it in: a crash never leaves a partial series.
        with tempfile.TemporaryDirectory(prefix=".FD.", dir=dfolder.parent) as tmp:
            staged = Path(tmp) / "FD"
            write_pet_series(image_from_array(images["FD"], pet_grid), staged, weight_kg=weight,
                             injected_dose_bq=dose, injection_datetime=injection,
                             series_datetime=scan_start, half_life_s=HALF_LIFE_S, patient_id=pid)
            if dfolder.exists():
                shutil.rmtree(dfolder)
            os.replace(staged, dfolder)
        dicom["FD"] = str(dfolder.relative_to(out_root))

    timings["total_s"] = time.perf_counter() - t_start
    timings["cpu_s"] = time.process_time() - cpu_start
    meta = {
        "simulated": True,
        "seed": int(seed),
        "index": int(index),
        "profile": profile.name,
        "pose_petct": pose_petct.to_meta(),
        "pose_mr": pose_mr.to_meta(),
        "weight_kg": weight,
        "injected_dose_bq": dose,
        "injection_datetime": injection.isoformat(),
        "scan_start_datetime": scan_start.isoformat(),
        "uptake_s": uptake_s,
        "scan_duration_s": 1200.0,
        "half_life_s": HALF_LIFE_S,
        "suv": "body-weight SUV: activity concentration [Bq/ml] at scan start x weight [g] / "
               "(injected dose decayed to scan start) [Bq]",
        "activity_bqml_per_suv": dose * decay_factor(uptake_s) / (weight * 1000.0),
        "anatomy": anatomy.to_meta(),
        "anatomy_rigid_part": _rigid_part_meta(seed, index),
        "fdg": fdg.to_meta(),
        "ct": ct_params,
        "mr": mr_params,
        "pet": info,
        "truth": truth,
        "dicom": dicom,
        "timings": {k: round(v, 2) for k, v in timings.items()},
        "complete": True,
    }
    return Patient(id=pid, modalities=rel, provenance={"kind": "real", "simulated": True},
                   meta=meta).to_json()


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


def _complete(cohort: Cohort, patient: Patient) -> bool:
    if not patient.meta.get("complete"):
        return False
    paths = list(patient.modalities.values()) + list(patient.meta.get("truth", {}).values())
    return all((cohort.root / p).exists() for p in paths) and len(patient.modalities) == 7


def simulate_cohort(
    out: os.PathLike,
    *,
    subjects: Optional[int] = None,
    seed: int = 0,
    profile: str = "quick",
    workers: Optional[int] = None,
    device: Optional[str] = None,
    progress: Optional[Progress] = None,
    assets_folder: Optional[str] = None,
) -> Cohort:
    """Simulate (or complete) a cohort at ``out``.

    Subjects are made in parallel (:func:`simulate_subject`), each saved in the manifest when done;
    those already complete on disk are skipped, and temporary files and staging folders left by an
    interrupted run are removed (:func:`~RobustDeepLogic.core.files.remove_stale_temporaries`). The
    tasks are the paper's four; the MR scaling constants are computed from the subjects and stored at
    the end, recorded as data-derived.

    Parameters
    ----------
    out : str or os.PathLike
        Cohort folder; created if needed. An existing simulated cohort with the same seed and
        profile is completed (resume).
    subjects : int, optional
        Number of subjects (default: the profile's).
    seed : int, optional
        The cohort's seed (default 0); subject ``i`` draws from ``SeedSequence([seed, i])``.
    profile : str, optional
        Profile name: ``'tiny'``, ``'quick'`` (default) or ``'paper'`` (:data:`.profiles.PROFILES`).
    workers : int, optional
        Processes (default: the CPU count, at most the number of subjects to make). 1 runs in this
        process; more start fresh (spawned) processes with one torch thread each.
    device : str, optional
        ``'cuda'`` (or another torch device) reconstructs with torch there; None keeps numpy/scipy.
    progress : Progress, optional
        Progress reporter (:class:`~RobustDeepLogic.core.progress.Progress`), one step per subject;
        None reports nothing.
    assets_folder : str, optional
        Folder of the prepared template assets; None uses the default one.

    Returns
    -------
    Cohort
        The saved :class:`~RobustDeepLogic.cohort.Cohort` (space ``native``, split/fold None).

    Raises
    ------
    InputError
        The profile is unknown, ``subjects`` is below 1, a template asset is not prepared, or ``out``
        holds a manifest of another cohort (a different seed or profile, or not a simulated one).
    """
    prof = get_profile(profile)
    n = int(subjects if subjects is not None else prof.subjects)
    if n < 1:
        raise InputError(f"--subjects must be at least 1, got {n}")
    progress = progress or Progress()
    out = Path(out)
    # Check the assets now, in this process, so a missing asset is one clear error.
    for name in ("mni152_gm", "mni152_wm", "tpm_gm", "tpm_wm", "tpm_csf", "tpm_bone", "tpm_air"):
        asset_path(name, Path(assets_folder) if assets_folder else None)
    settings = {"generator": GENERATOR, "version": SIMULATOR_VERSION, "seed": int(seed),
                "profile": prof.name}
    if (out / "manifest.json").is_file():
        cohort = Cohort.load(out)
        old = cohort.meta.get("simulation", {})
        if any(old.get(k) != v for k, v in settings.items() if k != "version") or not old:
            raise InputError(
                "this folder holds a different cohort "
                f"(seed {old.get('seed')}, profile {old.get('profile')})",
                file=out, hint="choose a new output folder, or the same --seed and --profile to resume")
    else:
        cohort = Cohort(root=out)
    cohort.space = "native"
    cohort.tasks = ["ld2fd", "ldmr2fd", "nac2mac", "mr2ct"]
    cohort.meta["simulation"] = dict(settings, subjects=max(n, int(cohort.meta.get("simulation", {})
                                                                .get("subjects", 0))),
                                     labels=LABELS, head_centre_lps=list(HEAD_CENTRE_LPS),
                                     pose_convention="x_native = T(p_template), ITK Euler3DTransform "
                                     "(fixed = template, moving = native), LPS mm; see docs/simulation.md")
    remove_stale_temporaries(out)  # what a killed run's atomic writes left: ours, nobody writes now
    done = {p.id for p in cohort.patients if _complete(cohort, p)}
    todo = [i for i in range(n) if patient_id(i) not in done]
    cohort.save()
    n_workers = max(1, min(workers or (os.cpu_count() or 1), len(todo) or 1))
    with progress.stage("simulate", total=n) as st:
        for _ in range(n - len(todo)):
            st.advance(message="already on disk")

        def record(entry: Dict[str, Any]) -> None:
            cohort.add(Patient.from_json(entry), replace=True)
            cohort.patients.sort(key=lambda p: p.id)
            cohort.save()
            st.advance(message=entry["id"])

        if n_workers == 1:
            for i in todo:
                record(simulate_subject(i, seed, prof, out, assets_folder=assets_folder, device=device))
        else:
            with ProcessPoolExecutor(n_workers, mp_context=mp.get_context("spawn"),
                                     initializer=_worker_init) as pool:
                futures = [pool.submit(simulate_subject, i, seed, prof, out,
                                       assets_folder=assets_folder, device=device) for i in todo]
                for fut in as_completed(futures):
                    record(fut.result())
    _store_mr_scaling(cohort)
    return cohort


def _store_mr_scaling(cohort: Cohort) -> None:
    """The non-test subjects' MR constants, recorded as data-derived (``cohort.mr_constants``), saved."""
    before = (dict(cohort.scaling), repr(cohort.meta))
    store_mr_scaling(cohort)
    if (dict(cohort.scaling), repr(cohort.meta)) != before:
        cohort.save()

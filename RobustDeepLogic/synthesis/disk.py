"""Synthetic subjects on disk (``robustdeep synthesize``): plans, runs, provenance, resumes.

:func:`synthesize` chooses ordered pairs ``(i, j)``, ``i != j``, without repeats, from a pool of real
patients of a registered cohort (space ``template``), blends every modality of the pair with the same
mask and the same parents (:func:`~RobustDeepLogic.blending.blend.laplacian_blend`), and writes each
new subject in the cohort layout with its provenance (docs/method.md §6)::

    OUT/manifest.json                 # the synthetic subjects (and, if OUT is the source, the rest)
    OUT/masks/simple.nii.gz           # every mask used, once, on the template grid
    OUT/syn-P001-P007-simple/FD.nii.gz
    OUT/syn-P001-P007-simple/provenance.json   # written last: marks the subject complete

Provenance (in the manifest and in ``provenance.json``): parents (``x1`` first: mask 1 takes it),
the mask spec, its file and SHA-256, levels, method, seed, pair index, the source cohort and the
RobustDeep version; :func:`~RobustDeepLogic.synthesis.subjects.regenerate` rebuilds any subject from it, bit for bit.

Pairs come only from the pool given (``patients`` / ``folds``; test-split patients never), so the
patients held out of a training fold never become parents. Runs are resumable and idempotent: a
subject whose files and ``provenance.json`` are present with the same provenance is not recomputed.
Work runs in-process, over local processes or on a Dask cluster (:mod:`RobustDeepLogic.synthesis.executors`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import (
    Any,
    Dict,
    List,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import SimpleITK as sitk

from RobustDeepLogic.blending.pyramids import check_levels
from RobustDeepLogic.cohort.manifest import Cohort
from RobustDeepLogic.cohort.patient import Patient
from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.modalities import normalise_modality
from RobustDeepLogic.core.progress import Progress
from RobustDeepLogic.core.types import PathLike
from RobustDeepLogic.core.version import __version__
from RobustDeepLogic.io.volumes import Grid, read_array, write_array
from RobustDeepLogic.masks.presets import mask_digest, mask_from_spec, mask_tag
from RobustDeepLogic.synthesis.executors import _run_jobs
from RobustDeepLogic.synthesis.pairs import choose_pairs, select_pool, subject_id
from RobustDeepLogic.synthesis.subjects import (
    BLEND_DESCRIPTION,
    METHODS,
    _in_plan_order,
)


@dataclass
class SynthesisReport:
    """What :func:`synthesize` did.

    Attributes
    ----------
    out : pathlib.Path
        The output cohort folder.
    planned, made, skipped : int
        The subjects planned (pairs x masks), blended and written by this run, and found already
        complete with the same provenance (left as they were).
    seconds : float
        Wall-clock time of the run, in seconds.
    subjects : list of str
        The ids of the planned subjects, in the order they finished.
    pool : list of str
        The ids of the parent pool.
    """

    out: Path
    planned: int = 0
    made: int = 0
    skipped: int = 0
    seconds: float = 0.0
    subjects: List[str] = field(default_factory=list)
    pool: List[str] = field(default_factory=list)


#: Provenance fields that say how a pair was drawn, not what the subject is: a subject drawn again
#: by a run with another seed (another fold's) is the same blend and is reused.
DRAW_FIELDS = ("seed", "pair_index")


def _content(provenance: Dict[str, Any]) -> Dict[str, Any]:
    """The provenance fields that decide a subject's voxels (all but :data:`DRAW_FIELDS`)."""
    plain = json.loads(json.dumps(provenance))
    return {k: v for k, v in plain.items() if k not in DRAW_FIELDS}


def _template_grid(cohort: Cohort, pid: str, modality: str) -> Grid:
    path = cohort.path(pid, modality)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        raise InputError("cannot read this volume", file=path, patient=pid) from None
    return Grid(tuple(int(s) for s in reader.GetSize()[:3]), tuple(reader.GetSpacing()[:3]),
                tuple(reader.GetOrigin()[:3]), tuple(reader.GetDirection()[:9]))


def plan_synthesis(
    source: Cohort,
    out: PathLike,
    masks: Sequence[str],
    *,
    count: Optional[int] = None,
    per_patient: Optional[int] = None,
    all_pairs: bool = False,
    seed: int,
    patients: Optional[Sequence[str]] = None,
    folds: Optional[Sequence[int]] = None,
    modalities: Optional[Sequence[str]] = None,
    levels: int = 4,
    method: str = "laplacian",
    suffix: str = ".nii.gz",
) -> Tuple[Cohort, List[Dict[str, Any]], List[str]]:
    """Check the inputs, write the masks, and list one job per synthetic subject (pairs x masks).

    Every mask is made on the grid of the first parent's first modality and stored once as
    ``out/masks/TAG.nii.gz`` (:func:`~RobustDeepLogic.masks.presets.mask_tag`); no manifest is saved.

    Parameters
    ----------
    source : Cohort
        A registered cohort (space ``template``; :class:`~RobustDeepLogic.cohort.Cohort`).
    out : path-like
        The output cohort folder: ``source``'s own (extended), an existing cohort in template space
        (loaded and extended), or a new folder (a new cohort with ``source``'s settings).
    masks : sequence of str
        Mask specs (:func:`~RobustDeepLogic.masks.presets.mask_from_spec`; relative file paths are
        taken from the current directory).
    count, per_patient, all_pairs : int, int, bool
        How pairs are chosen (exactly one; :func:`~RobustDeepLogic.synthesis.pairs.choose_pairs`).
    seed : int
        Seed of the pair choice (keyword, required; recorded in provenance).
    patients, folds : sequence of str, sequence of int, optional
        Restrict the parents (:func:`~RobustDeepLogic.synthesis.pairs.select_pool`).
    modalities : sequence of str, optional
        Modalities to blend (default: those of FD, LD, NAC, MAC, CT, T1, T2 that every parent has).
    levels, method, suffix : int, {'laplacian', 'naive'}, str, optional
        Pyramid levels (default 4; recorded as 0 for ``'naive'``), the blend (default
        ``'laplacian'``), and the volume file ending of the subjects' files (default ``'.nii.gz'``).

    Returns
    -------
    out_cohort : Cohort
        The output cohort, not yet saved.
    jobs : list of dict
        One job per subject, mask by mask and pair by pair in order, as
        :func:`~RobustDeepLogic.synthesis.subjects.synthesize_subject` takes it (``id``, ``out_root``,
        ``paths1``, ``paths2``, ``mask_path``, ``modalities``, ``suffix``, ``provenance``, ``index``).
    pool : list of str
        The parent pool.

    Raises
    ------
    InputError
        ``source`` or an existing output cohort is not in template space; ``method`` is unknown; no
        mask is given or a spec is bad; the pool or the pair choice is invalid; a parent lacks a
        modality, or the parents share none; ``levels`` is too many for the grid; a different mask is
        already stored under the same tag; or a subject already exists with another provenance.
    """
    if source.space != "template":
        raise InputError(
            f"the cohort is in {source.space!r} space; synthesis needs registered volumes (template space)",
            file=source.manifest_path, hint="run 'robustdeep register' first",
        )
    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if not masks:
        raise InputError("give at least one --mask (a preset, a generator spec or a file)")
    pool = select_pool(source, patients, folds)
    pairs = choose_pairs(pool, count=count, per_patient=per_patient, all_pairs=all_pairs, seed=seed)
    if modalities:
        mods = [normalise_modality(m) for m in modalities]
    else:
        mods = [m for m in ("FD", "LD", "NAC", "MAC", "CT", "T1", "T2")
                if all(m in source.patient(p).modalities for p in pool)]
        if not mods:
            raise InputError("the pool's patients share no modality", file=source.manifest_path)
    for pid in pool:
        missing = [m for m in mods if m not in source.patient(pid).modalities]
        if missing:
            raise InputError(f"has no {', '.join(missing)} image", file=source.manifest_path, patient=pid,
                             hint="choose --modalities that every parent has")
    grid = _template_grid(source, pool[0], mods[0])
    levels = check_levels(grid.shape, levels)

    out = Path(out)
    same = out.resolve() == source.root.resolve()
    if same:
        out_cohort = source
    elif (out / "manifest.json").is_file():
        out_cohort = Cohort.load(out)
        if out_cohort.space != "template":
            raise InputError("the output cohort is not in template space", file=out_cohort.manifest_path)
    else:
        out_cohort = source.copy_for(out)
    mask_dir = out / "masks"
    mask_info = []
    for spec in masks:
        tag = mask_tag(spec)
        arr = mask_from_spec(spec, grid, base_dir=Path.cwd())
        digest = mask_digest(arr)
        path = mask_dir / f"{tag}.nii.gz"
        if path.is_file():
            old, _ = read_array(path)
            if mask_digest(old) != digest:
                raise InputError(
                    f"a different mask was already stored under the name {tag!r}", file=path,
                    hint="use a new output folder, or remove the old mask and its subjects",
                )
        else:
            write_array(arr, grid, path)
        mask_info.append((spec, tag, path, digest))

    jobs = []
    index = 0
    existing = {p.id: p for p in out_cohort.patients}
    for spec, tag, mask_path, digest in mask_info:
        for k, (p1, p2) in enumerate(pairs):
            sid = subject_id(p1, p2, tag)
            provenance = {
                "kind": "synthetic",
                "parents": [p1, p2],
                "mask": spec,
                "mask_file": f"masks/{mask_path.name}",
                "mask_sha256": digest,
                "levels": levels if method == "laplacian" else 0,
                "method": method,
                "seed": int(seed),
                "pair_index": k,
                "modalities": list(mods),
                "source": str(source.root.resolve()),
                "blend": BLEND_DESCRIPTION,
                "version": __version__,
            }
            old = existing.get(sid)
            if old is not None:
                if _content(old.provenance) != _content(provenance):
                    raise InputError(
                        "this synthetic subject already exists with a different provenance",
                        file=out_cohort.manifest_path, patient=sid,
                        hint="use a new output folder to synthesize with other settings",
                    )
                # The same blend, drawn by an earlier run with another seed (e.g. another fold's):
                # it is kept as it is, with the provenance of the run that made it.
                provenance = old.provenance
            jobs.append({
                "id": sid,
                "out_root": str(out.resolve()),
                "paths1": {m: str(source.path(p1, m).resolve()) for m in mods},
                "paths2": {m: str(source.path(p2, m).resolve()) for m in mods},
                "mask_path": str(mask_path.resolve()),
                "modalities": list(mods),
                "suffix": suffix,
                "provenance": provenance,
                "index": index,
            })
            index += 1
    return out_cohort, jobs, pool


def synthesize(
    source: Union[Cohort, PathLike],
    out: PathLike,
    masks: Sequence[str],
    *,
    count: Optional[int] = None,
    per_patient: Optional[int] = None,
    all_pairs: bool = False,
    seed: int,
    patients: Optional[Sequence[str]] = None,
    folds: Optional[Sequence[int]] = None,
    modalities: Optional[Sequence[str]] = None,
    levels: int = 4,
    method: str = "laplacian",
    suffix: str = ".nii.gz",
    compress: bool = True,
    workers: int = 1,
    scheduler: Optional[str] = None,
    progress: Optional[Progress] = None,
) -> SynthesisReport:
    """Write synthetic subjects blended from pairs of ``source`` patients into the cohort ``out``.

    The manifest is saved every 2 seconds or so while subjects finish, and at the end (also after an
    error); it lists the subjects in plan order and records the run under ``meta["synthesis_runs"]``.

    Parameters
    ----------
    source : Cohort or path-like
        A registered cohort (space ``template``) or its folder.
    out : path-like
        The output cohort folder (created, or extended; it may be ``source`` itself).
    masks : sequence of str
        Mask specs (:func:`~RobustDeepLogic.masks.presets.mask_from_spec`): every chosen pair is blended
        with every mask.
    count, per_patient, all_pairs, seed, patients, folds, modalities, levels, method, suffix
        As in :func:`plan_synthesis`: how pairs are chosen (exactly one of the first three), the
        seed of that choice (keyword, required), the parent pool (patients, folds), the modalities
        to blend (default: all that every parent has), pyramid levels (default 4), ``'laplacian'``
        (default) or the ``'naive'`` baseline, and the output file format (``'.nii.gz'``, ...).
    compress : bool, optional
        Compress the output volumes (default True).
    workers : int, optional
        Local worker processes, or the workers of a local Dask cluster (default 1: this process).
    scheduler : str, optional
        ``'dask'`` (or ``'local'``) for a local Dask cluster, or a scheduler address such as
        ``tcp://host:8786`` (:mod:`RobustDeepLogic.synthesis.executors`); None: no Dask.
    progress : Progress, optional
        Receives the ``synthesize`` stage, one step per subject (default: silent).

    Returns
    -------
    SynthesisReport
        What was planned, made and skipped.

    Raises
    ------
    InputError
        As :func:`plan_synthesis`; a parent volume is off the template grid; Dask is not installed.
    """
    t0 = time.perf_counter()
    progress = progress or Progress()
    cohort = source if isinstance(source, Cohort) else Cohort.load(source)
    out_cohort, jobs, pool = plan_synthesis(
        cohort, out, masks, count=count, per_patient=per_patient, all_pairs=all_pairs, seed=seed,
        patients=patients, folds=folds, modalities=modalities, levels=levels, method=method, suffix=suffix,
    )
    for job in jobs:
        job["compress"] = compress
    report = SynthesisReport(out=Path(out), planned=len(jobs), pool=pool)
    run_meta = {"seed": int(seed), "pool": pool, "masks": list(masks), "levels": levels, "method": method,
                "pairs": "all" if all_pairs else ({"count": count} if count is not None
                                                 else {"per_patient": per_patient})}
    runs = out_cohort.meta.setdefault("synthesis_runs", [])
    if run_meta not in runs:
        runs.append(run_meta)
    last_save = 0.0
    with progress.stage("synthesize", total=len(jobs)) as stage:
        try:
            for result in _run_jobs(jobs, workers, scheduler):
                entry = Patient.from_json(result["entry"])
                out_cohort.add(entry, replace=True)
                report.subjects.append(entry.id)
                if result["skipped"]:
                    report.skipped += 1
                else:
                    report.made += 1
                stage.advance(message=entry.id)
                if time.monotonic() - last_save > 2.0:
                    out_cohort.save()
                    last_save = time.monotonic()
            _in_plan_order(out_cohort, [job["id"] for job in jobs])
        finally:
            out_cohort.save()
    report.seconds = time.perf_counter() - t0
    return report

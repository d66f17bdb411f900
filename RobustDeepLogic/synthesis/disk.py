"""TODO docstring (RobustDeepLogic.synthesis)."""

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

import numpy as np
import SimpleITK as sitk

from RobustDeepLogic.blending.pyramids import check_levels
from RobustDeepLogic.cohort.manifest import Cohort, Patient
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
    blend_subject,
)


# --------------------------------------------------------------------------------------------------
# Planning and running
# --------------------------------------------------------------------------------------------------
@dataclass
class SynthesisReport:
    """What :func:`synthesize` did."""

    out: Path
    planned: int = 0
    made: int = 0
    skipped: int = 0
    seconds: float = 0.0
    subjects: List[str] = field(default_factory=list)
    pool: List[str] = field(default_factory=list)


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

    Returns the output cohort (loaded, or new with the source's settings), the jobs and the pool.
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
            if old is not None and json.loads(json.dumps(old.provenance)) != json.loads(json.dumps(provenance)):
                raise InputError(
                    "this synthetic subject already exists with a different provenance",
                    file=out_cohort.manifest_path, patient=sid,
                    hint="use a new output folder to synthesize with other settings",
                )
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

    Parameters
    ----------
    source:
        A registered cohort (space ``template``) or its folder.
    out:
        The output cohort folder (created, or extended; it may be ``source`` itself).
    masks:
        Mask specs (:func:`~RobustDeepLogic.masks.mask_from_spec`): every chosen pair is blended with
        every mask.
    count, per_patient, all_pairs:
        How pairs are chosen (exactly one; :func:`choose_pairs`).
    seed:
        Seed of the pair choice (recorded in provenance).
    patients, folds:
        Restrict the parents to these patients / these cross-validation folds (:func:`select_pool`).
    modalities:
        Modalities to blend (default: all that every parent has).
    levels, method:
        Pyramid levels, and ``'laplacian'`` or the ``'naive'`` baseline.
    suffix, compress:
        Output file format (``'.nii.gz'``, ``'.nrrd'``, ...) and compression.
    workers, scheduler:
        Local processes; or ``'dask'`` (a local Dask cluster of ``workers``) or a scheduler address.
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


def regenerate(out: Union[Cohort, PathLike], subject: str, *, source: Optional[PathLike] = None) -> Dict[str, np.ndarray]:
    """Rebuild a synthetic subject from its provenance: ``{modality: float32 [z, y, x]}``.

    The parents are read from the recorded source cohort (or ``source``), the mask from the recorded
    mask file (its SHA-256 is checked), and blended with the recorded levels and method.
    """
    cohort = out if isinstance(out, Cohort) else Cohort.load(out)
    patient = cohort.patient(subject)
    prov = patient.provenance
    if not patient.is_synthetic:
        raise InputError("is not a synthetic subject", file=cohort.manifest_path, patient=subject)
    src = Cohort.load(source or prov["source"])
    mask_path = cohort.root / prov["mask_file"]
    mask, _ = read_array(mask_path)
    if mask_digest(mask) != prov["mask_sha256"]:
        raise InputError("the stored mask differs from the one recorded in provenance", file=mask_path,
                         patient=subject)
    mods = list(prov["modalities"])
    p1, p2 = prov["parents"]
    paths1 = {m: str(src.path(p1, m)) for m in mods}
    paths2 = {m: str(src.path(p2, m)) for m in mods}
    blended, _ = blend_subject(paths1, paths2, (p1, p2), mods, mask_path, prov["levels"], prov["method"])
    return {m: blended[c] for c, m in enumerate(mods)}

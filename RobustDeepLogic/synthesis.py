"""Synthetic subjects from pairs of registered patients (method.md §6), on disk or on the fly.

On disk (:func:`synthesize`, ``robustdeep synthesize``): choose ordered pairs ``(i, j)``, ``i != j``,
without repeats, from a pool of real patients of a registered cohort (space ``template``), blend every
modality of the pair with the same mask and the same parents (:func:`~RobustDeepLogic.blending.
laplacian_blend`), and write each new subject in the cohort layout with its provenance::

    OUT/manifest.json                 # the synthetic subjects (and, if OUT is the source, the rest)
    OUT/masks/simple.nii.gz           # every mask used, once, on the template grid
    OUT/syn-P001-P007-simple/FD.nii.gz
    OUT/syn-P001-P007-simple/provenance.json   # written last: marks the subject complete

Provenance (in the manifest and in ``provenance.json``): parents (``x1`` first: mask 1 takes it),
the mask spec, its file and SHA-256, levels, method, seed, pair index, the source cohort and the
RobustDeep version; :func:`regenerate` rebuilds any subject from it, bit for bit.

Pairs come only from the pool given (``patients`` / ``folds``; test-split patients never), so the
patients held out of a training fold never become parents. Runs are resumable and idempotent: a
subject whose files and ``provenance.json`` are present with the same provenance is not recomputed.
Work runs in-process (``workers=1``), over local processes, or on a Dask cluster (``scheduler``:
``'dask'`` for a local cluster, or a scheduler address such as ``tcp://host:8786``; needs
``pip install dask[distributed]`` and a file system shared with the workers).

Memory is bounded per worker and does not grow with the number of patients or subjects: a task
streams one modality at a time (two parent volumes, the blend, and the pyramid buffers).

On the fly: :class:`BlendedDataset` (a torch Dataset) and :class:`LaplacianBlendd` /
:class:`RandLaplacianBlendd` (MONAI-style dictionary transforms that do not import MONAI) blend
pairs when asked, on the CPU or a GPU, so synthetic subjects cost no disk.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from torch.utils.data import Dataset

from .cohort import Cohort, Patient, normalise_modality
from .errors import InputError
from .progress import Progress
from .volumes import Grid, atomic_write_text

PathLike = Union[str, os.PathLike]
#: Blend methods for synthesis.
METHODS = ("laplacian", "naive")
#: Methods of on-the-fly augmentation (:class:`BlendedDataset`): the blends, and the two classic
#: mixing baselines (MixUp, Zhang et al. 2018; CutMix, Yun et al. 2019), which use no mask.
ON_THE_FLY_METHODS = METHODS + ("mixup", "cutmix")
#: Beta(alpha, alpha) of the mixing weight of MixUp and of the kept fraction of CutMix (the papers'
#: usual choices).
MIX_ALPHA = {"mixup": 0.4, "cutmix": 1.0}
PROVENANCE_NAME = "provenance.json"
#: The blending algorithm's identity, recorded in provenance.
BLEND_DESCRIPTION = "binomial (1 4 6 4 1)/16, mirror borders, exact-size expand; x2 + collapse(GM*Lap(x1-x2))"


# --------------------------------------------------------------------------------------------------
# Pairs
# --------------------------------------------------------------------------------------------------
def choose_pairs(
    ids: Sequence[str],
    *,
    count: Optional[int] = None,
    per_patient: Optional[int] = None,
    all_pairs: bool = False,
    seed: int = 0,
) -> List[Tuple[str, str]]:
    """Ordered parent pairs ``(x1, x2)``, ``x1 != x2``, never repeated (method.md §6).

    Exactly one of:

    - ``all_pairs``: all ``N (N - 1)`` ordered pairs, in a fixed order;
    - ``count``: ``count`` distinct pairs drawn at random from them;
    - ``per_patient``: ``K`` pairs per patient as ``x1``, where every patient is also ``x2`` exactly
      ``K`` times (``K`` distinct cyclic shifts of a random permutation).

    The result depends only on the set of ``ids`` and ``seed`` (ids are sorted first).
    """
    pool = sorted(set(str(i) for i in ids))
    n = len(pool)
    modes = sum([bool(all_pairs), count is not None, per_patient is not None])
    if modes != 1:
        raise InputError("choose exactly one of --count N, --per-patient K or --all-pairs")
    if n < 2:
        raise InputError(f"synthesis needs at least 2 parent patients, the pool has {n}",
                         hint="check --patients / --folds and the cohort's splits")
    total = n * (n - 1)
    rng = np.random.default_rng(int(seed))
    if all_pairs:
        return [(a, b) for a in pool for b in pool if a != b]
    if count is not None:
        if int(count) < 1 or int(count) > total:
            raise InputError(f"--count must lie in 1..{total} for {n} patients (N(N-1) pairs), got {count}")
        picks = rng.choice(total, size=int(count), replace=False)
        out = []
        for p in picks:
            i, r = divmod(int(p), n - 1)
            j = r if r < i else r + 1
            out.append((pool[i], pool[j]))
        return out
    k = int(per_patient)  # type: ignore[arg-type]
    if k < 1 or k > n - 1:
        raise InputError(f"--per-patient must lie in 1..{n - 1} for {n} patients, got {per_patient}")
    perm = rng.permutation(n)
    shifts = rng.choice(np.arange(1, n), size=k, replace=False)
    return [(pool[perm[i]], pool[perm[(i + int(s)) % n]]) for s in shifts for i in range(n)]


def select_pool(
    cohort: Cohort,
    patients: Optional[Sequence[str]] = None,
    folds: Optional[Sequence[int]] = None,
) -> List[str]:
    """The real patients that may become parents: not synthetic, not in the ``test`` split, and (when
    given) among ``patients`` and in ``folds``. Naming a test or unknown patient is an error."""
    if patients:
        for pid in patients:
            p = cohort.patient(pid)
            if p.split == "test":
                raise InputError("is a held-out test patient and cannot be a parent",
                                 file=cohort.manifest_path, patient=pid)
            if p.is_synthetic:
                raise InputError("is synthetic; parents must be real patients",
                                 file=cohort.manifest_path, patient=pid)
        chosen = [cohort.patient(pid) for pid in patients]
    else:
        chosen = [p for p in cohort.patients if not p.is_synthetic and p.split != "test"]
    if folds:
        wanted = {int(f) for f in folds}
        chosen = [p for p in chosen if p.fold is not None and p.fold in wanted]
    return sorted({p.id for p in chosen})


def subject_id(parent1: str, parent2: str, tag: str) -> str:
    """The id (and folder name) of the synthetic subject of ``parent1`` x ``parent2`` under mask ``tag``."""
    safe = lambda s: "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in s)  # noqa: E731
    return f"syn-{safe(parent1)}-{safe(parent2)}-{safe(tag)}"


# --------------------------------------------------------------------------------------------------
# One subject (runs in a worker)
# --------------------------------------------------------------------------------------------------
def _read_on_grid(path: str, grid: Grid, patient: str, modality: str) -> np.ndarray:
    from .volumes import read_array

    arr, g = read_array(path, patient=patient)
    if not g.matches(grid):
        raise InputError(
            f"{modality} is not on the template grid ({g.describe()} vs {grid.describe()})",
            file=path, patient=patient,
            hint="synthesis blends registered volumes: run 'robustdeep register' first",
        )
    return arr


def iter_blend_subject(
    paths1: Mapping[str, str],
    paths2: Mapping[str, str],
    parents: Sequence[str],
    modalities: Sequence[str],
    mask_path: PathLike,
    levels: int,
    method: str = "laplacian",
) -> Iterator[Tuple[str, np.ndarray, Grid]]:
    """Blend two parents modality by modality with one mask: yields ``(modality, [z, y, x], grid)``.

    One mask pyramid serves every modality; only one modality of each parent is in memory at a time
    (about 3 volumes plus the pyramid buffers), which bounds the memory of a synthesis worker.
    """
    from .blending import laplacian_blend, mask_pyramid, naive_blend
    from .volumes import read_array

    mask, grid = read_array(mask_path)
    gm = mask_pyramid(mask, levels) if method == "laplacian" else None
    for mod in modalities:
        x1 = _read_on_grid(paths1[mod], grid, parents[0], mod)
        x2 = _read_on_grid(paths2[mod], grid, parents[1], mod)
        if method == "naive":
            yield mod, naive_blend(x1, x2, mask), grid
        else:
            yield mod, laplacian_blend(x1, x2, mask, levels, mask_levels=gm), grid


def blend_subject(
    paths1: Mapping[str, str],
    paths2: Mapping[str, str],
    parents: Sequence[str],
    modalities: Sequence[str],
    mask_path: PathLike,
    levels: int,
    method: str = "laplacian",
) -> Tuple[np.ndarray, Grid]:
    """Blend all ``modalities`` of two parents with one mask: ``[C, z, y, x]`` float32 and the grid."""
    out = list(iter_blend_subject(paths1, paths2, parents, modalities, mask_path, levels, method))
    return np.stack([a for _, a, _ in out]), out[0][2]


def _subject_complete(folder: Path, provenance: Mapping[str, Any], files: Iterable[str]) -> bool:
    marker = folder / PROVENANCE_NAME
    if not marker.is_file():
        return False
    try:
        stored = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return stored == json.loads(json.dumps(provenance)) and all((folder / f).is_file() for f in files)


def synthesize_subject(job: Mapping[str, Any]) -> Dict[str, Any]:
    """Make one synthetic subject from a job of :func:`plan_synthesis`; returns its manifest entry.

    Idempotent: when the subject's files and ``provenance.json`` are already there with the same
    provenance, nothing is recomputed (``"skipped": True`` in the result).
    """
    from .volumes import write_array

    out_root = Path(job["out_root"])
    folder = out_root / job["id"]
    files = {m: f"{m}{job['suffix']}" for m in job["modalities"]}
    entry = {
        "id": job["id"],
        "split": "train",
        "fold": None,
        "modalities": {m: f"{job['id']}/{f}" for m, f in files.items()},
        "provenance": job["provenance"],
        "meta": {},
    }
    if _subject_complete(folder, job["provenance"], files.values()):
        return {"entry": entry, "skipped": True}
    threads = job.get("threads")
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    folder.mkdir(parents=True, exist_ok=True)
    prov = job["provenance"]
    for mod, blended, grid in iter_blend_subject(job["paths1"], job["paths2"], prov["parents"],
                                                 job["modalities"], job["mask_path"], prov["levels"],
                                                 prov["method"]):
        write_array(blended, grid, folder / files[mod], compress=job.get("compress", True))
    atomic_write_text(folder / PROVENANCE_NAME, json.dumps(job["provenance"], indent=1) + "\n")
    return {"entry": entry, "skipped": False}


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
    import SimpleITK as sitk

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
    from . import __version__
    from .blending import check_levels
    from .masks import mask_digest, mask_from_spec, mask_tag
    from .volumes import read_array, write_array

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


def _run_jobs(jobs: List[Dict[str, Any]], workers: int, scheduler: Optional[str]):
    """Yield the results of :func:`synthesize_subject` as jobs finish."""
    if scheduler:
        try:
            from dask.distributed import Client, LocalCluster, as_completed
        except ImportError:
            raise InputError("the Dask scheduler needs dask[distributed]",
                             hint="pip install 'dask[distributed]' into this environment") from None
        if scheduler in ("dask", "local"):
            cluster = LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True,
                                   dashboard_address=None)
            client = Client(cluster)
        else:
            cluster = None
            client = Client(scheduler)
        try:
            for job in jobs:
                job["threads"] = 1
            futures = client.map(synthesize_subject, jobs, pure=False)
            for fut in as_completed(futures):
                yield fut.result()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
        return
    if workers <= 1:
        for job in jobs:
            yield synthesize_subject(job)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed as done

    threads = max(1, (os.cpu_count() or 1) // workers)
    for job in jobs:
        job["threads"] = threads
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as ex:
        futures = [ex.submit(synthesize_subject, job) for job in jobs]
        for fut in done(futures):
            yield fut.result()


def _in_plan_order(cohort: Cohort, planned: Sequence[str]) -> None:
    """Put the subjects of ``planned`` in plan order, in the slots they hold in ``cohort.patients``.

    Parallel workers finish in any order; the manifest (and so the order in which training meets the
    subjects) must not depend on it. Other patients keep their places.
    """
    rank = {sid: i for i, sid in enumerate(planned)}
    slots = [i for i, p in enumerate(cohort.patients) if p.id in rank]
    ordered = sorted((cohort.patients[i] for i in slots), key=lambda p: rank[p.id])
    for i, patient in zip(slots, ordered):
        cohort.patients[i] = patient


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
    from .masks import mask_digest
    from .volumes import read_array

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


# --------------------------------------------------------------------------------------------------
# On the fly
# --------------------------------------------------------------------------------------------------
def _torch():
    import torch

    return torch


class BlendedDataset(Dataset):
    """A torch ``Dataset`` of synthetic subjects blended on demand (no disk).

    Item ``i`` blends the ordered pair ``pairs[i % P]`` under mask ``masks[(i // P) % K]``, where the
    ``P = N (N - 1)`` ordered pairs of ``parents`` are shuffled once with ``seed`` (or ``pairs`` are
    given, e.g. the very pairs an on-disk synthesis chose); its length is ``P * K`` unless ``length``
    is given. Items are deterministic: the same index gives the same volumes.

    ``method`` ``'mixup'`` and ``'cutmix'`` are the mask-free baselines: all modalities of an item
    share one weight ``lam ~ Beta(alpha, alpha)`` (MixUp: ``lam x1 + (1 - lam) x2``) or one random
    box (CutMix: ``x2`` pasted into ``x1``), drawn from ``(seed, i)``; ``masks`` may then be None.

    Parameters
    ----------
    cohort:
        A registered :class:`~RobustDeepLogic.cohort.Cohort` (space ``template``).
    parents:
        The patient ids that may be parents (a training fold: held-out patients must not be here).
    masks:
        One mask or a list: float32 ``[z, y, x]`` arrays / tensors on the template grid, or mask specs
        (:func:`~RobustDeepLogic.masks.mask_from_spec`) resolved on the cohort's grid.
    levels:
        Pyramid levels (``method='naive'`` ignores it).
    modalities:
        The modalities to blend, e.g. ``("LD", "FD")``.
    seed:
        Shuffles the pairs (and draws the MixUp / CutMix weights).
    pairs:
        Explicit ordered ``(x1, x2)`` pairs instead of the shuffled all-pairs list (both parents must
        be in ``parents``).
    method:
        ``'laplacian'`` (default), ``'naive'``, ``'mixup'`` or ``'cutmix'``.
    device:
        Where parents are cached and blended (``'cuda'`` to blend on a GPU).
    cache:
        Keep the parents' volumes in memory after the first read (``N x C`` volumes).

    Yields
    ------
    ``{modality: float32 tensor [z, y, x], "provenance": {"parents": [p1, p2], "mask": name,
    "levels": L, "seed": seed, "index": i}}``
    """

    def __init__(
        self,
        cohort: Cohort,
        parents: Sequence[str],
        masks: Union[Any, Sequence[Any]],
        levels: int = 4,
        modalities: Sequence[str] = ("FD",),
        seed: int = 0,
        *,
        length: Optional[int] = None,
        method: str = "laplacian",
        pairs: Optional[Sequence[Tuple[str, str]]] = None,
        device: Union[str, Any] = "cpu",
        cache: bool = True,
    ) -> None:
        torch = _torch()
        from .blending import check_levels, mask_pyramid

        if cohort.space != "template":
            raise InputError("BlendedDataset needs a registered cohort (space 'template')",
                             file=cohort.manifest_path)
        if method not in ON_THE_FLY_METHODS:
            raise InputError(f"method must be one of {', '.join(ON_THE_FLY_METHODS)}")
        self.cohort = cohort
        self.parents = sorted(set(parents))
        for pid in self.parents:
            p = cohort.patient(pid)
            if p.is_synthetic:
                raise InputError("is synthetic; parents must be real", patient=pid)
        self.modalities = [normalise_modality(m) for m in modalities]
        self.seed = int(seed)
        self.method = method
        self.device = torch.device(device)
        self.cache = cache
        self._volumes: Dict[str, Any] = {}
        self.grid = _template_grid(cohort, self.parents[0], self.modalities[0]) if self.parents else None
        if pairs is not None:
            allowed = set(self.parents)
            self.pairs = [(str(a), str(b)) for a, b in pairs]
            for a, b in self.pairs:
                if a == b or a not in allowed or b not in allowed:
                    raise InputError(f"pair ({a}, {b}) is not two different patients of the parents",
                                     file=cohort.manifest_path, hint="parents: " + ", ".join(self.parents))
            if not self.pairs:
                raise InputError("BlendedDataset was given no pairs")
        else:
            rng = np.random.default_rng(self.seed)
            all_pairs = choose_pairs(self.parents, all_pairs=True)
            self.pairs = [all_pairs[i] for i in rng.permutation(len(all_pairs))]
        if masks is None and method in ("mixup", "cutmix"):
            masks = []
        mask_list = masks if isinstance(masks, (list, tuple)) else [masks]
        self.mask_names: List[str] = []
        self._masks = []
        from .masks import mask_from_spec

        for k, m in enumerate(mask_list):
            if isinstance(m, str):
                arr = mask_from_spec(m, self.grid)
                self.mask_names.append(m)
            else:
                arr = m
                self.mask_names.append(f"mask{k}")
            t = arr.to(self.device, torch.float32) if isinstance(arr, torch.Tensor) else torch.as_tensor(
                np.asarray(arr, np.float32), device=self.device)
            if self.grid is not None and tuple(t.shape) != self.grid.shape:
                raise InputError(f"mask {self.mask_names[-1]} has shape {tuple(t.shape)}, the cohort's grid "
                                 f"{self.grid.shape}")
            self._masks.append(t)
        if not self._masks and method not in ("mixup", "cutmix"):
            raise InputError("BlendedDataset needs at least one mask")
        self.levels = check_levels(self._masks[0].shape, levels) if method == "laplacian" else 0
        self._pyramids = [mask_pyramid(m, self.levels) for m in self._masks] if method == "laplacian" else []
        n_masks = max(1, len(self._masks))
        self.length = len(self.pairs) * n_masks if length is None else int(length)

    def __len__(self) -> int:
        return self.length

    def _parent(self, pid: str):
        torch = _torch()
        if pid in self._volumes:
            return self._volumes[pid]
        from .volumes import read_array

        arrays = []
        for mod in self.modalities:
            arr, g = read_array(self.cohort.path(pid, mod), patient=pid)
            if self.grid is not None and not g.matches(self.grid):
                raise InputError(f"{mod} is not on the template grid", file=self.cohort.path(pid, mod),
                                 patient=pid)
            arrays.append(arr)
        t = torch.from_numpy(np.stack(arrays)).to(self.device)
        if self.cache:
            self._volumes[pid] = t
        return t

    def pair_of(self, index: int) -> Tuple[Tuple[str, str], int]:
        """The parents and the mask number of item ``index``."""
        if not 0 <= index < self.length:
            raise IndexError(index)
        return self.pairs[index % len(self.pairs)], (index // len(self.pairs)) % max(1, len(self._masks))

    def __getitem__(self, index: int) -> Dict[str, Any]:
        from .blending import cutmix, laplacian_blend, mixup, naive_blend

        (p1, p2), k = self.pair_of(int(index))
        x1, x2 = self._parent(p1), self._parent(p2)
        mask_name: Optional[str] = self.mask_names[k] if self._masks else None
        lam: Optional[float] = None
        if self.method in ("mixup", "cutmix"):
            rng = np.random.default_rng([self.seed, int(index), 29])
            mix = mixup if self.method == "mixup" else cutmix
            y, lam = mix(x1, x2, alpha=MIX_ALPHA[self.method], rng=rng)
        elif self.method == "naive":
            y = naive_blend(x1, x2, self._masks[k])
        else:
            y = laplacian_blend(x1, x2, self._masks[k], self.levels, mask_levels=self._pyramids[k])
        item: Dict[str, Any] = {m: y[c] for c, m in enumerate(self.modalities)}
        item["provenance"] = {"parents": [p1, p2], "mask": mask_name, "levels": self.levels,
                              "seed": self.seed, "index": int(index), "method": self.method}
        if lam is not None:
            item["provenance"]["lam"] = lam
        return item


class LaplacianBlendd:
    """A MONAI-style dictionary transform: blend ``data[key]`` with ``data[key + partner_suffix]``.

    All ``keys`` share one mask (and its pyramid), so paired modalities stay consistent. Values may be
    numpy arrays or tensors, ``[z, y, x]`` or channel-first ``[C, z, y, x]`` (MONAI's layout); the
    mask is ``[z, y, x]`` on the same grid. The partner entries are removed unless
    ``keep_partner=True``. Does not import MONAI; drop it into a ``monai.transforms.Compose``.
    """

    def __init__(
        self,
        keys: Union[str, Sequence[str]],
        mask: Any,
        levels: int = 4,
        *,
        partner_suffix: str = "_partner",
        method: str = "laplacian",
        keep_partner: bool = False,
    ) -> None:
        from .blending import check_levels, mask_pyramid

        self.keys = [keys] if isinstance(keys, str) else list(keys)
        self.mask = mask
        self.partner_suffix = partner_suffix
        self.method = method
        self.keep_partner = keep_partner
        if method not in METHODS:
            raise InputError(f"method must be one of {', '.join(METHODS)}")
        self.levels = check_levels(np.shape(mask), levels) if method == "laplacian" else 0
        self._pyramid = mask_pyramid(mask, self.levels) if method == "laplacian" else None

    def blend(self, a: Any, b: Any) -> Any:
        from .blending import laplacian_blend, naive_blend

        if self.method == "naive":
            return naive_blend(a, b, self.mask)
        torch = _torch()
        if isinstance(a, torch.Tensor) and self._pyramid[0].device != a.device:  # type: ignore[index]
            self._pyramid = [g.to(a.device) for g in self._pyramid]  # type: ignore[union-attr]
        return laplacian_blend(a, b, self._pyramid[0], self.levels, mask_levels=self._pyramid)  # type: ignore[index]

    def __call__(self, data: Mapping[str, Any]) -> Dict[str, Any]:
        d = dict(data)
        for key in self.keys:
            partner = key + self.partner_suffix
            if partner not in d:
                raise KeyError(f"LaplacianBlendd: no {partner!r} to blend {key!r} with")
            d[key] = self.blend(d[key], d[partner])
            if not self.keep_partner:
                d.pop(partner)
        return d


class RandLaplacianBlendd:
    """A random MONAI-style dictionary transform: with probability ``prob``, blend the sample with a
    partner drawn from ``partners`` under a mask drawn from ``masks`` (all ``keys`` share them).

    ``partners`` is a sequence of dictionaries with the same ``keys`` (e.g. other training patients of
    the same fold, already loaded), ``masks`` one mask or a list of ``[z, y, x]`` masks. The transform
    owns its random state (``set_random_state(seed)``); the choice is recorded under
    ``data["blend_provenance"]`` (``partner`` index, ``mask`` index, or None when not applied).
    """

    def __init__(
        self,
        keys: Union[str, Sequence[str]],
        partners: Sequence[Mapping[str, Any]],
        masks: Union[Any, Sequence[Any]],
        levels: int = 4,
        *,
        prob: float = 1.0,
        seed: Optional[int] = None,
        method: str = "laplacian",
    ) -> None:
        if not partners:
            raise InputError("RandLaplacianBlendd needs at least one partner")
        if not 0.0 <= prob <= 1.0:
            raise InputError(f"prob must lie in [0, 1], got {prob}")
        self.keys = [keys] if isinstance(keys, str) else list(keys)
        self.partners = list(partners)
        mask_list = masks if isinstance(masks, (list, tuple)) else [masks]
        self._blenders = [LaplacianBlendd(self.keys, m, levels, method=method) for m in mask_list]
        self.prob = prob
        self.set_random_state(seed)
        self._choice: Optional[Tuple[int, int]] = None

    def set_random_state(self, seed: Optional[int] = None) -> "RandLaplacianBlendd":
        self.R = np.random.RandomState(seed)
        return self

    def randomize(self) -> None:
        if self.R.rand() < self.prob:
            self._choice = (int(self.R.randint(len(self.partners))), int(self.R.randint(len(self._blenders))))
        else:
            self._choice = None

    def __call__(self, data: Mapping[str, Any]) -> Dict[str, Any]:
        self.randomize()
        d = dict(data)
        if self._choice is None:
            d["blend_provenance"] = None
            return d
        p, k = self._choice
        blender = self._blenders[k]
        for key in self.keys:
            d[key] = blender.blend(d[key], self.partners[p][key])
        d["blend_provenance"] = {"partner": p, "mask": k, "levels": blender.levels}
        return d


__all__ = [
    "choose_pairs", "select_pool", "subject_id", "blend_subject", "iter_blend_subject", "synthesize_subject", "plan_synthesis",
    "synthesize", "regenerate", "SynthesisReport", "BlendedDataset", "LaplacianBlendd",
    "RandLaplacianBlendd", "METHODS", "ON_THE_FLY_METHODS",
]

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
from pathlib import Path
from typing import (
    Any,
    Dict,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
    Tuple,
)

import numpy as np

from RobustDeepLogic.blending.baselines import naive_blend
from RobustDeepLogic.blending.blend import laplacian_blend, mask_pyramid
from RobustDeepLogic.cohort.manifest import Cohort
from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.files import atomic_write_text
from RobustDeepLogic.core.types import PathLike
from RobustDeepLogic.io.volumes import Grid, read_array, write_array

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
# One subject (runs in a worker)
# --------------------------------------------------------------------------------------------------
def _read_on_grid(path: str, grid: Grid, patient: str, modality: str) -> np.ndarray:
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

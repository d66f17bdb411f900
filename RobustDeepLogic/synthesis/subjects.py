"""One synthetic subject: every modality of two parents blended with one mask (docs/method.md §6).

All paired modalities of a synthetic subject are blended with the same mask and the same two parents,
so it is again a consistent set of paired images. :func:`iter_blend_subject` and :func:`blend_subject`
blend in memory; :func:`regenerate` rebuilds a subject from its provenance; :func:`synthesize_subject` makes one subject on disk from a job of
:func:`~RobustDeepLogic.synthesis.disk.plan_synthesis` and is what a worker runs
(:mod:`RobustDeepLogic.synthesis.executors`). Memory is bounded per worker and does not grow with the
number of patients or subjects: a task streams one modality at a time (two parent volumes, the blend,
and the pyramid buffers). The constants here name the blend methods and describe the blend in
provenance.

Planning, provenance and resumable runs are in :mod:`RobustDeepLogic.synthesis.disk`; blending on the
fly in :mod:`RobustDeepLogic.synthesis.dataset` and :mod:`RobustDeepLogic.synthesis.transforms`.
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
    Optional,
    Sequence,
    Tuple,
    Union,
)

import numpy as np

from RobustDeepLogic.blending.baselines import naive_blend
from RobustDeepLogic.blending.blend import laplacian_blend, mask_pyramid
from RobustDeepLogic.cohort.manifest import Cohort
from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.files import atomic_write_text
from RobustDeepLogic.core.types import PathLike
from RobustDeepLogic.io.volumes import Grid, read_array, write_array
from RobustDeepLogic.masks.presets import mask_digest

#: Blend methods for synthesis.
METHODS = ("laplacian", "naive")

#: Methods of on-the-fly augmentation (:class:`~RobustDeepLogic.synthesis.dataset.BlendedDataset`):
#: the blends, and the two classic mixing baselines (MixUp, Zhang et al. 2018; CutMix, Yun et al.
#: 2019), which use no mask.
ON_THE_FLY_METHODS = METHODS + ("mixup", "cutmix")

#: Beta(alpha, alpha) of the mixing weight of MixUp and of the kept fraction of CutMix (the papers'
#: usual choices).
MIX_ALPHA = {"mixup": 0.4, "cutmix": 1.0}

#: The file in a subject's folder that holds its provenance; written last, it marks the subject
#: complete.
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

    Parameters
    ----------
    paths1, paths2 : mapping of str to str
        Modality -> volume file of the parents ``x1`` and ``x2``.
    parents : sequence of str
        The ids of ``x1`` and ``x2``, named in errors.
    modalities : sequence of str
        The modalities to blend, in this order (keys of ``paths1`` and ``paths2``).
    mask_path : path-like
        The mask volume; its grid is the template grid that every parent volume must be on.
    levels : int
        Pyramid levels (not used by ``'naive'``).
    method : {'laplacian', 'naive'}, optional
        Laplacian-pyramid blend (default) or the naive mask blend.

    Yields
    ------
    modality : str
        The modality.
    blend : numpy.ndarray
        float32 ``[z, y, x]``, in the units of the parent volumes.
    grid : Grid
        The mask's grid (:class:`~RobustDeepLogic.io.volumes.Grid`).

    Raises
    ------
    InputError
        A volume cannot be read or is not on the mask's grid, or ``levels`` is too many for it.
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
    """Blend all ``modalities`` of two parents with one mask, in memory.

    Parameters
    ----------
    paths1, paths2 : mapping of str to str
        Modality -> volume file of the parents ``x1`` and ``x2``.
    parents : sequence of str
        The ids of ``x1`` and ``x2``, named in errors.
    modalities : sequence of str
        The modalities to blend (at least one).
    mask_path : path-like
        The mask volume on the template grid.
    levels : int
        Pyramid levels (not used by ``'naive'``).
    method : {'laplacian', 'naive'}, optional
        Laplacian-pyramid blend (default) or the naive mask blend.

    Returns
    -------
    blended : numpy.ndarray
        float32 ``[C, z, y, x]``, channels in the order of ``modalities``.
    grid : Grid
        The mask's grid.

    Raises
    ------
    InputError
        As :func:`iter_blend_subject`.
    """
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
    """Make one synthetic subject from a job of :func:`~RobustDeepLogic.synthesis.disk.plan_synthesis`.

    Idempotent: when the subject's files and ``provenance.json`` are already there with the same
    provenance, nothing is recomputed (``"skipped": True`` in the result). Otherwise the volumes are
    written (atomically) into ``out_root/id/`` and ``provenance.json`` last, which marks the subject
    complete. Runs in a worker process (:mod:`RobustDeepLogic.synthesis.executors`).

    Parameters
    ----------
    job : mapping
        One job: ``id``, ``out_root``, ``paths1``, ``paths2``, ``mask_path``, ``modalities``,
        ``suffix`` (the volume file ending), ``provenance``; optionally ``compress`` (default True)
        and ``threads`` (torch threads of this process).

    Returns
    -------
    dict
        ``"entry"``: the subject's manifest entry (a dict for
        :meth:`~RobustDeepLogic.cohort.Patient.from_json`: split ``train``, no fold, modality
        paths relative to ``out_root``, the provenance); ``"skipped"``: True when the subject was
        already complete.

    Raises
    ------
    InputError
        A parent volume cannot be read or is not on the mask's grid.
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


def regenerate(out: Union[Cohort, PathLike], subject: str, *, source: Optional[PathLike] = None) -> Dict[str, np.ndarray]:
    """Rebuild a synthetic subject from its provenance: ``{modality: float32 [z, y, x]}``.

    The parents are read from the recorded source cohort (or ``source``), the mask from the recorded
    mask file (its SHA-256 is checked), and blended with the recorded levels and method.

    Parameters
    ----------
    out : Cohort or path-like
        The cohort that holds the subject, or its folder.
    subject : str
        The synthetic subject's id.
    source : path-like, optional
        The source cohort's folder, in place of the one recorded (e.g. after a move).

    Returns
    -------
    dict of str to numpy.ndarray
        The blended modalities, float32 ``[z, y, x]`` on the template grid.

    Raises
    ------
    InputError
        The subject is unknown or not synthetic, the stored mask differs from the recorded digest, or a
        parent volume is missing or off the mask's grid.
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

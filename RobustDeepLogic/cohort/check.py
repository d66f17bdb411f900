"""Validation of a cohort on disk (``robustdeep cohort check``). Reads, never writes.

Each problem names its patient, modality and file. Errors make a cohort unusable as it is; warnings
are worth a look (every check below reports errors). The manifest is read by the caller
(:meth:`RobustDeepLogic.cohort.manifest.Cohort.load`). Checked:

- the manifest: no duplicate patient ids, images listed for every patient, paths that exist;
- every volume: readable, complete (a gzip stream or NIfTI data cut short), NIfTI voxel spacing
  positive, 3D scalar, no NaN or Inf voxels;
- the modalities each declared task needs (``--task`` or the manifest's ``tasks``);
- the PET family (FD, LD, NAC, MAC) of a patient shares one grid;
- PET in SUV has no negative voxels below ``-negative_suv_tolerance``;
- CT lies within plausible HU (``[-1100, 4000]``); stored values that were never rescaled
  (minimum >= 0 with air near 0) are reported as such;
- the same image content under two patients (a duplicated patient).
"""

from __future__ import annotations

import gzip
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from RobustDeepLogic.cohort.manifest import Cohort
from RobustDeepLogic.cohort.patient import Patient
from RobustDeepLogic.cohort.tasks import Task, get_task, load_tasks
from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.modalities import PET_FAMILY
from RobustDeepLogic.core.progress import Progress
from RobustDeepLogic.io.file_checks import check_volume_file
from RobustDeepLogic.io.volumes import Grid, read_volume

#: Plausible CT values, HU: a CT outside this range is reported.
HU_RANGE = (-1100.0, 4000.0)


@dataclass(frozen=True)
class Problem:
    """One problem found in a cohort; ``str(problem)`` is the line shown to users.

    Attributes
    ----------
    severity : {'error', 'warning'}
        An error makes the cohort unusable as it is; a warning is worth a look.
    message : str
        What is wrong.
    patient, modality, file : str, optional
        Where, when it applies.
    """

    severity: str  # "error" or "warning"
    message: str
    patient: Optional[str] = None
    modality: Optional[str] = None
    file: Optional[str] = None

    def __str__(self) -> str:
        where = " ".join(x for x in (self.patient, self.modality) if x)
        loc = f" [{self.file}]" if self.file else ""
        return f"{self.severity}: {where + ': ' if where else ''}{self.message}{loc}"

    def as_event(self) -> dict:
        """The problem as a JSON ``error`` event (the protocol of :mod:`RobustDeepLogic.core.progress`).

        Returns
        -------
        dict
            ``kind`` is ``"check-error"`` or ``"check-warning"``; ``modality`` is added to the usual keys.
        """
        return {"event": "error", "kind": f"check-{self.severity}", "message": self.message,
                "file": self.file, "patient": self.patient, "hint": None, "modality": self.modality}


@dataclass
class VolumeFacts:
    """What the check learnt from reading one volume.

    Attributes
    ----------
    grid : Grid or None
        Its geometry; None when it could not be read.
    digest : str
        A hash of a sample of about a million stored voxels, to find duplicated images.
    minimum, maximum : float
        The range of its finite values in the file's units (NIfTI ``scl_slope`` / ``scl_inter``
        applied); NaN when unknown.
    n_nonfinite : int
        NaN and Inf voxels.
    n_negative : int
        Voxels below the negative threshold the check was given (PET only).
    problem : str or None
        Why it could not be read, or None.
    """

    grid: object = None
    digest: str = ""
    minimum: float = float("nan")
    maximum: float = float("nan")
    n_nonfinite: int = 0
    n_negative: int = 0
    problem: Optional[str] = None


_NIFTI_DTYPES = {2: "u1", 4: "i2", 8: "i4", 16: "f4", 64: "f8", 256: "i1", 512: "u2", 768: "u4",
                 1024: "i8", 1280: "u8"}


def nifti_voxels(path: Path) -> Optional[Tuple[np.ndarray, float, float]]:
    """The stored voxels of a NIfTI-1/-2 file as a flat array, with ``scl_slope`` and ``scl_inter``.

    Read from the raw bytes (memory-mapped when uncompressed) because ITK's NIfTI reader turns NaN
    into 0, which would hide them from the check.

    Parameters
    ----------
    path : pathlib.Path
        A ``.nii`` or ``.nii.gz`` file (gzip when the name ends in ``.gz``).

    Returns
    -------
    tuple of (numpy.ndarray, float, float) or None
        The stored values in file order, in their stored type; ``scl_slope`` and ``scl_inter`` (1 and 0
        when the slope is 0 or not finite). None for a header, data type or size this does not handle
        (the caller then falls back to SimpleITK).

    Raises
    ------
    OSError, EOFError
        The file cannot be opened or read, or a compressed file is cut short.
    """
    compressed = str(path).lower().endswith(".gz")
    with (gzip.open if compressed else open)(path, "rb") as f:
        head = f.read(540)
    for endian in ("<", ">"):
        size = int(np.frombuffer(head[:4], f"{endian}i4")[0])
        if size in (348, 540):
            break
    else:
        return None
    if size == 348:
        dims = np.frombuffer(head[40:56], f"{endian}i2").astype(int)
        code = int(np.frombuffer(head[70:72], f"{endian}i2")[0])
        offset = int(np.frombuffer(head[108:112], f"{endian}f4")[0])
        slope, inter = (float(v) for v in np.frombuffer(head[112:120], f"{endian}f4"))
    else:
        dims = np.frombuffer(head[16:80], f"{endian}i8").astype(int)
        code = int(np.frombuffer(head[12:14], f"{endian}i2")[0])
        offset = int(np.frombuffer(head[168:176], f"{endian}i8")[0])
        slope, inter = (float(v) for v in np.frombuffer(head[176:192], f"{endian}f8"))
    kind = _NIFTI_DTYPES.get(code)
    if kind is None or not 1 <= dims[0] <= 7:
        return None
    count = int(np.prod(dims[1 : dims[0] + 1]))
    dtype = np.dtype(f"{endian}{kind}")
    if compressed:
        with gzip.open(path, "rb") as f:
            f.seek(offset)
            values = np.frombuffer(f.read(count * dtype.itemsize), dtype)
    else:
        values = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=(count,))
    if values.size != count:
        return None
    if slope == 0 or not np.isfinite(slope):
        slope, inter = 1.0, 0.0
    return values, slope, inter


def _stats(facts: VolumeFacts, values: np.ndarray, slope: float, inter: float, negative_below: float) -> None:
    """Minimum, maximum, non-finite and negative counts, and a content digest (two passes)."""
    sample = values[:: max(1, values.size // (1 << 20))]  # ~1 M voxels identify duplicate content
    facts.digest = hashlib.blake2b(np.ascontiguousarray(sample).view(np.uint8), digest_size=16).hexdigest()
    lo, hi = values.min(), values.max()
    if values.dtype.kind == "f" and not (np.isfinite(lo) and np.isfinite(hi)):
        finite = np.isfinite(values)
        facts.n_nonfinite = int(values.size - np.count_nonzero(finite))
        values = values[finite]
        lo, hi = (values.min(), values.max()) if values.size else (np.nan, np.nan)
    lo, hi = sorted((float(lo) * slope + inter, float(hi) * slope + inter))
    facts.minimum, facts.maximum = lo, hi
    if lo < negative_below:
        raw_threshold = (negative_below - inter) / slope
        below = values < raw_threshold if slope > 0 else values > raw_threshold
        facts.n_negative = int(np.count_nonzero(below))


def _inspect(path: Path, negative_below: float) -> VolumeFacts:
    facts = VolumeFacts()
    is_nifti = str(path).lower().endswith((".nii", ".nii.gz"))
    try:
        check_volume_file(path)  # readable, gzip complete, NIfTI spacing positive: ITK checks none
        if is_nifti:
            reader = sitk.ImageFileReader()
            reader.SetFileName(str(path))
            reader.ReadImageInformation()
            # Integer data hold no NaN: ITK decompresses faster than Python's gzip, let it read those.
            compressed_int = str(path).lower().endswith(".gz") and reader.GetPixelID() not in (
                sitk.sitkFloat32, sitk.sitkFloat64)
            raw = None if compressed_int else nifti_voxels(path)
        if not is_nifti or raw is None:
            image = read_volume(path)
            facts.grid = Grid.of(image)
            _stats(facts, sitk.GetArrayViewFromImage(image).ravel(), 1.0, 0.0, negative_below)
            return facts
    except InputError as exc:  # before ValueError, which it also is
        facts.problem = exc.message
        return facts
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        facts.problem = f"cannot read this volume ({lines[-1][:160]})"
        return facts
    size = reader.GetSize()
    if len(size) == 4 and size[3] == 1:
        size = size[:3]
    if len(size) != 3 or reader.GetNumberOfComponents() != 1:
        facts.problem = f"expected a 3D scalar volume, found size {reader.GetSize()}"
        return facts
    dim = reader.GetDimension()
    direction = np.asarray(reader.GetDirection()).reshape(dim, dim)[:3, :3]
    facts.grid = Grid(tuple(int(v) for v in size), tuple(float(v) for v in reader.GetSpacing()[:3]),
                      tuple(float(v) for v in reader.GetOrigin()[:3]), tuple(direction.ravel().tolist()))
    values, slope, inter = raw
    _stats(facts, values, slope, inter, negative_below)
    return facts


def check_cohort(
    cohort: Cohort,
    *,
    tasks: Sequence[str] = (),
    negative_suv_tolerance: float = 0.01,
    workers: int = 2,
    progress: Optional[Progress] = None,
) -> List[Problem]:
    """All problems found in ``cohort`` (an empty list means it is usable); see the module doc.

    Parameters
    ----------
    cohort : Cohort
        The cohort, as loaded from its manifest; its volumes are read, never written.
    tasks : sequence of str, optional
        Tasks whose modalities every patient needs; by default the cohort's declared tasks. Tasks of
        the manifest's ``meta["tasks_defined"]`` are known besides the built-in ones.
    negative_suv_tolerance : float, optional
        PET voxels below ``-negative_suv_tolerance`` SUV count as negative.
    workers : int, optional
        Volumes read at once, in threads (at least 1).
    progress : Progress, optional
        Receives a ``check volumes`` stage with one step per volume; silent by default.

    Returns
    -------
    list of Problem
        The problems, in the order found; empty when the cohort is usable.

    Raises
    ------
    InputError
        A task is unknown, or a task of ``meta["tasks_defined"]`` is malformed.
    """
    progress = progress or Progress()
    problems: List[Problem] = []
    known_tasks = load_tasks(cohort.meta.get("tasks_defined"), source=str(cohort.manifest_path))
    task_objs: List[Task] = [get_task(t, known_tasks) for t in (list(tasks) or list(cohort.tasks))]

    seen: Dict[str, int] = {}
    for p in cohort.patients:
        seen[p.id] = seen.get(p.id, 0) + 1
    for pid, count in seen.items():
        if count > 1:
            problems.append(Problem("error", f"patient id listed {count} times in the manifest", pid,
                                    file=str(cohort.manifest_path)))

    jobs: List[Tuple[Patient, str, Path]] = []
    for p in cohort.patients:
        if not p.modalities:
            problems.append(Problem("error", "no images listed", p.id, file=str(cohort.manifest_path)))
        for task in task_objs:
            missing = [m for m in task.modalities if m not in p.modalities]
            if missing:
                problems.append(Problem("error", f"task {task.name} needs {', '.join(missing)}, which "
                                        "this patient lacks", p.id, file=str(cohort.manifest_path)))
        for modality in p.modalities:
            path = cohort.path(p, modality)
            if not path.exists():
                problems.append(Problem("error", "file not found", p.id, modality, str(path)))
            else:
                jobs.append((p, modality, path))

    facts: Dict[Tuple[str, str], VolumeFacts] = {}
    with progress.stage("check volumes", total=len(jobs)) as st:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = {
                (p.id, m): pool.submit(_inspect, path, -negative_suv_tolerance if m in PET_FAMILY else -np.inf)
                for p, m, path in jobs
            }
            for key, future in futures.items():
                facts[key] = future.result()
                st.advance(message=f"{key[0]} {key[1]}")

    digests: Dict[str, Tuple[str, str]] = {}
    for p, modality, path in jobs:
        f = facts[(p.id, modality)]
        file = str(path)
        if f.problem:
            problems.append(Problem("error", f.problem, p.id, modality, file))
            continue
        if f.n_nonfinite:
            problems.append(Problem("error", f"{f.n_nonfinite} NaN or Inf voxels (ITK's NIfTI reader "
                                    "would silently turn them into 0)", p.id, modality, file))
        unit = cohort.units.get(modality, "")
        if modality in PET_FAMILY and unit == "SUV" and f.n_negative:
            problems.append(Problem("error", f"{f.n_negative} voxels of negative SUV (minimum "
                                    f"{f.minimum:.3g})", p.id, modality, file))
        if modality == "CT" and unit == "HU":
            if f.minimum >= -10 and f.maximum > 1500:
                problems.append(Problem("error", f"CT values {f.minimum:.0f} to {f.maximum:.0f} look like "
                                        "stored values, not HU (air should be about -1000): rescale "
                                        "slope/intercept not applied?", p.id, modality, file))
            elif f.minimum < HU_RANGE[0] or f.maximum > HU_RANGE[1]:
                problems.append(Problem("error", f"CT values {f.minimum:.0f} to {f.maximum:.0f} HU are "
                                        f"outside the plausible {HU_RANGE[0]:.0f} to {HU_RANGE[1]:.0f} "
                                        "(padding outside the field of view?)", p.id, modality, file))
        if f.digest:
            key = f"{modality}:{f.digest}"
            if key in digests and digests[key][0] != p.id:
                problems.append(Problem("error", f"{modality} image is identical to patient "
                                        f"{digests[key][0]}'s: a duplicated patient?", p.id, modality, file))
            else:
                digests[key] = (p.id, file)

    for p in cohort.patients:
        pet = [m for m in PET_FAMILY if (p.id, m) in facts and facts[(p.id, m)].grid is not None]
        if len(pet) > 1:
            ref = facts[(p.id, pet[0])].grid
            for m in pet[1:]:
                g = facts[(p.id, m)].grid
                if not g.matches(ref):
                    problems.append(Problem(
                        "error",
                        f"{m} is not on {pet[0]}'s grid ({g.describe()} vs {ref.describe()}; the PET "
                        "family must share one grid)",
                        p.id, m, str(cohort.path(p, m)),
                    ))
    return problems


def summarise(problems: Iterable[Problem]) -> Tuple[int, int]:
    """Count errors and warnings.

    Parameters
    ----------
    problems : iterable of Problem
        The problems, e.g. from :func:`check_cohort`.

    Returns
    -------
    errors, warnings : int
        How many of each severity.
    """
    problems = list(problems)
    return (sum(p.severity == "error" for p in problems), sum(p.severity == "warning" for p in problems))


def default_workers() -> int:
    """The default number of volumes to read at once: the CPU count, between 1 and 4.

    Returns
    -------
    int
    """
    return max(1, min(4, os.cpu_count() or 1))

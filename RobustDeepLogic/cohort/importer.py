"""Building a cohort from a folder of files (``robustdeep cohort import``).

Naming rule (case does not matter; the first that applies wins):

1. ``SRC/<patient>/<modality>.<ext>``: a folder per patient, a file per modality;
2. ``SRC/<patient>/<modality>/``: a folder per patient, a DICOM series folder per modality;
3. ``SRC/<patient>_<modality>.<ext>``: flat files, the modality after the last underscore.

``<ext>`` is any volume ending RobustDeep reads (.nii.gz, .nii, .nrrd, .nhdr, .mha, .mhd).
``<modality>`` is one of FD LD NAC MAC CT T1 T2 or an alias (:data:`ALIASES`, e.g. ``t1w``,
``mprage``, ``lowdose``). Anything else is listed as skipped, never guessed.

Every volume is converted to its physical unit (PET DICOM to SUV, CT DICOM to HU; files are taken to
be in SUV / HU already) and written as ``OUT/<patient>/<MODALITY>.nii.gz``; originals are only read.
MR scaling constants are computed once from the imported patients (:func:`mr_scaling`) and stored.
Importing again into the same OUT resumes: volumes already there are kept.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from RobustDeepLogic.cohort.manifest import MANIFEST_NAME, Cohort, Patient
from RobustDeepLogic.cohort.scaling import DEFAULT_SCALING, Scaling
from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.files import strip_volume_suffix, volume_suffix
from RobustDeepLogic.core.modalities import MODALITIES, MR_FAMILY
from RobustDeepLogic.core.progress import Progress
from RobustDeepLogic.core.types import PathLike
from RobustDeepLogic.io.units import read_physical
from RobustDeepLogic.io.volumes import read_volume, write_volume

ALIASES: Dict[str, str] = {
    "fd": "FD", "fulldose": "FD", "full_dose": "FD", "fdpet": "FD", "pet_fd": "FD",
    "ld": "LD", "lowdose": "LD", "low_dose": "LD", "ldpet": "LD", "pet_ld": "LD",
    "nac": "NAC", "pet_nac": "NAC",
    "mac": "MAC", "ac": "MAC", "ctac": "MAC", "pet_mac": "MAC",
    "ct": "CT",
    "t1": "T1", "t1w": "T1", "mprage": "T1",
    "t2": "T2", "t2w": "T2",
}


_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def modality_from_name(name: str) -> Optional[str]:
    return ALIASES.get(name.strip().lower())


def discover(src: PathLike) -> Tuple[Dict[str, Dict[str, Path]], List[str]]:
    """Find ``{patient: {modality: path}}`` under ``src`` by the naming rule; also what was skipped."""
    src = Path(src)
    if not src.is_dir():
        raise InputError("not a folder", file=src)
    found: Dict[str, Dict[str, Path]] = {}
    skipped: List[str] = []

    def put(pid: str, modality: str, path: Path) -> None:
        if not _ID_RE.match(pid):
            skipped.append(f"{path}: patient id {pid!r} has characters other than letters, digits, . _ -")
            return
        mods = found.setdefault(pid, {})
        if modality in mods:
            raise InputError(f"two {modality} images for one patient: {mods[modality]} and {path}",
                             file=path, patient=pid, hint="keep one per patient and modality")
        mods[modality] = path

    for entry in sorted(src.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            for item in sorted(entry.iterdir()):
                if item.name.startswith("."):
                    continue
                stem = item.name if item.is_dir() else strip_volume_suffix(item)
                modality = modality_from_name(stem)
                if item.is_file() and volume_suffix(item) is None:
                    if not item.name.lower().endswith((".raw", ".raw.gz", ".zraw", ".img")):
                        skipped.append(f"{item}: not a volume file")
                    continue
                if modality is None:
                    skipped.append(f"{item}: {stem!r} is not a modality name")
                    continue
                put(entry.name, modality, item)
        elif volume_suffix(entry) is not None:
            stem = strip_volume_suffix(entry)
            pid, _, token = stem.rpartition("_")
            modality = modality_from_name(token) if pid else None
            if modality is None:
                skipped.append(f"{entry}: no <patient>_<modality> name")
                continue
            put(pid, modality, entry)
        else:
            skipped.append(f"{entry}: not a volume file or patient folder")
    return found, skipped


def mr_scaling(cohort: Cohort, patients: Optional[Sequence[Patient]] = None,
               percentile: float = 99.5) -> Dict[str, Scaling]:
    """Fixed MR constants: the median over patients of each one's ``percentile`` of non-zero voxels.

    Computed once for a cohort (from its training patients, when given) and stored in the manifest;
    every image is then divided by the same constant.
    """
    result = {}
    chosen = list(patients) if patients is not None else list(cohort.patients)
    for modality in MR_FAMILY:
        values = []
        for p in chosen:
            if modality in p.modalities and not p.is_synthetic:
                arr = _array(cohort.path(p, modality))
                nonzero = arr[arr > 0]
                if nonzero.size:
                    values.append(float(np.percentile(nonzero, percentile)))
        if values:
            result[modality] = Scaling(float(np.median(values)), 0.0, cohort.units.get(modality, "a.u."))
    return result


def _array(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(read_volume(path))


def import_cohort(
    src: PathLike,
    out: PathLike,
    *,
    tasks: Sequence[str] = (),
    progress: Optional[Progress] = None,
) -> Tuple[Cohort, List[str]]:
    """Import ``src`` into a new cohort folder ``out`` (see module doc). Returns the cohort and skips."""
    progress = progress or Progress()
    src, out = Path(src), Path(out)
    found, skipped = discover(src)
    if not found:
        raise InputError("no patient images found by the naming rule", file=src,
                         hint="use SRC/<patient>/<modality>.nii.gz or SRC/<patient>_<modality>.nii.gz "
                         f"with modalities {', '.join(MODALITIES)}")
    if out.resolve() == src.resolve():
        raise InputError("the output folder must differ from the source folder", file=out)
    cohort = Cohort.load(out) if (out / MANIFEST_NAME).is_file() else Cohort(root=out)
    cohort.tasks = list(dict.fromkeys(list(cohort.tasks) + list(tasks)))
    total = sum(len(m) for m in found.values())
    with progress.stage("import", total=total) as st:
        for pid, mods in sorted(found.items()):
            try:
                patient = cohort.patient(pid)
            except InputError:
                patient = Patient(id=pid)
                cohort.add(patient)
            for modality, path in sorted(mods.items()):
                rel = f"{pid}/{modality}.nii.gz"
                target = out / rel
                if target.is_file() and patient.modalities.get(modality) == rel:
                    st.advance(message=f"{pid} {modality} (kept)")
                    continue
                image, how = read_physical(path, modality, patient=pid)
                write_volume(image, target)
                patient.modalities[modality] = rel
                patient.meta.setdefault("source", {})[modality] = {"path": str(path), **how}
                st.advance(message=f"{pid} {modality}")
            cohort.save()
    cohort.scaling = {**DEFAULT_SCALING, **cohort.scaling, **mr_scaling(cohort)}
    cohort.save()
    return cohort, skipped

"""Building a cohort from a folder of files (``robustdeep cohort import``).

Naming rule (case does not matter; the first that applies wins):

1. ``SRC/<patient>/<modality>.<ext>``: a folder per patient, a file per modality;
2. ``SRC/<patient>/<modality>/``: a folder per patient, a DICOM series folder per modality;
3. ``SRC/<patient>_<modality>.<ext>``: flat files, the modality after the last underscore.

``<ext>`` is any volume ending RobustDeep reads (.nii.gz, .nii, .nrrd, .nhdr, .mha, .mhd).
``<patient>`` keeps to :data:`ID_RULE` (ASCII letters, digits, ``.`` ``_`` ``-``); a folder or file
that breaks it is skipped with the rule and a suggested name. ``<modality>`` is one of FD LD NAC MAC CT
T1 T2 or an alias (:data:`ALIASES`, e.g. ``t1w``, ``mprage``, ``lowdose``). Anything else is listed as
skipped, never guessed.

Every volume is converted to its physical unit (PET DICOM to SUV, CT DICOM to HU; files are taken to
be in SUV / HU already) and written as ``OUT/<patient>/<MODALITY>.nii.gz``; originals are only read.
MR scaling constants are computed from the cohort's real patients that are not held out for testing
(``split != "test"``) and stored, recorded as data-derived
(:func:`RobustDeepLogic.cohort.mr_constants.store_mr_scaling`); a training run computes them again
from its own training patients.
Importing again into the same OUT resumes: volumes already there are kept.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from RobustDeepLogic.cohort.manifest import MANIFEST_NAME, Cohort
from RobustDeepLogic.cohort.mr_constants import store_mr_scaling
from RobustDeepLogic.cohort.patient import Patient
from RobustDeepLogic.cohort.scaling import DEFAULT_SCALING
from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.files import strip_volume_suffix, volume_suffix
from RobustDeepLogic.core.modalities import MODALITIES
from RobustDeepLogic.core.progress import Progress
from RobustDeepLogic.core.types import PathLike
from RobustDeepLogic.io.units import read_physical
from RobustDeepLogic.io.volumes import write_volume

#: Accepted modality names in file and folder names (lower case) -> the modality.
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

#: The rule for patient ids, as messages state it.
ID_RULE = ("a patient id holds only ASCII letters, digits, '.', '_' and '-' (no spaces or accents) and "
           "starts with a letter or digit")


def suggest_id(name: str) -> str:
    """A patient id close to ``name`` that keeps to :data:`ID_RULE` (``'Jörg Müller'``: ``'Jorg_Muller'``).

    Parameters
    ----------
    name : str
        A folder or file name that breaks the rule.

    Returns
    -------
    str
        Accents removed, every other character outside the rule replaced by ``_``, leading ``.``,
        ``_`` and ``-`` dropped; ``'patient'`` when nothing is left.
    """
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    plain = re.sub(r"[^A-Za-z0-9._-]+", "_", plain).lstrip("._-")
    return plain or "patient"


def modality_from_name(name: str) -> Optional[str]:
    """The modality a file or folder name stands for (:data:`ALIASES`).

    Parameters
    ----------
    name : str
        A name without its volume ending (``'T1w'``, ``'lowdose'``), in any case.

    Returns
    -------
    str or None
        The modality (``'T1'``, ``'LD'`` ...), or None when the name is not an alias.
    """
    return ALIASES.get(name.strip().lower())


def discover(src: PathLike) -> Tuple[Dict[str, Dict[str, Path]], List[str]]:
    """Find the patients' images under ``src`` by the naming rule of the module doc.

    Names starting with ``.`` are ignored; patient ids keep to :data:`ID_RULE` (a folder or file that
    breaks it is skipped, with the rule and a name that keeps it). Data files of detached formats
    (``.raw``, ``.raw.gz``, ``.zraw``, ``.img``) inside a patient folder are passed over silently.

    Parameters
    ----------
    src : str or pathlib.Path
        The folder to search (its children, and the children of its sub-folders).

    Returns
    -------
    found : dict of str to dict of str to pathlib.Path
        Patient id -> modality -> volume file or DICOM folder.
    skipped : list of str
        One line per entry not used, with the reason.

    Raises
    ------
    InputError
        ``src`` is not a folder, or one patient has two images of one modality.
    """
    src = Path(src)
    if not src.is_dir():
        raise InputError("not a folder", file=src)
    found: Dict[str, Dict[str, Path]] = {}
    skipped: List[str] = []

    def bad_id(pid: str, path: Path) -> bool:
        if _ID_RE.match(pid):
            return False
        skipped.append(f"{path}: patient id {pid!r} breaks the rule: {ID_RULE}; rename it, e.g. to "
                       f"{suggest_id(pid)!r}")
        return True

    def put(pid: str, modality: str, path: Path) -> None:
        if bad_id(pid, path):
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
            if bad_id(entry.name, entry):  # one line for the folder, not one per file
                continue
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


def import_cohort(
    src: PathLike,
    out: PathLike,
    *,
    tasks: Sequence[str] = (),
    progress: Optional[Progress] = None,
) -> Tuple[Cohort, List[str]]:
    """Import ``src`` into a cohort folder ``out`` (see the module doc).

    An existing cohort in ``out`` is extended, and its volumes already imported are kept. The manifest
    is saved after each patient; at the end the scaling is the defaults, updated by the cohort's own
    constants, updated by the MR constants of its real patients whose split is not ``"test"``
    (:func:`~RobustDeepLogic.cohort.mr_constants.store_mr_scaling`).

    Parameters
    ----------
    src : str or pathlib.Path
        The folder to import, laid out by the naming rule; only read.
    out : str or pathlib.Path
        The cohort folder to write; different from ``src``.
    tasks : sequence of str, optional
        Task names to add to the cohort's declared tasks.
    progress : Progress, optional
        Receives an ``import`` stage with one step per volume; silent by default.

    Returns
    -------
    cohort : Cohort
        The cohort, saved.
    skipped : list of str
        What :func:`discover` passed over, with the reason.

    Raises
    ------
    InputError
        No images found by the naming rule (the message lists what was skipped and why, the hint
        states the naming rule and :data:`ID_RULE`), ``out`` is ``src``, or a volume cannot be read or
        converted to its physical unit (:func:`RobustDeepLogic.io.units.read_physical`).
    """
    progress = progress or Progress()
    src, out = Path(src), Path(out)
    found, skipped = discover(src)
    if not found:
        passed_over = "".join(f"; {line}" for line in skipped[:5]) + ("; ..." if len(skipped) > 5 else "")
        raise InputError(f"no patient images found by the naming rule{passed_over}", file=src,
                         hint="use SRC/<patient>/<modality>.nii.gz or SRC/<patient>_<modality>.nii.gz "
                         f"with modalities {', '.join(MODALITIES)}; {ID_RULE}")
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
    cohort.scaling = {**DEFAULT_SCALING, **cohort.scaling}
    store_mr_scaling(cohort)
    cohort.save()
    return cohort, skipped

"""TODO docstring (RobustDeepLogic.experiment)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import SimpleITK as sitk

from RobustDeepLogic.cohort.folds import assign_folds
from RobustDeepLogic.cohort.manifest import Cohort, Patient
from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.files import atomic_write_text
from RobustDeepLogic.core.modalities import MR_FAMILY
from RobustDeepLogic.core.progress import Progress
from RobustDeepLogic.core.types import PathLike
from RobustDeepLogic.core.version import __version__
from RobustDeepLogic.io.transforms import read_transform
from RobustDeepLogic.io.volumes import write_volume
from RobustDeepLogic.study.profiles import ARMS, Arm, StudyProfile

STUDY_FILE = "study.json"


STUDY_FORMAT = "robustdeep-study"


STUDY_VERSION = 1


# --------------------------------------------------------------------------------------------------
# The study folder's record
# --------------------------------------------------------------------------------------------------
@dataclass
class Study:
    """``OUT/study.json``: what the study is (profile, arms, split) and how far it got (stages)."""

    root: Path
    profile: StudyProfile
    seed: int
    tasks: List[str]
    arms: List[str]
    cohort: str
    split: Dict[str, Any] = field(default_factory=dict)
    stages: Dict[str, Any] = field(default_factory=dict)
    trained: Dict[str, Dict[str, Any]] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.root / STUDY_FILE

    def identity(self) -> Dict[str, Any]:
        return {"profile": self.profile.as_dict(), "seed": self.seed, "cohort": self.cohort}

    def to_json(self) -> Dict[str, Any]:
        return {"format": STUDY_FORMAT, "version": STUDY_VERSION, "written_by": f"robustdeep {__version__}",
                **self.identity(), "tasks": self.tasks, "arms": self.arms, "split": self.split,
                "stages": self.stages, "trained": self.trained}

    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(self.to_json(), indent=1, default=str) + "\n")

    def done(self, stage: str, seconds: float, **extra: Any) -> None:
        self.stages[stage] = {"status": "done", "seconds": round(seconds, 2), **extra}
        self.save()

    @classmethod
    def open(cls, root: Path, profile: StudyProfile, seed: int, tasks: List[str], arms: List[str],
             cohort: str) -> "Study":
        """A new study record, or the one in ``root`` when it describes the same study."""
        study = cls(root, profile, seed, tasks, arms, cohort)
        if not study.path.is_file():
            return study
        try:
            data = json.loads(study.path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise InputError(f"cannot read the study record ({exc})", file=study.path) from None
        if data.get("format") != STUDY_FORMAT:
            raise InputError("not a RobustDeep study folder", file=study.path)
        old = {k: data.get(k) for k in ("profile", "seed", "cohort")}
        if json.loads(json.dumps(old, default=str)) != json.loads(json.dumps(study.identity(), default=str)):
            changed = [k for k in old if json.dumps(old[k], default=str)
                       != json.dumps(study.identity()[k], default=str)]
            raise InputError(f"this folder holds a study with another {', '.join(changed)}", file=root,
                             hint="use a new --out folder, or the same profile, seed and cohort to resume")
        study.split = dict(data.get("split") or {})
        study.stages = dict(data.get("stages") or {})
        study.trained = dict(data.get("trained") or {})
        return study


# --------------------------------------------------------------------------------------------------
# Stages
# --------------------------------------------------------------------------------------------------
def _real_ids(cohort) -> List[str]:
    return [p.id for p in cohort.patients if not p.is_synthetic]


def choose_split(cohort, profile: StudyProfile, seed: int):
    """The fold plan of the study: the cohort's own split when its manifest has one, else seeded."""
    real = [p for p in cohort.patients if not p.is_synthetic]
    if len(real) < profile.test + profile.folds:
        raise InputError(f"{len(real)} patients are too few for {profile.test} test patients and "
                         f"{profile.folds} folds", file=cohort.manifest_path,
                         hint="simulate more subjects, or use a smaller profile")
    return assign_folds([p.id for p in real], k=profile.folds, test_fraction=profile.test / len(real),
                        seed=seed, preset_splits={p.id: p.split for p in real},
                        preset_folds={p.id: p.fold for p in real})


def write_split(cohort, plan) -> None:
    """Record ``plan`` as the ``split`` / ``fold`` of the cohort's real patients and save it."""
    fold_of = {pid: k for k, members in enumerate(plan.folds) for pid in members}
    for p in cohort.patients:
        if p.is_synthetic:
            continue
        p.split = "test" if p.id in plan.test else "train"
        p.fold = fold_of.get(p.id)
    cohort.save()


def build_native_cohort(source, registered, out: PathLike, plan, *,
                        progress: Optional[Progress] = None):
    """The PU cohort: PET/CT files of ``source`` as they are, T1/T2 moved into the PET/CT frame.

    T1 and T2 are resampled (linear) onto the patient's CT grid (FD without CT) through the within-
    patient registration of the registration stage (``transforms/T1_to_CT.tfm``: CT points -> MR
    points, ITK's resampling convention); nothing is moved to MNI. The PET/CT modalities are referenced
    by absolute path (originals are never copied or modified). Resumable: existing MR files are kept.
    """
    progress = progress or Progress()
    out = Path(out)
    native = Cohort(root=out, space="native", scaling=dict(source.scaling), units=dict(source.units),
                    tasks=list(source.tasks), meta={"made_by": "robustdeep reproduce (PU data)",
                                                    "source": str(Path(source.root).resolve())})
    reals = [p for p in source.patients if not p.is_synthetic]
    with progress.stage("native (PU) cohort", total=len(reals)) as st:
        for patient in reals:
            mods = {m: str(source.path(patient, m).resolve()) for m in patient.modalities
                    if m not in MR_FAMILY}
            reg = registered.patient(patient.id).meta.get("registration", {})
            fixed = "CT" if "CT" in mods else "FD"
            for mr in MR_FAMILY:
                if mr not in patient.modalities:
                    continue
                rel = f"{patient.id}/{mr}.nii.gz"
                target = out / rel
                if not target.is_file():
                    tfile = reg.get("transforms", {}).get(f"{mr}_to_{fixed}")
                    if tfile is None:
                        raise InputError(f"has no {mr} -> {fixed} registration", patient=patient.id,
                                         file=registered.manifest_path)
                    tx = read_transform(Path(registered.root) / tfile)
                    fixed_image = source.read(patient, fixed)
                    moved = sitk.Resample(source.read(patient, mr), fixed_image, tx, sitk.sitkLinear, 0.0,
                                          sitk.sitkFloat32)
                    write_volume(moved, target)
                mods[mr] = rel
            native.add(Patient(id=patient.id, modalities=mods, provenance=dict(patient.provenance),
                               meta={"native_mr": f"T1/T2 resampled onto the {fixed} grid through "
                                                  f"transforms/<MR>_to_{fixed} of the registration"}))
            st.advance(message=patient.id)
    write_split(native, plan)
    return native


def _arms_of(study: Study, task: str) -> List[Arm]:
    p = study.profile
    chosen = []
    for name in study.arms:
        arm = ARMS[name]
        if arm.group == "ablation" and task not in p.ablation_tasks:
            continue
        if arm.group == "compute" and task not in p.compute_tasks:
            continue
        chosen.append(arm)
    return chosen


def task_arms(study: Study) -> Dict[str, List[Arm]]:
    """The arms trained for each task (ablation and compute arms only for the profile's tasks)."""
    return {task: _arms_of(study, task) for task in study.tasks}


def prediction_path(study_root: Path, task: str, arm: str, patient: str) -> Path:
    return Path(study_root) / "predictions" / task / arm / f"{patient}.nii.gz"

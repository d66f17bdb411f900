"""A study folder: its record (``study.json``), its split, its native (PU) cohort, its predictions.

:class:`Study` is the record of ``OUT/study.json``: what the study is (profile, seed, cohort, tasks,
arms, split) and how far it got, so that a study resumes where it stopped. :func:`choose_split` draws
(or takes from the manifest) the held-out test patients and patient-level folds, and
:func:`write_split` records them in a cohort's manifest. :func:`build_native_cohort` makes the PU
data (docs/method.md §3.5). :func:`task_arms` says which arms each task trains, and
:func:`prediction_path` where a prediction goes.

The arms and profiles are in :mod:`RobustDeepLogic.study.profiles`; the stages that fill the folder,
and its layout, are in :mod:`RobustDeepLogic.study.stages`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import SimpleITK as sitk

from RobustDeepLogic.cohort.folds import assign_folds
from RobustDeepLogic.cohort.manifest import Cohort
from RobustDeepLogic.cohort.patient import Patient
from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.files import atomic_write_text
from RobustDeepLogic.core.modalities import MR_FAMILY
from RobustDeepLogic.core.progress import Progress
from RobustDeepLogic.core.types import PathLike
from RobustDeepLogic.core.version import __version__
from RobustDeepLogic.io.transforms import read_transform
from RobustDeepLogic.io.volumes import write_volume
from RobustDeepLogic.study.profiles import ARMS, Arm, StudyProfile
from RobustDeepLogic.study.settings import changed_settings

#: The study record's file name, in the study folder.
STUDY_FILE = "study.json"

#: The ``format`` field of ``study.json``: a folder whose record has another is not a study folder.
STUDY_FORMAT = "robustdeep-study"

#: The ``version`` field of ``study.json``.
STUDY_VERSION = 1


# --------------------------------------------------------------------------------------------------
# The study folder's record
# --------------------------------------------------------------------------------------------------
@dataclass
class Study:
    """``OUT/study.json``: what the study is (profile, arms, split) and how far it got (stages).

    Make one with :meth:`open`, which resumes the record already in the folder. The profile, seed
    and cohort are the study's identity: a folder holds one study.

    Attributes
    ----------
    root : Path
        The study folder.
    profile : StudyProfile
        The profile's settings (:mod:`RobustDeepLogic.study.profiles`).
    seed : int
        The study seed: cohort, split, synthetic pairs and network weights.
    tasks : list of str
        The tasks the study runs (of ``ALL_TASKS``).
    arms : list of str
        The arms it trains (names of ``ARMS``, in the order of ``ARMS``).
    cohort : str
        ``simulated:<simulation profile>``, or the absolute path of the cohort given instead.
    split : dict, optional
        The fold plan as :meth:`FoldPlan.as_dict <RobustDeepLogic.cohort.folds.FoldPlan.as_dict>`
        gives it, ``{"test": [ids], "folds": [[ids], ...]}``; empty until the split stage.
    stages : dict, optional
        ``{stage: {"status": "done", "seconds": float, ...}}`` of the stages done.
    trained : dict, optional
        ``{"<task>/<arm>": {...}}``: per-fold mean optimizer steps, epochs and training seconds,
        and the real and synthetic subjects the trained folds trained on (the report's training
        table; ``"min-max"`` when folds differ).
    """

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
        """The record's file, ``root / study.json``."""
        return self.root / STUDY_FILE

    def identity(self) -> Dict[str, Any]:
        """What makes this study the study of its folder: profile, seed and cohort.

        Returns
        -------
        dict
            ``{"profile": profile.as_dict(), "seed": int, "cohort": str}``.
        """
        return {"profile": self.profile.as_dict(), "seed": self.seed, "cohort": self.cohort}

    def to_json(self) -> Dict[str, Any]:
        """The record as written to ``study.json``.

        Returns
        -------
        dict
            ``format``, ``version``, ``written_by`` (the robustdeep version), the identity
            (:meth:`identity`), ``settings`` (those changed from the named profile, ``--set``),
            ``tasks``, ``arms``, ``split``, ``stages`` and ``trained``.
        """
        return {"format": STUDY_FORMAT, "version": STUDY_VERSION, "written_by": f"robustdeep {__version__}",
                **self.identity(), "settings": changed_settings(self.profile), "tasks": self.tasks,
                "arms": self.arms, "split": self.split,
                "stages": self.stages, "trained": self.trained}

    def save(self) -> None:
        """Write ``study.json`` (atomically), creating the study folder if needed."""
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(self.to_json(), indent=1, default=str) + "\n")

    def done(self, stage: str, seconds: float, **extra: Any) -> None:
        """Record a stage as done and save the record.

        Parameters
        ----------
        stage : str
            The stage's name (``cohort``, ``register``, ``native``, ``synthesize``, ``train``,
            ``evaluate``, ``report``).
        seconds : float
            Its wall-clock time in seconds (stored rounded to 0.01 s).
        **extra
            More fields stored with the stage (e.g. ``flagged``: patients flagged by registration
            QC).
        """
        self.stages[stage] = {"status": "done", "seconds": round(seconds, 2), **extra}
        self.save()

    @classmethod
    def open(cls, root: Path, profile: StudyProfile, seed: int, tasks: List[str], arms: List[str],
             cohort: str) -> "Study":
        """A new study record, or the one in ``root`` when it describes the same study.

        A record already in ``root`` is resumed (its split, stages and trained arms kept) when its
        profile, seed and cohort are those given; tasks and arms are those given.

        Parameters
        ----------
        root : Path
            The study folder (need not exist).
        profile : StudyProfile
            The study's profile.
        seed : int
            The study seed.
        tasks : list of str
            The tasks to run.
        arms : list of str
            The arms to train.
        cohort : str
            ``simulated:<simulation profile>``, or the absolute path of a given cohort.

        Returns
        -------
        Study
            The record (not yet saved when new).

        Raises
        ------
        InputError
            When ``study.json`` cannot be read, is not a study record, or describes a study with
            another profile, seed or cohort.
        """
        study = cls(root, profile, seed, tasks, arms, cohort)
        if not study.path.is_file():
            return study
        try:
            data = json.loads(study.path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise InputError(f"cannot read the study record ({exc})", file=study.path) from None
        if data.get("format") != STUDY_FORMAT:
            raise InputError("not a RobustDeep study folder", file=study.path)
        old = json.loads(json.dumps({k: data.get(k) for k in ("profile", "seed", "cohort")}, default=str))
        new = json.loads(json.dumps(study.identity(), default=str))
        if old != new:
            changed = [k for k in old if old[k] != new[k]]
            if "profile" in changed and isinstance(old["profile"], dict) \
                    and old["profile"].get("name") == profile.name:
                changed.remove("profile")
                changed[:0] = [f"{k}={old['profile'].get(k)!r} (asked: {v!r})" for k, v in new["profile"].items()
                               if old["profile"].get(k) != v]
            raise InputError(f"this folder holds a study with another {', '.join(changed)}", file=root,
                             hint="use a new --out folder, or the same profile, settings, seed and cohort "
                                  "to resume")
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
    """The fold plan of the study: the cohort's own split when its manifest has one, else seeded.

    Only real patients are split (synthetic subjects follow their parents). The manifest's
    ``split == "test"`` patients are the test set when there are any, and its ``fold`` values are
    the folds when every development patient has one; otherwise ``profile.test`` test patients and
    ``profile.folds`` folds are drawn with ``seed`` (:func:`RobustDeepLogic.cohort.folds.assign_folds`).

    Parameters
    ----------
    cohort : Cohort
        The native-space cohort of the study.
    profile : StudyProfile
        Gives the number of test patients (``test``) and of folds (``folds``).
    seed : int
        Seed of the draw.

    Returns
    -------
    FoldPlan
        Held-out test patients and the validation patients of each fold.

    Raises
    ------
    InputError
        When the cohort has fewer real patients than ``profile.test + profile.folds``, or they cannot
        make the folds.
    """
    real = [p for p in cohort.patients if not p.is_synthetic]
    if len(real) < profile.test + profile.folds:
        raise InputError(f"{len(real)} patients are too few for {profile.test} test patients and "
                         f"{profile.folds} folds", file=cohort.manifest_path,
                         hint="simulate more subjects, or use a smaller profile")
    return assign_folds([p.id for p in real], k=profile.folds, test_fraction=profile.test / len(real),
                        seed=seed, preset_splits={p.id: p.split for p in real},
                        preset_folds={p.id: p.fold for p in real})


def write_split(cohort, plan) -> None:
    """Record ``plan`` as the ``split`` / ``fold`` of the cohort's real patients and save it.

    Test patients get ``split = "test"`` and no fold; the others ``split = "train"`` and the index
    of the fold in which they validate. Synthetic subjects are left as they are.

    Parameters
    ----------
    cohort : Cohort
        The cohort whose manifest is updated and saved.
    plan : FoldPlan
        The study's split.
    """
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
    patient registration of the registration stage (``<patient>/transforms/T1_to_CT.tfm`` in the
    registered cohort: CT points -> MR points, ITK's resampling convention); nothing is moved to
    MNI (docs/method.md §3.5). The PET/CT modalities are referenced by absolute path (originals are
    never copied or modified). Resumable: existing MR files are kept. Only real patients are taken;
    ``plan`` is written into the new manifest (:func:`write_split`).

    Parameters
    ----------
    source : Cohort
        The native-space cohort (only read).
    registered : Cohort
        The same patients registered to the template
        (:func:`~RobustDeepLogic.registration.cohort.register_cohort`): the MR -> CT (MR -> FD
        without CT) transforms are read from its manifest.
    out : str or PathLike
        The folder of the new cohort.
    plan : FoldPlan
        The study's split.
    progress : Progress, optional
        Progress sink (default: silent).

    Returns
    -------
    Cohort
        The PU cohort, space ``native``, with the source's scaling constants, units and tasks.

    Raises
    ------
    InputError
        When a patient with T1 or T2 has no MR -> CT (MR -> FD) registration in ``registered``.
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
    """The arms trained for each task (ablation and compute arms only for the profile's tasks).

    Parameters
    ----------
    study : Study
        The study: its tasks, arms and profile (``ablation_tasks``, ``compute_tasks``).

    Returns
    -------
    dict of str to list of Arm
        ``{task: [arm, ...]}`` for every task of the study, arms in the order of ``study.arms``.
    """
    return {task: _arms_of(study, task) for task in study.tasks}


def prediction_path(study_root: Path, task: str, arm: str, patient: str) -> Path:
    """Where the study keeps one test patient's prediction by one arm.

    Parameters
    ----------
    study_root : Path
        The study folder.
    task : str
        The task (``ld2fd``, ...).
    arm : str
        The arm's name (``PU``, ``PR``, ...).
    patient : str
        The patient id.

    Returns
    -------
    Path
        ``study_root/predictions/<task>/<arm>/<patient>.nii.gz`` (native space, SUV / HU).
    """
    return Path(study_root) / "predictions" / task / arm / f"{patient}.nii.gz"

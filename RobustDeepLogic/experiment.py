"""The paper's study in one call (method.md §9): ``robustdeep reproduce`` and ``robustdeep demo``.

:func:`reproduce` composes the stages into the experiment of Sanaat et al. (2022):

1. **cohort**: simulate the digital cohort (or take a given one; it is only read);
2. **split**: held-out test patients and patient-level folds, drawn once with the study seed;
3. **register**: every patient rigidly to the MNI FDG template (PR and PM data);
4. **native**: the PU data, each patient left in its own PET/CT frame; T1 and T2 are moved into that
   frame with the within-patient MR -> CT registration (a network cannot learn from unpaired images),
   but nothing goes to MNI;
5. **synthesize**: for every trained fold, synthetic subjects blended (Laplacian) from that fold's
   training patients only, with mask #1 (PM1) and mask #2 (PM2);
6. **train** every arm of every task: PU, PR, PM1, PM2 (the paper's scenarios); the augmentation
   ablation PR-naive, PR-mixup, PR-cutmix (PR plus the same number of subjects made from the same
   parent pairs by naive mask blending, MixUp or CutMix, blended on the fly); and PM2-steps (PM2's
   data trained for PR's number of optimizer steps: the equal-compute comparison);
7. **predict** the test patients with each arm (fold networks averaged), back in the patient's native
   PET/CT frame and in SUV / HU, so that every arm is judged against the same untouched reference;
8. **evaluate** (RMSE, PSNR, both SSIMs, joint histograms, bias maps) and 9. **report**.

Every stage resumes: a stage whose outputs exist is skipped, a training continues from its last
checkpoint, so running the same command again after an interruption continues where it stopped.

Layout of a study folder::

    OUT/study.json                      profile, settings, split, stage timings (written as it goes)
    OUT/cohort/                         the simulated cohort (absent with --cohort)
    OUT/registered/                     template space (PR, PM), with the split in its manifest
    OUT/native/                         the PU cohort (PET/CT files referenced, MR moved to the CT)
    OUT/synthetic/PM1/  OUT/synthetic/PM2/          synthetic subjects with provenance
    OUT/runs/<task>/<arm>/              training runs (checkpoints, history.csv, run.json)
    OUT/predictions/<task>/<arm>/<patient>.nii.gz  native space, SUV / HU
    OUT/evaluation/                     metrics.csv, maps, history/, provenance.json
    OUT/evaluation/report.html, report.md, headline.md

Profiles (:data:`PROFILES`): ``paper`` is the study's design (45 subjects, 35 + 10, 5 folds, 350
synthetic subjects per mask, 20 epochs, 112 x 96 windows, widths 16 / 32 / 64), meant for a GPU;
``quick`` is the README's demo on a 2-core CPU; ``tiny`` is for tests. What a profile reduces
against ``paper`` is listed in the report (:func:`reductions`).
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .errors import InputError
from .progress import Progress
from .volumes import PathLike, atomic_write_text

STUDY_FILE = "study.json"
STUDY_FORMAT = "robustdeep-study"
STUDY_VERSION = 1
HEADLINE_MD = "headline.md"
ALL_TASKS: Tuple[str, ...] = ("ld2fd", "ldmr2fd", "nac2mac", "mr2ct")
#: The paper's masks: arm -> mask preset (docs/masks.md).
MASKS: Dict[str, str] = {"PM1": "simple", "PM2": "complex"}


# --------------------------------------------------------------------------------------------------
# Arms (the scenarios trained per task)
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Arm:
    """One training scenario of a task.

    ``space``: the cohort it trains on (``native`` for PU, ``template`` otherwise). ``synthetic``:
    the on-disk synthetic set it adds (``PM1`` / ``PM2``). ``on_the_fly``: a method of subjects made
    during training from the same parent pairs as PM2 (``naive`` with mask #2, ``mixup``, ``cutmix``).
    ``steps_of``: train for the (per-fold mean) number of optimizer steps of that arm instead of by
    epochs. ``group``: ``main`` (the paper's), ``ablation`` or ``compute``.
    """

    name: str
    space: str
    description: str
    synthetic: Optional[str] = None
    on_the_fly: Optional[str] = None
    steps_of: Optional[str] = None
    group: str = "main"


ARMS: Dict[str, Arm] = {a.name: a for a in (
    Arm("PU", "native", "real patients in their own PET/CT frame (MR registered to the CT only)"),
    Arm("PR", "template", "real patients registered to MNI"),
    Arm("PM1", "template", "PR + synthetic subjects, Laplacian blending with mask #1", synthetic="PM1"),
    Arm("PM2", "template", "PR + synthetic subjects, Laplacian blending with mask #2", synthetic="PM2"),
    Arm("PR-naive", "template", "PR + as many subjects from PM2's parent pairs, naive blending with mask #2 "
        "(hard seams)", on_the_fly="naive", group="ablation"),
    Arm("PR-mixup", "template", "PR + as many subjects from PM2's parent pairs by MixUp (whole-image "
        "weighted mean)", on_the_fly="mixup", group="ablation"),
    Arm("PR-cutmix", "template", "PR + as many subjects from PM2's parent pairs by CutMix (a random "
        "box pasted)", on_the_fly="cutmix", group="ablation"),
    Arm("PM2-steps", "template", "PM2's data trained for PR's number of optimizer steps (equal compute)",
        synthetic="PM2", steps_of="PR", group="compute"),
)}
MAIN_ARMS: Tuple[str, ...] = ("PU", "PR", "PM1", "PM2")
ABLATION_ARMS: Tuple[str, ...] = ("PR-naive", "PR-mixup", "PR-cutmix")
COMPUTE_ARMS: Tuple[str, ...] = ("PM2-steps",)
#: Paired t-tests in the report, kept when both arms are present.
STUDY_PAIRS: Tuple[Tuple[str, str], ...] = (
    ("PU", "PR"), ("PR", "PM1"), ("PR", "PM2"), ("PM1", "PM2"), ("PU", "PM2"),
    ("PR-naive", "PM2"), ("PR-mixup", "PM2"), ("PR-cutmix", "PM2"), ("PR", "PM2-steps"),
)


# --------------------------------------------------------------------------------------------------
# Profiles
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StudyProfile:
    """Every setting of a study that a profile fixes (the CLI can override the cohort and the arms)."""

    name: str
    simulate: str  # simulation profile of the cohort
    subjects: int
    test: int  # held-out test patients
    folds: int  # patient-level cross-validation folds
    train_folds: Optional[Tuple[int, ...]]  # folds trained (None: all)
    spacing: float  # template grid, mm
    synthetic: int  # synthetic subjects per mask per trained fold
    levels: int  # Laplacian pyramid levels
    epochs: int
    window: Tuple[int, int]
    widths: Tuple[int, int, int]
    batch_size: int = 5
    lr: float = 1e-3
    weight_decay: float = 1e-4
    slices_per_subject: Optional[int] = None  # head slices per subject per epoch (None: all)
    val_slices: Optional[int] = None  # validation slices per patient (None: all)
    ablation_tasks: Tuple[str, ...] = ALL_TASKS
    compute_tasks: Tuple[str, ...] = ALL_TASKS
    eval_pngs: bool = True
    notes: str = ""

    def as_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d


PROFILES: Dict[str, StudyProfile] = {
    "paper": StudyProfile(
        name="paper", simulate="paper", subjects=45, test=10, folds=5, train_folds=None, spacing=2.0,
        synthetic=350, levels=4, epochs=20, window=(112, 96), widths=(16, 32, 64),
        notes="the study's design (method.md §9); GPU work: about 1.5 h per model on a 2-core CPU",
    ),
    "quick": StudyProfile(
        name="quick", simulate="quick", subjects=12, test=3, folds=5, train_folds=(0,), spacing=2.0,
        synthetic=21, levels=4, epochs=3, window=(64, 64), widths=(8, 16, 32),
        slices_per_subject=10, val_slices=12, ablation_tasks=("ld2fd",), compute_tasks=("ld2fd",),
        eval_pngs=False, notes="the README's demo: end to end on a 2-core CPU in under 20 minutes",
    ),
    "tiny": StudyProfile(
        name="tiny", simulate="tiny", subjects=6, test=2, folds=2, train_folds=(0,), spacing=4.0,
        synthetic=2, levels=2, epochs=1, window=(24, 24), widths=(4, 4, 8),
        slices_per_subject=3, val_slices=3, ablation_tasks=("ld2fd",), compute_tasks=("ld2fd",),
        eval_pngs=False, notes="for tests: seconds per stage",
    ),
}


def get_profile(name: str) -> StudyProfile:
    if name not in PROFILES:
        raise InputError(f"unknown study profile {name!r}", hint=f"profiles: {', '.join(PROFILES)}")
    return PROFILES[name]


_SETTING_LABELS = {
    "subjects": "patients", "test": "held-out test patients", "folds": "cross-validation folds",
    "train_folds": "folds trained", "spacing": "template grid (mm)",
    "synthetic": "synthetic subjects per mask and fold", "levels": "pyramid levels", "epochs": "epochs",
    "window": "training window (voxels)", "widths": "network widths", "batch_size": "batch",
    "slices_per_subject": "head slices per subject per epoch", "val_slices": "validation slices per patient",
    "ablation_tasks": "tasks with the augmentation ablation", "compute_tasks": "tasks with PM2-steps",
}


def _show(value: Any) -> str:
    if value is None:
        return "all"
    if isinstance(value, (list, tuple)):
        return " x ".join(str(v) for v in value) if all(isinstance(v, (int, float)) for v in value) \
            else ", ".join(str(v) for v in value)
    return str(value)


def reductions(profile: StudyProfile) -> List[Tuple[str, str, str]]:
    """``(setting, this profile, the paper's)`` for every setting where ``profile`` differs from it."""
    paper = PROFILES["paper"].as_dict()
    mine = profile.as_dict()
    out = []
    for key, label in _SETTING_LABELS.items():
        if mine[key] != paper[key]:
            out.append((label, _show(mine[key]), _show(paper[key])))
    if profile.simulate != "paper":
        from .simulate.profiles import get_profile as sim_profile

        p, q = sim_profile(profile.simulate), sim_profile("paper")
        out.insert(0, ("PET grid (simulated)", f"{_show(p.pet_size)} at {_show(p.pet_spacing)} mm",
                       f"{_show(q.pet_size)} at {_show(q.pet_spacing)} mm"))
    return out


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
        from . import __version__

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
    from .folds import assign_folds

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
    import SimpleITK as sitk

    from .cohort import MR_FAMILY, Cohort, Patient
    from .registration import read_transform
    from .volumes import write_volume

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


def _blend_device(device: str) -> str:
    """Where on-the-fly subjects are blended: the GPU when training runs on one."""
    import torch

    if str(device).startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        return "cuda"
    return "cpu"


def _train_config(study: Study, task: str, arm: Arm, *, device: str, workers: int) -> Dict[str, Any]:
    p = study.profile
    cfg: Dict[str, Any] = {
        "task": task, "folds": p.folds, "fold": list(p.train_folds) if p.train_folds else None,
        "test_ids": list(study.split["test"]), "seed": study.seed, "epochs": p.epochs,
        "batch_size": p.batch_size, "lr": p.lr, "weight_decay": p.weight_decay, "window": list(p.window),
        "widths": list(p.widths), "slices_per_subject": p.slices_per_subject, "val_slices": p.val_slices,
        "device": device, "workers": workers, "resume": True,
        "scenario": "PU" if arm.space == "native" else ("PR" if arm.synthetic is None else "PM"),
    }
    if arm.synthetic is not None:
        cfg["synthetic_cohorts"] = [str(study.root / "synthetic" / arm.synthetic)]
        cfg["max_synthetic"] = p.synthetic
    if arm.on_the_fly is not None:
        cfg["on_the_fly"] = {"count": p.synthetic, "method": arm.on_the_fly, "levels": p.levels,
                             "seed": study.seed, "masks": [MASKS["PM2"]] if arm.on_the_fly == "naive" else [],
                             "device": _blend_device(device)}
    return cfg


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


def predict_test_patients(study: Study, task: str, arm: Arm, run_dir: Path, source, registered, native,
                          *, device: str, progress: Progress) -> Dict[str, str]:
    """Predict every test patient with ``arm``'s networks (fold average), in native space and SUV / HU.

    PU predicts from the native cohort on the native target grid. PR / PM predict from the registered
    inputs on the template grid and are mapped back onto the patient's native target grid through the
    inverse of its PET/CT registration. A prediction newer than the run's checkpoints is kept.
    """
    from .predict import inference_device, load_models, predict_image, read_transform, to_native
    from .runs import checkpoints
    from .volumes import write_volume

    dev = inference_device(device)
    newest = max(p.stat().st_mtime for p in checkpoints(run_dir, "best").values())
    paths = {pid: prediction_path(study.root, task, arm.name, pid) for pid in study.split["test"]}
    todo = [pid for pid, path in paths.items() if not (path.is_file() and path.stat().st_mtime >= newest)]
    outputs = {pid: str(path) for pid, path in paths.items()}
    if not todo:
        return outputs
    info, models = load_models(run_dir, which="best", device=dev)
    background = info.scaling_of(info.target).to_physical(0.0)
    for pid in todo:
        cohort = native if arm.space == "native" else registered
        images = [cohort.read(pid, m) for m in info.inputs]
        reference = cohort.read(pid, info.target)
        pred = predict_image(info, models, images, reference=reference, device=dev, patient=pid,
                             progress=progress)
        if arm.space != "native":
            rel = registered.patient(pid).meta["registration"]["transforms"]["PETCT_to_template"]
            pred = to_native(pred, source.read(pid, info.target), read_transform(Path(registered.root) / rel),
                             default_value=background)
        write_volume(pred, paths[pid])
    return outputs


def _fold_mean_history(run_dir: Path) -> List[Dict[str, Any]]:
    """Per-epoch means over folds of a run's history (the report's metrics-over-epochs figure)."""
    from .runs import read_history

    by_epoch: Dict[int, List[Dict[str, Any]]] = {}
    for r in read_history(run_dir):
        by_epoch.setdefault(int(r["epoch"]), []).append(r)
    rows = []
    for epoch in sorted(by_epoch):
        group = by_epoch[epoch]
        row: Dict[str, Any] = {"epoch": epoch}
        for key in ("step", "train_loss", "val_rmse", "val_psnr", "val_ssim"):
            vals = [float(r[key]) for r in group if r.get(key) is not None and math.isfinite(float(r[key]))]
            row[key] = sum(vals) / len(vals) if vals else None
        rows.append(row)
    return rows


def write_histories(study: Study, eval_dir: Path) -> None:
    from .volumes import atomic_path

    for task, arms in task_arms(study).items():
        for arm in arms:
            rows = _fold_mean_history(study.root / "runs" / task / arm.name)
            if not rows:
                continue
            path = eval_dir / "history" / task / f"{arm.name}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
                w = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
                w.writeheader()
                w.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)


# --------------------------------------------------------------------------------------------------
# Report pieces
# --------------------------------------------------------------------------------------------------
def _final_scaled_head(rows: Sequence[Mapping[str, Any]]) -> List[Mapping[str, Any]]:
    from .report import final_rows

    return [r for r in final_rows(rows) if r.get("units") == "scaled" and r.get("region", "head") == "head"]


def headline_rows(rows: Sequence[Mapping[str, Any]], tasks: Sequence[str]) -> List[List[str]]:
    """Per task and arm (and the input): mean RMSE, global SSIM, PSNR over test patients, scaled."""
    from . import stats as S

    final = _final_scaled_head(rows)
    out = []
    for task in tasks:
        for scen in ("input",) + MAIN_ARMS + ABLATION_ARMS + COMPUTE_ARMS:
            sel = [r for r in final if r["task"] == task and r["scenario"] == scen]
            if not sel:
                continue
            s = {m: S.summarize(r[m] for r in sel) for m in ("rmse", "ssim_global", "psnr")}
            out.append([task, scen, str(s["rmse"].n), s["rmse"].format(4), s["ssim_global"].format(3),
                        s["psnr"].format(2)])
    return out


def improvement_rows(rows: Sequence[Mapping[str, Any]], tasks: Sequence[str]) -> List[List[str]]:
    """PR -> PM2 relative improvement of RMSE and global SSIM per task, ours and the paper's."""
    from . import stats as S
    from .report import load_paper_results

    paper = load_paper_results().get("tasks", {})
    final = _final_scaled_head(rows)
    out = []
    for task in tasks:
        a = [r for r in final if r["task"] == task and r["scenario"] == "PR"]
        b = [r for r in final if r["task"] == task and r["scenario"] == "PM2"]
        if not a or not b:
            continue
        cells = [task]
        for metric, key in (("rmse", "rmse"), ("ssim_global", "ssim")):
            test, imp = S.compare(a, b, metric)
            ref = paper.get(task, {}).get("improvement_PR_PM2", {}).get(key)
            cells += [f"{imp:.1f}", f"{test.p:.3g}" if math.isfinite(test.p) else "-",
                      "-" if ref is None else f"{ref:.0f}"]
        out.append(cells)
    return out


def _training_table(study: Study):
    from .report import Table

    rows = []
    for task, arms in task_arms(study).items():
        for arm in arms:
            t = study.trained.get(f"{task}/{arm.name}", {})
            rows.append([task, arm.name, arm.description, str(t.get("real", "-")), str(t.get("synthetic", "-")),
                         str(t.get("steps", "-")), str(t.get("epochs", "-")), str(t.get("seconds", "-"))])
    return Table("table-study-training", "Arms trained: subjects per fold, optimizer steps, time",
                 ["task", "arm", "what it trains on", "real / fold", "synthetic / fold", "steps / fold",
                  "epochs", "seconds / fold"], rows,
                 "PU, PR, PM1 and PM2 are the paper's scenarios, trained by epochs as in the paper (so PM "
                 "arms take more optimizer steps). PR-naive / PR-mixup / PR-cutmix: the augmentation "
                 "ablation. PM2-steps: PM2's data at PR's number of steps (equal compute).")


def preface_sections(study: Study, rows: Sequence[Mapping[str, Any]]):
    """The study's own sections of the report: design, reductions, arms, headline."""
    from .report import Section, Table

    p = study.profile
    design = Section("Study design")
    test = ", ".join(study.split.get("test", []))
    folds = study.split.get("folds", [])
    design.text = (
        f"Profile '{p.name}' ({p.notes}). Cohort: {study.cohort}. {len(study.split.get('test', []))} "
        f"held-out test patients ({test}); {sum(len(f) for f in folds)} development patients in "
        f"{len(folds)} patient-level folds; folds trained: {_show(p.train_folds)}. Synthetic subjects "
        f"come only from the training patients of the fold they are used in. Every arm is evaluated "
        f"on the test patients in their native PET/CT frame, in SUV / HU, against the untouched "
        f"reference: PR and PM predictions are mapped back through the inverse registration. Seed "
        f"{study.seed}. Nothing here is tuned toward the paper's numbers, which come from clinical data.")
    red = reductions(p)
    if red:
        design.tables.append(Table("table-study-reductions", f"What the '{p.name}' profile reduces against "
                                   "the paper's design", ["setting", p.name, "paper"],
                                   [list(r) for r in red]))
    design.tables.append(_training_table(study))
    head = Section("Headline")
    head.tables.append(Table("table-study-headline", "Test metrics per task and arm (scaled units, head mask)",
                             ["task", "arm", "n", "RMSE", "SSIM (global)", "PSNR (dB)"],
                             headline_rows(rows, study.tasks)))
    imp = improvement_rows(rows, study.tasks)
    if imp:
        head.tables.append(Table("table-study-improvement", "PR -> PM2: relative improvement (%), as in the "
                                 "paper's abstract", ["task", "RMSE (%)", "p", "paper RMSE (%)",
                                                      "SSIM (%)", "p", "paper SSIM (%)"], imp,
                                 "Positive = PM2 better. p: paired t-test over test patients."))
    return [design, head]


def headline_markdown(study: Study, rows: Sequence[Mapping[str, Any]]) -> str:
    """The headline table as Markdown (printed by ``robustdeep demo``)."""
    from .report import _md_table

    _, head = preface_sections(study, rows)
    return "\n".join(_md_table(t) for t in head.tables)


def _provenance(study: Study, source) -> Dict[str, Any]:
    import platform

    import numpy
    import SimpleITK
    import torch

    from . import __version__

    return {"study": str(study.root), "profile": study.profile.as_dict(), "seed": study.seed,
            "cohort": study.cohort, "cohort_meta": {k: v for k, v in source.meta.items()
                                                    if isinstance(v, (str, int, float, bool))},
            "split": study.split, "tasks": study.tasks, "arms": study.arms,
            "stages": study.stages, "versions": {"robustdeep": __version__, "torch": torch.__version__,
                                                 "numpy": numpy.__version__,
                                                 "SimpleITK": SimpleITK.Version_VersionString(),
                                                 "python": platform.python_version()}}


# --------------------------------------------------------------------------------------------------
# The whole study
# --------------------------------------------------------------------------------------------------
def reproduce(
    out: PathLike,
    *,
    profile: str = "quick",
    cohort: Optional[PathLike] = None,
    tasks: Optional[Sequence[str]] = None,
    arms: Optional[Sequence[str]] = None,
    seed: int = 0,
    device: str = "auto",
    workers: int = 0,
    progress: Optional[Progress] = None,
    log=None,
) -> Dict[str, Any]:
    """Run (or resume) the study into ``out``; returns output paths, the headline and timings.

    Parameters
    ----------
    out:
        The study folder (layout in the module doc).
    profile:
        ``tiny``, ``quick`` or ``paper`` (:data:`PROFILES`).
    cohort:
        A native-space cohort to use instead of simulating one (only read).
    tasks:
        Tasks to run (default all four: ld2fd, ldmr2fd, nac2mac, mr2ct).
    arms:
        Arms to train (default: all of :data:`ARMS`; the ablation and compute arms only for the
        profile's tasks). PM2-steps needs PR; the ablation arms need PM2's synthetic subjects.
    device:
        ``auto``, ``cpu`` or ``cuda`` (training, prediction, on-the-fly blending).
    workers:
        Processes for simulation and registration (0: one per core).
    """
    from .cohort import Cohort
    from .folds import FoldPlan, fold_seed
    from .registration import RegistrationOptions, register_cohort
    from .synthesis import synthesize
    from .templates import load_template_image, write_template_space
    from .train import train_run

    progress = progress or Progress()
    prof = get_profile(profile)
    root = Path(out)
    tasks = list(tasks) if tasks else list(ALL_TASKS)
    for t in tasks:
        if t not in ALL_TASKS:
            raise InputError(f"unknown task {t!r}", hint=f"tasks: {', '.join(ALL_TASKS)}")
    arm_names = list(arms) if arms else list(ARMS)
    for a in arm_names:
        if a not in ARMS:
            raise InputError(f"unknown arm {a!r}", hint=f"arms: {', '.join(ARMS)}")
    arm_names = [a for a in ARMS if a in arm_names]  # the order of ARMS (dependencies first)
    if "PM2-steps" in arm_names and "PR" not in arm_names:
        raise InputError("the arm PM2-steps needs PR (it trains for PR's number of steps)")
    timings: Dict[str, float] = {}

    def log_info(msg: str, *args: Any) -> None:
        if log is not None:
            log.info(msg, *args)

    # 1. cohort
    t0 = time.perf_counter()
    if cohort is None:
        from .simulate import simulate_cohort

        cohort_dir = root / "cohort"
        study = Study.open(root, prof, seed, tasks, arm_names, "simulated:" + prof.simulate)
        simulate_cohort(cohort_dir, subjects=prof.subjects, seed=seed, profile=prof.simulate,
                        workers=workers or None, progress=progress)  # resumes: done subjects are kept
        study.done("cohort", time.perf_counter() - t0)
    else:
        cohort_dir = Path(cohort)
        study = Study.open(root, prof, seed, tasks, arm_names, str(cohort_dir.resolve()))
    study.tasks, study.arms = tasks, arm_names
    source = Cohort.load(cohort_dir)
    if source.space != "native":
        raise InputError("reproduce starts from a native-space cohort (it registers it itself)",
                         file=source.manifest_path)
    timings["cohort"] = time.perf_counter() - t0

    # 2. split
    if not study.split:
        study.split = choose_split(source, prof, seed).as_dict()
        study.save()
    plan = FoldPlan.from_dict(study.split)
    missing = [pid for pid in plan.test + tuple(plan.development) if pid not in source.ids]
    if missing:
        raise InputError(f"the study's split names patients not in the cohort: {missing}", file=study.path,
                         hint="use a new --out folder for another cohort")
    log_info("split: test %s; folds %s", list(plan.test), [list(f) for f in plan.folds])

    # 3. register
    t0 = time.perf_counter()
    reg_dir = root / "registered"
    spacing = prof.spacing
    with progress.stage("template", total=1) as st:
        files = write_template_space(reg_dir / "template", spacing=spacing,
                                     fdg=load_template_image("fdg", spacing=spacing), with_t1=False)
        st.advance()
    outcome = register_cohort(source, reg_dir, options=RegistrationOptions(), template_files=files,
                              spacing=spacing, workers=workers, progress=progress,
                              patients=[p.id for p in source.patients if not p.is_synthetic])
    if outcome.failed:
        raise InputError(f"registration failed for {', '.join(sorted(outcome.failed))}",
                         file=outcome.summary_csv, hint="see registration_qc.csv; fix or remove the patient")
    registered = Cohort.load(reg_dir)
    write_split(registered, plan)
    timings["register"] = time.perf_counter() - t0
    study.done("register", timings["register"], flagged=sorted(outcome.flagged))

    # 4. native (PU) cohort
    t0 = time.perf_counter()
    native = build_native_cohort(source, registered, root / "native", plan, progress=progress)
    timings["native"] = time.perf_counter() - t0
    study.done("native", timings["native"])

    # 5. synthesize (on disk, per trained fold, from its training patients only)
    t0 = time.perf_counter()
    trained_folds = list(prof.train_folds) if prof.train_folds else list(range(plan.k))
    needed = sorted({ARMS[a].synthetic for a in arm_names if ARMS[a].synthetic})
    for key in needed:
        for f in trained_folds:
            report = synthesize(registered, root / "synthetic" / key, [MASKS[key]], count=prof.synthetic,
                                seed=fold_seed(seed, f), patients=plan.training(f), levels=prof.levels,
                                workers=workers or (os.cpu_count() or 1), progress=progress)
            log_info("synthetic %s fold %d: %d made, %d kept", key, f, report.made, report.skipped)
    timings["synthesize"] = time.perf_counter() - t0
    study.done("synthesize", timings["synthesize"])

    # 6-7. train and predict every arm of every task
    t0 = time.perf_counter()
    runs: Dict[str, str] = {}
    predictions: Dict[str, Dict[str, str]] = {}
    for task, arms_of_task in task_arms(study).items():
        for arm in arms_of_task:
            run_dir = root / "runs" / task / arm.name
            cfg = _train_config(study, task, arm, device=device, workers=0)
            if arm.steps_of is not None:
                steps = _run_figures(root / "runs" / task / arm.steps_of, trained_folds).get("steps")
                if steps is None:
                    raise InputError(f"{arm.name} needs {arm.steps_of} trained first", file=run_dir)
                cfg["steps"] = steps
            cohort_of_arm = native if arm.space == "native" else registered
            train_run(cohort_of_arm.root, run_dir, cfg, progress=progress, log=log)
            key = f"{task}/{arm.name}"
            study.trained[key] = {**_run_figures(run_dir, trained_folds),
                                  **_subject_counts(run_dir, cfg, trained_folds[0])}
            study.save()
            runs[key] = str(run_dir)
            predictions[key] = predict_test_patients(study, task, arm, run_dir, source, registered, native,
                                                     device=device, progress=progress)
    timings["train+predict"] = time.perf_counter() - t0
    study.done("train", timings["train+predict"])

    # 8. evaluate
    t0 = time.perf_counter()
    eval_dir = root / "evaluation"
    result = evaluate_study(study, source, native, eval_dir, progress=progress)
    timings["evaluate"] = time.perf_counter() - t0
    study.done("evaluate", timings["evaluate"])

    # 9. report
    t0 = time.perf_counter()
    from .report import build_report

    write_histories(study, eval_dir)
    atomic_write_text(eval_dir / "provenance.json",
                      json.dumps(_provenance(study, source), indent=1, default=str) + "\n")
    from .evaluate import read_metrics_csv

    metric_rows = read_metrics_csv(result["csv"])
    paths = build_report(eval_dir, patient=plan.test[0] if plan.test else None, pairs=list(STUDY_PAIRS),
                         title=f"Robust-Deep reproduced: the '{prof.name}' profile",
                         preface=preface_sections(study, metric_rows), progress=progress)
    headline = headline_markdown(study, metric_rows)
    atomic_write_text(eval_dir / HEADLINE_MD, headline)
    timings["report"] = time.perf_counter() - t0
    study.done("report", timings["report"])
    return {"study": str(root), "report": str(paths["html"]), "markdown": str(paths["markdown"]),
            "headline": headline, "metrics": str(result["csv"]), "timings": timings,
            "runs": runs, "rows": metric_rows}


def _subject_counts(run_dir: Path, cfg: Mapping[str, Any], fold: int) -> Dict[str, int]:
    """Real and synthetic training subjects of ``fold`` (for the report's training table)."""
    from .folds import FoldPlan
    from .runs import load_run

    plan = FoldPlan.from_dict(load_run(run_dir).folds)
    synthetic = 0
    if cfg.get("synthetic_cohorts"):
        synthetic = int(cfg["max_synthetic"])
    elif cfg.get("on_the_fly"):
        synthetic = int(cfg["on_the_fly"]["count"])
    return {"real": len(plan.training(fold)), "synthetic": synthetic}


def _run_figures(run_dir: Path, folds: Sequence[int]) -> Dict[str, Any]:
    """Optimizer steps, epochs and training seconds of a run, per fold (means over ``folds``)."""
    from .runs import read_history

    rows = [r for r in read_history(run_dir) if r.get("fold") in set(folds)]
    per_fold = [[r for r in rows if r["fold"] == f] for f in folds]
    per_fold = [g for g in per_fold if g]
    if not per_fold:
        return {}
    n = len(per_fold)
    return {"steps": int(round(sum(max(int(r["step"]) for r in g) for g in per_fold) / n)),
            "epochs": max(int(r["epoch"]) for g in per_fold for r in g),
            "seconds": round(sum(sum(float(r.get("seconds") or 0.0) for r in g) for g in per_fold) / n, 1)}


def evaluate_study(study: Study, source, native, eval_dir: Path, *, progress: Progress) -> Dict[str, Any]:
    """Evaluate every prediction against the native reference (kept when nothing is newer)."""
    from .evaluate import Case, EvaluationOptions, METRICS_CSV, evaluate_cases, read_metrics_csv
    from .tasks import get_task

    cases = []
    for task, arms in task_arms(study).items():
        t = get_task(task)
        for arm in arms:
            for pid in study.split["test"]:
                cases.append(Case(task=task, scenario=arm.name, patient=pid,
                                  reference=source.path(pid, t.target),
                                  prediction=prediction_path(study.root, task, arm.name, pid),
                                  input=native.path(pid, t.inputs[0]), modality=t.target,
                                  input_modality=t.inputs[0]))
    csv_path = eval_dir / METRICS_CSV
    if csv_path.is_file():
        newest = max(c.prediction.stat().st_mtime for c in cases)
        have = {(r["task"], r["scenario"], r["patient"]) for r in read_metrics_csv(csv_path)}
        if csv_path.stat().st_mtime >= newest and all((c.task, c.scenario, c.patient) in have for c in cases):
            return {"csv": csv_path}
    options = EvaluationOptions(pngs=study.profile.eval_pngs)
    return evaluate_cases(cases, eval_dir, scaling=dict(source.scaling), options=options, cohort=source,
                          progress=progress, config={"study": str(study.root), "profile": study.profile.name})


__all__ = ["ARMS", "Arm", "PROFILES", "StudyProfile", "Study", "reproduce", "reductions", "get_profile",
           "build_native_cohort", "choose_split", "headline_markdown", "evaluate_study"]

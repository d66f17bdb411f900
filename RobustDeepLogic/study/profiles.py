"""TODO docstring (RobustDeepLogic.experiment)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Tuple

from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.simulate.profiles import get_profile as sim_profile

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
        p, q = sim_profile(profile.simulate), sim_profile("paper")
        out.insert(0, ("PET grid (simulated)", f"{_show(p.pet_size)} at {_show(p.pet_spacing)} mm",
                       f"{_show(q.pet_size)} at {_show(q.pet_spacing)} mm"))
    return out

"""Study profiles and arms: the settings that fix a study, and the scenarios it trains.

An :class:`Arm` is one training scenario of a task: the paper's PU, PR, PM1 and PM2
(docs/method.md §9), the augmentation ablation (PR-naive, PR-mixup, PR-cutmix) and the
equal-compute arm PM2-steps (docs/method.md §7); :data:`ARMS` holds them all. A
:class:`StudyProfile` fixes every other setting of a study. :data:`PROFILES` has ``paper``, the
study's design (45 patients: 35 + 10 held out, 5 folds, 350 synthetic subjects per mask, 20 epochs,
112 x 96 windows, widths 16 / 32 / 64), meant for a GPU; ``quick``, the README's demo on a 2-core
CPU; and ``tiny``, for tests. :func:`reductions` lists where a profile departs from ``paper`` (the
report shows it). A profile's settings are changed with
:func:`RobustDeepLogic.study.settings.with_settings` (``robustdeep reproduce --set epochs=10``).

The study folder and its record are in :mod:`RobustDeepLogic.study.folder`; the stages that run a
study are in :mod:`RobustDeepLogic.study.stages`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Tuple

from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.simulate.profiles import get_profile as sim_profile

#: The paper's four tasks (docs/method.md §7): LD -> FD, LD+MR -> FD, NAC -> MAC, MR -> CT.
ALL_TASKS: Tuple[str, ...] = ("ld2fd", "ldmr2fd", "nac2mac", "mr2ct")

#: The paper's masks: arm -> mask preset (docs/masks.md; mask #1 and mask #2 of docs/method.md §5).
MASKS: Dict[str, str] = {"PM1": "simple", "PM2": "complex"}


# --------------------------------------------------------------------------------------------------
# Arms (the scenarios trained per task)
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Arm:
    """One training scenario of a task.

    Attributes
    ----------
    name : str
        The arm's name, its key in :data:`ARMS` (``PU``, ``PR``, ``PM1``, ``PM2``, ``PR-naive``,
        ``PR-mixup``, ``PR-cutmix``, ``PM2-steps``).
    space : str
        The cohort it trains on: ``native`` for PU (each patient in its own PET/CT frame,
        docs/method.md §3.5), ``template`` otherwise (registered to MNI, docs/method.md §3.4).
    description : str
        What it trains on, in one line (the report's training table).
    synthetic : str or None, optional
        The on-disk synthetic set it adds to the registered patients: ``PM1`` or ``PM2`` (made with
        the mask of :data:`MASKS`). None: no synthetic subjects from disk.
    on_the_fly : str or None, optional
        The method of the subjects made during training from the same parent pairs as PM2:
        ``naive`` (with mask #2), ``mixup`` or ``cutmix``. None: no subjects made on the fly.
    steps_of : str or None, optional
        Train for the (per-fold mean) number of optimizer steps of that arm instead of by epochs.
        None: train by epochs.
    group : str, optional
        ``main`` (the paper's scenarios, the default), ``ablation`` or ``compute``.
    """

    name: str
    space: str
    description: str
    synthetic: Optional[str] = None
    on_the_fly: Optional[str] = None
    steps_of: Optional[str] = None
    group: str = "main"


#: Every arm by name, in the order a study trains them (PM2-steps after PR, whose steps it takes).
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

#: The paper's scenarios (docs/method.md §9).
MAIN_ARMS: Tuple[str, ...] = ("PU", "PR", "PM1", "PM2")

#: The augmentation ablation: PR plus subjects by naive blending, MixUp or CutMix.
ABLATION_ARMS: Tuple[str, ...] = ("PR-naive", "PR-mixup", "PR-cutmix")

#: The equal-compute comparison (docs/method.md §7, "Equal compute").
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
    """Every setting of a study that a profile fixes (the CLI can override the cohort and the arms).

    Attributes
    ----------
    name : str
        The profile's name, its key in :data:`PROFILES`.
    simulate : str
        The simulation profile of the cohort (:func:`RobustDeepLogic.simulate.profiles.get_profile`).
    subjects : int
        Patients simulated.
    test : int
        Held-out test patients.
    folds : int
        Patient-level cross-validation folds.
    train_folds : tuple of int or None
        The folds trained; None: all of them.
    spacing : float
        Spacing of the template grid, in mm.
    synthetic : int
        Synthetic subjects per mask and trained fold (and subjects made on the fly per fold by the
        ablation arms).
    levels : int
        Laplacian pyramid levels (docs/method.md §4).
    epochs : int
        Training epochs.
    window : tuple of int
        Training window ``(rows, columns)`` in voxels: rows along y, columns along x.
    widths : tuple of int
        Feature maps of the dilation 1 / 2 / 4 groups of the network (docs/method.md §7).
    batch_size : int, optional
        Windows per optimizer step (5, as in the paper).
    lr : float, optional
        Adam learning rate (1e-3, as in the paper).
    weight_decay : float, optional
        Adam weight decay (1e-4, as in the paper).
    slices_per_subject : int or None, optional
        Head slices per subject per epoch; None: all.
    val_slices : int or None, optional
        Validation slices per patient; None: all.
    ablation_tasks : tuple of str, optional
        Tasks that train the ablation arms (default: all four).
    compute_tasks : tuple of str, optional
        Tasks that train the compute arm PM2-steps (default: all four).
    eval_pngs : bool, optional
        Write PNG figures for every evaluated case.
    notes : str, optional
        What the profile is for, in one line (the report's design section).
    """

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
        """The profile as a JSON-ready dict.

        Returns
        -------
        dict
            ``{field: value}`` for every attribute, tuples as lists (the form stored in
            ``study.json``).
        """
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d


#: The study profiles by name: ``paper`` (the study's design), ``quick`` (the demo), ``tiny`` (tests).
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
    """The study profile of a name.

    Parameters
    ----------
    name : str
        ``tiny``, ``quick`` or ``paper`` (a key of :data:`PROFILES`).

    Returns
    -------
    StudyProfile
        The profile.

    Raises
    ------
    InputError
        When ``name`` is not a profile.
    """
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
    """Where ``profile`` departs from the paper's design: ``(setting, this profile, the paper's)``.

    Parameters
    ----------
    profile : StudyProfile
        The profile to compare with ``PROFILES["paper"]``.

    Returns
    -------
    list of tuple of str
        One ``(setting, value in profile, value in paper)`` per setting that differs, as shown in
        the report (the setting's label; ``all`` for None; sizes as ``a x b``). When the cohort is
        simulated with another profile, the simulated PET grid comes first. Empty for ``paper``.
    """
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

"""A cohort on disk: the manifest of patients and modalities, the fixed scaling constants,
import from other layouts, checks, patient-level folds, and the translation tasks.

Modules: :mod:`.manifest` (``Cohort``), :mod:`.patient` (``Patient``), :mod:`.scaling` (``Scaling``: physical units to
[0, 1]), :mod:`.importer` (``robustdeep cohort import``),
:mod:`.mr_constants` (the MR constants, from the training patients), :mod:`.check` (``robustdeep cohort check``),
:mod:`.folds` (cross-validation folds without leakage), :mod:`.tasks` (LD -> FD, ...).
"""

from RobustDeepLogic.cohort.check import (
    HU_RANGE,
    Problem,
    VolumeFacts,
    check_cohort,
    default_workers,
    nifti_voxels,
    summarise,
)
from RobustDeepLogic.cohort.folds import (
    FoldPlan,
    allowed_synthetic,
    assign_folds,
    check_no_leakage,
    fold_seed,
)
from RobustDeepLogic.cohort.importer import (
    ALIASES,
    ID_RULE,
    discover,
    import_cohort,
    modality_from_name,
    suggest_id,
)
from RobustDeepLogic.cohort.manifest import (
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    MANIFEST_VERSION,
    SPACES,
    Cohort,
)
from RobustDeepLogic.cohort.mr_constants import (
    MR_SCALING_META,
    derived_mr_record,
    mr_scaling,
    run_mr_scaling,
    store_mr_scaling,
)
from RobustDeepLogic.cohort.patient import SPLITS, Patient
from RobustDeepLogic.cohort.scaling import DEFAULT_SCALING, Scaling
from RobustDeepLogic.cohort.tasks import BUILTIN_TASKS, Task, get_task, load_tasks

__all__ = [
    "HU_RANGE",
    "Problem",
    "VolumeFacts",
    "nifti_voxels",
    "check_cohort",
    "summarise",
    "default_workers",
    "FoldPlan",
    "fold_seed",
    "assign_folds",
    "allowed_synthetic",
    "check_no_leakage",
    "ALIASES",
    "ID_RULE",
    "suggest_id",
    "modality_from_name",
    "discover",
    "mr_scaling",
    "MR_SCALING_META",
    "store_mr_scaling",
    "derived_mr_record",
    "run_mr_scaling",
    "import_cohort",
    "MANIFEST_NAME",
    "MANIFEST_FORMAT",
    "MANIFEST_VERSION",
    "SPACES",
    "SPLITS",
    "Patient",
    "Cohort",
    "Scaling",
    "DEFAULT_SCALING",
    "Task",
    "BUILTIN_TASKS",
    "load_tasks",
    "get_task",
]

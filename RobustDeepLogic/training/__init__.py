"""Training with patient-level cross-validation (docs/method.md §7).

Modules: :mod:`.settings` (defaults and checks of a training configuration), :mod:`.plan` (the run's
folds and subjects), :mod:`.runs` (run folders, checkpoints, histories), :mod:`.fold_subjects` (what
each fold trained on), :mod:`.validation`
(validation metrics after every epoch), :mod:`.distributed` (``torch.distributed``), :mod:`.loop`
(``train_run``, the engine of ``robustdeep train``).
"""

from RobustDeepLogic.training.distributed import Distributed, setup_distributed
from RobustDeepLogic.training.fold_subjects import (
    SUBJECTS_FILE,
    read_fold_subjects,
    write_fold_subjects,
)
from RobustDeepLogic.training.loop import train_fold, train_run
from RobustDeepLogic.training.plan import Plan, prepare, training_subjects
from RobustDeepLogic.training.runs import (
    HISTORY_COLUMNS,
    HISTORY_FILE,
    RUN_FILE,
    RUN_FORMAT,
    RUN_VERSION,
    RunInfo,
    checkpoints,
    fold_dir,
    load_checkpoint,
    load_run,
    read_history,
    save_checkpoint,
    save_run,
    write_history,
)
from RobustDeepLogic.training.settings import (
    ON_THE_FLY_DEFAULTS,
    RESUMABLE_CHANGES,
    SCENARIOS,
    TRAIN_DEFAULTS,
    check_on_the_fly,
    on_the_fly_factory,
)
from RobustDeepLogic.training.validation import head_metrics, validate

__all__ = [
    "Distributed",
    "setup_distributed",
    "train_fold",
    "train_run",
    "Plan",
    "prepare",
    "training_subjects",
    "SUBJECTS_FILE",
    "write_fold_subjects",
    "read_fold_subjects",
    "RUN_FORMAT",
    "RUN_VERSION",
    "RUN_FILE",
    "HISTORY_FILE",
    "HISTORY_COLUMNS",
    "RunInfo",
    "save_run",
    "load_run",
    "fold_dir",
    "checkpoints",
    "load_checkpoint",
    "save_checkpoint",
    "write_history",
    "read_history",
    "TRAIN_DEFAULTS",
    "RESUMABLE_CHANGES",
    "SCENARIOS",
    "ON_THE_FLY_DEFAULTS",
    "check_on_the_fly",
    "on_the_fly_factory",
    "head_metrics",
    "validate",
]

"""The paper's study in one call (docs/method.md §9): ``robustdeep reproduce`` and ``robustdeep demo``.

Modules: :mod:`.profiles` (arms and profiles: tiny, quick, paper), :mod:`.settings` (a profile's
settings changed with ``--set``), :mod:`.folder` (a study folder: its record ``study.json``, its split,
its native cohort), :mod:`.stages` (``reproduce``, the stages in order), :mod:`.predictions` (the test
patients predicted by every arm), :mod:`.results` (evaluation, histories, the headline table). Their
public names are re-exported here.
"""

from RobustDeepLogic.study.folder import (
    STUDY_FILE,
    STUDY_FORMAT,
    STUDY_VERSION,
    Study,
    build_native_cohort,
    choose_split,
    prediction_path,
    task_arms,
    write_split,
)
from RobustDeepLogic.study.predictions import predict_test_patients
from RobustDeepLogic.study.profiles import (
    ABLATION_ARMS,
    ALL_TASKS,
    ARMS,
    COMPUTE_ARMS,
    MAIN_ARMS,
    MASKS,
    PROFILES,
    STUDY_PAIRS,
    Arm,
    StudyProfile,
    get_profile,
    reductions,
)
from RobustDeepLogic.study.results import (
    HEADLINE_MD,
    evaluate_study,
    headline_markdown,
    headline_rows,
    improvement_rows,
    preface_sections,
    write_histories,
)
from RobustDeepLogic.study.settings import SETTINGS, changed_settings, with_settings
from RobustDeepLogic.study.stages import reproduce

__all__ = [
    "STUDY_FILE",
    "STUDY_FORMAT",
    "STUDY_VERSION",
    "Study",
    "choose_split",
    "write_split",
    "build_native_cohort",
    "task_arms",
    "prediction_path",
    "ALL_TASKS",
    "MASKS",
    "Arm",
    "ARMS",
    "MAIN_ARMS",
    "ABLATION_ARMS",
    "COMPUTE_ARMS",
    "STUDY_PAIRS",
    "StudyProfile",
    "PROFILES",
    "get_profile",
    "reductions",
    "HEADLINE_MD",
    "write_histories",
    "headline_rows",
    "improvement_rows",
    "preface_sections",
    "headline_markdown",
    "evaluate_study",
    "predict_test_patients",
    "SETTINGS",
    "changed_settings",
    "with_settings",
    "reproduce",
]

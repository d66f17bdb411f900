"""Synthetic subjects from pairs of registered patients (docs/method.md §6), on disk or on the fly.

Modules: :mod:`.pairs` (which parents), :mod:`.subjects` (one blended subject), :mod:`.executors`
(processes or Dask), :mod:`.disk` (``robustdeep synthesize``: plans, runs, provenance, resumes),
:mod:`.dataset` (``BlendedDataset``, blending on demand), :mod:`.transforms` (MONAI-style array and
dictionary transforms).
"""

from RobustDeepLogic.synthesis.dataset import BlendedDataset
from RobustDeepLogic.synthesis.disk import (
    SynthesisReport,
    plan_synthesis,
    synthesize,
)
from RobustDeepLogic.synthesis.pairs import choose_pairs, select_pool, subject_id
from RobustDeepLogic.synthesis.subjects import (
    BLEND_DESCRIPTION,
    METHODS,
    MIX_ALPHA,
    ON_THE_FLY_METHODS,
    PROVENANCE_NAME,
    blend_subject,
    iter_blend_subject,
    regenerate,
    synthesize_subject,
)
from RobustDeepLogic.synthesis.transforms import LaplacianBlend, LaplacianBlendd, RandLaplacianBlendd

__all__ = [
    "BlendedDataset",
    "SynthesisReport",
    "plan_synthesis",
    "synthesize",
    "regenerate",
    "choose_pairs",
    "select_pool",
    "subject_id",
    "METHODS",
    "ON_THE_FLY_METHODS",
    "MIX_ALPHA",
    "PROVENANCE_NAME",
    "BLEND_DESCRIPTION",
    "iter_blend_subject",
    "blend_subject",
    "synthesize_subject",
    "LaplacianBlend",
    "LaplacianBlendd",
    "RandLaplacianBlendd",
]

"""The bundled digital cohort: brain PET/CT/MR subjects simulated from real templates.

Public API
----------
- :func:`simulate_cohort` (``robustdeep simulate``): a whole cohort, parallel and resumable.
- :func:`simulate_subject`: one subject; :func:`patient_id`: its id (``SIM001`` for subject 0).
- :func:`true_transform` / :func:`true_mr_to_ct_transform`: the true poses as SimpleITK transforms in
  ITK registration's convention (template = fixed -> native = moving, LPS mm); :class:`Pose`; see
  :mod:`.pose`.
- :func:`best_rigid_transform`: the best rigid registration to the template a subject allows (the
  pose composed with the rigid part of its anatomy); see :mod:`.truth`.
- :data:`PROFILES` / :class:`Profile` / :func:`get_profile`: ``tiny``, ``quick``, ``paper``.
- :func:`realism_report` (``robustdeep simulate COHORT --realism``).

Modules: :mod:`.anatomy` (the template anatomy), :mod:`.subject_anatomy` (a subject's variations,
sampling, labels), :mod:`.mr`, :mod:`.ct`, :mod:`.pet` (FDG activity and the FD/LD/NAC/MAC chain),
:mod:`.pet_physics` (projector, resolution, scatter), :mod:`.osem` (reconstruction),
:mod:`.pose`, :mod:`.streams` (the random streams of one subject), :mod:`.truth` (the best rigid
registration a subject allows), :mod:`.profiles`, :mod:`.cohort`, :mod:`.realism`. Method and
figures: ``docs/simulation.md``.
"""

from RobustDeepLogic.simulate.cohort import (
    patient_id,
    simulate_cohort,
    simulate_subject,
)
from RobustDeepLogic.simulate.pose import Pose, true_mr_to_ct_transform, true_transform
from RobustDeepLogic.simulate.profiles import PROFILES, Profile, get_profile
from RobustDeepLogic.simulate.realism import realism_report
from RobustDeepLogic.simulate.truth import best_rigid_transform

__all__ = [
    "simulate_cohort",
    "simulate_subject",
    "patient_id",
    "true_transform",
    "best_rigid_transform",
    "true_mr_to_ct_transform",
    "Pose",
    "PROFILES",
    "Profile",
    "get_profile",
    "realism_report",
]

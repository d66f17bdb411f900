"""A study-specific FDG template from a cohort's own FD images (``robustdeep template build``).

:func:`build_study_template` returns the template image; writing it with the masks as a template
space is :func:`~RobustDeepLogic.registration.template_space.write_template_space`. The default, model
FDG template is :func:`~RobustDeepLogic.registration.templates.fdg_template`.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from RobustDeepLogic.cohort.manifest import Cohort
from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.progress import Progress
from RobustDeepLogic.io.volumes import Grid
from RobustDeepLogic.registration import templates
from RobustDeepLogic.registration.config import RigidConfig
from RobustDeepLogic.registration.images import check_image, resample_to_template
from RobustDeepLogic.registration.pairwise import register_rigid


# --------------------------------------------------------------------------------------------------
# A study-specific FDG template
# --------------------------------------------------------------------------------------------------
def build_study_template(
    source: Cohort,
    *,
    spacing: float = 2.0,
    iterations: int = 3,
    config: Optional[RigidConfig] = None,
    initial: Optional[sitk.Image] = None,
    patients: Optional[Sequence[str]] = None,
    progress: Optional[Progress] = None,
) -> Tuple[sitk.Image, Dict[str, Any]]:
    """A study-specific FDG template: iterated rigid registration of the cohort's FD images and
    averaging.

    The first iteration registers every FD image to ``initial`` (default: the model FDG template,
    which anchors the result in MNI space); each later iteration registers them to the previous
    average. Registrations are given the template head mask (the ROI of
    ``mask_processing_mode='ROI'``) and the template brain mask (for the brain refinement). Before
    averaging, each registered image is divided by its mean over the template brain mask, and the
    average is multiplied back by the mean of those means (SUV).

    Parameters
    ----------
    source : Cohort
        A native-space cohort; its patients with an FD image are used.
    spacing : float, optional
        Template grid spacing in mm (default 2).
    iterations : int, optional
        Rounds of registration and averaging (default 3).
    config : RigidConfig, optional
        Rigid options (default: ``RigidConfig(mask_processing_mode='ROI')``); validated.
    initial : SimpleITK.Image, optional
        The first fixed image, an FDG template in MNI space, resampled onto the template grid when on
        another grid (default: the model FDG template).
    patients : sequence of str, optional
        A subset of patient ids (default: all).
    progress : Progress, optional
        Progress reporting (one stage per iteration); default: silent.

    Returns
    -------
    template : SimpleITK.Image
        The template on :func:`~RobustDeepLogic.registration.templates.template_grid` (float32, SUV).
    info : dict
        ``'iterations'``: per iteration ``{'iteration', 'relative_change'}``, the mean absolute change
        of the template over the brain relative to its mean; ``'patients'``: the ids used.

    Raises
    ------
    InputError
        When an id in ``patients`` is not in the cohort, fewer than 2 patients have an FD image, an
        FD image is not plausible or cannot be registered, or a registered FD has no uptake in the
        template brain.
    """
    progress = progress or Progress()
    config = (config or RigidConfig(mask_processing_mode="ROI")).validate()
    grid = templates.template_grid(spacing)
    head = templates.head_mask(grid)
    brain_image = templates.brain_mask(grid)
    brain = sitk.GetArrayFromImage(brain_image).astype(bool)
    current = initial if initial is not None else templates.fdg_template(grid)
    if not Grid.of(current).matches(grid):
        current = templates.resample_to_grid(current, grid)
    chosen = [p for p in source.select(patients) if "FD" in p.modalities]
    if len(chosen) < 2:
        raise InputError("a study template needs at least 2 patients with an FD image",
                         file=source.manifest_path)
    natives = {}
    for p in chosen:
        img = source.read(p, "FD")
        check_image(img, modality="FD", patient=p.id, file=source.path(p, "FD"))
        natives[p.id] = img
    info: Dict[str, Any] = {"iterations": [], "patients": [p.id for p in chosen]}
    for it in range(int(iterations)):
        acc = np.zeros(grid.shape, np.float64)
        means = []
        with progress.stage(f"template iteration {it + 1}/{iterations}", total=len(chosen)) as st:
            for p in chosen:
                res = register_rigid(current, natives[p.id], config, fixed_mask=head,
                                     brain_mask=brain_image, patient=p.id, moving_name="FD")
                reg = sitk.GetArrayFromImage(resample_to_template(natives[p.id], res.transform,
                                                                  current))
                mean = float(reg[brain].mean())
                if mean <= 0:
                    raise InputError("registered FD has no uptake in the brain", patient=p.id)
                acc += reg / mean
                means.append(mean)
                st.advance(message=p.id)
        average = (acc / len(chosen) * float(np.mean(means))).astype(np.float32)
        previous = sitk.GetArrayFromImage(current)
        change = float(np.abs(average - previous)[brain].mean() / max(np.abs(average[brain]).mean(),
                                                                      1e-9))
        info["iterations"].append({"iteration": it + 1, "relative_change": round(change, 5)})
        new = sitk.GetImageFromArray(average)
        new.CopyInformation(current)
        current = new
    return current, info

"""The random streams of one simulated subject: one independent generator per stage.

Subject ``index`` of a cohort simulated with ``seed`` draws every random number from
``numpy.random.SeedSequence([seed, index])``, spawned into one child stream per stage, in this
order: ``anatomy`` (the subject's deformation, skull, scalp and lesion), ``pose`` (the PET/CT pose,
then the MR pose), ``t1`` and ``t2`` (bias field and noise of each MR), ``ct`` (the CT noise),
``pet_params`` (the FDG model), ``pet_counts`` (scatter and randoms fractions, Poisson counts,
thinning to LD) and ``clinical`` (weight, dose, times, the CT's bone HU and noise, the MR noise and
bias levels). A subject therefore does not depend on the other subjects, on their order or on the
worker that makes it, and one stage can be drawn again alone: :mod:`.cohort` uses every stream,
:mod:`.truth` redraws the anatomy to recompute its rigid part. The module has no public name; the
private ``_rngs(seed, index)`` (a dict of stage name to ``numpy.random.Generator``) serves both.
"""

from __future__ import annotations

from typing import Dict

import numpy as np


def _rngs(seed: int, index: int) -> Dict[str, np.random.Generator]:
    names = ("anatomy", "pose", "t1", "t2", "ct", "pet_params", "pet_counts", "clinical")
    children = np.random.SeedSequence([int(seed), int(index)]).spawn(len(names))
    return {n: np.random.default_rng(c) for n, c in zip(names, children)}

"""TODO docstring (RobustDeepLogic.simulate.cohort)."""

from __future__ import annotations

from typing import Dict

import numpy as np


def _rngs(seed: int, index: int) -> Dict[str, np.random.Generator]:
    names = ("anatomy", "pose", "t1", "t2", "ct", "pet_params", "pet_counts", "clinical")
    children = np.random.SeedSequence([int(seed), int(index)]).spawn(len(names))
    return {n: np.random.default_rng(c) for n, c in zip(names, children)}

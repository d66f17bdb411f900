"""The values the module's parameters take: the modalities, tasks and modes the panels offer, and
what an unset path reads as.

``RobustDeep.py`` builds its ``@parameterNodeWrapper`` parameter node from these, and the panels
(``RobustDeepLib/*_panel.py``) use them; ``Testing/test_slicer_module.py`` checks them against the
engine. Free of Qt and of Slicer.
"""

from __future__ import annotations

import pathlib
from typing import Optional

#: The modalities of a cohort (engine: ``RobustDeepLogic.core.modalities.MODALITIES``; a test checks
#: they agree).
MODALITIES = ("FD", "LD", "NAC", "MAC", "CT", "T1", "T2")
#: The PET/CT frame: a patient's rigid transform to template space moves all of these (engine:
#: ``RobustDeepLogic.core.modalities.PETCT_FAMILY``).
PETCT_FAMILY = ("FD", "LD", "NAC", "MAC", "CT")
#: The built-in tasks (engine: ``RobustDeepLogic.cohort.tasks.BUILTIN_TASKS``; a test checks they
#: agree).
TASKS = ("ld2fd", "ldmr2fd", "nac2mac", "mr2ct")
#: BRAINSFit's initialisation modes (engine: ``RobustDeepLogic.registration.config.INIT_MODES``).
INIT_MODES = ("useMomentsAlign", "useCenterOfHeadAlign", "useGeometryAlign", "Off")
#: Modalities a prediction is reviewed as (the tasks' targets): they set the engine's scaling constants.
REVIEW_MODALITIES = ("FD", "MAC", "CT")
#: What the template choice means when no file is given: the engine's model FDG template.
MODEL_TEMPLATE = "fdg"


def is_set(path: Optional[pathlib.Path]) -> bool:
    """True for a path the user gave (the parameter node's empty path is ``Path('.')``).

    Parameters
    ----------
    path : pathlib.Path or None
        A path parameter of the parameter node.

    Returns
    -------
    bool
        False for None, ``""`` and ``"."``; True otherwise.
    """
    return path is not None and str(path) not in ("", ".")

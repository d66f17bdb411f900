"""The ``robustdeep`` subcommands, one module each.

Each module defines ``COMMAND`` (a :class:`~RobustDeepLogic.cliframe.Command`). Add a new stage by
writing a module here and naming it in :data:`COMMAND_MODULES`; modules import heavy libraries only
inside their ``run`` function.
"""

from __future__ import annotations

import importlib
from typing import List

from RobustDeepLogic.cli.frame import Command

#: In the order of the pipeline; ``robustdeep --help`` lists them in this order.
COMMAND_MODULES = [
    "assets",
    "simulate",
    "cohort",
    "template",
    "register",
    "masks",
    "blend",
    "synthesize",
    "train",
    "predict",
    "export",
    "evaluate",
    "report",
    "reproduce",
    "demo",
]


def all_commands() -> List[Command]:
    """The commands whose modules exist, in pipeline order, then any others found in this package."""
    import pkgutil

    found = {m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")}
    names = [n for n in COMMAND_MODULES if n in found] + sorted(found - set(COMMAND_MODULES))
    return [importlib.import_module(f"{__name__}.{name}").COMMAND for name in names]

"""The ``robustdeep`` subcommands, one module each.

Each module defines ``COMMAND`` (a :class:`~RobustDeepLogic.cli.frame.Command`). A module written
here is found automatically (:func:`all_commands`); :data:`COMMAND_MODULES` gives the order of
``--help``. Modules import their engine stage only inside their run function, so that
``robustdeep --help`` stays fast (docs/developing.md, "Adding a subcommand").
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import List

from RobustDeepLogic.cli.frame import Command

#: In the order of the pipeline; ``robustdeep --help`` lists them in this order (others after, by name).
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
    "studio",
]


def all_commands() -> List[Command]:
    """The commands whose modules exist, in pipeline order, then any others found in this package.

    Imports every command module of this package (not their engine stages) and takes its ``COMMAND``.

    Returns
    -------
    list of Command
        The commands of :data:`COMMAND_MODULES` that exist, in that order, then those of the other
        modules (names not starting with ``_``), sorted by module name.
    """
    found = {m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")}
    names = [n for n in COMMAND_MODULES if n in found] + sorted(found - set(COMMAND_MODULES))
    return [importlib.import_module(f"{__name__}.{name}").COMMAND for name in names]

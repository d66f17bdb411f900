"""The ``robustdeep`` command line: the frame every command shares, and one module per command.

Modules: :mod:`.frame` (``Command``, ``Options``, ``Result``, the parser), :mod:`.main` (``main``,
``run_command``), :mod:`.commands` (the subcommands).
"""

from RobustDeepLogic.cli.main import main, run_command

__all__ = ["main", "run_command"]

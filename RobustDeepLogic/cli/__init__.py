"""The ``robustdeep`` command line: the frame every command shares, and one module per command.

Modules: :mod:`.frame` (``Command``, ``Options``, ``Result``, ``RunContext``, the parser), :mod:`.main`
(``main``, ``run_command``: running a command, exit statuses), :mod:`.commands` (the subcommands).
``python -m RobustDeepLogic.cli`` runs the command line too (:mod:`.__main__`).
"""

from RobustDeepLogic.cli.main import main, run_command

__all__ = ["main", "run_command"]

"""The frame that every ``robustdeep`` subcommand plugs into: what a command declares, and the parser.

A subcommand is a :class:`Command` declared in a module of :mod:`RobustDeepLogic.cli.commands`. It
declares its positional arguments and options through :class:`Options`; every option has a default
that is shown in ``--help`` and can be set from a YAML ``--config`` file or ``--set key=value`` (see
:mod:`RobustDeepLogic.core.config`). Its ``run(config, ctx)`` receives the resolved configuration as a
dict and a :class:`RunContext` (progress, logger, output folder) and returns a :class:`Result`.
:func:`build_parser` turns the commands into one ``argparse`` parser, with the common options
(``--config``, ``--set``, ``--progress``, ``-v``) on every command.

:func:`RobustDeepLogic.cli.main.run_command` does the rest, the same way for every command: the output
folder, the resolved config saved in it (``robustdeep-<command>.config.yaml``), a log file
(``robustdeep.log``), progress as a bar or as JSON lines, a final ``result`` event, and errors:
:class:`~RobustDeepLogic.core.errors.InputError` gives exit status 2 and an ``error`` event naming the
file or patient; any other exception gives exit status 1, with its traceback in the log.

Command modules import their engine stage (and so torch, matplotlib) inside their run function, so
that ``robustdeep --help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from RobustDeepLogic.core.config import Setting
from RobustDeepLogic.core.progress import MODES, Progress
from RobustDeepLogic.core.version import __version__

#: The log file's name, in a command's output folder.
LOG_NAME = "robustdeep.log"

_FILE_ONLY = {"console": False}  # log records for the log file only (already shown another way)

#: The command line's logger (its handlers are set up for each command by ``run_command``).
logger = logging.getLogger("robustdeep")


@dataclass
class Result:
    """What a command produced: output paths, headline figures, and a line or two for people.

    Attributes
    ----------
    outputs : dict, optional
        ``{name: path}`` of what the command wrote (also other short values); in the ``result``
        event, and printed as ``name: value`` lines.
    figures : dict, optional
        ``{name: number}``: headline figures (counts, seconds, metrics), in the ``result`` event.
    summary : str, optional
        Text printed for people when the progress mode is not ``json``.
    """

    outputs: Dict[str, Any] = field(default_factory=dict)
    figures: Dict[str, Any] = field(default_factory=dict)
    summary: str = ""


@dataclass
class RunContext:
    """What a command's run function gets besides its configuration.

    Attributes
    ----------
    command : str
        The command as typed, e.g. ``"blend"`` or ``"cohort check"``.
    config : dict
        The resolved configuration (the same dict as the run function's first argument).
    progress : Progress
        Where the command reports progress (a bar, JSON lines or nothing, from ``--progress``).
    log : logging.Logger
        The ``robustdeep`` logger: the log file in the output folder, and the terminal (or ``log``
        events in JSON mode).
    out_dir : Path or None
        The output folder, or None for a command that writes nothing of its own.
    """

    command: str
    config: Dict[str, Any]
    progress: Progress
    log: logging.Logger
    out_dir: Optional[Path]


class Options:
    """Declares a command's arguments; records option defaults for the config merge.

    Options are added to the parser with no default (``argparse.SUPPRESS``), so that the parsed
    namespace holds only what was given on the command line; their declared defaults are kept in
    :attr:`defaults`, the lowest layer of the configuration.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The parser of one subcommand.

    Attributes
    ----------
    parser : argparse.ArgumentParser
        The parser given.
    defaults : dict
        ``{config key: default}`` of every option declared.
    positionals : list of str
        The names of the positional arguments declared.
    settings : dict
        ``{config key: Setting}`` of every option declared: what values from config files and
        ``--set`` are converted to (:func:`RobustDeepLogic.core.config.convert_value`).
    """

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser
        self.defaults: Dict[str, Any] = {}
        self.positionals: List[str] = []
        self.settings: Dict[str, Setting] = {}

    def positional(self, name: str, *, help: str, nargs: Any = None, type: Any = str) -> None:
        """A positional argument (always given on the command line).

        Parameters
        ----------
        name : str
            The argument's name, which is also its config key.
        help : str
            Its help text.
        nargs : int or str, optional
            As ``argparse``'s ``nargs`` (e.g. ``"+"``); None: exactly one value.
        type : callable, optional
            Converts the text (default: ``str``).
        """
        kwargs: Dict[str, Any] = {"help": help, "type": type}
        if nargs is not None:
            kwargs["nargs"] = nargs
        self.parser.add_argument(name, **kwargs)
        self.positionals.append(name)

    def setting(self, name: str, *, default: Any = None) -> None:
        """A config key without an option of its own: set by ``--set NAME=VALUE`` or a config file.

        Parameters
        ----------
        name : str
            The config key.
        default : object, optional
            Its value when nothing sets it (default None).
        """
        self.defaults[name] = default

    def option(
        self,
        *flags: str,
        default: Any = None,
        help: str,
        type: Any = None,
        choices: Optional[Sequence[Any]] = None,
        nargs: Any = None,
        flag: bool = False,
        metavar: Optional[str] = None,
    ) -> None:
        """An option with a default; ``flag=True`` makes a boolean ``--x / --no-x`` switch.

        Parameters
        ----------
        *flags : str
            The option's spellings (``"--levels"``, or ``"--cost-metric", "--costMetric"``); the
            first, without its dashes and with ``-`` as ``_``, is its config key.
        default : object, optional
            The value when neither the command line nor a config file sets it; shown in ``--help``
            unless None.
        help : str
            Its help text.
        type : callable, optional
            Converts the text (not for flags).
        choices : sequence, optional
            The values allowed (not for flags).
        nargs : int or str, optional
            As ``argparse``'s ``nargs`` (not for flags).
        flag : bool, optional
            Make a boolean switch ``--x / --no-x`` (``argparse.BooleanOptionalAction``).
        metavar : str, optional
            The value's name in ``--help`` (not for flags).
        """
        dest = flags[0].lstrip("-").replace("-", "_")
        self.defaults[dest] = default
        self.settings[dest] = Setting(type=None if flag else type, nargs=None if flag else nargs,
                                      choices=None if flag else choices, flag=flag,
                                      optional=default is None)
        shown = "" if default is None else f" (default: {default})"
        kwargs: Dict[str, Any] = {"dest": dest, "default": argparse.SUPPRESS, "help": help + shown}
        if flag:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            if type is not None:
                kwargs["type"] = type
            if choices is not None:
                kwargs["choices"] = choices
            if nargs is not None:
                kwargs["nargs"] = nargs
            if metavar is not None:
                kwargs["metavar"] = metavar
        self.parser.add_argument(*flags, **kwargs)


@dataclass
class Command:
    """One ``robustdeep`` subcommand.

    ``output`` names the config key holding the output folder (created by the frame, which puts the
    log and the resolved config there); ``output_is_file`` says that key names a file, whose folder is
    then used. A command with ``output=None`` writes nothing of its own (e.g. ``cohort check``).
    ``subcommands`` makes a group (``robustdeep cohort check``).

    Attributes
    ----------
    name : str
        The command's name on the command line.
    help : str
        One line for the list of commands (and the description when there is no other).
    arguments : callable, optional
        ``arguments(options)`` declares the arguments on an :class:`Options`; None: none.
    run : callable, optional
        ``run(config, ctx) -> Result``; None for a group.
    description : str, optional
        The text at the top of the command's ``--help`` (default: ``help``).
    output : str, optional
        The config key of the output folder (or file, see ``output_is_file``); None: no output.
    output_is_file : bool, optional
        ``output`` names a file; its folder receives the log and the resolved config.
    subcommands : sequence of Command, optional
        The commands of a group; empty for a plain command.
    epilog : str, optional
        Text at the end of ``--help``.
    """

    name: str
    help: str
    arguments: Optional[Callable[[Options], None]] = None
    run: Optional[Callable[[Dict[str, Any], RunContext], Result]] = None
    description: Optional[str] = None
    output: Optional[str] = None
    output_is_file: bool = False
    subcommands: Sequence["Command"] = ()
    epilog: Optional[str] = None


def _add_common(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("common options")
    group.add_argument(
        "--config", action="append", default=argparse.SUPPRESS, metavar="FILE.yaml",
        help="read options from a YAML file (repeatable; later files win; the command line wins)",
    )
    group.add_argument(
        "--set", action="append", default=argparse.SUPPRESS, metavar="KEY=VALUE", dest="set",
        help="override one config key (repeatable), e.g. --set levels=5",
    )
    group.add_argument(
        "--progress", choices=MODES, default=argparse.SUPPRESS,
        help="progress display: a bar on a terminal, JSON lines on stdout for programs, or none "
        "(default: bar)",
    )
    group.add_argument(
        "-v", "--verbose", action="count", default=argparse.SUPPRESS,
        help="more messages on the terminal (-vv for debug)",
    )


def build_parser(commands: Sequence[Command], prog: str = "robustdeep") -> argparse.ArgumentParser:
    """The ``argparse`` parser of the command line: ``--version``, the common options, the commands.

    Each command's parser gets the common options too and, as defaults, ``_command`` (the
    :class:`Command`), ``_options`` (its :class:`Options`) and ``_path`` (e.g. ``"cohort check"``).

    Parameters
    ----------
    commands : sequence of Command
        The commands, in the order ``--help`` lists them; a group's subcommands are nested.
    prog : str, optional
        The program's name in the usage text.

    Returns
    -------
    argparse.ArgumentParser
        The parser; a command is required.
    """
    parser = argparse.ArgumentParser(
        prog=prog,
        description="RobustDeep: Robust-Deep data augmentation (registration to MNI, Laplacian-pyramid "
        "blending of patients) and dilated residual networks for brain PET/CT/MR translation.",
        epilog="Run 'robustdeep COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"robustdeep {__version__}")
    _add_common(parser)
    _add_commands(parser, commands, prefix=())
    return parser


def _add_commands(parser: argparse.ArgumentParser, commands: Sequence[Command], prefix: tuple) -> None:
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", dest=f"_cmd{len(prefix)}")
    sub.required = True
    for command in commands:
        p = sub.add_parser(
            command.name,
            help=command.help,
            description=command.description or command.help,
            epilog=command.epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        path = prefix + (command.name,)
        if command.subcommands:
            _add_commands(p, command.subcommands, path)
            continue
        options = Options(p)
        if command.arguments is not None:
            command.arguments(options)
        _add_common(p)
        p.set_defaults(_command=command, _options=options, _path=" ".join(path))

"""The ``robustdeep`` command line: the entry point :func:`main`, and :func:`run_command`.

:func:`run_command` runs one command the same way for every command: it parses the arguments,
resolves the configuration (:func:`RobustDeepLogic.core.config.resolve`), creates the output folder,
sets up the log (``robustdeep.log`` there, and the terminal or ``log`` events), saves the resolved
configuration beside the outputs, runs the command and reports its result. Exit statuses: 0 done,
2 bad input (:class:`~RobustDeepLogic.core.errors.InputError`), 1 any other failure (its traceback in
the log), 130 interrupted.

What a command declares, and the parser, are in :mod:`RobustDeepLogic.cli.frame`; the commands are in
:mod:`RobustDeepLogic.cli.commands`.
"""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path
from typing import Optional, Sequence

from RobustDeepLogic.cli.commands import all_commands
from RobustDeepLogic.cli.frame import (
    _FILE_ONLY,
    LOG_NAME,
    Command,
    Options,
    Result,
    RunContext,
    build_parser,
    logger,
)
from RobustDeepLogic.core.config import resolve, save_resolved
from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.progress import Progress, make_progress


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The ``robustdeep`` entry point: run one command of the command line.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments, without the program's name; None: ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit status (see :func:`run_command`).
    """
    return run_command(argv)


def _setup_logging(out_dir: Optional[Path], progress: Progress, verbosity: int) -> logging.Logger:
    logger.setLevel(logging.DEBUG)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.propagate = False
    if out_dir is not None:
        fh = logging.FileHandler(out_dir / LOG_NAME, encoding="utf-8")
        fh.setLevel(logging.DEBUG)
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(fh)
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    if progress.mode == "json":
        handler: logging.Handler = _ProgressLogHandler(progress, logging.INFO if verbosity <= 0 else level)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setLevel(level)
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    handler.addFilter(lambda record: getattr(record, "console", True))
    logger.addHandler(handler)
    return logger


class _ProgressLogHandler(logging.Handler):
    def __init__(self, progress: Progress, level: int) -> None:
        super().__init__(level)
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        self.progress.log(record.levelname, record.getMessage())


def run_command(argv: Optional[Sequence[str]] = None, commands: Optional[Sequence[Command]] = None) -> int:
    """Parse ``argv``, run the command, report; returns the exit status (0, 1, 2 or 130).

    With ``--progress json`` the result or the error is a JSON event on stdout; otherwise the
    summary and outputs are printed on stdout and an error on stderr.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments, without the program's name; None: ``sys.argv[1:]``.
    commands : sequence of Command, optional
        The commands to offer (default: :func:`~RobustDeepLogic.cli.commands.all_commands`).

    Returns
    -------
    int
        0 when the command succeeded, 2 for an ``InputError``, 1 for any other exception, 130 when
        interrupted (Ctrl-C).

    Raises
    ------
    SystemExit
        From ``argparse``: after ``--help`` or ``--version`` (status 0), or for arguments it cannot
        parse (status 2).
    """
    if commands is None:
        commands = all_commands()
    parser = build_parser(commands)
    args = parser.parse_args(argv)
    ns = vars(args)
    command: Command = ns.pop("_command")
    options: Options = ns.pop("_options")
    path: str = ns.pop("_path")
    for key in [k for k in ns if k.startswith("_cmd")]:
        ns.pop(key)
    mode = ns.pop("progress", "bar")
    verbosity = ns.pop("verbose", 0)
    config_files = ns.pop("config", [])
    overrides = ns.pop("set", [])
    progress = make_progress(mode)
    out_dir: Optional[Path] = None
    try:
        defaults = dict(options.defaults)
        positional_values = {k: ns.pop(k) for k in list(ns) if k in options.positionals}
        config = resolve(
            path.replace(" ", "_"),
            defaults,
            config_files=config_files,
            cli_values=ns,
            overrides=overrides,
            all_commands=[c.name for c in commands],
            positionals=options.positionals,
            settings=options.settings,
        )
        config.update(positional_values)
        if command.output is not None and config.get(command.output) is not None:
            target = Path(config[command.output])
            out_dir = target.parent if command.output_is_file else target
            out_dir.mkdir(parents=True, exist_ok=True)
        log = _setup_logging(out_dir, progress, verbosity)
        log.info("robustdeep %s started", path)
        if out_dir is not None:
            save_resolved(out_dir / f"robustdeep-{path.replace(' ', '-')}.config.yaml", path, config)
        ctx = RunContext(command=path, config=config, progress=progress, log=log, out_dir=out_dir)
        result = command.run(config, ctx) if command.run else Result()
        result = result or Result()
        log.info("robustdeep %s finished", path)
        progress.result(path, result.outputs, result.figures)
        if progress.mode != "json":
            _print_result(result)
        return 0
    except InputError as exc:
        logger.error("%s", exc, extra=_FILE_ONLY)
        if progress.mode == "json":
            progress.error(exc.as_event())
        else:
            print(f"robustdeep {path}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if progress.mode == "json":
            progress.error({"event": "error", "kind": "interrupted", "message": "interrupted",
                            "file": None, "patient": None, "hint": "run again to resume"})
        else:
            print(f"robustdeep {path}: interrupted; run the same command again to resume",
                  file=sys.stderr)
        return 130
    except Exception as exc:  # an internal failure: keep the traceback in the log
        logger.error("%s", traceback.format_exc(), extra=_FILE_ONLY)
        message = f"internal error: {type(exc).__name__}: {exc}"
        if progress.mode == "json":
            progress.error({"event": "error", "kind": "internal", "message": message, "file": None,
                            "patient": None, "hint": "see robustdeep.log in the output folder"})
        else:
            print(f"robustdeep {path}: {message}", file=sys.stderr)
            if verbosity > 0:
                traceback.print_exc()
        return 1
    finally:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            handler.close()


def _print_result(result: Result) -> None:
    if result.summary:
        print(result.summary)
    for name, value in result.outputs.items():
        print(f"{name}: {value}")

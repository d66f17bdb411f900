"""Where the engine is, and the full command lines that the module runs in a separate process.

The engine, the Python package ``RobustDeepLogic``, sits in one of two places relative to this
module's folder (``RobustDeep/``, the folder of ``RobustDeep.py``):

1. **Installed extension** (built with CMake and installed, or from the Extensions Manager): the build
   copies ``RobustDeepLogic/`` into the module's own library folder, beside ``RobustDeep.py``
   (``lib/Slicer-X.Y/qt-scripted-modules/``). That folder is on ``sys.path`` already.
2. **A clone used as an additional module path** (``<clone>/RobustDeep`` added in Slicer's settings):
   ``RobustDeepLogic/`` is at the clone's root, one folder up. :func:`ensure_engine_importable`
   puts the clone's root first on ``sys.path``.

Otherwise the engine may have been installed into Slicer's Python with pip (``pip install -e
<clone>``); then it is importable as it is. :func:`find_engine_root` says which case holds.

The child processes run ``robustdeep <command> ... --progress json`` (:func:`engine_argv`; the
arguments from the ``*_command`` functions of :mod:`RobustDeepLib.command_lines`) with Slicer's own
Python (``PythonSlicer``) and the engine root first on ``PYTHONPATH`` and (by a bootstrap) on
``sys.path``, so they import the very same engine as the module does; :mod:`RobustDeepLib.process`
runs them.

Note on names: Slicer's scripted-module convention calls a module's logic class ``<Module>Logic``,
which for this module is ``RobustDeepLogic``, the name of the engine package too. ``RobustDeep.py``
therefore imports the engine under another name (``import RobustDeepLogic as rdengine``) *before* it
defines its logic class; nothing in this package relies on the bare name.

This module is free of Qt and of Slicer.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import sys
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Union

ENGINE_PACKAGE = "RobustDeepLogic"
PathLike = Union[str, os.PathLike]


# --------------------------------------------------------------------------------------------------
# Finding the engine
# --------------------------------------------------------------------------------------------------
def _has_engine(folder: Path) -> bool:
    return (folder / ENGINE_PACKAGE / "__init__.py").is_file()


def find_engine_root(module_dir: PathLike) -> Optional[Path]:
    """The folder that holds ``RobustDeepLogic/`` for a module at ``module_dir``, or None.

    Looks beside the module first (installed extension), then one folder up (a clone's
    ``RobustDeep/`` folder used as an additional module path).

    Parameters
    ----------
    module_dir : str or PathLike
        The module's folder, that of ``RobustDeep.py``.

    Returns
    -------
    Path or None
        The engine root, resolved.
    """
    here = Path(module_dir).resolve()
    for candidate in (here, here.parent):
        if _has_engine(candidate):
            return candidate
    return None


def ensure_engine_importable(module_dir: PathLike) -> Optional[Path]:
    """Make ``import RobustDeepLogic`` find the engine that belongs to this module.

    Parameters
    ----------
    module_dir : str or PathLike
        The module's folder, that of ``RobustDeep.py``.

    Returns
    -------
    Path or None
        The engine root that was put on ``sys.path`` (first, so that a stale copy elsewhere does not
        win), or None when the engine is not beside the module; then it must be installed in this
        Python already (:func:`engine_location` tells).
    """
    root = find_engine_root(module_dir)
    if root is None:
        return None
    text = str(root)
    if text in sys.path:
        sys.path.remove(text)
    sys.path.insert(0, text)
    return root


def engine_location() -> Optional[Path]:
    """The folder of the importable engine package, or None when it cannot be imported.

    Returns
    -------
    Path or None
        The package folder, resolved (found without importing it).
    """
    spec = importlib.util.find_spec(ENGINE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]).resolve()


def engine_has(stage: str) -> bool:
    """True when the engine has the module ``RobustDeepLogic.<stage>`` (False without an engine).

    Parameters
    ----------
    stage : str
        The module's dotted name under the engine, e.g. ``"masks"`` or ``"io.volumes"``.

    Returns
    -------
    bool
    """
    try:
        return importlib.util.find_spec(f"{ENGINE_PACKAGE}.{stage}") is not None
    except (ImportError, ValueError):
        return False


def engine_commands() -> List[str]:
    """The names of the ``robustdeep`` subcommands that the installed engine has, sorted.

    Returns
    -------
    list of str
        The module names of ``RobustDeepLogic.cli.commands`` (ImportError when there is no engine).
    """
    import pkgutil

    commands = importlib.import_module(f"{ENGINE_PACKAGE}.cli.commands")
    return sorted(m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_"))


# --------------------------------------------------------------------------------------------------
# Child processes
# --------------------------------------------------------------------------------------------------
def python_executable(in_slicer: bool = False) -> str:
    """The Python that runs engine commands.

    Inside Slicer (``in_slicer``) it is Slicer's own Python launcher ``PythonSlicer`` (on the
    application's PATH), which sets up the same libraries as the application; elsewhere, and when the
    launcher cannot be found, the running interpreter.

    Parameters
    ----------
    in_slicer : bool, optional
        Whether this runs inside Slicer.

    Returns
    -------
    str
        The path of the Python executable.
    """
    if in_slicer:
        found = shutil.which("PythonSlicer")
        if found:
            return found
    return sys.executable


def engine_env(
    engine_root: Optional[PathLike],
    base: Optional[Mapping[str, str]] = None,
    extra: Optional[Mapping[str, str]] = None,
) -> Dict[str, str]:
    """The environment of an engine process: the engine root first on ``PYTHONPATH``, output unbuffered.

    Parameters
    ----------
    engine_root : str or PathLike or None
        The folder holding ``RobustDeepLogic/``; None leaves ``PYTHONPATH`` as it is.
    base, extra : mapping of str to str, optional
        The environment to start from (default: this process's), and variables set on top of all.

    Returns
    -------
    dict of str to str
        A new environment (``PYTHONIOENCODING`` is ``utf-8`` unless ``base`` sets it).
    """
    env = dict(os.environ if base is None else base)
    if engine_root is not None:
        parts = [str(Path(engine_root))]
        if env.get("PYTHONPATH"):
            parts += [p for p in env["PYTHONPATH"].split(os.pathsep) if p and p != parts[0]]
        env["PYTHONPATH"] = os.pathsep.join(parts)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("PYTHONIOENCODING", "utf-8")
    if extra:
        env.update({str(k): str(v) for k, v in extra.items()})
    return env


#: The child's first statement when the engine root is given: import the engine from that root,
#: whatever PYTHONPATH the Python launcher (PythonSlicer) ends up with, then run the command line.
_BOOTSTRAP = (
    "import sys; sys.path.insert(0, sys.argv.pop(1)); "
    "from RobustDeepLogic.cli import main; sys.exit(main(sys.argv[1:]))"
)


def engine_argv(command: Sequence[object], python: Optional[str] = None,
                engine_root: Optional[PathLike] = None) -> List[str]:
    """The argument list of ``robustdeep <command...> --progress json`` in a child Python.

    Without ``engine_root`` it is ``python -m RobustDeepLogic ...`` (the engine must be importable,
    e.g. through ``PYTHONPATH``); with it, a one-line bootstrap puts that root first on ``sys.path``.

    Parameters
    ----------
    command : sequence
        The subcommand and its arguments (the ``*_command`` functions' lists), as str.
    python : str, optional
        The Python to run (default: :func:`python_executable`).
    engine_root : str or PathLike, optional
        The folder holding ``RobustDeepLogic/``.

    Returns
    -------
    list of str
        The full command line, for :class:`RobustDeepLib.process.EngineJob`.
    """
    args = [*[str(c) for c in command], "--progress", "json"]
    if engine_root is None:
        return [python or python_executable(), "-m", ENGINE_PACKAGE, *args]
    return [python or python_executable(), "-c", _BOOTSTRAP, str(Path(engine_root)), *args]


def missing_commands(commands: Iterable[Sequence[str]]) -> List[str]:
    """Names of the subcommands in ``commands`` that the installed engine does not have (yet).

    Parameters
    ----------
    commands : iterable of sequence of str
        Argument lists from the ``*_command`` functions.

    Returns
    -------
    list of str
        Sorted, each once.
    """
    have = set(engine_commands())
    return sorted({c[0] for c in commands if c and c[0] not in have})


__all__ = [
    "ENGINE_PACKAGE",
    "engine_argv",
    "engine_commands",
    "engine_env",
    "engine_has",
    "engine_location",
    "ensure_engine_importable",
    "find_engine_root",
    "missing_commands",
    "python_executable",
]

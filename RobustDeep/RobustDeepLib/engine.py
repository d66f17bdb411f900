"""Where the engine is, and the command lines that the module runs in a separate process.

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

The child processes run ``python -m RobustDeepLogic <command> ... --progress json`` with Slicer's
own Python (``PythonSlicer``) and ``PYTHONPATH`` pointing at the engine root, so they import the very
same engine as the module does.

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

#: The training scenarios of ``robustdeep train`` (method.md §9): PU a native cohort, PR a registered
#: cohort, PM a registered cohort plus synthetic subjects (the paper's PM1 / PM2 are PM with the
#: synthetic subjects of mask #1 / mask #2).
SCENARIOS = ("PU", "PR", "PM")
#: Compute devices offered in the panel (``auto`` lets the engine pick CUDA when present).
DEVICES = ("auto", "cpu", "cuda")


# --------------------------------------------------------------------------------------------------
# Finding the engine
# --------------------------------------------------------------------------------------------------
def _has_engine(folder: Path) -> bool:
    return (folder / ENGINE_PACKAGE / "__init__.py").is_file()


def find_engine_root(module_dir: PathLike) -> Optional[Path]:
    """The folder that holds ``RobustDeepLogic/`` for a module at ``module_dir``, or None.

    Looks beside the module first (installed extension), then one folder up (a clone's
    ``RobustDeep/`` folder used as an additional module path).
    """
    here = Path(module_dir).resolve()
    for candidate in (here, here.parent):
        if _has_engine(candidate):
            return candidate
    return None


def ensure_engine_importable(module_dir: PathLike) -> Optional[Path]:
    """Make ``import RobustDeepLogic`` find the engine that belongs to this module.

    Returns the engine root that was put on ``sys.path`` (first, so that a stale copy elsewhere does
    not win), or None when the engine is not beside the module; then it must be installed in this
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
    """The folder of the importable engine package, or None when it cannot be imported."""
    spec = importlib.util.find_spec(ENGINE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]).resolve()


def engine_has(stage: str) -> bool:
    """True when the engine has the module ``RobustDeepLogic.<stage>`` (e.g. ``"masks"``)."""
    try:
        return importlib.util.find_spec(f"{ENGINE_PACKAGE}.{stage}") is not None
    except (ImportError, ValueError):
        return False


def engine_commands() -> List[str]:
    """The names of the ``robustdeep`` subcommands that the installed engine has."""
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
    """The environment of an engine process: ``base`` (default: this process's) with the engine root
    first on ``PYTHONPATH``, unbuffered output, and ``extra`` on top."""
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
    """
    args = [*[str(c) for c in command], "--progress", "json"]
    if engine_root is None:
        return [python or python_executable(), "-m", ENGINE_PACKAGE, *args]
    return [python or python_executable(), "-c", _BOOTSTRAP, str(Path(engine_root)), *args]


def assets_command() -> List[str]:
    """``robustdeep assets``: prepare the template assets once (needs the package registry)."""
    return ["assets"]


def simulate_command(out_dir: PathLike, subjects: int = 6, profile: str = "tiny") -> List[str]:
    """``robustdeep simulate OUT --subjects N --profile P``: the bundled digital (demo) cohort."""
    return ["simulate", str(out_dir), "--subjects", str(int(subjects)), "--profile", profile]


def cohort_check_command(cohort_dir: PathLike) -> List[str]:
    """``robustdeep cohort check COHORT``: validation of a cohort, no output written."""
    return ["cohort", "check", str(cohort_dir)]


def register_command(cohort_dir: PathLike, out_dir: PathLike, *, template: Optional[str] = None,
                     patients: Iterable[str] = (), sampling_percentage: Optional[float] = None,
                     initialize_transform_mode: Optional[str] = None) -> List[str]:
    """``robustdeep register COHORT OUT``: rigid registration of a cohort to template space.

    ``template`` is ``fdg`` (the engine's model template, its default) or an FDG template file; the
    two rigid options are the ones the panel shows for BRAINSFit, under the engine's names.
    """
    command = ["register", str(cohort_dir), str(out_dir)]
    if template:
        command += ["--template", str(template)]
    ids = [p for p in patients if p]
    if ids:
        command += ["--patients", *ids]
    if sampling_percentage is not None:
        command += ["--sampling-percentage", repr(float(sampling_percentage))]
    if initialize_transform_mode:
        command += ["--initialize-transform-mode", initialize_transform_mode]
    return command


def blend_command(a: PathLike, b: PathLike, mask: PathLike, out: PathLike, *, levels: int,
                  naive: bool = False) -> List[str]:
    """``robustdeep blend A B MASK OUT --levels L [--naive]``: one blend of two volumes (MASK: a file,
    a preset name or a generator spec)."""
    command = ["blend", str(a), str(b), str(mask), str(out), "--levels", str(int(levels))]
    if naive:
        command.append("--naive")
    return command


def synthesize_command(registered_dir: PathLike, out_dir: PathLike, *, masks: Sequence[str],
                       count: int, seed: int = 0, levels: Optional[int] = None) -> List[str]:
    """``robustdeep synthesize REGISTERED OUT --mask M... --count N --seed S [--levels L]``.

    ``masks`` are mask specs: preset names, generator specs or mask files.
    """
    if not masks:
        raise ValueError("synthesis needs at least one mask")
    command = ["synthesize", str(registered_dir), str(out_dir), "--mask", *[str(m) for m in masks],
               "--count", str(int(count)), "--seed", str(int(seed))]
    if levels is not None:
        command += ["--levels", str(int(levels))]
    return command


def train_command(cohort_dir: PathLike, run_dir: PathLike, *, task: str, scenario: str,
                  epochs: Optional[int] = None, steps: Optional[int] = None, device: str = "auto",
                  synthetic_cohorts: Sequence[PathLike] = ()) -> List[str]:
    """``robustdeep train COHORT --out RUN --task T --scenario S [--epochs E | --steps N] [--device D]``.

    ``steps`` > 0 trains for a fixed number of optimizer steps instead of epochs. For PM,
    ``synthetic_cohorts`` names cohort folders with synthetic subjects made from COHORT's patients.
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"scenario must be one of {', '.join(SCENARIOS)}")
    command = ["train", str(cohort_dir), "--out", str(run_dir), "--task", task, "--scenario", scenario]
    if steps:
        command += ["--steps", str(int(steps))]
    elif epochs:
        command += ["--epochs", str(int(epochs))]
    if device:
        command += ["--device", device]
    extra = [str(c) for c in synthetic_cohorts if c]
    if scenario == "PM" and extra:
        command += ["--synthetic-cohorts", *extra]
    return command


def predict_command(run_dir: PathLike, inputs: Sequence[PathLike], out_dir: PathLike, *,
                    device: str = "auto") -> List[str]:
    """``robustdeep predict RUN INPUT... --out DIR``: whole-volume prediction with a trained run."""
    command = ["predict", str(run_dir), *[str(i) for i in inputs], "--out", str(out_dir)]
    if device and device != "auto":
        command += ["--device", device]
    return command


def missing_commands(commands: Iterable[Sequence[str]]) -> List[str]:
    """Names of the subcommands in ``commands`` that the installed engine does not have (yet)."""
    have = set(engine_commands())
    return sorted({c[0] for c in commands if c and c[0] not in have})


__all__ = [
    "DEVICES",
    "assets_command",
    "ENGINE_PACKAGE",
    "SCENARIOS",
    "blend_command",
    "cohort_check_command",
    "engine_argv",
    "engine_commands",
    "engine_env",
    "engine_has",
    "engine_location",
    "ensure_engine_importable",
    "find_engine_root",
    "missing_commands",
    "predict_command",
    "python_executable",
    "register_command",
    "simulate_command",
    "synthesize_command",
    "train_command",
]

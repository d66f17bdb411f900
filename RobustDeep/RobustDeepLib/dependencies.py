"""Python packages that the engine needs inside Slicer, checked without importing them, installed
only when the user asks.

- **torch** comes from the *PyTorch* extension's ``PyTorchUtils`` module (declared in the extension's
  ``EXTENSION_DEPENDS``): it picks the build that fits the computer's GPU and driver. When that
  extension is missing, :func:`install_torch` raises :class:`MissingPyTorchExtension` with what to do.
- The other packages (the engine's light dependencies) go through ``slicer.packaging.pip_ensure``
  on Slicer 5.12 and later (which asks first), or, before, ``slicer.util.pip_install`` after the
  user confirmed (:func:`install_requirements`).
- Before a background job starts, :func:`check_command_requirements` says which packages the command
  lacks and what to press (the job would otherwise die on ``No module named 'yaml'``).

Nothing here runs at import time; importing this module imports neither Slicer nor torch.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

#: Minimum torch version of the engine (pyproject.toml).
TORCH_REQUIREMENT = ">=2.1"

#: (import name, pip requirement) of the engine's dependencies other than torch. numpy and SimpleITK
#: are listed too although Slicer ships them: never reinstall those (``pip_ensure`` only installs what
#: is missing), and never pin them.
REQUIREMENTS: Tuple[Tuple[str, str], ...] = (
    ("numpy", "numpy>=1.22"),
    ("SimpleITK", "SimpleITK>=2.2"),
    ("scipy", "scipy>=1.8"),
    ("yaml", "pyyaml>=5.4"),
    ("tqdm", "tqdm>=4.60"),
    ("pydicom", "pydicom>=2.3"),
    ("matplotlib", "matplotlib>=3.5"),
)


#: Engine commands that import torch (simulation, blending, the networks); the others need only
#: :data:`REQUIREMENTS`.
TORCH_COMMANDS = frozenset({"simulate", "blend", "synthesize", "train", "predict", "export", "demo",
                            "reproduce"})

class DependenciesMissing(RuntimeError):
    """The engine's packages that a command needs are not installed in this Python.

    Parameters
    ----------
    command : str
        The engine command (``"register"``, ...).
    missing : sequence of str
        The pip requirements that are missing (``"torch"``, ``"pyyaml>=5.4"``, ...).
    """

    def __init__(self, command: str, missing: Sequence[str]) -> None:
        self.command = command
        self.missing = list(missing)
        super().__init__(
            f"RobustDeep's engine needs Python packages that are not installed yet: {', '.join(self.missing)}. "
            f"Press 'Install dependencies...' in the Set-up section, then start '{command}' again."
        )


class InstallDeclined(RuntimeError):
    """The user declined installing packages into Slicer's Python."""


class MissingPyTorchExtension(RuntimeError):
    """The PyTorch extension (module PyTorchUtils) is not installed in this Slicer."""

    def __init__(self) -> None:
        super().__init__(
            "RobustDeep needs the 'PyTorch' extension to install torch for your computer. Open the "
            "Extensions Manager, install 'PyTorch', restart Slicer, then press 'Install dependencies' "
            "again."
        )


def is_importable(name: str) -> bool:
    """True when ``import name`` would find a module (nothing is imported).

    Parameters
    ----------
    name : str
        An import name (``"yaml"``, ``"SimpleITK"``); for a dotted name its parents are imported.

    Returns
    -------
    bool
        Whether the module can be found.
    """
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def installed_version(distribution: str) -> Optional[str]:
    """The installed version of a distribution (``"torch"``), or None.

    Parameters
    ----------
    distribution : str
        A distribution (pip) name, e.g. ``"torch"`` or ``"pyyaml"``.

    Returns
    -------
    str or None
        Its version, or None when it is not installed.
    """
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def missing_requirements(requirements: Sequence[Tuple[str, str]] = REQUIREMENTS) -> List[str]:
    """The pip requirements among ``requirements`` whose module cannot be imported.

    Parameters
    ----------
    requirements : sequence of (str, str), optional
        ``(import name, pip requirement)`` pairs (default: :data:`REQUIREMENTS`).

    Returns
    -------
    list of str
        The pip requirements (e.g. ``"scipy>=1.8"``) of the modules not found, in the given order.
    """
    return [req for name, req in requirements if not is_importable(name)]


def missing_for_command(command: Sequence[str]) -> List[str]:
    """The pip requirements an engine command lacks in this Python (torch first when it needs it).

    The child process runs Slicer's own Python (``PythonSlicer``), so what this process can import
    is what the job can import.

    Parameters
    ----------
    command : sequence of str
        The engine command line after ``robustdeep`` (``["register", COHORT, OUT]``).

    Returns
    -------
    list of str
        ``"torch"`` when the command is one of :data:`TORCH_COMMANDS` and torch is missing, then the
        missing requirements of :data:`REQUIREMENTS`; empty when the command can run.
    """
    missing = missing_requirements()
    if command and str(command[0]) in TORCH_COMMANDS and not is_importable("torch"):
        missing = ["torch"] + missing
    return missing


def check_command_requirements(command: Sequence[str]) -> None:
    """Raise :class:`DependenciesMissing` when an engine command lacks packages; before a job starts.

    Parameters
    ----------
    command : sequence of str
        The engine command line after ``robustdeep``.

    Raises
    ------
    DependenciesMissing
        Naming the missing packages and the button that installs them.
    """
    missing = missing_for_command(command)
    if missing:
        raise DependenciesMissing(str(command[0]) if command else "the command", missing)


@dataclass
class ComputeInfo:
    """What the panel shows: versions and the device the engine will use.

    Attributes
    ----------
    torch_version : str or None
        The installed torch version; None when torch is not installed.
    cuda : bool
        Whether torch sees a CUDA device.
    device : str
        ``cpu``, ``cuda`` or ``mps``.
    device_name : str
        For people: ``"CPU"``, the GPU's name and count, or why torch could not be imported.
    versions : dict of str to (str or None)
        The installed version of each distribution of :data:`REQUIREMENTS` (None: not installed).
    missing : list of str
        The pip requirements to install (``"torch"`` first when torch is missing).
    """

    torch_version: Optional[str] = None
    cuda: bool = False
    device: str = "cpu"
    device_name: str = "CPU"
    versions: Dict[str, Optional[str]] = field(default_factory=dict)
    missing: List[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: the torch version and the device, and what is missing.

        Returns
        -------
        str
            ``"torch 2.3.1, device: <device name> (cuda)"``, or ``"torch not installed"``, followed by
            ``"; missing: ..."`` when requirements are missing.
        """
        if self.torch_version is None:
            torch = "torch not installed"
        else:
            torch = f"torch {self.torch_version}, device: {self.device_name} ({self.device})"
        if self.missing:
            return f"{torch}; missing: {', '.join(self.missing)}"
        return torch


def compute_info(import_torch: bool = True) -> ComputeInfo:
    """Versions of the engine's dependencies and the compute device.

    With ``import_torch`` torch is imported (seconds) to ask for CUDA; call it from a user action or
    a deferred timer, not at module import. A torch that fails to import is reported in
    ``device_name`` (and logged), not raised.

    Parameters
    ----------
    import_torch : bool, optional
        Import torch to find the device; False: only versions (the device stays ``cpu``).

    Returns
    -------
    ComputeInfo
        Versions, missing requirements and the device.
    """
    info = ComputeInfo()
    for name, requirement in REQUIREMENTS:
        dist = requirement.split(">")[0].split("=")[0].split("<")[0]
        info.versions[dist] = installed_version(dist)
    info.missing = missing_requirements()
    info.torch_version = installed_version("torch") if is_importable("torch") else None
    if info.torch_version is None:
        info.missing = ["torch"] + info.missing
    elif import_torch:
        try:
            torch = importlib.import_module("torch")
            info.cuda = bool(torch.cuda.is_available())
            if info.cuda:
                info.device = "cuda"
                info.device_name = f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
            elif getattr(getattr(torch.backends, "mps", None), "is_available", lambda: False)():
                info.device, info.device_name = "mps", "Apple GPU"
        except Exception as exc:  # a broken torch install: say so, do not fail the panel
            logging.warning("RobustDeep: torch could not be imported: %s", exc)
            info.device_name = f"torch import failed ({type(exc).__name__})"
    return info


def install_torch(ask: bool = True) -> str:
    """Install torch with the PyTorch extension; returns the installed version.

    Nothing is installed when torch is there already.

    Parameters
    ----------
    ask : bool, optional
        Let the PyTorch extension ask the user to confirm first.

    Returns
    -------
    str
        The torch version now installed.

    Raises
    ------
    MissingPyTorchExtension
        When the PyTorch extension (module ``PyTorchUtils``) is not installed.
    RuntimeError
        When the user declines (torch is not installed).
    """
    try:
        PyTorchUtils = importlib.import_module("PyTorchUtils")
    except ModuleNotFoundError:
        raise MissingPyTorchExtension() from None
    logic = PyTorchUtils.PyTorchUtilsLogic()
    if logic.torchInstalled():
        import torch

        return str(torch.__version__)
    torch = logic.installTorch(askConfirmation=ask, torchVersionRequirement=TORCH_REQUIREMENT)
    if torch is None:
        raise RuntimeError("PyTorch was not installed (cancelled); RobustDeep cannot train or predict without it")
    return str(torch.__version__)


def install_requirements(requester: str = "RobustDeep", confirm: bool = True) -> List[str]:
    """pip-install the missing engine dependencies into Slicer's Python; returns what was asked for.

    With ``confirm`` (the panel) the user is asked first: by ``slicer.packaging.pip_ensure`` on Slicer
    5.12 and later, by ``slicer.util.confirmOkCancelDisplay`` before ``slicer.util.pip_install`` on
    older versions (whose ``pip_install`` never asks). Without it (the self-test, which Slicer's
    testing mode would otherwise leave without packages) pip runs directly. Runs inside Slicer only.

    Parameters
    ----------
    requester : str, optional
        The name Slicer shows as asking for the packages.
    confirm : bool, optional
        Ask the user first where Slicer can.

    Returns
    -------
    list of str
        The pip requirements that were missing and asked for (empty when nothing was missing).

    Raises
    ------
    InstallDeclined
        When the user declines (Slicer before 5.12; ``pip_ensure`` raises its own RuntimeError).
    """
    import slicer

    missing = missing_requirements()
    if not missing:
        return []
    packaging = getattr(slicer, "packaging", None)
    if packaging is None:
        try:
            packaging = importlib.import_module("slicer.packaging")
        except ImportError:
            packaging = None
    if confirm and packaging is not None and hasattr(packaging, "pip_ensure"):  # Slicer 5.12 and later
        packaging.pip_ensure(missing, requester=requester)
        return missing
    if confirm:
        question = (f"{requester} needs these Python packages, which will be installed into Slicer's "
                    "Python with pip:\n\n" + "\n".join(f"- {req}" for req in missing) + "\n\nContinue?")
        if not slicer.util.confirmOkCancelDisplay(question, windowTitle=f"{requester} - Install Python Packages"):
            raise InstallDeclined("Installation of the Python packages cancelled: " + ", ".join(missing))
    slicer.util.pip_install(list(missing))  # a list: no shell quoting of '>=' needed
    return missing


__all__ = [
    "REQUIREMENTS",
    "TORCH_COMMANDS",
    "TORCH_REQUIREMENT",
    "ComputeInfo",
    "DependenciesMissing",
    "InstallDeclined",
    "MissingPyTorchExtension",
    "check_command_requirements",
    "compute_info",
    "install_requirements",
    "install_torch",
    "installed_version",
    "is_importable",
    "missing_for_command",
    "missing_requirements",
]

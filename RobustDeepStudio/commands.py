"""The ``robustdeep`` command lines behind the studio's Jobs and Registration panels.

Each function returns ``(title, arguments after 'robustdeep')`` for one project
(:class:`RobustDeepStudio.workspace.Project`), every output inside it. The commands are those a user
would type; the desktop module builds the same ones (:mod:`RobustDeepLib.command_lines`).

Free of trame and of Slicer: tested with plain pytest.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Sequence, Tuple

from RobustDeepLib.command_lines import register_command, synthesize_command, train_command
from RobustDeepLogic.core.files import safe_name

#: The commands the Jobs panel runs, in its order.
JOB_COMMANDS = ("synthesize", "train", "predict", "evaluate", "reproduce")
#: Study profiles a Jobs panel offers for ``reproduce``.
PROFILES = ("tiny", "quick", "paper")

Command = Tuple[str, List[str]]


def registration(project) -> Command:
    """Register the project's native cohort to the template (``robustdeep register``).

    The registered cohort goes to :meth:`~RobustDeepStudio.workspace.Project.registration_out`.

    Parameters
    ----------
    project : RobustDeepStudio.workspace.Project
        The open project.

    Returns
    -------
    tuple of (str, list of str)
        The job's title and the arguments after ``robustdeep``.

    Raises
    ------
    ValueError
        A :class:`~RobustDeepStudio.workspace.WorkspaceError` when that folder would be outside the
        workspace (a cohort at the workspace root).
    """
    return "register cohort", register_command(project.cohort_dir, project.registration_out())


def synthesis(project, mask: str, count: int, seed: int = 0, levels: int = 4) -> Command:
    """Synthetic subjects from the registered cohort under ``mask`` (``robustdeep synthesize``).

    The subjects go to ``synthetic/studio-<mask>`` of the project, ``<mask>`` being the mask's name
    without its suffixes, made file-safe.

    Parameters
    ----------
    project : RobustDeepStudio.workspace.Project
        The open project; it must have a registered cohort.
    mask : str
        A mask spec: preset name, generator spec or mask file.
    count, seed : int
        Distinct random ordered pairs of parents, and the seed of their choice.
    levels : int, optional
        Laplacian pyramid levels.

    Returns
    -------
    tuple of (str, list of str)
        The job's title and the arguments after ``robustdeep``.

    Raises
    ------
    ValueError
        When the project has no registered cohort yet.
    """
    registered = _registered(project)
    out = project.root / "synthetic" / f"studio-{safe_name(Path(mask).name.split('.')[0] or 'mask')}"
    return (f"synthesize {count} x {mask}",
            synthesize_command(registered, out, masks=[mask], count=int(count), seed=int(seed),
                               levels=int(levels)))


def training(project, task: str, scenario: str, epochs: int,
             synthetic: Sequence[str] = ()) -> Command:
    """Train ``task`` in ``scenario`` (``robustdeep train``) into ``runs/studio/<task>-<scenario>``.

    PU trains on the native cohort, PR and PM on the registered one (PM adds ``synthetic``).

    Parameters
    ----------
    project : RobustDeepStudio.workspace.Project
        The open project.
    task : str
        A task (``ld2fd``, ...).
    scenario : {'PU', 'PR', 'PM'}
        The training scenario.
    epochs : int
        Training epochs.
    synthetic : sequence of str, optional
        Synthetic cohort folders (PM only; ignored otherwise).

    Returns
    -------
    tuple of (str, list of str)
        The job's title and the arguments after ``robustdeep``.

    Raises
    ------
    ValueError
        When PM has no ``synthetic``, PR or PM no registered cohort, or ``scenario`` is unknown.
    """
    cohort = project.cohort_dir if scenario == "PU" else _registered(project)
    if scenario == "PM" and not synthetic:
        raise ValueError("PM needs synthetic subjects: choose a synthetic cohort (or run synthesize)")
    run = project.root / "runs" / "studio" / f"{task}-{scenario}"
    return (f"train {task} {scenario}",
            train_command(cohort, run, task=task, scenario=scenario, epochs=int(epochs),
                          synthetic_cohorts=list(synthetic) if scenario == "PM" else []))


def prediction(project, run: str, patients: Sequence[str]) -> Command:
    """Predict ``patients`` of the native cohort with the trained ``run`` (``robustdeep predict``).

    The predictions go to ``predictions-studio/<run>`` of the project, ``<run>`` being the run
    folder's path in the project, made file-safe.

    Parameters
    ----------
    project : RobustDeepStudio.workspace.Project
        The open project.
    run : str
        A run folder of :func:`trained_runs` (relative to the workspace).
    patients : sequence of str
        Patient ids of the native cohort.

    Returns
    -------
    tuple of (str, list of str)
        The job's title and the arguments after ``robustdeep``.

    Raises
    ------
    ValueError
        When ``run`` is outside the workspace or outside the project.
    """
    run_dir = project.workspace.resolve(run)
    out = project.root / "predictions-studio" / safe_name(run_dir.relative_to(project.root).as_posix())
    return (f"predict {run_dir.name}",
            ["predict", str(run_dir), str(project.cohort_dir), *patients, "--out", str(out)])


def evaluation(project, predictions: str) -> Command:
    """Evaluate a predictions folder against the native cohort (``robustdeep evaluate``).

    The evaluation goes to ``<predictions>-evaluation``, beside the predictions folder.

    Parameters
    ----------
    project : RobustDeepStudio.workspace.Project
        The open project.
    predictions : str
        A folder of :func:`prediction_folders` (relative to the workspace).

    Returns
    -------
    tuple of (str, list of str)
        The job's title and the arguments after ``robustdeep``.

    Raises
    ------
    ValueError
        When ``predictions`` is outside the workspace.
    """
    folder = project.workspace.resolve(predictions)
    return (f"evaluate {folder.name}",
            ["evaluate", "--predictions", str(folder), "--cohort", str(project.cohort_dir),
             "--out", str(folder.parent / f"{folder.name}-evaluation")])


def reproduction(workspace, profile: str, out: str, settings: Sequence[str] = ()) -> Command:
    """The paper's study with ``profile`` (``robustdeep reproduce``) into ``out`` inside the workspace.

    Parameters
    ----------
    workspace : RobustDeepStudio.workspace.Workspace
        The studio's workspace.
    profile : str
        One of :data:`PROFILES`.
    out : str
        The study folder, relative to the workspace.
    settings : sequence of str, optional
        ``key=value`` settings, each passed as ``--set``.

    Returns
    -------
    tuple of (str, list of str)
        The job's title and the arguments after ``robustdeep``.

    Raises
    ------
    ValueError
        When ``profile`` is unknown or ``out`` is outside the workspace.
    """
    if profile not in PROFILES:
        raise ValueError(f"profile {profile!r}: choose one of {', '.join(PROFILES)}")
    folder = workspace.resolve(out)
    command = ["reproduce", "--profile", profile, "--out", str(folder)]
    for setting in settings:
        command += ["--set", setting]
    return f"reproduce ({profile}) into {workspace.relative(folder)}", command


def trained_runs(project) -> List[str]:
    """Run folders of the project (``run.json`` inside), relative to the workspace.

    Parameters
    ----------
    project : RobustDeepStudio.workspace.Project
        The open project.

    Returns
    -------
    list of str
        Sorted.
    """
    return sorted(project.workspace.relative(p.parent) for p in project.root.glob("runs/**/run.json"))


def prediction_folders(project) -> List[str]:
    """Folders of predicted volumes of the project (``predictions*/.../<arm>/``), relative to the workspace.

    Parameters
    ----------
    project : RobustDeepStudio.workspace.Project
        The open project.

    Returns
    -------
    list of str
        Every folder holding a ``.nii.gz`` file under a ``predictions*`` folder, sorted.
    """
    found = {p.parent for pattern in ("predictions*/**/*.nii.gz",) for p in project.root.glob(pattern)}
    return sorted(project.workspace.relative(p) for p in found)


def synthetic_cohorts(project) -> List[str]:
    """Synthetic cohorts of the project (``synthetic/<name>/manifest.json``), relative to the workspace.

    Parameters
    ----------
    project : RobustDeepStudio.workspace.Project
        The open project.

    Returns
    -------
    list of str
        Sorted.
    """
    return sorted(project.workspace.relative(p.parent) for p in project.root.glob("synthetic/*/manifest.json"))


def _registered(project) -> Path:
    if project.registered_dir is None:
        raise ValueError("this project has no registered cohort yet: run the registration first")
    return project.registered_dir


__all__ = ["JOB_COMMANDS", "PROFILES", "evaluation", "prediction", "prediction_folders", "registration",
           "reproduction", "synthesis", "synthetic_cohorts", "trained_runs", "training"]

"""The ``robustdeep`` command lines behind the studio's Jobs and Registration panels.

Each function returns ``(title, arguments after 'robustdeep')`` for one project
(:class:`RobustDeepStudio.workspace.Project`), every output inside it. The commands are those a user
would type; the desktop module builds the same ones (:mod:`RobustDeepLib.command_lines`).

Free of trame and of Slicer: tested with plain pytest.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import List, Sequence, Tuple

from RobustDeepLib.command_lines import register_command, synthesize_command, train_command
from RobustDeepLogic.cohort import Cohort, get_task
from RobustDeepLogic.core.files import atomic_write_text, safe_name
from RobustDeepLogic.masks.presets import looks_like_file, mask_tag
from RobustDeepStudio.results import STUDY_FILE

#: The commands the Jobs panel runs, in its order.
JOB_COMMANDS = ("synthesize", "train", "predict", "evaluate", "reproduce")
#: Study profiles a Jobs panel offers for ``reproduce``.
PROFILES = ("tiny", "quick", "paper")

Command = Tuple[str, List[str]]


def registration(project) -> Command:
    """Register the project's native cohort to the template (``robustdeep register``).

    The registered cohort goes to :meth:`~RobustDeepStudio.workspace.Project.registration_out`: a
    folder of its own, never over a study's registered cohort.

    Parameters
    ----------
    project : RobustDeepStudio.workspace.Project
        The open project.

    Returns
    -------
    tuple of (str, list of str)
        The job's title and the arguments after ``robustdeep``.
    """
    return "register cohort", register_command(project.cohort_dir, project.registration_out())


def mask_argument(workspace, value: str) -> str:
    """A mask as the page gives it (a preset, a generator spec, or a file relative to the workspace,
    with an optional ``#`` selector) as the engine takes it: a file resolved inside the workspace.

    Parameters
    ----------
    workspace : RobustDeepStudio.workspace.Workspace
        The workspace.
    value : str
        The mask; files are told from specs as the engine tells them
        (:func:`RobustDeepLogic.masks.presets.looks_like_file`).

    Returns
    -------
    str
        The spec unchanged, or the file's absolute path (with its selector).

    Raises
    ------
    ValueError
        A :class:`~RobustDeepStudio.workspace.WorkspaceError` when the file is outside the workspace.
    """
    value = (value or "").strip()
    path, hash_, selector = value.partition("#")
    if not looks_like_file(path):
        return value
    return str(workspace.resolve(path)) + hash_ + selector


def synthesis(project, mask: str, count: int, seed: int = 0, levels: int = 4) -> Command:
    """Synthetic subjects from the registered cohort under ``mask`` (``robustdeep synthesize``).

    The subjects go to ``synthetic/studio-<tag>`` of the project, ``<tag>`` being the engine's tag of
    the mask (:func:`RobustDeepLogic.masks.presets.mask_tag`: a preset's name, else a safe stem and a
    hash of the spec).

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
    out = project.root / "synthetic" / f"studio-{mask_tag(mask)}"
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


def prediction(project, run: str, patients: Sequence[str] = ()) -> Command:
    """Predict with the trained ``run`` (``robustdeep predict RUN COHORT [IDS]``).

    A run trained in template space (PR, PM) predicts from the registered cohort, a native one (PU)
    from the native cohort. The predictions, ``<patient>_<TARGET>.nii.gz`` in SUV / HU, go to
    ``predictions-studio-<space>/<task>/<run name>`` of the project.

    Parameters
    ----------
    project : RobustDeepStudio.workspace.Project
        The open project.
    run : str
        A run folder of :func:`trained_runs` (relative to the workspace).
    patients : sequence of str, optional
        Patient ids; none: the run's test patients found in the cohort (the engine's choice).

    Returns
    -------
    tuple of (str, list of str)
        The job's title and the arguments after ``robustdeep``.

    Raises
    ------
    ValueError
        When ``run`` is outside the workspace or has no readable ``run.json``, or a template-space run
        meets a project without a registered cohort.
    """
    run_dir = project.workspace.resolve(run)
    task, space = _run_facts(run_dir)
    cohort = _registered(project) if space == "template" else project.cohort_dir
    out = project.root / f"predictions-studio-{space}" / task / safe_name(run_dir.name)
    return (f"predict {task} {run_dir.name}",
            ["predict", str(run_dir), str(cohort), *patients, "--out", str(out)])


def evaluation(project, predictions: str) -> Command:
    """Evaluate predictions against their references (``robustdeep evaluate``).

    ``predictions`` is either the study's ``predictions`` folder (``<task>/<arm>/<patient>.nii.gz``,
    evaluated against the native cohort into ``evaluation-studio``), or a folder written by
    :func:`prediction` (``predictions-studio-<space>/<task>/<run>``): its case table ``cases.csv``
    (each ``<patient>_<TARGET>`` file with its reference in the cohort of that space) is written there,
    atomically, and evaluated into ``<folder>-evaluation``.

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
        When the folder is outside the workspace, holds no prediction, or names a patient or a
        modality its cohort lacks.
    """
    folder = project.workspace.resolve(predictions)
    if folder == project.root / "predictions":
        return ("evaluate the study's predictions",
                ["evaluate", "--predictions", str(folder), "--cohort", str(project.cohort_dir),
                 "--out", str(project.root / "evaluation-studio")])
    space = folder.parent.parent.name.rsplit("-", 1)[-1]
    cohort_dir = _registered(project) if space == "template" else project.cohort_dir
    cohort = Cohort.load(cohort_dir)
    task = get_task(folder.parent.name)
    rows = []
    for path in sorted(folder.glob(f"*_{task.target}.nii.gz")):
        patient = path.name[: -len(f"_{task.target}.nii.gz")]
        if patient not in cohort.ids:
            raise ValueError(f"{path}: patient {patient} is not in the cohort {cohort_dir}")
        rows.append({"task": task.name, "scenario": folder.name, "patient": patient,
                     "reference": str(cohort.path(patient, task.target)), "prediction": str(path)})
    if not rows:
        raise ValueError(f"{folder}: no prediction (<patient>_{task.target}.nii.gz) to evaluate")
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(folder / "cases.csv", text.getvalue())
    return (f"evaluate {task.name} {folder.name}",
            ["evaluate", "--cases", str(folder / "cases.csv"), "--cohort", str(cohort_dir),
             "--out", str(folder.parent / f"{folder.name}-evaluation")])


def _run_facts(run_dir: Path) -> Tuple[str, str]:
    try:
        record = json.loads((run_dir / "run.json").read_text())
        return str(record["task"]["name"]), str(record.get("space", "native"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{run_dir}: not a trained run (run.json unreadable: {exc})") from None


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
        When ``profile`` is unknown, ``out`` is outside the workspace, or ``out`` holds files and is not
        a study (a study is resumed).
    """
    if profile not in PROFILES:
        raise ValueError(f"profile {profile!r}: choose one of {', '.join(PROFILES)}")
    folder = workspace.resolve(out)
    if folder.is_dir() and any(folder.iterdir()) and not (folder / STUDY_FILE).is_file():
        raise ValueError(f"{workspace.relative(folder)} holds files and is not a study: choose a new folder "
                         "(or an existing study, to resume it)")
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
    """What the Jobs panel can evaluate: the study's ``predictions`` folder and the folders written by
    :func:`prediction`, relative to the workspace.

    Parameters
    ----------
    project : RobustDeepStudio.workspace.Project
        The open project.

    Returns
    -------
    list of str
        Sorted paths.
    """
    found = [p for p in project.root.glob("predictions-studio-*/*/*")
             if p.is_dir() and not p.name.endswith("-evaluation") and any(p.glob("*.nii.gz"))]
    if any((project.root / "predictions").glob("*/*/*.nii.gz")):
        found.append(project.root / "predictions")
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


__all__ = ["JOB_COMMANDS", "PROFILES", "evaluation", "mask_argument", "prediction", "prediction_folders",
           "registration", "reproduction", "synthesis", "synthetic_cohorts", "trained_runs", "training"]

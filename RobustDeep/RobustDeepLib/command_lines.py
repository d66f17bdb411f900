"""The ``robustdeep`` command lines the module's panels run: one function per engine command, each
returning the arguments after ``robustdeep`` (``engine.engine_argv`` turns them into a full command
line for the Python that runs the engine). Qt-free: tested with plain pytest.
"""

from __future__ import annotations

from typing import Iterable, List, Optional, Sequence

from RobustDeepLib.engine import PathLike

#: The training scenarios of ``robustdeep train`` (docs/method.md §9): PU a native cohort, PR a
#: registered cohort, PM a registered cohort plus synthetic subjects (the paper's PM1 / PM2 are PM
#: with the synthetic subjects of mask #1 / mask #2).
SCENARIOS = ("PU", "PR", "PM")


#: Compute devices offered in the panel (``auto`` lets the engine pick CUDA when present).
DEVICES = ("auto", "cpu", "cuda")


def assets_command() -> List[str]:
    """``robustdeep assets``: prepare the template assets once (needs the package registry).

    Returns
    -------
    list of str
        ``["assets"]``: the arguments after ``robustdeep``, as for every ``*_command`` function.
    """
    return ["assets"]


def simulate_command(out_dir: PathLike, subjects: int = 6, profile: str = "tiny") -> List[str]:
    """``robustdeep simulate OUT --subjects N --profile P``: the bundled digital (demo) cohort.

    Parameters
    ----------
    out_dir : str or PathLike
        The cohort folder to write.
    subjects : int, optional
        Number of patients.
    profile : str, optional
        The simulation profile: ``tiny``, ``quick`` or ``paper``.

    Returns
    -------
    list of str
    """
    return ["simulate", str(out_dir), "--subjects", str(int(subjects)), "--profile", profile]


def cohort_check_command(cohort_dir: PathLike) -> List[str]:
    """``robustdeep cohort check COHORT``: validation of a cohort, no output written.

    Parameters
    ----------
    cohort_dir : str or PathLike
        The cohort folder (holding ``manifest.json``).

    Returns
    -------
    list of str
    """
    return ["cohort", "check", str(cohort_dir)]


def register_command(cohort_dir: PathLike, out_dir: PathLike, *, template: Optional[str] = None,
                     patients: Iterable[str] = (), sampling_percentage: Optional[float] = None,
                     initialize_transform_mode: Optional[str] = None) -> List[str]:
    """``robustdeep register COHORT OUT``: rigid registration of a cohort to template space.

    Parameters
    ----------
    cohort_dir, out_dir : str or PathLike
        The native-space cohort, and the registered cohort to write.
    template : str, optional
        ``fdg`` (the engine's model template, its default) or an FDG template file.
    patients : iterable of str, optional
        Only these patients (empty ids are dropped); none: all.
    sampling_percentage, initialize_transform_mode : float, str, optional
        The two rigid options the panel shows for BRAINSFit, under the engine's names (None: the
        engine's defaults).

    Returns
    -------
    list of str
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
    """``robustdeep blend A B MASK OUT --levels L [--naive]``: one blend of two volumes.

    Parameters
    ----------
    a, b, mask, out : str or PathLike
        The two parents (on one grid; mask 1 takes ``a``), the mask (a file, a preset name or a
        generator spec) and the output volume.
    levels : int
        Laplacian pyramid levels (docs/method.md §4).
    naive : bool, optional
        The naive blend ``mask * A + (1 - mask) * B`` instead.

    Returns
    -------
    list of str
    """
    command = ["blend", str(a), str(b), str(mask), str(out), "--levels", str(int(levels))]
    if naive:
        command.append("--naive")
    return command


def synthesize_command(registered_dir: PathLike, out_dir: PathLike, *, masks: Sequence[str],
                       count: int, seed: int = 0, levels: Optional[int] = None) -> List[str]:
    """``robustdeep synthesize REGISTERED OUT --mask M... --count N --seed S [--levels L]``.

    Parameters
    ----------
    registered_dir, out_dir : str or PathLike
        A registered cohort, and the cohort folder that receives the synthetic subjects.
    masks : sequence of str
        Mask specs: preset names, generator specs or mask files.
    count, seed : int
        Distinct random ordered pairs, and the seed of their choice.
    levels : int, optional
        Laplacian pyramid levels (None: the engine's default).

    Returns
    -------
    list of str

    Raises
    ------
    ValueError
        When ``masks`` is empty.
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

    Parameters
    ----------
    cohort_dir, run_dir : str or PathLike
        The cohort (native for PU, registered for PR and PM), and the run folder.
    task, scenario : str
        A task (``ld2fd``, ...) and one of :data:`SCENARIOS`.
    epochs, steps : int, optional
        ``steps`` > 0 trains for a fixed number of optimizer steps instead of epochs; None or 0:
        the engine's default.
    device : str, optional
        ``auto``, ``cpu`` or ``cuda``.
    synthetic_cohorts : sequence of str or PathLike, optional
        For PM: cohort folders with synthetic subjects made from COHORT's patients.

    Returns
    -------
    list of str

    Raises
    ------
    ValueError
        When ``scenario`` is not one of :data:`SCENARIOS`.
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
    """``robustdeep predict RUN INPUT... --out DIR``: whole-volume prediction with a trained run.

    Parameters
    ----------
    run_dir, out_dir : str or PathLike
        The run folder of ``robustdeep train``, and the output folder.
    inputs : sequence of str or PathLike
        One volume per task input, in order, or a cohort folder followed by patient ids.
    device : str, optional
        ``auto`` (the engine's default), ``cpu``, ``cuda`` or ``cuda:N``.

    Returns
    -------
    list of str
    """
    command = ["predict", str(run_dir), *[str(i) for i in inputs], "--out", str(out_dir)]
    if device and device != "auto":
        command += ["--device", device]
    return command

"""A study's predictions: every test patient by every arm, back in its native frame and units.

:func:`predict_test_patients` is stage 7 of :func:`RobustDeepLogic.study.stages.reproduce`
(docs/method.md §9): the fold networks of an arm averaged, PR / PM predictions mapped back from the
template to the patient's native PET/CT grid, every arm judged against the same untouched reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict

from RobustDeepLogic.core.progress import Progress
from RobustDeepLogic.io.transforms import read_transform
from RobustDeepLogic.io.volumes import write_volume
from RobustDeepLogic.predict.ensemble import load_models
from RobustDeepLogic.predict.volumes import inference_device, predict_image, to_native
from RobustDeepLogic.study.folder import Study, prediction_path
from RobustDeepLogic.study.profiles import Arm
from RobustDeepLogic.training.runs import checkpoints


def predict_test_patients(study: Study, task: str, arm: Arm, run_dir: Path, source, registered, native,
                          *, device: str, progress: Progress) -> Dict[str, str]:
    """Predict every test patient with ``arm``'s networks (fold average), in native space and SUV / HU.

    PU predicts from the native cohort on the native target grid. PR / PM predict from the registered
    inputs on the template grid and are mapped back onto the patient's native target grid through the
    inverse of its PET/CT registration (linear; outside the template grid, the target's background).
    A prediction newer than the run's checkpoints is kept.

    Parameters
    ----------
    study : Study
        The study: its folder and test patients.
    task : str
        The task (``ld2fd``, ``ldmr2fd``, ``nac2mac``, ``mr2ct``).
    arm : Arm
        The arm; its ``space`` says which cohort the inputs come from.
    run_dir : Path
        The arm's training run; the ``best`` checkpoint of each fold is used.
    source, registered, native : Cohort
        The native-space cohort (the target grids), the registered one (PR / PM inputs and the
        ``PETCT_to_template`` transforms) and the PU one (PU inputs and target grids).
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    progress : Progress
        Progress sink.

    Returns
    -------
    dict of str to str
        ``{patient: path}`` of every test patient's prediction (:func:`prediction_path`).

    Raises
    ------
    InputError
        When the run has no checkpoint, or a patient lacks an input of the task.
    """
    dev = inference_device(device)
    newest = max(p.stat().st_mtime for p in checkpoints(run_dir, "best").values())
    paths = {pid: prediction_path(study.root, task, arm.name, pid) for pid in study.split["test"]}
    todo = [pid for pid, path in paths.items() if not (path.is_file() and path.stat().st_mtime >= newest)]
    outputs = {pid: str(path) for pid, path in paths.items()}
    if not todo:
        return outputs
    info, models = load_models(run_dir, which="best", device=dev)
    background = info.scaling_of(info.target).to_physical(0.0)
    for pid in todo:
        cohort = native if arm.space == "native" else registered
        images = [cohort.read(pid, m) for m in info.inputs]
        reference = cohort.read(pid, info.target)
        pred = predict_image(info, models, images, reference=reference, device=dev, patient=pid,
                             progress=progress)
        if arm.space != "native":
            rel = registered.patient(pid).meta["registration"]["transforms"]["PETCT_to_template"]
            pred = to_native(pred, source.read(pid, info.target), read_transform(Path(registered.root) / rel),
                             default_value=background)
        write_volume(pred, paths[pid])
    return outputs
